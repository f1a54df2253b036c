// The last step of every pose gradient: per-pose partial sums (one per image
// row on the CPU, one per tile on CUDA) added in index order in float64, so
// that the result does not depend on which thread or block made which
// partial. Shared by the CPU executor and the CUDA one, which sums on the
// device with the same arithmetic.
#pragma once

#include "kernels/pose_map.h"
#include "numeric/host_device.h"

namespace drr::kernels {

// Σ_i partials[i][k] for i = 0, 1, …, parts − 1 in that order, in float64,
// where partials holds one pose's parts × kPoseMapEntries values of type T.
template <typename T>
DRR_HD double SumEntryInOrder(const T* partials, int parts, int k) {
  double sum = 0.0;
#if defined(__CUDA_ARCH__)
#pragma unroll 8  // the loads in flight together; the adds stay in order
#endif
  for (int part = 0; part < parts; ++part)
    sum += partials[static_cast<long long>(part) * kPoseMapEntries + k];
  return sum;
}

// grad[p].d[k] = SumEntryInOrder(partials[p], parts, k) for every pose p and
// entry k, where partials holds n_poses × parts × kPoseMapEntries values.
template <typename T>
void SumPartialsInOrder(const T* partials, int n_poses, int parts,
                        PoseMapGradient* grad) {
  for (int pose = 0; pose < n_poses; ++pose) {
    const T* own =
        partials + static_cast<long long>(pose) * parts * kPoseMapEntries;
    for (int k = 0; k < kPoseMapEntries; ++k)
      grad[pose].d[k] = SumEntryInOrder(own, parts, k);
  }
}

}  // namespace drr::kernels
