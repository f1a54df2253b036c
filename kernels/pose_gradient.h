// The per-ray body of the pose gradient (a vector–Jacobian product): the
// analytic derivative of the trilinear line integral with respect to the
// camera→voxel map, shared by the CPU and CUDA executors.
#pragma once

#include "kernels/pose_map.h"
#include "kernels/ray_march.h"
#include "kernels/volume_view.h"

namespace drr::kernels {

// Adds to grad (the entries of the 3×4 camera→voxel map M, pose_map.h) the
// gradient of Σ_c w_c·I_c(row, col), where I_c is the trilinear line integral
// of class c and w_c = upstream[c·channel_stride] (classes ≥ channels weigh
// nothing). Each sample x_s = M·x̃_s (x̃_s the camera-space point, homogeneous)
// adds w·Δ·∇μ(x_s) x̃_sᵀ, with ∇μ the analytic gradient of trilinear
// interpolation; Δ does not depend on M.
template <class Volume, class Labels>
DRR_HD void MarchTrilinearVjp(const Volume& volume, const Labels& labels,
                              const PoseGeometry& g, const RaySettings& s,
                              int row, int col, const float* upstream,
                              long long channel_stride, int channels,
                              float grad[kPoseMapEntries]) {
  const CameraRay ray = MakeCameraRay(g, row, col);
  const float inv_intervals = 1.0f / static_cast<float>(s.n_samples - 1);
  const Vec3 a = TransformPoint(g.camera_to_voxel, ray.source);
  const Vec3 ab = TransformPoint(g.camera_to_voxel, ray.target) - a;
  const Vec3 camera_step = ray.target - ray.source;
  int first, last;
  SamplesMeetingVolume(volume, a, ab, s.n_samples, &first, &last);
  float sum[kPoseMapEntries] = {};
  for (int i = first; i <= last; ++i) {
    const float t = static_cast<float>(i) * inv_intervals;
    const Vec3 p = a + t * ab;
    const int label = labels.Nearest(p);
    if (label >= channels) continue;
    const float w = upstream[label * channel_stride];
    if (w == 0.0f) continue;
    Vec3 d_mu;
    SampleWithGradient(volume, p, &d_mu);
    const Vec3 x = ray.source + t * camera_step;
    const float c[3] = {w * d_mu.x, w * d_mu.y, w * d_mu.z};
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int r = 0; r < 3; ++r) {
      sum[4 * r + 0] += c[r] * x.x;
      sum[4 * r + 1] += c[r] * x.y;
      sum[4 * r + 2] += c[r] * x.z;
      sum[4 * r + 3] += c[r];
    }
  }
  const float step_mm = Norm(ray.target - ray.source) * inv_intervals;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int k = 0; k < kPoseMapEntries; ++k) grad[k] += sum[k] * step_mm;
}

// Labels seen through one class: samples of class `only` are class 0, every
// other sample class 1, so a one-channel VJP with upstream 1 gives the
// derivative of that class's image alone (a row of the Jacobian).
template <class Labels>
struct SingleClass {
  Labels labels;
  int only;

  DRR_HD int Nearest(Vec3 p) const { return labels.Nearest(p) == only ? 0 : 1; }
};

}  // namespace drr::kernels
