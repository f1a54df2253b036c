// Siddon's exact radiological path through the voxels: the walk, one voxel
// per boundary plane crossed, that the Siddon renderer (MarchSiddon) and its
// pose gradient (pose_gradient.h) share; __host__ __device__ bodies for the
// CPU and CUDA executors, as in ray_march.h.
#pragma once

#include <cmath>

#include "kernels/ray_march.h"
#include "kernels/vec.h"
#include "numeric/host_device.h"

namespace drr::kernels {

// A ray as Siddon's walk sees it: the source→detector segment a + α·d in
// voxel coordinates (float64), its length ‖d‖ in voxels, and the part of it
// inside the voxels (voxel k spans (k − 0.5, k + 0.5) on each axis) with the
// axes that set its ends.
struct SiddonRay {
  CameraRay camera;
  double ax, ay, az, dx, dy, dz, length;
  ClippedSpan<double> inside;
};

// Plans the walk of the ray of pixel (row, col).
template <class Volume>
DRR_HD SiddonRay PlanSiddon(const Volume& volume, const PoseGeometry& g,
                            int row, int col) {
  SiddonRay r;
  r.camera = MakeCameraRay(g, row, col);
  const Vec3 source = TransformPoint(g.camera_to_voxel, r.camera.source);
  const Vec3 delta =
      TransformPoint(g.camera_to_voxel, r.camera.target) - source;
  r.ax = source.x, r.ay = source.y, r.az = source.z;
  r.dx = delta.x, r.dy = delta.y, r.dz = delta.z;
  r.length = sqrt(r.dx * r.dx + r.dy * r.dy + r.dz * r.dz);
  r.inside = ClippedSpan<double>{0.0, 1.0, -1, -1};
  ClipSpanToSlab(r.ax, r.dx, -0.5, volume.nx - 0.5, 0, &r.inside);
  ClipSpanToSlab(r.ay, r.dy, -0.5, volume.ny - 0.5, 1, &r.inside);
  ClipSpanToSlab(r.az, r.dz, -0.5, volume.nz - 0.5, 2, &r.inside);
  return r;
}

// The index of the voxel holding coordinate `p`, clamped to [0, n).
DRR_HD int NearestIndex(double p, int n) {
  const double i = floor(p + 0.5);
  return !(i >= 0.0) ? 0 : (i >= n ? n - 1 : static_cast<int>(i));  // NaN: 0
}

// The segment parameter of the first voxel boundary (plane k − 0.5) that the
// coordinate a + α·d crosses after `alpha`, and the parameter step between
// boundaries; +inf when the ray is parallel to the planes.
DRR_HD void FirstCrossing(double a, double d, double alpha, double* next,
                          double* step) {
  if (d == 0.0) {
    *next = INFINITY;
    *step = INFINITY;
    return;
  }
  const double p = a + alpha * d;
  const double boundary = d > 0.0 ? floor(p + 0.5) + 0.5 : ceil(p + 0.5) - 1.5;
  *step = fabs(1.0 / d);
  *next = (boundary - a) / d;
  if (*next <= alpha) *next += *step;  // rounding put the crossing behind us
}

// One axis of a walk. The walk's parameter is u = (α − inside.t0)·‖d‖, the
// distance from where the ray enters the volume in voxel-index units, in
// float32: the m-th boundary plane (m = 0, 1, ...) the axis crosses lies at
// u = CrossingAt(first, m, step), computed afresh rather than summed, so
// that its error stays within a few ulps of u (~1e-4 voxel) however far the
// walk has gone. A ray parallel to the planes never crosses them: first =
// +inf, step = 0.
struct SiddonAxis {
  float first, step;
  int index, direction;  // the voxel now; +1 or −1
};

// first + m·step, the product rounded before the sum on the GPU too (nvcc
// would fuse them), so that both executors walk through the same voxels.
DRR_HD float CrossingAt(float first, float m, float step) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(first, __fmul_rn(m, step));
#else
  return first + m * step;
#endif
}

// Where a walk starts: its three axes, and the u at which it ends.
struct SiddonStart {
  SiddonAxis axis[3];
  float end;
};

