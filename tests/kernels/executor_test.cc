#include "kernels/executor.h"

#include <cmath>
#include <vector>

#include "geometry/pose.h"
#include "gtest/gtest.h"
#include "kernels/render_pixel.h"
#include "kernels/volume_view.h"
#include "tests/kernels/test_volumes.h"

namespace drr::kernels {
namespace {

using ::drr::geometry::EulerToMatrix;
using ::drr::geometry::Intrinsics;
using ::drr::geometry::MakeRtInv;
using ::drr::geometry::Mat4d;
using ::drr::geometry::Orientation;

constexpr VolumeShape kShape{17, 19, 21};

std::vector<PoseGeometry> ThreeViews() {
  Intrinsics in;
  in.sdd = 200.0;
  in.delx = in.dely = 0.8;
  in.height = 20;
  in.width = 24;
  std::vector<PoseGeometry> poses;
  for (double angle : {0.0, 30.0, -75.0}) {
    const Mat4d rt_inv = MakeRtInv(EulerToMatrix("ZXY", {angle, 10, 0}, true),
                                   {0, 120, 0}, Orientation::kAP, {8, 9, 10});
    poses.push_back(MakePoseGeometry(Mat4d::Identity(), rt_inv, in));
  }
  return poses;
}

// Classes 0..4 in slabs along x.
std::vector<uint16_t> SlabLabels() {
  std::vector<uint16_t> labels(kShape.voxels());
  for (size_t v = 0; v < labels.size(); ++v) labels[v] = (v % kShape.nx) / 4;
  return labels;
}

std::vector<float> Render(Executor& executor, const std::vector<float>& volume,
                          const uint16_t* labels, StorageType storage,
                          const std::vector<PoseGeometry>& poses,
                          const RenderSettings& s) {
  std::shared_ptr<ResidentVolume> resident;
  EXPECT_TRUE(
      executor.MakeResident(volume.data(), labels, kShape, storage, &resident)
          .ok());
  std::vector<float> out(poses.size() * s.channels * s.rays.height *
                         s.rays.width);
  const KernelStatus status = executor.Render(
      *resident, poses.data(), static_cast<int>(poses.size()), s, out.data());
  EXPECT_TRUE(status.ok()) << status.message();
  return out;
}

RenderSettings Settings(Renderer renderer, Reduce reduce, int channels) {
  RenderSettings s;
  s.rays = RaySettings{20, 24, 200};
  s.renderer = renderer;
  s.reduce = reduce;
  s.channels = channels;
  return s;
}

TEST(CpuExecutorTest, RendersEveryPoseOfABatchWithTheSharedRayBody) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<PoseGeometry> poses = ThreeViews();
  std::unique_ptr<Executor> cpu = MakeCpuExecutor(2);
  for (Renderer renderer : {Renderer::kTrilinear, Renderer::kSiddon}) {
    const RenderSettings s = Settings(renderer, Reduce::kSum, 1);
    const std::vector<float> out =
        Render(*cpu, volume, nullptr, StorageType::kFloat32, poses, s);
    const VolumeView<float> view{volume.data(), kShape.nx, kShape.ny,
                                 kShape.nz};
    for (size_t p = 0; p < poses.size(); ++p) {
      for (int v = 0; v < 20; ++v) {
        for (int u = 0; u < 24; ++u) {
          const float expected =
              renderer == Renderer::kSiddon
                  ? testing::SiddonIntegral(view, poses[p], v, u)
                  : testing::LineIntegral(view, poses[p], s.rays, v, u);
          ASSERT_EQ(out[(p * 20 + v) * 24 + u], expected)
              << p << " " << v << "," << u;
        }
      }
    }
  }
}

TEST(CpuExecutorTest, ResultsDoNotDependOnTheThreadCount) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<PoseGeometry> poses = ThreeViews();
  const RenderSettings s = Settings(Renderer::kTrilinear, Reduce::kSum, 1);
  std::unique_ptr<Executor> one = MakeCpuExecutor(1),
                            three = MakeCpuExecutor(3);
  EXPECT_EQ(Render(*one, volume, nullptr, StorageType::kFloat32, poses, s),
            Render(*three, volume, nullptr, StorageType::kFloat32, poses, s));
}

