// The last step of every pose gradient: per-pose partial sums (one per image
// row on the CPU, one per tile on CUDA) added in index order in float64, so
// that the result does not depend on which thread or block made which
// partial. Shared by the CPU and CUDA executors.
#pragma once

#include "kernels/pose_map.h"

namespace drr::kernels {

// grad[p] = Σ_i partials[p][i] for i = 0, 1, …, parts − 1 in that order, where
// partials holds n_poses × parts × kPoseMapEntries values of type T.
template <typename T>
void SumPartialsInOrder(const T* partials, int n_poses, int parts,
                        PoseMapGradient* grad) {
  for (int pose = 0; pose < n_poses; ++pose) {
    PoseMapGradient& out = grad[pose];
    for (double& d : out.d) d = 0.0;
    for (int part = 0; part < parts; ++part) {
      const T* partial =
          partials +
          (static_cast<long long>(pose) * parts + part) * kPoseMapEntries;
      for (int k = 0; k < kPoseMapEntries; ++k) out.d[k] += partial[k];
    }
  }
}

}  // namespace drr::kernels