// The start of the walk of a planned ray (not empty), in the voxel holding
// the midpoint of its first piece; parameters in float64, rounded once.
template <class Volume>
DRR_HD_INLINE SiddonStart StartSiddon(const Volume& volume,
                                      const SiddonRay& r) {
  const double a[3] = {r.ax, r.ay, r.az}, d[3] = {r.dx, r.dy, r.dz};
  const int n[3] = {volume.nx, volume.ny, volume.nz};
  const double t0 = r.inside.t0;
  double next[3], step[3];
  for (int k = 0; k < 3; ++k) FirstCrossing(a[k], d[k], t0, &next[k], &step[k]);
  const double first =
      0.5 * (t0 + fmin(fmin(next[0], next[1]), fmin(next[2], r.inside.t1)));
  SiddonStart s;
  for (int k = 0; k < 3; ++k) {
    const bool crosses = d[k] != 0.0;
    s.axis[k].first =
        crosses ? static_cast<float>((next[k] - t0) * r.length) : INFINITY;
    s.axis[k].step = crosses ? static_cast<float>(step[k] * r.length) : 0.0f;
    s.axis[k].index = NearestIndex(a[k] + first * d[k], n[k]);
    s.axis[k].direction = d[k] > 0.0 ? 1 : -1;
  }
  s.end = static_cast<float>((r.inside.t1 - t0) * r.length);
  return s;
}

// The crossings of `axis` (of n voxels) that take a walk from its start out
// of the volume: it moves one voxel per crossing (exact in float32: at most
// n).
DRR_HD float ExitCrossings(const SiddonAxis& axis, int n) {
  return static_cast<float>(axis.direction > 0 ? n - axis.index
                                               : axis.index + 1);
}

// The m-th boundary plane (m = 0, 1, ...) that `axis` crosses: at u =
// first, then CrossingAt(first, m, step) (never 0·step, which is NaN where
// a nearly parallel ray's step overflowed to +inf).
DRR_HD float Crossing(const SiddonAxis& axis, float m) {
  return m == 0.0f ? axis.first : CrossingAt(axis.first, m, axis.step);
}

// How many of `axis`' boundary planes lie before u (Crossing(axis, m) < u),
// at most `most`: an estimate from the step, then corrected against the
// crossings themselves, so that the count is the one a walk from u = 0 has
// made by the time it reaches u. The planes lie at least a voxel apart
// (step ≥ 1), so the estimate is off by a plane or two at most.
DRR_HD float CrossingsBefore(const SiddonAxis& axis, float u, float most) {
  if (!(axis.first < u)) return 0.0f;  // also a ray parallel to the planes
  float m = floor((u - axis.first) / axis.step) + 1.0f;
  if (!(m >= 1.0f)) m = 1.0f;  // (NaN too)
  if (m > most) m = most;
  while (m > 0.0f && !(Crossing(axis, m - 1.0f) < u)) m -= 1.0f;
  while (m < most && Crossing(axis, m) < u) m += 1.0f;
  return m;
}

// Where lane `lane` of `lanes` threads that share one walk starts its piece
// of it: u = end · lane / lanes (nondecreasing in lane; 0 for lane 0).
DRR_HD float PieceStart(float end, int lane, int lanes) {
  return end * static_cast<float>(lane) / static_cast<float>(lanes);
}

