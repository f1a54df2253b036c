// The CPU executor's vectorised path against the per-ray bodies it must
// reproduce bit for bit (kernels/cpu_simd.h), trilinear and Siddon renders
// and the trilinear pose gradient: every storage type, rays that
// graze the volume's faces or miss it, widths that leave lanes idle, thin
// volumes, and a pose far outside the range any lane can index.
#include "kernels/cpu_simd.h"

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "geometry/pose.h"
#include "gtest/gtest.h"
#include "kernels/executor.h"
#include "tests/kernels/executor_testing.h"
#include "tests/kernels/test_volumes.h"

namespace drr::kernels {
namespace {

using ::drr::geometry::EulerToMatrix;
using ::drr::geometry::Intrinsics;
using ::drr::geometry::MakeRtInv;
using ::drr::geometry::Mat4d;
using ::drr::geometry::Orientation;
using testing::MakeResident;
using testing::RenderImages;

// Views of a volume of `shape` (unit voxels, centred near the isocentre):
// perspective from several angles, close enough that rays enter and leave
// through every face, one shifted so that half the detector misses, and an
// orthographic one.
std::vector<PoseGeometry> ViewsOf(VolumeShape shape, int height, int width) {
  Intrinsics in;
  in.sdd = 90.0;
  in.delx = in.dely = 0.9;
  in.height = height;
  in.width = width;
  const geometry::Vec3d centre{shape.nx / 2.0, shape.ny / 2.0, shape.nz / 2.0};
  std::vector<PoseGeometry> poses;
  for (auto [alpha, beta, shift] :
       {std::tuple{0.0, 0.0, 0.0}, std::tuple{33.0, 12.0, 0.0},
        std::tuple{-71.0, 48.0, 0.0}, std::tuple{90.0, 0.0, 0.0},
        std::tuple{15.0, -20.0, 11.0}}) {
    const Mat4d rt_inv = MakeRtInv(EulerToMatrix("ZXY", {alpha, beta, 0}, true),
                                   {shift, 45, 0}, Orientation::kAP, centre);
    poses.push_back(MakePoseGeometry(Mat4d::Identity(), rt_inv, in));
  }
  in.orthographic = true;
  poses.push_back(
      MakePoseGeometry(Mat4d::Identity(),
                       MakeRtInv(EulerToMatrix("ZXY", {20, 5, 0}, true),
                                 {0, 45, 0}, Orientation::kPA, centre),
                       in));
  return poses;
}

// A volume whose every voxel differs, so that a wrong corner shows.
std::vector<float> DistinctVoxels(VolumeShape shape) {
  std::vector<float> mu(static_cast<size_t>(shape.voxels()));
  for (size_t v = 0; v < mu.size(); ++v)
    mu[v] =
        0.001f + 0.02f * static_cast<float>((v * 2654435761u) % 1000) / 1000.0f;
  return mu;
}

// The renders of `poses` by the vectorised and the scalar CPU executors,
// which must hold the same bits; returns the fraction of pixels that saw the
// volume (callers check it, or the comparison proves little).
double ExpectSameBits(const std::vector<float>& mu, VolumeShape shape,
                      StorageType storage,
                      const std::vector<PoseGeometry>& poses,
                      const RenderSettings& settings) {
  std::unique_ptr<Executor> simd = MakeCpuExecutor(2);
  std::unique_ptr<Executor> scalar = MakeScalarCpuExecutor(2);
  const std::vector<float> fast =
      RenderImages(*simd, *MakeResident(*simd, mu, nullptr, shape, storage),
                   poses, settings);
  const std::vector<float> spec =
      RenderImages(*scalar, *MakeResident(*scalar, mu, nullptr, shape, storage),
                   poses, settings);
  EXPECT_EQ(fast.size(), spec.size());
  int nonzero = 0;
  for (size_t i = 0; i < fast.size() && i < spec.size(); ++i) {
    EXPECT_EQ(std::memcmp(&fast[i], &spec[i], sizeof(float)), 0)
        << "pixel " << i << ": " << fast[i] << " vs " << spec[i];
    nonzero += spec[i] != 0.0f;
  }
  return static_cast<double>(nonzero) / static_cast<double>(spec.size());
}

RenderSettings Trilinear(int height, int width, int samples) {
  RenderSettings s;
  s.rays = RaySettings{height, width, samples};
  return s;
}

RenderSettings Siddon(int height, int width) {
  RenderSettings s;
  s.rays = RaySettings{height, width, 2};
  s.projector = Projector::kSiddon;
  return s;
}

TEST(CpuSimdTest, VectorisedPathTakesTheOneChannelSums) {
  const bool simd = std::string(SimdTargetName()) != "none";
  RenderSettings s = Trilinear(4, 4, 10);
  EXPECT_EQ(SimdRenders(s), simd);
  EXPECT_EQ(SimdDifferentiates(s), simd);
  s.channels = 2;
  EXPECT_FALSE(SimdRenders(s));
  EXPECT_FALSE(SimdDifferentiates(s));
  s.channels = 1;
  s.reduce = Reduce::kMax;
  EXPECT_FALSE(SimdRenders(s));
  s.reduce = Reduce::kSum;
  s.projector = Projector::kSiddon;
  EXPECT_EQ(SimdRenders(s), simd);
  EXPECT_FALSE(SimdDifferentiates(s));
}

TEST(CpuSimdTest, GivesTheScalarBodysBitsInEveryStorageType) {
  const VolumeShape shape{23, 19, 17};
  const std::vector<float> mu = DistinctVoxels(shape);
  // 37 columns: a full span of 32 and 5 pixels that leave lanes idle.
  const std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 37);
  for (StorageType storage :
       {StorageType::kFloat32, StorageType::kFloat16, StorageType::kBFloat16}) {
    SCOPED_TRACE(static_cast<int>(storage));
    EXPECT_GT(ExpectSameBits(mu, shape, storage, poses, Trilinear(9, 37, 150)),
              0.5);
  }
}

TEST(CpuSimdTest, SiddonGivesTheScalarBodysBitsInEveryStorageType) {
  const VolumeShape shape{23, 19, 17};
  const std::vector<float> mu = DistinctVoxels(shape);
  const std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 37);
  for (StorageType storage :
       {StorageType::kFloat32, StorageType::kFloat16, StorageType::kBFloat16}) {
    SCOPED_TRACE(static_cast<int>(storage));
    EXPECT_GT(ExpectSameBits(mu, shape, storage, poses, Siddon(9, 37)), 0.5);
  }
}

