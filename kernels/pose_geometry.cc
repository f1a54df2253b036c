#include "kernels/pose_geometry.h"

namespace drr::kernels {

PoseGeometry MakePoseGeometry(const geometry::Mat4d& world_to_voxel,
                              const geometry::Mat4d& rt_inv,
                              const geometry::Intrinsics& intrinsics) {
  PoseGeometry g{};
  const geometry::Mat4d camera_to_voxel = world_to_voxel * rt_inv;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 4; ++c) {
      g.camera_to_voxel.m[r][c] = static_cast<float>(camera_to_voxel.m[r][c]);
    }
  }
  const geometry::Mat3d k_inv = InverseIntrinsicMatrix(intrinsics);
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c)
      g.k_inv[r][c] = static_cast<float>(k_inv.m[r][c]);
  }
  g.sdd = static_cast<float>(intrinsics.sdd);
  g.orthographic = intrinsics.orthographic ? 1 : 0;
  return g;
}

}  // namespace drr::kernels