// Siddon–Jacobs walk of a planned ray (not empty): calls
// visit(i, j, k, from, to, to_axis) for each voxel in order, with (from, to)
// the walk's parameters u (SiddonAxis) of the ray's piece in voxel (i, j, k)
// and to_axis the axis of the boundary plane at `to` (the last piece:
// r.inside.axis1, unless the walk leaves the volume through a plane it
// reached first). The walk steps one voxel per boundary crossed. Chords are
// differences of u, not of the whole segment's α, whose float32 differences
// were off by up to 2.1e-4 of the image maximum on the chest CT: against a
// float64 exact path the walk is within 1e-5 of it (analytic_phantom_test).
//
// With several Lanes (the CUDA executor's BlockLanes and RayLane), lane l
// walks only u in [PieceStart(l), PieceStart(l + 1)), the last lane up to
// the walk's end: it starts in the state the whole walk is in when it
// reaches PieceStart(l), having crossed every plane before it
// (CrossingsBefore), and stops at the next piece's start, visiting its last
// voxel up to there with to_axis −1 (no plane). So the lanes visit the
// whole walk's voxels, with the whole walk's crossings (the same floats),
// and split the chord of each voxel where a piece ends in two: sums over
// the lanes match the whole walk's to rounding, maxima exactly. The last
// lane walks even an empty piece, so that a walk of no length (a segment
// of none inside a voxel) still visits its voxel, as the whole walk does.
template <class Volume, class Visit, class Lanes = SingleLane>
DRR_HD void WalkSiddon(const Volume& volume, const SiddonRay& r, Visit& visit,
                       const Lanes& lanes = {}) {
  const SiddonStart s = StartSiddon(volume, r);
  const SiddonAxis& x = s.axis[0];
  const SiddonAxis& y = s.axis[1];
  const SiddonAxis& z = s.axis[2];
  int i = x.index, j = y.index, k = z.index;
  float crossed_x = 0.0f, crossed_y = 0.0f, crossed_z = 0.0f;
  float u = 0.0f, end = s.end;
  int end_axis = r.inside.axis1;
  if constexpr (Lanes::kCount > 1) {
    u = PieceStart(s.end, lanes.index(), Lanes::kCount);
    if (lanes.index() + 1 < Lanes::kCount) {
      end = PieceStart(s.end, lanes.index() + 1, Lanes::kCount);
      end_axis = -1;
    }
    // An empty piece; the next lane starts here.
    if (!(u < end) && lanes.index() + 1 < Lanes::kCount) return;
    // The crossings before u, up to those that take the walk out of the
    // volume (then the whole walk ended before this piece).
    const float exit_x = ExitCrossings(x, volume.nx),
                exit_y = ExitCrossings(y, volume.ny),
                exit_z = ExitCrossings(z, volume.nz);
    crossed_x = CrossingsBefore(x, u, exit_x);
    crossed_y = CrossingsBefore(y, u, exit_y);
    crossed_z = CrossingsBefore(z, u, exit_z);
    if (crossed_x == exit_x || crossed_y == exit_y || crossed_z == exit_z)
      return;
    i += x.direction * static_cast<int>(crossed_x);
    j += y.direction * static_cast<int>(crossed_y);
    k += z.direction * static_cast<int>(crossed_z);
  }
  float next_x = Crossing(x, crossed_x), next_y = Crossing(y, crossed_y),
        next_z = Crossing(z, crossed_z);
  // Every iteration crosses one boundary, which bounds the walk.
  for (int steps = volume.nx + volume.ny + volume.nz + 3; steps > 0; --steps) {
    // The axis whose boundary comes next.
    const int axis =
        next_x < next_y ? (next_x < next_z ? 0 : 2) : (next_y < next_z ? 1 : 2);
    const float next = axis == 0 ? next_x : (axis == 1 ? next_y : next_z);
    if (next >= end) {
      visit(i, j, k, u, end, end_axis);
      return;
    }
    visit(i, j, k, u, next, axis);
    u = next;
    if (axis == 0) {
      crossed_x += 1.0f;
      next_x = CrossingAt(x.first, crossed_x, x.step);
      i += x.direction;
      if (static_cast<unsigned>(i) >= static_cast<unsigned>(volume.nx)) return;
    } else if (axis == 1) {
      crossed_y += 1.0f;
      next_y = CrossingAt(y.first, crossed_y, y.step);
      j += y.direction;
      if (static_cast<unsigned>(j) >= static_cast<unsigned>(volume.ny)) return;
    } else {
      crossed_z += 1.0f;
      next_z = CrossingAt(z.first, crossed_z, z.step);
      k += z.direction;
      if (static_cast<unsigned>(k) >= static_cast<unsigned>(volume.nz)) return;
    }
  }
}

// The factor from the walk's u back to the segment's parameter α.
DRR_HD double AlphaPerU(const SiddonRay& r) { return 1.0 / r.length; }

// The factor from the walk's u to millimetres along the ray: the segment's
// length in mm over its length in voxels.
DRR_HD float MillimetresPerU(const SiddonRay& r) {
  return static_cast<float>(Norm(r.camera.target - r.camera.source) / r.length);
}

// Siddon–Jacobs renderer: the exact radiological path of the segment through
// the voxels. kSum gives Σ length_mm·μ(voxel) per class; kMax gives the
// largest μ met (zero joins when part of the segment lies outside the
// volume). With several Lanes each thread walks its piece of the ray
// (WalkSiddon), and `acc` holds that piece's part (Lanes::Combine gives
// the ray's).
template <Reduce R, int kChannels, class Volume, class Labels,
          class Lanes = SingleLane>
DRR_HD void MarchSiddon(const Volume& volume, const Labels& labels,
                        const PoseGeometry& g, int row, int col,
                        ChannelAccumulator<R, kChannels>* acc,
                        const Lanes& lanes = {}) {
  const SiddonRay r = PlanSiddon(volume, g, row, col);
  acc->Reset(R == Reduce::kSum || r.inside.t0 > 0.0 || r.inside.t1 < 1.0
                 ? 0.0f
                 : -INFINITY);
  if (!(r.inside.t0 < r.inside.t1)) return;
  auto add = [&](int i, int j, int k, float from, float to, int) {
    const float mu = volume.Voxel(i, j, k);
    acc->Add(labels.Voxel(i, j, k), R == Reduce::kSum ? mu * (to - from) : mu);
  };
  WalkSiddon(volume, r, add, lanes);
  if (R == Reduce::kSum) acc->Scale(MillimetresPerU(r));
}

}  // namespace drr::kernels
