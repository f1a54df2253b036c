#include "kernels/ray_march.h"

#include <cmath>
#include <vector>

#include "geometry/pose.h"
#include "gtest/gtest.h"
#include "kernels/pose_geometry.h"
#include "kernels/volume_view.h"
#include "tests/kernels/test_volumes.h"

namespace drr::kernels {
namespace {

using ::drr::geometry::EulerToMatrix;
using ::drr::geometry::Intrinsics;
using ::drr::geometry::InverseIntrinsicMatrix;
using ::drr::geometry::MakeRtInv;
using ::drr::geometry::Mat3d;
using ::drr::geometry::Mat4d;
using ::drr::geometry::Orientation;
using ::drr::geometry::TransformPoint;
using ::drr::geometry::Vec3d;

constexpr int kN = 20;
constexpr float kMu = 0.02f;

TEST(MarchRayTest, BoxLineIntegralIsMuTimesChordToFloatPrecision) {
  // Samples every 1 mm along z land on voxel centres: the rectangle rule is
  // exact.
  const std::vector<float> box = testing::UniformBox(kN, 5, 14, kMu);
  const VolumeView<float> sampler{box.data(), kN, kN, kN};
  const PoseGeometry g = testing::ColumnRays(kN, /*sdd=*/19.0);
  const RaySettings s{kN, kN, /*n_samples=*/20};
  for (int v = 0; v < kN; ++v) {
    for (int u = 0; u < kN; ++u) {
      const bool inside = u >= 5 && u <= 14 && v >= 5 && v <= 14;
      const float expected = inside ? kMu * 10.0f : 0.0f;  // chord: 10 mm
      EXPECT_NEAR(testing::LineIntegral(sampler, g, s, v, u), expected,
                  1e-6f * kMu * 10.0f)
          << "pixel " << v << "," << u;
    }
  }
}

TEST(MarchRayTest, ObliquePerspectiveRaysThroughABoxIntegrateMuTimesChord) {
  const std::vector<float> box = testing::UniformBox(kN, 5, 14, kMu);
  const VolumeView<float> sampler{box.data(), kN, kN, kN};
  // Source 40 mm below the box centre looking up +z; detector 100 mm away.
  const Vec3d source{9.5, 9.5, -40.0};
  const Mat4d rt_inv = Mat4d::FromAffine(Mat3d::Identity(), source);
  Intrinsics in;
  in.sdd = 100.0;
  in.delx = in.dely = 1.0;
  in.height = in.width = 6;
  const PoseGeometry g = MakePoseGeometry(Mat4d::Identity(), rt_inv, in);
  const RaySettings s{6, 6, /*n_samples=*/100001};
  const Mat3d k_inv = InverseIntrinsicMatrix(in);
  for (int v = 0; v < 6; ++v) {
    for (int u = 0; u < 6; ++u) {
      const Vec3d dir = k_inv * Vec3d{u + 0.5, v + 0.5, 1.0};
      // The ray enters through z = 4.5 and leaves through z = 14.5.
      const double chord =
          10.0 * std::sqrt(dir[0] * dir[0] + dir[1] * dir[1] + 1.0);
      EXPECT_NEAR(testing::LineIntegral(sampler, g, s, v, u), kMu * chord,
                  3e-4 * kMu * chord)
          << "pixel " << v << "," << u;
    }
  }
}

TEST(MarchRayTest, RaysThatMissTheVolumeIntegrateToZero) {
  const std::vector<float> box(kN * kN * kN, kMu);
  const VolumeView<float> sampler{box.data(), kN, kN, kN};
  const Mat4d far_away =
      Mat4d::FromAffine(Mat3d::Identity(), {500.0, 0.0, 0.0});
  Intrinsics in;
  in.sdd = 100.0;
  in.height = in.width = 4;
  const PoseGeometry g = MakePoseGeometry(Mat4d::Identity(), far_away, in);
  const RaySettings s{4, 4, 500};
  for (int v = 0; v < 4; ++v)
    for (int u = 0; u < 4; ++u)
      EXPECT_EQ(testing::LineIntegral(sampler, g, s, v, u), 0.0f);
}

TEST(MarchRayTest, CullingChangesNothing) {
  // Sum every sample of the whole segment, as nanodrr does, and compare.
  const std::vector<float> volume = testing::WavyVolume(17, 13, 11);
  const VolumeView<float> sampler{volume.data(), 17, 13, 11};
  const Mat3d r = EulerToMatrix("ZXY", {20, -15, 35}, true);
  const Mat4d rt_inv = MakeRtInv(r, {0, 60, 0}, Orientation::kAP, {8, 6, 5});
  Intrinsics in;
  in.sdd = 100.0;
  in.delx = in.dely = 0.5;
  in.height = in.width = 16;
  const PoseGeometry g = MakePoseGeometry(Mat4d::Identity(), rt_inv, in);
  const RaySettings s{16, 16, 300};
  for (int v = 0; v < 16; v += 3) {
    for (int u = 0; u < 16; u += 3) {
      const CameraRay ray = MakeCameraRay(g, v, u);
      const Vec3 a = TransformPoint(g.camera_to_voxel, ray.source);
      const Vec3 b = TransformPoint(g.camera_to_voxel, ray.target);
      double sum = 0.0;
      for (int i = 0; i < s.n_samples; ++i) {
        const float t = static_cast<float>(i) / (s.n_samples - 1);
        sum += sampler(a + t * (b - a));
      }
      const double expected =
          sum * Norm(ray.target - ray.source) / (s.n_samples - 1);
      EXPECT_NEAR(testing::LineIntegral(sampler, g, s, v, u), expected,
                  1e-5 * expected + 1e-7);
    }
  }
}

}  // namespace
}  // namespace drr::kernels
