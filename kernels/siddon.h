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
// voxel coordinates (float64), and the part of it inside the voxels (voxel k
// spans (k − 0.5, k + 0.5) on each axis) with the axes that set its ends.
struct SiddonRay {
  CameraRay camera;
  double ax, ay, az, dx, dy, dz;
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

// Siddon–Jacobs walk of a planned ray (not empty): calls
// visit(i, j, k, from, to, to_axis) for each voxel in order, with (from, to)
// the segment parameters of the ray's piece in voxel (i, j, k) and to_axis
// the axis of the boundary plane at `to` (the last piece: r.inside.axis1,
// unless the walk leaves the volume through a plane it reached first). The walk
// starts in the voxel holding the midpoint of the first piece and steps one
// voxel per boundary crossed. The parameters are float64: a chord is the
// difference of two parameters of the whole source→detector segment, ~1e-3
// apart where they are ~0.5, which float32 resolves to ~1e-4 of the chord
// (1e-5 of the image maximum and worse, against a float64 exact path).
template <class Volume, class Visit>
DRR_HD void WalkSiddon(const Volume& volume, const SiddonRay& r, Visit& visit) {
  double next_x, next_y, next_z, step_x, step_y, step_z;
  FirstCrossing(r.ax, r.dx, r.inside.t0, &next_x, &step_x);
  FirstCrossing(r.ay, r.dy, r.inside.t0, &next_y, &step_y);
  FirstCrossing(r.az, r.dz, r.inside.t0, &next_z, &step_z);
  const double first = 0.5 * (r.inside.t0 + fmin(fmin(next_x, next_y),
                                                 fmin(next_z, r.inside.t1)));
  int i = NearestIndex(r.ax + first * r.dx, volume.nx);
  int j = NearestIndex(r.ay + first * r.dy, volume.ny);
  int k = NearestIndex(r.az + first * r.dz, volume.nz);
  const int di = r.dx > 0.0 ? 1 : -1, dj = r.dy > 0.0 ? 1 : -1,
            dk = r.dz > 0.0 ? 1 : -1;
  double alpha = r.inside.t0;
  // Every iteration crosses one boundary, which bounds the walk.
  for (int steps = volume.nx + volume.ny + volume.nz + 3; steps > 0; --steps) {
    // The axis whose boundary comes next.
    const int axis =
        next_x < next_y ? (next_x < next_z ? 0 : 2) : (next_y < next_z ? 1 : 2);
    const double next = axis == 0 ? next_x : (axis == 1 ? next_y : next_z);
    if (next >= r.inside.t1) {
      visit(i, j, k, alpha, r.inside.t1, r.inside.axis1);
      return;
    }
    visit(i, j, k, alpha, next, axis);
    alpha = next;
    if (axis == 0) {
      next_x += step_x;
      i += di;
      if (static_cast<unsigned>(i) >= static_cast<unsigned>(volume.nx)) return;
    } else if (axis == 1) {
      next_y += step_y;
      j += dj;
      if (static_cast<unsigned>(j) >= static_cast<unsigned>(volume.ny)) return;
    } else {
      next_z += step_z;
      k += dk;
      if (static_cast<unsigned>(k) >= static_cast<unsigned>(volume.nz)) return;
    }
  }
}

// Siddon–Jacobs renderer: the exact radiological path of the segment through
// the voxels. kSum gives Σ length_mm·μ(voxel) per class; kMax gives the
// largest μ met (zero joins when part of the segment lies outside the
// volume).
template <Reduce R, int kChannels, class Volume, class Labels>
DRR_HD void MarchSiddon(const Volume& volume, const Labels& labels,
                        const PoseGeometry& g, int row, int col,
                        ChannelAccumulator<R, kChannels>* acc) {
  const SiddonRay r = PlanSiddon(volume, g, row, col);
  acc->Reset(R == Reduce::kSum || r.inside.t0 > 0.0 || r.inside.t1 < 1.0
                 ? 0.0f
                 : -INFINITY);
  if (!(r.inside.t0 < r.inside.t1)) return;
  auto add = [&](int i, int j, int k, double from, double to, int) {
    const float mu = volume.Voxel(i, j, k);
    acc->Add(labels.Voxel(i, j, k),
             R == Reduce::kSum ? mu * static_cast<float>(to - from) : mu);
  };
  WalkSiddon(volume, r, add);
  if (R == Reduce::kSum) acc->Scale(Norm(r.camera.target - r.camera.source));
}

}  // namespace drr::kernels
