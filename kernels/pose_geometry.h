// Builds the float32 per-pose geometry the ray march consumes from the
// float64 host description of a view.
#pragma once

#include "geometry/camera.h"
#include "geometry/host_math.h"
#include "kernels/ray_march.h"

namespace drr::kernels {

// The device geometry of a view: camera→voxel = world_to_voxel · rt_inv
// (composed in float64, then rounded), K⁻¹ and sdd from `intrinsics`.
PoseGeometry MakePoseGeometry(const geometry::Mat4d& world_to_voxel,
                              const geometry::Mat4d& rt_inv,
                              const geometry::Intrinsics& intrinsics);

}  // namespace drr::kernels
