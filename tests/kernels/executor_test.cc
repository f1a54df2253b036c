#include "kernels/executor.h"

#include <vector>

#include "gtest/gtest.h"
#include "kernels/pose.h"
#include "kernels/trilinear_sampler.h"
#include "tests/kernels/test_volumes.h"

namespace drr::kernels {
namespace {

constexpr int kSize = 24;

std::vector<PoseGeometry> ThreeViews() {
  Intrinsics in;
  in.sdd = 200.0;
  in.delx = in.dely = 0.8;
  in.height = 20;
  in.width = 24;
  std::vector<PoseGeometry> poses;
  for (double angle : {0.0, 30.0, -75.0}) {
    const Mat4d rt_inv = MakeRtInv(EulerToMatrix("ZXY", {angle, 10, 0}, true),
                                   {0, 120, 0}, Orientation::kAP, {8, 8, 8});
    poses.push_back(MakePoseGeometry(Mat4d::Identity(), rt_inv, in));
  }
  return poses;
}

std::vector<float> RenderOnCpu(int threads, const std::vector<float>& volume,
                               const std::vector<PoseGeometry>& poses,
                               const RaySettings& s) {
  std::unique_ptr<Executor> cpu = MakeCpuExecutor(threads);
  std::shared_ptr<ResidentVolume> resident;
  EXPECT_TRUE(cpu->MakeResident(volume.data(),
                                {kSize - 7, kSize - 5, kSize - 3}, &resident)
                  .ok());
  std::vector<float> out(poses.size() * s.height * s.width);
  EXPECT_TRUE(cpu->Render(*resident, poses.data(),
                          static_cast<int>(poses.size()), s, out.data())
                  .ok());
  return out;
}

TEST(CpuExecutorTest, RendersEveryPoseOfABatchWithTheSharedRayBody) {
  const std::vector<float> volume =
      testing::WavyVolume(kSize - 7, kSize - 5, kSize - 3);
  const std::vector<PoseGeometry> poses = ThreeViews();
  const RaySettings s{20, 24, 200};
  const std::vector<float> out = RenderOnCpu(2, volume, poses, s);
  const TrilinearSampler sampler{volume.data(), kSize - 7, kSize - 5,
                                 kSize - 3};
  for (size_t p = 0; p < poses.size(); ++p) {
    for (int v = 0; v < s.height; ++v) {
      for (int u = 0; u < s.width; ++u) {
        ASSERT_EQ(out[(p * s.height + v) * s.width + u],
                  MarchRay(sampler, poses[p], s, v, u))
            << "pose " << p << " pixel " << v << "," << u;
      }
    }
  }
}

TEST(CpuExecutorTest, ResultsDoNotDependOnTheThreadCount) {
  const std::vector<float> volume =
      testing::WavyVolume(kSize - 7, kSize - 5, kSize - 3);
  const std::vector<PoseGeometry> poses = ThreeViews();
  const RaySettings s{20, 24, 200};
  EXPECT_EQ(RenderOnCpu(1, volume, poses, s), RenderOnCpu(3, volume, poses, s));
}

TEST(CpuExecutorTest, ResidentVolumeReportsItsShapeAndBytes) {
  std::unique_ptr<Executor> cpu = MakeCpuExecutor(1);
  const std::vector<float> volume(2 * 3 * 4, 1.0f);
  std::shared_ptr<ResidentVolume> resident;
  ASSERT_TRUE(cpu->MakeResident(volume.data(), {2, 3, 4}, &resident).ok());
  EXPECT_EQ(resident->shape().voxels(), 24);
  EXPECT_EQ(resident->resident_bytes(), 24 * 4);
  EXPECT_EQ(cpu->name(), "cpu");
}

}  // namespace
}  // namespace drr::kernels
