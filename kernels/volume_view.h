// Read-only views of a resident volume for the per-ray body: attenuation
// voxels in their storage type (sampled trilinearly or per voxel) and the
// optional label volume (looked up nearest).
#pragma once

#include <cstdint>

#include "kernels/storage.h"
#include "kernels/vec.h"
#include "numeric/host_device.h"

namespace drr::kernels {

// A volume V[k][j][i] of element type T (float, Half, BFloat16), i fastest,
// nx·ny·nz < 2³¹. Voxel centres are at integer coordinates.
template <typename T>
struct VolumeView {
  const T* data;
  int nx, ny, nz;

  // The voxel (i, j, k), which must be inside.
  DRR_HD float Voxel(int i, int j, int k) const {
    return ToFloat(data[(k * ny + j) * nx + i]);
  }

  // Trilinear interpolation at continuous voxel coordinates `p`; each of the
  // 8 neighbours outside the volume contributes zero (grid_sample with
  // align_corners=False and zero padding, at voxel coordinates).
  DRR_HD float operator()(Vec3 p) const {
    const float fx = floorf(p.x), fy = floorf(p.y), fz = floorf(p.z);
    const int x0 = SaturatingIndex(fx, nx), y0 = SaturatingIndex(fy, ny),
              z0 = SaturatingIndex(fz, nz);
    const float wx = p.x - fx, wy = p.y - fy, wz = p.z - fz;
    if (x0 >= 0 && y0 >= 0 && z0 >= 0 && x0 + 1 < nx && y0 + 1 < ny &&
        z0 + 1 < nz) {
      const T* c = data + (z0 * ny + y0) * nx + x0;
      const int sy = nx, sz = nx * ny;
      const float c000 = ToFloat(c[0]), c100 = ToFloat(c[1]);
      const float c010 = ToFloat(c[sy]), c110 = ToFloat(c[sy + 1]);
      const float c001 = ToFloat(c[sz]), c101 = ToFloat(c[sz + 1]);
      const float c011 = ToFloat(c[sz + sy]), c111 = ToFloat(c[sz + sy + 1]);
      const float c00 = c000 + wx * (c100 - c000);
      const float c10 = c010 + wx * (c110 - c010);
      const float c01 = c001 + wx * (c101 - c001);
      const float c11 = c011 + wx * (c111 - c011);
      const float c0 = c00 + wy * (c10 - c00);
      const float c1 = c01 + wy * (c11 - c01);
      return c0 + wz * (c1 - c0);
    }
    float sum = 0.0f;
    for (int dz = 0; dz < 2; ++dz) {
      const int z = z0 + dz;
      if (z < 0 || z >= nz) continue;
      const float w_z = dz ? wz : 1.0f - wz;
      for (int dy = 0; dy < 2; ++dy) {
        const int y = y0 + dy;
        if (y < 0 || y >= ny) continue;
        const float w_zy = w_z * (dy ? wy : 1.0f - wy);
        for (int dx = 0; dx < 2; ++dx) {
          const int x = x0 + dx;
          if (x < 0 || x >= nx) continue;
          sum += w_zy * (dx ? wx : 1.0f - wx) * Voxel(x, y, z);
        }
      }
    }
    return sum;
  }
};

// The trilinear value at `p` (as operator() of the view) and its analytic
// gradient with respect to p, per voxel unit; neighbours outside the volume
// are zero.
template <class Volume>
DRR_HD_SAMPLE float SampleWithGradient(const Volume& v, Vec3 p,
                                       Vec3* gradient) {
  const float fx = floorf(p.x), fy = floorf(p.y), fz = floorf(p.z);
  const int x0 = SaturatingIndex(fx, v.nx), y0 = SaturatingIndex(fy, v.ny),
            z0 = SaturatingIndex(fz, v.nz);
  const float wx = p.x - fx, wy = p.y - fy, wz = p.z - fz;
  float value = 0.0f, gx = 0.0f, gy = 0.0f, gz = 0.0f;
  for (int dz = 0; dz < 2; ++dz) {
    const int z = z0 + dz;
    if (z < 0 || z >= v.nz) continue;
    const float az = dz ? wz : 1.0f - wz, sz = dz ? 1.0f : -1.0f;
    for (int dy = 0; dy < 2; ++dy) {
      const int y = y0 + dy;
      if (y < 0 || y >= v.ny) continue;
      const float ay = dy ? wy : 1.0f - wy, sy = dy ? 1.0f : -1.0f;
      for (int dx = 0; dx < 2; ++dx) {
        const int x = x0 + dx;
        if (x < 0 || x >= v.nx) continue;
        const float ax = dx ? wx : 1.0f - wx, sx = dx ? 1.0f : -1.0f;
        const float c = v.Voxel(x, y, z);
        value += ax * ay * az * c;
        gx += sx * ay * az * c;
        gy += ax * sy * az * c;
        gz += ax * ay * sz * c;
      }
    }
  }
  *gradient = Vec3{gx, gy, gz};
  return value;
}

// No label volume: every sample belongs to class 0.
struct NoLabels {
  DRR_HD int Nearest(Vec3) const { return 0; }
  DRR_HD int Voxel(int, int, int) const { return 0; }
};

// A label volume L[k][j][i] of class indices, the shape of the attenuation
// volume.
struct LabelView {
  const uint16_t* data;
  int nx, ny, nz;

  // The class of the voxel (i, j, k), which must be inside.
  DRR_HD int Voxel(int i, int j, int k) const {
    return data[(k * ny + j) * nx + i];
  }

  // The class of the voxel nearest `p`, rounding halves to even as
  // grid_sample(mode="nearest") does; class 0 outside the volume.
  DRR_HD int Nearest(Vec3 p) const {
    const int i = SaturatingIndex(rintf(p.x), nx);
    const int j = SaturatingIndex(rintf(p.y), ny);
    const int k = SaturatingIndex(rintf(p.z), nz);
    if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz) return 0;
    return Voxel(i, j, k);
  }
};

}  // namespace drr::kernels
