#include "geometry/host_math.h"

#include <cmath>

namespace drr::geometry {

Mat3d Mat3d::Identity() { return Mat3d{{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}}; }

Mat4d Mat4d::Identity() {
  return Mat4d{{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}};
}

Mat4d Mat4d::FromAffine(const Mat3d& a, const Vec3d& t) {
  Mat4d f = Identity();
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) f.m[r][c] = a.m[r][c];
    f.m[r][3] = t[r];
  }
  return f;
}

Mat3d operator*(const Mat3d& a, const Mat3d& b) {
  Mat3d p{};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      for (int k = 0; k < 3; ++k) p.m[r][c] += a.m[r][k] * b.m[k][c];
    }
  }
  return p;
}

Mat4d operator*(const Mat4d& a, const Mat4d& b) {
  Mat4d p{};
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      for (int k = 0; k < 4; ++k) p.m[r][c] += a.m[r][k] * b.m[k][c];
    }
  }
  return p;
}

Vec3d operator*(const Mat3d& a, const Vec3d& v) {
  Vec3d out{};
  for (int r = 0; r < 3; ++r) {
    out[r] = a.m[r][0] * v[0] + a.m[r][1] * v[1] + a.m[r][2] * v[2];
  }
  return out;
}

Vec3d TransformPoint(const Mat4d& f, const Vec3d& p) {
  Vec3d out{};
  for (int r = 0; r < 3; ++r) {
    out[r] = f.m[r][0] * p[0] + f.m[r][1] * p[1] + f.m[r][2] * p[2] + f.m[r][3];
  }
  return out;
}

std::optional<Mat4d> InvertAffine(const Mat4d& f) {
  if (f.m[3][0] != 0 || f.m[3][1] != 0 || f.m[3][2] != 0 || f.m[3][3] != 1) {
    return std::nullopt;
  }
  const auto& a = f.m;
  // Cofactor expansion of the 3×3 linear part.
  Mat3d cof{};
  cof.m[0][0] = a[1][1] * a[2][2] - a[1][2] * a[2][1];
  cof.m[0][1] = a[0][2] * a[2][1] - a[0][1] * a[2][2];
  cof.m[0][2] = a[0][1] * a[1][2] - a[0][2] * a[1][1];
  cof.m[1][0] = a[1][2] * a[2][0] - a[1][0] * a[2][2];
  cof.m[1][1] = a[0][0] * a[2][2] - a[0][2] * a[2][0];
  cof.m[1][2] = a[0][2] * a[1][0] - a[0][0] * a[1][2];
  cof.m[2][0] = a[1][0] * a[2][1] - a[1][1] * a[2][0];
  cof.m[2][1] = a[0][1] * a[2][0] - a[0][0] * a[2][1];
  cof.m[2][2] = a[0][0] * a[1][1] - a[0][1] * a[1][0];
  const double det =
      a[0][0] * cof.m[0][0] + a[0][1] * cof.m[1][0] + a[0][2] * cof.m[2][0];
  double scale = 0;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) scale = std::fmax(scale, std::fabs(a[r][c]));
  }
  if (!std::isfinite(det) || std::fabs(det) <= 1e-12 * scale * scale * scale) {
    return std::nullopt;
  }
  Mat3d inv{};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) inv.m[r][c] = cof.m[r][c] / det;
  }
  const Vec3d t = inv * Vec3d{a[0][3], a[1][3], a[2][3]};
  return Mat4d::FromAffine(inv, {-t[0], -t[1], -t[2]});
}

}  // namespace drr::geometry
