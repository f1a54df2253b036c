// Exact software trilinear sampling of a float32 volume at voxel-index
// coordinates, zero outside: what nanodrr's grid_sample(align_corners=False,
// padding_mode="zeros") computes at voxel centres.
#pragma once

#include "kernels/hd.h"
#include "kernels/vec.h"

namespace drr::kernels {

// A read-only view of a volume V[k][j][i], i fastest; nx·ny·nz < 2³¹.
struct TrilinearSampler {
  const float* data;
  int nx, ny, nz;

  // The value at continuous voxel coordinates `p` (voxel centres at integers);
  // each of the 8 neighbours outside the volume contributes zero.
  DRR_HD float operator()(Vec3 p) const {
    const float fx = floorf(p.x), fy = floorf(p.y), fz = floorf(p.z);
    const int x0 = static_cast<int>(fx), y0 = static_cast<int>(fy),
              z0 = static_cast<int>(fz);
    const float wx = p.x - fx, wy = p.y - fy, wz = p.z - fz;
    if (x0 >= 0 && y0 >= 0 && z0 >= 0 && x0 + 1 < nx && y0 + 1 < ny &&
        z0 + 1 < nz) {
      const float* c = data + (z0 * ny + y0) * nx + x0;
      const int sy = nx, sz = nx * ny;
      const float c00 = c[0] + wx * (c[1] - c[0]);
      const float c10 = c[sy] + wx * (c[sy + 1] - c[sy]);
      const float c01 = c[sz] + wx * (c[sz + 1] - c[sz]);
      const float c11 = c[sz + sy] + wx * (c[sz + sy + 1] - c[sz + sy]);
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
          sum += w_zy * (dx ? wx : 1.0f - wx) * data[(z * ny + y) * nx + x];
        }
      }
    }
    return sum;
  }
};

}  // namespace drr::kernels
