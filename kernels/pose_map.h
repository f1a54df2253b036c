// Derivatives with respect to a pose's camera→voxel map M (3×4, row-major:
// M[r][c] is entry 4r + c), the quantity the gradient kernels differentiate
// by. The engine chains them to rt_inv and to the request's parameters.
#pragma once

namespace drr::kernels {

// Entries of the 3×4 camera→voxel map.
inline constexpr int kPoseMapEntries = 12;

// dL/dM of one pose for a scalar L, in float64 (summed in a fixed order).
struct PoseMapGradient {
  double d[kPoseMapEntries];
};

}  // namespace drr::kernels
