#include "geometry/pose.h"

#include <cmath>

#include "gtest/gtest.h"

namespace drr::geometry {
namespace {

void ExpectNear(const Mat3d& a, const Mat3d& b, double tol) {
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(a.m[r][c], b.m[r][c], tol) << r << "," << c;
  }
}

TEST(EulerTest, ZxyDegreesMatchNanodrrClosedForm) {
  const double z = 30.0, x = -20.0, y = 45.0;
  const double d = M_PI / 180.0;
  const double cz = std::cos(z * d), sz = std::sin(z * d), cx = std::cos(x * d),
               sx = std::sin(x * d), cy = std::cos(y * d), sy = std::sin(y * d);
  // nanodrr's euler_to_matrix for (angle_z, angle_x, angle_y).
  const Mat3d expected{
      {{cy * cz - sx * sy * sz, -cx * sz, cz * sy + cy * sx * sz},
       {cy * sz + cz * sx * sy, cx * cz, sy * sz - cy * cz * sx},
       {-cx * sy, sx, cx * cy}}};
  ExpectNear(EulerToMatrix("ZXY", {z, x, y}, /*degrees=*/true), expected,
             1e-14);
  ExpectNear(EulerToMatrix("ZXY", {z * d, x * d, y * d}, /*degrees=*/false),
             expected, 1e-14);
}

TEST(EulerTest, ExtrinsicIsIntrinsicWithAxesReversed) {
  const Vec3d angles{0.3, -1.1, 0.7};
  ExpectNear(EulerToMatrix("xyz", angles, false),
             EulerToMatrix("ZYX", {angles[2], angles[1], angles[0]}, false),
             1e-14);
}

TEST(EulerTest, ValidatesConventions) {
  EXPECT_TRUE(IsEulerConvention("ZXY"));
  EXPECT_TRUE(IsEulerConvention("zyz"));
  EXPECT_FALSE(IsEulerConvention("ZZY"));
  EXPECT_FALSE(IsEulerConvention("ZxY"));
  EXPECT_FALSE(IsEulerConvention("ZX"));
  EXPECT_FALSE(IsEulerConvention("ABC"));
}

TEST(RotationVectorTest, InvertsTheSo3Exponential) {
  for (Vec3d v : {Vec3d{0.3, -0.2, 0.5}, Vec3d{1e-8, 0, -2e-8},
                  Vec3d{0, 0, 3.1415}, Vec3d{0, 0, 0}}) {
    const Vec3d back = RotationVector(
        RotationMatrix(Parameterization::kSo3Log, "", v.data(), false));
    for (int i = 0; i < 3; ++i)
      EXPECT_NEAR(back[i], v[i], 1e-6) << v[0] << " " << v[2];
  }
}

TEST(MakeRtInvTest, ReferenceApPoseLooksPosteriorFrom850mmAnterior) {
  const Vec3d iso{13.6, 7.9, -175.0};
  const Mat4d rt_inv =
      MakeRtInv(Mat3d::Identity(), {0, 850, 0}, Orientation::kAP, iso);
  // The source (camera origin) sits 850 mm anterior (+y, RAS) of the isocenter.
  const Vec3d source = TransformPoint(rt_inv, {0, 0, 0});
  EXPECT_NEAR(source[0], iso[0], 1e-12);
  EXPECT_NEAR(source[1], iso[1] + 850.0, 1e-12);
  EXPECT_NEAR(source[2], iso[2], 1e-12);
  // The optical axis points posterior; the detector centre is 170 mm behind.
  const Vec3d detector = TransformPoint(rt_inv, {0, 0, 1020});
  EXPECT_NEAR(detector[1], iso[1] - 170.0, 1e-9);
  // Image rows run from head to feet (camera +y is world −z).
  const Vec3d down = TransformPoint(rt_inv, {0, 1, 0});
  EXPECT_NEAR(down[2] - source[2], -1.0, 1e-12);
}

TEST(MakeRtInvTest, PaAndNoneUseNanodrrReorientations) {
  const Mat4d pa =
      MakeRtInv(Mat3d::Identity(), {0, 0, 0}, Orientation::kPA, {0, 0, 0});
  EXPECT_EQ(pa.m[1][2], 1.0);
  EXPECT_EQ(pa.m[2][1], -1.0);
  const Mat4d none =
      MakeRtInv(Mat3d::Identity(), {0, 0, 0}, Orientation::kNone, {0, 0, 0});
  EXPECT_EQ(none.m[0][0], -1.0);
  EXPECT_EQ(none.m[1][1], -1.0);
  EXPECT_EQ(none.m[2][2], 1.0);
}

TEST(MakeRtInvTest, RotatesTheTranslationAboutTheIsocenter) {
  const Mat3d r = EulerToMatrix("ZXY", {90, 0, 0}, true);
  const Mat4d rt_inv = MakeRtInv(r, {0, 850, 0}, Orientation::kAP, {1, 2, 3});
  // A 90° turn about z moves the source from +y to −x of the isocenter.
  const Vec3d source = TransformPoint(rt_inv, {0, 0, 0});
  EXPECT_NEAR(source[0], 1 - 850.0, 1e-9);
  EXPECT_NEAR(source[1], 2.0, 1e-9);
  EXPECT_NEAR(source[2], 3.0, 1e-9);
}

TEST(IdentityRotationTest, IsTheIdentityInEveryParameterization) {
  for (Parameterization p :
       {Parameterization::kEuler, Parameterization::kQuaternion,
        Parameterization::kQuaternionAdjugate, Parameterization::kRotation9d,
        Parameterization::kSo3Log, Parameterization::kSe3Log,
        Parameterization::kMatrix}) {
    const std::vector<double> values = IdentityRotation(p);
    ASSERT_EQ(static_cast<int>(values.size()), RotationParameterCount(p));
    const Mat3d r = RotationMatrix(p, "ZXY", values.data(), true);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j)
        EXPECT_NEAR(r.m[i][j], i == j ? 1.0 : 0.0, 1e-15)
            << static_cast<int>(p) << " " << i << "," << j;
  }
}

}  // namespace
}  // namespace drr::geometry