TEST(CpuSimdTest, SiddonGivesTheScalarBodysBitsInThinVolumes) {
  for (VolumeShape shape : {VolumeShape{1, 16, 16}, VolumeShape{16, 2, 16},
                            VolumeShape{16, 16, 1}, VolumeShape{2, 1, 3}}) {
    SCOPED_TRACE(std::to_string(shape.nx) + "x" + std::to_string(shape.ny) +
                 "x" + std::to_string(shape.nz));
    EXPECT_GT(
        ExpectSameBits(DistinctVoxels(shape), shape, StorageType::kFloat32,
                       ViewsOf(shape, 6, 40), Siddon(6, 40)),
        0.05);
  }
}

TEST(CpuSimdTest, GivesTheScalarBodysBitsForFewAndManySamples) {
  const VolumeShape shape{20, 24, 18};
  const std::vector<float> mu = DistinctVoxels(shape);
  // Two samples: the segment's ends, both outside the volume.
  EXPECT_EQ(ExpectSameBits(mu, shape, StorageType::kFloat32,
                           ViewsOf(shape, 7, 50), Trilinear(7, 50, 2)),
            0.0);
  for (int samples : {3, 1000}) {
    SCOPED_TRACE(samples);
    EXPECT_GT(ExpectSameBits(mu, shape, StorageType::kFloat32,
                             ViewsOf(shape, 7, 50), Trilinear(7, 50, samples)),
              0.5);
  }
}

TEST(CpuSimdTest, GivesTheScalarBodysBitsInVolumesOneOrTwoVoxelsThin) {
  for (VolumeShape shape : {VolumeShape{1, 16, 16}, VolumeShape{16, 2, 16},
                            VolumeShape{16, 16, 1}, VolumeShape{2, 1, 3}}) {
    SCOPED_TRACE(std::to_string(shape.nx) + "x" + std::to_string(shape.ny) +
                 "x" + std::to_string(shape.nz));
    EXPECT_GT(
        ExpectSameBits(DistinctVoxels(shape), shape, StorageType::kBFloat16,
                       ViewsOf(shape, 6, 40), Trilinear(6, 40, 300)),
        0.05);
  }
}

