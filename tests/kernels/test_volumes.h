// Small analytic volumes and cameras shared by the kernels tests.
#pragma once

#include <vector>

#include "geometry/camera.h"
#include "kernels/executor.h"
#include "kernels/pose_geometry.h"
#include "kernels/ray_march.h"
#include "kernels/siddon.h"
#include "kernels/volume_view.h"

namespace drr::kernels::testing {

using ::drr::geometry::Intrinsics;
using ::drr::geometry::Mat4d;

// An n³ volume of zeros with μ in the voxels [lo, hi]³; with an identity
// affine its physical extent is the box [lo − 0.5, hi + 0.5]³ mm.
inline std::vector<float> UniformBox(int n, int lo, int hi, float mu) {
  std::vector<float> v(static_cast<size_t>(n) * n * n, 0.0f);
  for (int k = lo; k <= hi; ++k)
    for (int j = lo; j <= hi; ++j)
      for (int i = lo; i <= hi; ++i)
        v[(static_cast<size_t>(k) * n + j) * n + i] = mu;
  return v;
}

// A smooth, non-separable test volume with structure at every scale.
inline std::vector<float> WavyVolume(int nx, int ny, int nz) {
  std::vector<float> v(static_cast<size_t>(nx) * ny * nz);
  for (int k = 0; k < nz; ++k)
    for (int j = 0; j < ny; ++j)
      for (int i = 0; i < nx; ++i)
        v[(static_cast<size_t>(k) * ny + j) * nx + i] =
            0.01f + 0.01f * ((i * 7 + j * 13 + k * 29) % 17) / 17.0f;
  return v;
}

// Orthographic rays along +z through voxel columns: pixel (v, u) is the ray
// x = u, y = v from z = 0 to z = sdd (world = voxel coordinates).
inline PoseGeometry ColumnRays(int size, double sdd) {
  Intrinsics in;
  in.sdd = sdd;
  in.delx = in.dely = 1.0;
  in.x0 = in.y0 = 0.5 - size / 2.0;
  in.height = in.width = size;
  in.orthographic = true;
  return MakePoseGeometry(Mat4d::Identity(), Mat4d::Identity(), in);
}

// The trilinear line integral of one ray, all classes summed.
template <class Volume>
float LineIntegral(const Volume& volume, const PoseGeometry& g,
                   const RaySettings& s, int row, int col) {
  ChannelAccumulator<Reduce::kSum, 1> acc{0, {0.0f}};
  MarchTrilinear(volume, NoLabels{}, g, s, row, col, &acc);
  return acc.value[0];
}

// The Siddon line integral of one ray, all classes summed.
template <class Volume>
float SiddonIntegral(const Volume& volume, const PoseGeometry& g, int row,
                     int col) {
  ChannelAccumulator<Reduce::kSum, 1> acc{0, {0.0f}};
  MarchSiddon(volume, NoLabels{}, g, row, col, &acc);
  return acc.value[0];
}

}  // namespace drr::kernels::testing
