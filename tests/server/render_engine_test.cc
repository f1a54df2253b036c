#include "server/render_engine.h"

#include <future>

#include "gtest/gtest.h"
#include "io/phantom.h"
#include "kernels/pose_geometry.h"
#include "kernels/trilinear_sampler.h"

namespace drr::server {
namespace {

class RenderEngineTest : public ::testing::Test {
 protected:
  RenderEngineTest()
      : executor_(kernels::MakeCpuExecutor(2)), store_(executor_.get(), 4) {
    HostVolume phantom = MakeThoraxPhantom();
    id_ = ContentDigest(phantom.header, phantom.voxels);
    header_ = phantom.header;
    mu_ = AttenuationVolume(phantom, {});
    EXPECT_TRUE(store_.Insert(id_, std::move(phantom)).ok());
  }

  RenderCall ReferenceCall(int height, int width) const {
    RenderCall call;
    call.volume_id = id_;
    call.intrinsics.height = height;
    call.intrinsics.width = width;
    EulerPoseSpec pose;
    pose.translation = {0, 850, 0};
    call.poses.push_back(pose);
    pose.rotation = {90, 0, 0};
    call.poses.push_back(pose);
    return call;
  }

  std::unique_ptr<kernels::Executor> executor_;
  VolumeStore store_;
  std::string id_;
  VolumeHeader header_;
  std::vector<float> mu_;
};

TEST_F(RenderEngineTest, RendersEachPoseAsTheKernelsDo) {
  RenderEngine engine(executor_.get(), &store_, Limits{}, 1);
  const RenderCall call = ReferenceCall(40, 50);
  absl::StatusOr<RenderResult> result = engine.Render(call);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->images.size(), 2u * 40 * 50);
  const kernels::TrilinearSampler sampler{mu_.data(), 128, 128, 96};
  const kernels::Mat4d world_to_voxel = *kernels::InvertAffine(header_.affine);
  const kernels::RaySettings s{40, 50, 500};
  for (int p = 0; p < 2; ++p) {
    const kernels::PoseGeometry g = kernels::MakePoseGeometry(
        world_to_voxel, ResolvePose(call.poses[p], VolumeCenter(header_)),
        call.intrinsics);
    for (int v = 0; v < 40; v += 7) {
      for (int u = 0; u < 50; u += 7) {
        EXPECT_EQ(result->images[(p * 40 + v) * 50 + u],
                  kernels::MarchRay(sampler, g, s, v, u));
      }
    }
  }
  // The body attenuates: the centre of the AP view is far from zero.
  EXPECT_GT(result->images[20 * 50 + 25], 1.0f);
}

TEST_F(RenderEngineTest, SubmitAnswersOnAWorkerAndUnknownVolumesAreNotFound) {
  RenderEngine engine(executor_.get(), &store_, Limits{}, 1);
  std::promise<absl::StatusOr<RenderResult>> ok, missing;
  engine.Submit(ReferenceCall(8, 8),
                [&](absl::StatusOr<RenderResult> r) { ok.set_value(r); });
  RenderCall unknown = ReferenceCall(8, 8);
  unknown.volume_id = "feedbeef";
  engine.Submit(unknown,
                [&](absl::StatusOr<RenderResult> r) { missing.set_value(r); });
  EXPECT_TRUE(ok.get_future().get().ok());
  const absl::Status s = missing.get_future().get().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("feedbeef"), absl::string_view::npos);
}

TEST_F(RenderEngineTest, AFullQueueRefusesAtOnce) {
  Limits limits;
  limits.max_queued_requests = 0;
  RenderEngine engine(executor_.get(), &store_, limits, 1);
  absl::Status status;
  engine.Submit(ReferenceCall(8, 8),
                [&](absl::StatusOr<RenderResult> r) { status = r.status(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace drr::server
