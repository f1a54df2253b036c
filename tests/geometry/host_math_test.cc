#include "geometry/host_math.h"

#include "gtest/gtest.h"

namespace drr::geometry {
namespace {

TEST(InvertAffineTest, RoundTripsAnAnisotropicObliqueAffine) {
  const Mat4d f{{{-0.7, 0.1, 0.0, 166.0},
                 {0.05, -0.7, 0.2, 171.7},
                 {0.0, 0.3, 2.5, -340.0},
                 {0, 0, 0, 1}}};
  const std::optional<Mat4d> inv = InvertAffine(f);
  ASSERT_TRUE(inv.has_value());
  const Mat4d identity = f * *inv;
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c)
      EXPECT_NEAR(identity.m[r][c], r == c ? 1.0 : 0.0, 1e-12);
  }
  const Vec3d p{1.0, -2.0, 3.0};
  const Vec3d back = TransformPoint(*inv, TransformPoint(f, p));
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(back[i], p[i], 1e-12);
}

TEST(InvertAffineTest, RejectsSingularAndProjectiveMatrices) {
  Mat4d singular = Mat4d::Identity();
  singular.m[2][2] = 0.0;
  EXPECT_FALSE(InvertAffine(singular).has_value());
  Mat4d projective = Mat4d::Identity();
  projective.m[3][2] = 0.5;
  EXPECT_FALSE(InvertAffine(projective).has_value());
}

}  // namespace
}  // namespace drr::geometry
