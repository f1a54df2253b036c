#include "io/phantom.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace drr {
namespace {

constexpr int kWidth = 128, kHeight = 128, kDepth = 96;
constexpr double kSpacing = 2.5;

// Whether (x, y, z) lies inside the axis-aligned ellipsoid at c with semi-axes
// r.
bool InEllipsoid(double x, double y, double z, double cx, double cy, double cz,
                 double rx, double ry, double rz) {
  const double u = (x - cx) / rx, v = (y - cy) / ry, w = (z - cz) / rz;
  return u * u + v * v + w * w <= 1.0;
}

// Whether (x, y) lies inside the ellipse at the origin with semi-axes (rx, ry).
bool InEllipse(double x, double y, double rx, double ry) {
  const double u = x / rx, v = y / ry;
  return u * u + v * v <= 1.0;
}

// The HU value at world point (x, y, z) mm, RAS (+x left, +y anterior, +z up).
int16_t ThoraxHu(double x, double y, double z) {
  if (std::fabs(z) > 110.0 || !InEllipse(x, y, 150.0, 105.0)) return -1000;
  const double dy = y + 75.0;  // spine axis at y = -75 (posterior)
  const double spine_r2 = x * x + dy * dy;
  if (spine_r2 <= 7.0 * 7.0) return 10;     // spinal canal (CSF)
  if (spine_r2 <= 17.0 * 17.0) return 700;  // vertebral bodies
  if (std::fabs(x) <= 12.0 && y >= 80.0 && y <= 95.0 && std::fabs(z) <= 70.0) {
    return 500;  // sternum
  }
  // Rib rings every 25 mm, 8 mm tall, a 7 mm shell inside the fat layer.
  const double rib_phase = std::fmod(z + 1000.0, 25.0);
  if (rib_phase < 8.0 && InEllipse(x, y, 138.0, 93.0) &&
      !InEllipse(x, y, 131.0, 86.0) && y > -80.0) {
    return 600;
  }
  if (InEllipsoid(x, y, z, 25.0, 25.0, -20.0, 55.0, 45.0, 50.0))
    return 40;  // heart
  if (InEllipsoid(x, y, z, 70.0, 0.0, 10.0, 50.0, 65.0, 95.0) ||
      InEllipsoid(x, y, z, -70.0, 0.0, 10.0, 50.0, 65.0, 95.0)) {
    return -820;  // lungs
  }
  if (!InEllipse(x, y, 142.0, 97.0)) return -100;  // subcutaneous fat
  return 40;                                       // soft tissue
}

}  // namespace

HostVolume MakeThoraxPhantom() {
  HostVolume volume;
  VolumeHeader& h = volume.header;
  h.voxel_type = VoxelType::kInt16;
  h.value_kind = ValueKind::kHu;
  h.width = kWidth;
  h.height = kHeight;
  h.depth = kDepth;
  const double sx = -kSpacing, sy = -kSpacing, sz = kSpacing;
  h.affine = geometry::Mat4d::FromAffine(
      geometry::Mat3d{{{sx, 0, 0}, {0, sy, 0}, {0, 0, sz}}},
      {-sx * (kWidth - 1) / 2.0, -sy * (kHeight - 1) / 2.0,
       -sz * (kDepth - 1) / 2.0});
  volume.voxels.resize(h.voxel_bytes());
  char* out = volume.voxels.data();
  for (int k = 0; k < kDepth; ++k) {
    for (int j = 0; j < kHeight; ++j) {
      for (int i = 0; i < kWidth; ++i) {
        const geometry::Vec3d p = geometry::TransformPoint(
            h.affine, {double(i), double(j), double(k)});
        const int16_t hu = ThoraxHu(p[0], p[1], p[2]);
        std::memcpy(out, &hu, sizeof hu);
        out += sizeof hu;
      }
    }
  }
  return volume;
}

}  // namespace drr