TEST(CpuExecutorTest, LabelChannelsSumToTheUnlabelledImage) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<uint16_t> labels = SlabLabels();  // classes 0..4
  const std::vector<PoseGeometry> poses = ThreeViews();
  std::unique_ptr<Executor> cpu = MakeCpuExecutor(2);
  for (Renderer renderer : {Renderer::kTrilinear, Renderer::kSiddon}) {
    // 10 channels: two passes of 8; classes 5..9 are empty.
    const std::vector<float> split =
        Render(*cpu, volume, labels.data(), StorageType::kFloat32, poses,
               Settings(renderer, Reduce::kSum, 10));
    const std::vector<float> total =
        Render(*cpu, volume, labels.data(), StorageType::kFloat32, poses,
               Settings(renderer, Reduce::kSum, 1));
    const int plane = 20 * 24;
    for (size_t p = 0; p < poses.size(); ++p) {
      for (int px = 0; px < plane; ++px) {
        float sum = 0;
        for (int c = 0; c < 10; ++c) {
          const float value = split[(p * 10 + c) * plane + px];
          if (c >= 5) {
            EXPECT_EQ(value, 0.0f);
          }
          sum += value;
        }
        EXPECT_NEAR(sum, total[p * plane + px],
                    1e-5f * total[p * plane + px] + 1e-7f);
      }
    }
  }
}

TEST(CpuExecutorTest, MaximumIntensityIsTheLargestSample) {
  std::vector<float> volume(kShape.voxels(), 0.01f);
  volume[(10 * kShape.ny + 9) * kShape.nx + 8] =
      0.5f;  // one bright voxel at (8, 9, 10)
  const std::vector<PoseGeometry> poses = ThreeViews();
  std::unique_ptr<Executor> cpu = MakeCpuExecutor(1);
  for (Renderer renderer : {Renderer::kTrilinear, Renderer::kSiddon}) {
    const std::vector<float> mip =
        Render(*cpu, volume, nullptr, StorageType::kFloat32, poses,
               Settings(renderer, Reduce::kMax, 1));
    float brightest = 0;
    for (float v : mip) {
      EXPECT_GE(v, 0.0f);
      EXPECT_LE(v, 0.5f + 1e-6f);
      brightest = std::max(brightest, v);
    }
    EXPECT_GT(brightest, 0.1f);  // some ray passes near the bright voxel
  }
}

TEST(CpuExecutorTest, HalfPrecisionStorageStaysWithinItsRoundingError) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<PoseGeometry> poses = ThreeViews();
  const RenderSettings s = Settings(Renderer::kTrilinear, Reduce::kSum, 1);
  std::unique_ptr<Executor> cpu = MakeCpuExecutor(2);
  const std::vector<float> exact =
      Render(*cpu, volume, nullptr, StorageType::kFloat32, poses, s);
  // Relative rounding of one stored value: 2⁻¹¹ (float16), 2⁻⁸ (bfloat16).
  for (auto [storage, bound] :
       {std::pair{StorageType::kFloat16, 1.0f / 2048},
        std::pair{StorageType::kBFloat16, 1.0f / 256}}) {
    const std::vector<float> half =
        Render(*cpu, volume, nullptr, storage, poses, s);
    for (size_t i = 0; i < exact.size(); ++i) {
      ASSERT_NEAR(half[i], exact[i], bound * exact[i] + 1e-7f) << i;
    }
  }
}

TEST(CpuExecutorTest, TextureSamplerIsRefused) {
  std::unique_ptr<Executor> cpu = MakeCpuExecutor(1);
  const std::vector<float> volume(kShape.voxels(), 1.0f);
  std::shared_ptr<ResidentVolume> resident;
  ASSERT_TRUE(cpu->MakeResident(volume.data(), nullptr, kShape,
                                StorageType::kFloat32, &resident)
                  .ok());
  RenderSettings s = Settings(Renderer::kTrilinear, Reduce::kSum, 1);
  s.sampler = Sampler::kTexture;
  std::vector<float> out(20 * 24);
  const PoseGeometry pose = ThreeViews()[0];
  EXPECT_EQ(cpu->Render(*resident, &pose, 1, s, out.data()).code(),
            KernelCode::kInvalidArgument);
}

TEST(CpuExecutorTest, ResidentVolumeReportsWhatItHolds) {
  std::unique_ptr<Executor> cpu = MakeCpuExecutor(1);
  const std::vector<float> volume(kShape.voxels(), 1.0f);
  const std::vector<uint16_t> labels = SlabLabels();
  std::shared_ptr<ResidentVolume> resident;
  ASSERT_TRUE(cpu->MakeResident(volume.data(), labels.data(), kShape,
                                StorageType::kFloat16, &resident)
                  .ok());
  EXPECT_EQ(resident->shape().voxels(), kShape.voxels());
  EXPECT_EQ(resident->resident_bytes(), kShape.voxels() * 4);
  EXPECT_TRUE(resident->has_labels());
  EXPECT_EQ(resident->storage(), StorageType::kFloat16);
  EXPECT_EQ(cpu->name(), "cpu");
}

}  // namespace
}  // namespace drr::kernels
