// The per-ray work of the renderer: one __host__ __device__ body that both the
// CPU executor and the CUDA executor run (design.md §2).
#pragma once

#include "kernels/hd.h"
#include "kernels/vec.h"

namespace drr::kernels {

// Everything a ray of one pose needs, in float32: the camera→voxel map
// (world_to_voxel · rt_inv), K⁻¹, and the source-to-detector distance.
struct PoseGeometry {
  Affine3x4 camera_to_voxel;
  float k_inv[3][3];
  float sdd;
  int orthographic;
};

// What every ray of a launch shares: detector size and samples per ray (≥ 2).
struct RaySettings {
  int height;
  int width;
  int n_samples;
};

// The camera-space end points of the ray of pixel (row, col).
struct CameraRay {
  Vec3 source;
  Vec3 target;
};

// nanodrr's ray: the target is sdd·K⁻¹[col+0.5, row+0.5, 1]ᵀ; the source is
// the camera origin, or target − (0, 0, sdd) for an orthographic camera.
DRR_HD CameraRay MakeCameraRay(const PoseGeometry& g, int row, int col) {
  const float u = static_cast<float>(col) + 0.5f;
  const float v = static_cast<float>(row) + 0.5f;
  const Vec3 target{
      g.sdd * (g.k_inv[0][0] * u + g.k_inv[0][1] * v + g.k_inv[0][2]),
      g.sdd * (g.k_inv[1][0] * u + g.k_inv[1][1] * v + g.k_inv[1][2]),
      g.sdd * (g.k_inv[2][0] * u + g.k_inv[2][1] * v + g.k_inv[2][2])};
  const Vec3 source = g.orthographic
                          ? Vec3{target.x, target.y, target.z - g.sdd}
                          : Vec3{0.0f, 0.0f, 0.0f};
  return {source, target};
}

// Narrows [*first, *last] to the samples s with lo < a + s·d < hi on one axis.
DRR_HD void ClipSamplesToSlab(float a, float d, float lo, float hi, int* first,
                              int* last) {
  if (d == 0.0f) {
    if (!(a > lo && a < hi)) *last = -1;
    return;
  }
  float s0 = (lo - a) / d, s1 = (hi - a) / d;
  if (s0 > s1) {
    const float t = s0;
    s0 = s1;
    s1 = t;
  }
  // One sample of slack each side: samples in the slack contribute zero, so
  // rounding in the slab test can never drop a sample that counts.
  const float f = floorf(s0), l = ceilf(s1);
  if (f > static_cast<float>(*first)) *first = static_cast<int>(f);
  if (l < static_cast<float>(*last)) *last = static_cast<int>(l);
}

// The line integral Σ_s V(x_s)·Δ along the ray of pixel (row, col): n samples
// x_s spread evenly over the whole source→detector segment, both ends
// included, Δ = |target − source|/(n − 1) in mm. Samples whose trilinear
// support lies outside the volume are skipped; they would add zero.
template <class Sampler>
DRR_HD float MarchRay(const Sampler& volume, const PoseGeometry& g,
                      const RaySettings& s, int row, int col) {
  const CameraRay ray = MakeCameraRay(g, row, col);
  const float inv_intervals = 1.0f / static_cast<float>(s.n_samples - 1);
  const float step_mm = Norm(ray.target - ray.source) * inv_intervals;
  const Vec3 a = TransformPoint(g.camera_to_voxel, ray.source);
  const Vec3 b = TransformPoint(g.camera_to_voxel, ray.target);
  const Vec3 ab = b - a;
  const Vec3 d = inv_intervals * ab;
  int first = 0, last = s.n_samples - 1;
  ClipSamplesToSlab(a.x, d.x, -1.0f, static_cast<float>(volume.nx), &first,
                    &last);
  ClipSamplesToSlab(a.y, d.y, -1.0f, static_cast<float>(volume.ny), &first,
                    &last);
  ClipSamplesToSlab(a.z, d.z, -1.0f, static_cast<float>(volume.nz), &first,
                    &last);
  float sum = 0.0f;
  for (int i = first; i <= last; ++i) {
    const float t = static_cast<float>(i) * inv_intervals;
    sum += volume(a + t * ab);
  }
  return sum * step_mm;
}

}  // namespace drr::kernels
