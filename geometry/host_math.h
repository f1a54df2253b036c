// Double-precision host geometry: the 4×4 and 3×3 matrices that poses,
// intrinsics and volume affines are built from before they are cast to the
// float32 device form (design.md §1: float64 on the host, float32 on the
// device).
#pragma once

#include <array>
#include <optional>

namespace drr::geometry {

// A 3-vector of doubles.
using Vec3d = std::array<double, 3>;

// A row-major 3×3 matrix of doubles.
struct Mat3d {
  double m[3][3];

  // The identity matrix.
  static Mat3d Identity();
};

// A row-major 4×4 matrix of doubles, used for homogeneous affine transforms.
struct Mat4d {
  double m[4][4];

  // The identity transform.
  static Mat4d Identity();
  // The affine transform with linear part `a` and translation `t`.
  static Mat4d FromAffine(const Mat3d& a, const Vec3d& t);
};

Mat3d operator*(const Mat3d& a, const Mat3d& b);
Mat4d operator*(const Mat4d& a, const Mat4d& b);
Vec3d operator*(const Mat3d& a, const Vec3d& v);

// Applies the affine transform `f` to the point `p`.
Vec3d TransformPoint(const Mat4d& f, const Vec3d& p);

// Returns the inverse of an affine transform (last row 0 0 0 1), or nothing
// when its linear part is singular or the last row is not affine.
std::optional<Mat4d> InvertAffine(const Mat4d& f);

}  // namespace drr::geometry
