// Small fixed-size vector and affine types shared by host and device code.
#pragma once

#include <cmath>

#include "numeric/host_device.h"

namespace drr::kernels {

// A 3-vector of float32, the precision of device geometry.
struct Vec3 {
  float x, y, z;
};

DRR_HD Vec3 operator+(Vec3 a, Vec3 b) {
  return {a.x + b.x, a.y + b.y, a.z + b.z};
}
DRR_HD Vec3 operator-(Vec3 a, Vec3 b) {
  return {a.x - b.x, a.y - b.y, a.z - b.z};
}
DRR_HD Vec3 operator*(float s, Vec3 a) { return {s * a.x, s * a.y, s * a.z}; }
DRR_HD float Norm(Vec3 a) { return sqrtf(a.x * a.x + a.y * a.y + a.z * a.z); }

// A 3×4 affine map [A | t] in float32, row-major: y = A·x + t.
struct Affine3x4 {
  float m[3][4];
};

// Applies `f` to the point `p` (rotation/scale and translation).
DRR_HD Vec3 TransformPoint(const Affine3x4& f, Vec3 p) {
  return {f.m[0][0] * p.x + f.m[0][1] * p.y + f.m[0][2] * p.z + f.m[0][3],
          f.m[1][0] * p.x + f.m[1][1] * p.y + f.m[1][2] * p.z + f.m[1][3],
          f.m[2][0] * p.x + f.m[2][1] * p.y + f.m[2][2] * p.z + f.m[2][3]};
}

// The integral coordinate `f` (or NaN, or ±inf) as an index clamped to
// [−2, n + 1]: an index that far outside an axis of n voxels is outside
// every trilinear or nearest support, so coordinates beyond the volume land
// outside it without overflowing the conversion to int.
DRR_HD int SaturatingIndex(float f, int n) {
  return static_cast<int>(fminf(fmaxf(f, -2.0f), static_cast<float>(n + 1)));
}

}  // namespace drr::kernels