// The pose gradients of `poses` for `upstream` by the vectorised and the
// scalar CPU executors, which must hold the same bits; returns them.
std::vector<double> ExpectSameGradientBits(
    const std::vector<float>& mu, VolumeShape shape, StorageType storage,
    const std::vector<PoseGeometry>& poses, const RenderSettings& settings,
    const std::vector<float>& upstream) {
  std::unique_ptr<Executor> simd = MakeCpuExecutor(2);
  std::unique_ptr<Executor> scalar = MakeScalarCpuExecutor(2);
  const std::vector<double> fast = testing::PoseGradients(
      *simd, *MakeResident(*simd, mu, nullptr, shape, storage), poses, settings,
      upstream);
  const std::vector<double> spec = testing::PoseGradients(
      *scalar, *MakeResident(*scalar, mu, nullptr, shape, storage), poses,
      settings, upstream);
  EXPECT_EQ(fast.size(), spec.size());
  for (size_t i = 0; i < fast.size() && i < spec.size(); ++i) {
    EXPECT_EQ(std::memcmp(&fast[i], &spec[i], sizeof(double)), 0)
        << "entry " << i << ": " << fast[i] << " vs " << spec[i];
  }
  return spec;
}

TEST(CpuSimdTest, PoseGradientGivesTheScalarBodysBitsInEveryStorageType) {
  const VolumeShape shape{23, 19, 17};
  const std::vector<float> mu = DistinctVoxels(shape);
  const std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 37);
  // Upstream weights of both signs, every fifth one zero (a skipped ray).
  std::vector<float> upstream(poses.size() * 9 * 37);
  for (size_t i = 0; i < upstream.size(); ++i)
    upstream[i] = i % 5 == 0 ? 0.0f : 0.5f - static_cast<float>(i % 7) / 6.0f;
  for (StorageType storage :
       {StorageType::kFloat32, StorageType::kFloat16, StorageType::kBFloat16}) {
    SCOPED_TRACE(static_cast<int>(storage));
    const std::vector<double> gradient = ExpectSameGradientBits(
        mu, shape, storage, poses, Trilinear(9, 37, 150), upstream);
    int nonzero = 0;
    for (double d : gradient) nonzero += d != 0.0;
    EXPECT_GT(nonzero, static_cast<int>(gradient.size()) / 2);
  }
}

TEST(CpuSimdTest, PoseGradientGivesTheScalarBodysBitsInThinVolumes) {
  for (VolumeShape shape : {VolumeShape{1, 16, 16}, VolumeShape{2, 1, 3}}) {
    const std::vector<PoseGeometry> poses = ViewsOf(shape, 6, 40);
    ExpectSameGradientBits(DistinctVoxels(shape), shape, StorageType::kFloat32,
                           poses, Trilinear(6, 40, 300),
                           std::vector<float>(poses.size() * 6 * 40, 1.0f));
  }
}

TEST(CpuSimdTest, RaysFarOutsideTheIndexRangeAddNothing) {
  const VolumeShape shape{12, 12, 12};
  std::vector<PoseGeometry> poses = ViewsOf(shape, 5, 20);
  // A camera→voxel map 1e30 voxels away: every coordinate saturates.
  PoseGeometry far = poses[0];
  far.camera_to_voxel.m[0][3] = 1e30f;
  std::unique_ptr<Executor> simd = MakeCpuExecutor(1);
  const std::vector<float> image = RenderImages(
      *simd, *MakeResident(*simd, DistinctVoxels(shape), nullptr, shape), {far},
      Trilinear(5, 20, 100));
  for (float v : image) EXPECT_EQ(v, 0.0f);
  const std::vector<float> walked = RenderImages(
      *simd, *MakeResident(*simd, DistinctVoxels(shape), nullptr, shape), {far},
      Siddon(5, 20));
  for (float v : walked) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace drr::kernels
