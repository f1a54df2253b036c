#include "geometry/camera.h"

#include "gtest/gtest.h"

namespace drr::geometry {
namespace {

TEST(InverseIntrinsicMatrixTest, InvertsTheHartleyZissermanMatrix) {
  const Intrinsics in{1000.0, 2.0, 4.0, 10.0, -6.0, 100, 300, false};
  const Mat3d k_inv = InverseIntrinsicMatrix(in);
  const double fx = 500.0, fy = 250.0;
  const double cx = 10.0 / 2.0 + 150.0, cy = -6.0 / 4.0 + 50.0;
  const Mat3d k{{{fx, 0, cx}, {0, fy, cy}, {0, 0, 1}}};
  const Mat3d identity = k * k_inv;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(identity.m[r][c], r == c ? 1.0 : 0.0, 1e-12);
  }
}

TEST(InverseIntrinsicMatrixTest, CentralRayOfACentredDetectorIsTheOpticalAxis) {
  const Intrinsics in;  // 200 x 200, no offset
  const Vec3d ray = InverseIntrinsicMatrix(in) * Vec3d{100.0, 100.0, 1.0};
  EXPECT_DOUBLE_EQ(ray[0], 0.0);
  EXPECT_DOUBLE_EQ(ray[1], 0.0);
  EXPECT_DOUBLE_EQ(ray[2], 1.0);
  // A pixel step is delx mm on the detector, sdd mm from the source.
  const Vec3d next = InverseIntrinsicMatrix(in) * Vec3d{101.0, 100.0, 1.0};
  EXPECT_NEAR(next[0] * in.sdd, in.delx, 1e-12);
}

}  // namespace
}  // namespace drr::geometry
