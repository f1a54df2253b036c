// The per-ray work of the renderer: __host__ __device__ bodies that both the
// CPU executor and the CUDA executor run (design.md §2): what every ray
// shares (the camera ray, the per-class accumulators), and the trilinear
// renderer, n samples of the source→detector segment (nanodrr's). Siddon's
// exact path is in kernels/siddon.h.
#pragma once

#include <cmath>

#include "kernels/vec.h"
#include "numeric/host_device.h"

namespace drr::kernels {

// Everything a ray of one pose needs, in float32: the camera→voxel map
// (world_to_voxel · rt_inv), K⁻¹, and the source-to-detector distance.
struct PoseGeometry {
  Affine3x4 camera_to_voxel;
  float k_inv[3][3];
  float sdd;
  int orthographic;
};

// Which ray integral to compute: nanodrr's trilinear samples, or Siddon's
// exact radiological path.
enum class Projector { kTrilinear, kSiddon };

// Where the trilinear renderer puts a ray's samples.
enum class Sampling {
  // nanodrr ≤ 0.1.6: n points spread evenly over the whole source→detector
  // segment, both ends included, each weighing |segment|/(n − 1).
  kSegment,
  // nanodrr 0.1.7: the segment clipped to where trilinear support meets the
  // volume, and the midpoints of n equal parts of that, each weighing
  // |clipped segment|/n. Every sample lands near the volume.
  kClipped,
};

// What every ray of a launch shares: detector size and, for the trilinear
// renderer, how many samples each ray takes (≥ 2), where, and how a sample
// is split among classes.
struct RaySettings {
  int height;
  int width;
  int n_samples;
  Sampling sampling = Sampling::kSegment;
  // nanodrr 0.1.7's soft labels: each of a sample's 8 trilinear neighbours
  // adds its weight·μ to the channel of its own class, instead of the whole
  // sample going to the class of the nearest voxel. Line integrals of
  // labelled volumes only. With one summed channel it gives the plain image
  // (rounded differently, 8 shares added where one sample would do): the
  // engine leaves it off then.
  bool soft_labels = false;
};

// How a ray's samples combine: a line integral, or the maximum (MIP).
enum class Reduce { kSum, kMax };

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

// Per-channel accumulators for the classes [first, first + kChannels) of one
// ray: each sample adds to the channel of its class; for the maximum, as
// nanodrr masks μ by class, a sample is μ in its class's channel and zero in
// every other. The maximum takes a sample only where it is larger: a NaN
// sample, or an equal one, leaves it. (fmaxf would too, but for the sign of
// a tie of zeros, which g++ leaves to the order it passes fmaxf's arguments
// in, as it takes fmax to be commutative.)
template <Reduce R, int kChannels>
struct ChannelAccumulator {
  int first;
  float value[kChannels];

  DRR_HD void Reset(float v) {
    for (int c = 0; c < kChannels; ++c) value[c] = v;
  }
  // Compares against every channel rather than indexing with `label`, so
  // that the accumulators stay in registers on the GPU.
  DRR_HD void Add(int label, float x) {
    const int channel = label - first;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int c = 0; c < kChannels; ++c) {
      if (R == Reduce::kSum) {
        if (c == channel) value[c] += x;
      } else {
        const float sample = c == channel ? x : 0.0f;
        if (sample > value[c]) value[c] = sample;
      }
    }
  }
  DRR_HD void Scale(float s) {
    for (int c = 0; c < kChannels; ++c) value[c] *= s;
  }
};

// One thread per ray: it takes every sample (or Siddon's whole walk), and
// its accumulators are the ray's. The CUDA executor deals a ray's work to
// several threads instead (BlockLanes, cuda/block_tiles.h), which combine
// theirs.
struct SingleLane {
  static constexpr int kCount = 1;

  // Which of the kCount threads of the ray this is: it takes samples
  // first + index(), first + index() + kCount, ... (or piece index() of
  // Siddon's walk, WalkSiddon).
  DRR_HD int index() const { return 0; }
  // Whether this thread writes the ray's pixel.
  DRR_HD bool writes() const { return true; }
  // The ray's value of one accumulator from every thread's `v` (R's sum or
  // maximum); the same on every thread of the ray.
  template <Reduce R>
  DRR_HD float Combine(float v) const {
    return v;
  }
};

// Thread `lane` of the kCount threads of one ray, for sums linear in the
// ray's samples or crossings (the pose VJPs): each thread takes samples
// first + lane, first + lane + kCount, ... (or piece `lane` of Siddon's
// walk) and adds its own part of the result, so nothing is combined per
// ray; whoever sums the threads' parts gets the ray's. The CUDA executor's
// gradient kernel, and tests on the CPU.
template <int kLanes>
struct RayLane {
  static constexpr int kCount = kLanes;
  int lane;

  DRR_HD int index() const { return lane; }
};

// Narrows [*lo, *hi] (segment parameters) to where a + α·d lies strictly
// between `lower` and `upper` on one axis (empty: *lo ≥ *hi). In float for
// the trilinear renderer's sample range, in double for planning Siddon's
// walk.
template <typename T>
DRR_HD void ClipToSlab(T a, T d, T lower, T upper, T* lo, T* hi) {
  if (d == T(0)) {
    if (!(a > lower && a < upper)) *hi = T(-1);
    return;
  }
  T t0 = (lower - a) / d, t1 = (upper - a) / d;
  if (t0 > t1) {
    const T t = t0;
    t0 = t1;
    t1 = t;
  }
  if (t0 > *lo) *lo = t0;
  if (t1 < *hi) *hi = t1;
}

// The samples [*first, *last] (empty when *last < *first) of the n-sample
// segment a + (s/(n−1))·ab whose trilinear support meets `volume`: strictly
// inside (−1, n) on every axis. One sample of slack each side of the clipped
// range keeps rounding from dropping one that counts.
template <class Volume>
DRR_HD_RAY_SETUP void SamplesMeetingVolume(const Volume& volume, Vec3 a,
                                           Vec3 ab, int n_samples, int* first,
                                           int* last) {
  float lo = 0.0f, hi = 1.0f;
  ClipToSlab(a.x, ab.x, -1.0f, static_cast<float>(volume.nx), &lo, &hi);
  ClipToSlab(a.y, ab.y, -1.0f, static_cast<float>(volume.ny), &lo, &hi);
  ClipToSlab(a.z, ab.z, -1.0f, static_cast<float>(volume.nz), &lo, &hi);
  const float intervals = static_cast<float>(n_samples - 1);
  *first = 0;
  *last = -1;
  if (lo < hi) {
    *first = static_cast<int>(fmaxf(floorf(lo * intervals), 0.0f));
    *last = static_cast<int>(fminf(ceilf(hi * intervals), intervals));
  }
}

// The part [t0, t1] of a segment a + t·ab, t ∈ [0, 1], clipped to slabs:
// axis0 and axis1 name the axis whose plane sets each end, or −1 where the
// segment's own end does (an end that does not move with the pose). Empty
// when t0 ≥ t1.
template <typename T>
struct ClippedSpan {
  T t0, t1;
  int axis0, axis1;
};

// Narrows `span` to the slab (lower, upper) of one axis, noting the axis at
// the ends it moves.
template <typename T>
DRR_HD void ClipSpanToSlab(T a, T d, T lower, T upper, int axis,
                           ClippedSpan<T>* span) {
  const T t0 = span->t0, t1 = span->t1;
  ClipToSlab(a, d, lower, upper, &span->t0, &span->t1);
  if (span->t0 != t0) span->axis0 = axis;
  if (span->t1 != t1) span->axis1 = axis;
}

// Where trilinear support meets the volume: the box [−1, n] on every axis
// (nanodrr 0.1.7's _clip_rays, in voxel coordinates).
using SupportSpan = ClippedSpan<float>;

template <class Volume>
DRR_HD_RAY_SETUP SupportSpan ClipToSupport(const Volume& volume, Vec3 a,
                                           Vec3 ab) {
  SupportSpan span{0.0f, 1.0f, -1, -1};
  ClipSpanToSlab(a.x, ab.x, -1.0f, static_cast<float>(volume.nx), 0, &span);
  ClipSpanToSlab(a.y, ab.y, -1.0f, static_cast<float>(volume.ny), 1, &span);
  ClipSpanToSlab(a.z, ab.z, -1.0f, static_cast<float>(volume.nz), 2, &span);
  return span;
}

// The trilinear samples of one ray: x_i = a + t_i·ab in voxel coordinates
// (a + t·ab the source→detector segment), for i in [first, last] (empty when
// last < first), each weighing step_mm; t_i as SampleParameter gives it.
struct RaySamples {
  CameraRay camera;
  Vec3 a, ab;
  // Whole segments: 1/(n − 1). Clipped ones: 1/n.
  float inv;
  int first, last;
  float step_mm;
  // Clipped sampling: the clipped part [t0, t1] of the segment and the axes
  // that set its ends (the pose gradient follows them), and t1 − t0 (0 for
  // a ray that misses).
  SupportSpan span;
  float length;
};

// Plans the samples of the ray of pixel (row, col) as `s` places them.
template <class Volume>
DRR_HD_RAY_SETUP RaySamples PlanSamples(const Volume& volume,
                                        const PoseGeometry& g,
                                        const RaySettings& s, int row,
                                        int col) {
  RaySamples r;
  r.camera = MakeCameraRay(g, row, col);
  r.a = TransformPoint(g.camera_to_voxel, r.camera.source);
  r.ab = TransformPoint(g.camera_to_voxel, r.camera.target) - r.a;
  const float segment_mm = Norm(r.camera.target - r.camera.source);
  if (s.sampling == Sampling::kSegment) {
    r.inv = 1.0f / static_cast<float>(s.n_samples - 1);
    SamplesMeetingVolume(volume, r.a, r.ab, s.n_samples, &r.first, &r.last);
    r.step_mm = segment_mm * r.inv;
    r.span = SupportSpan{0.0f, 1.0f, -1, -1};
    r.length = 1.0f;
    return r;
  }
  r.span = ClipToSupport(volume, r.a, r.ab);
  const bool hit = r.span.t0 < r.span.t1;
  r.length = hit ? r.span.t1 - r.span.t0 : 0.0f;
  r.inv = 1.0f / static_cast<float>(s.n_samples);
  r.first = 0;
  r.last = hit ? s.n_samples - 1 : -1;
  r.step_mm = segment_mm * r.inv * r.length;
  return r;
}

// Where sample i of a ray lies along [0, 1] (`inv` as RaySamples has it):
// i/(n − 1) on whole segments; on clipped ones u_i = (i + ½)/n of the way
// from t0 to t1.
DRR_HD float SampleFraction(int i, float inv, Sampling sampling) {
  return sampling == Sampling::kSegment ? static_cast<float>(i) * inv
                                        : (static_cast<float>(i) + 0.5f) * inv;
}

// The segment parameter t_i of sample i of `r` (the sampling a compile-time
// constant of the loops that call it).
template <Sampling kSampling>
DRR_HD float SampleParameter(const RaySamples& r, int i) {
  const float u = SampleFraction(i, r.inv, kSampling);
  if constexpr (kSampling == Sampling::kSegment) return u;
  return r.span.t0 + u * r.length;
}

// Where sample i of `r` lies, in voxel coordinates: a + t_i·ab.
template <Sampling kSampling>
DRR_HD Vec3 SamplePoint(const RaySamples& r, int i) {
  return r.a + SampleParameter<kSampling>(r, i) * r.ab;
}

// Adds one sample at `p` with soft labels: each trilinear neighbour inside
// the volume adds weight·μ to the channel of its own class.
template <int kChannels, class Volume, class Labels>
DRR_HD void AddSoftSample(const Volume& volume, const Labels& labels, Vec3 p,
                          ChannelAccumulator<Reduce::kSum, kChannels>* acc) {
  const float fx = floorf(p.x), fy = floorf(p.y), fz = floorf(p.z);
  const int x0 = SaturatingIndex(fx, volume.nx),
            y0 = SaturatingIndex(fy, volume.ny),
            z0 = SaturatingIndex(fz, volume.nz);
  const float wx = p.x - fx, wy = p.y - fy, wz = p.z - fz;
  for (int dz = 0; dz < 2; ++dz) {
    const int z = z0 + dz;
    if (z < 0 || z >= volume.nz) continue;
    const float w_z = dz ? wz : 1.0f - wz;
    for (int dy = 0; dy < 2; ++dy) {
      const int y = y0 + dy;
      if (y < 0 || y >= volume.ny) continue;
      const float w_zy = w_z * (dy ? wy : 1.0f - wy);
      for (int dx = 0; dx < 2; ++dx) {
        const int x = x0 + dx;
        if (x < 0 || x >= volume.nx) continue;
        acc->Add(labels.Voxel(x, y, z),
                 w_zy * (dx ? wx : 1.0f - wx) * volume.Voxel(x, y, z));
      }
    }
  }
}

// Adds the samples of `r` that are this lane's (Lanes: SingleLane, or the
// CUDA executor's BlockLanes) to `acc`: each sample's value to the class of
// its nearest voxel, or with soft labels (kSum only) each neighbour's share
// to its own class. (`r` by value: the loop then need not reload it after
// every write to `acc`.)
template <Sampling kSampling, Reduce R, int kChannels, class Volume,
          class Labels, class Lanes>
DRR_HD void AddSamples(const Volume& volume, const Labels& labels,
                       const RaySamples r, bool soft_labels, const Lanes& lanes,
                       ChannelAccumulator<R, kChannels>* acc) {
  const int first = r.first + lanes.index();
  if constexpr (R == Reduce::kSum) {
    if (soft_labels) {
      for (int i = first; i <= r.last; i += Lanes::kCount) {
        const Vec3 p = SamplePoint<kSampling>(r, i);
        AddSoftSample(volume, labels, p, acc);
      }
      return;
    }
  }
  for (int i = first; i <= r.last; i += Lanes::kCount) {
    const Vec3 p = SamplePoint<kSampling>(r, i);
    acc->Add(labels.Nearest(p), volume(p));
  }
}

// Trilinear renderer: n samples x_i placed as `s.sampling` says. kSum gives
// Σ_i μ(x_i)·Δ per class (Δ the step of RaySamples); kMax gives max_i μ(x_i).
// Samples whose trilinear support lies outside the volume are skipped: they
// would add zero (and a zero joins the maximum when any was skipped). With
// soft labels (kSum only) each neighbour of a sample goes to its own class.
// With several Lanes each thread adds its share of the samples, and `acc`
// holds that thread's part (Lanes::Combine gives the ray's).
template <Reduce R, int kChannels, class Volume, class Labels,
          class Lanes = SingleLane>
DRR_HD void MarchTrilinear(const Volume& volume, const Labels& labels,
                           const PoseGeometry& g, const RaySettings& s, int row,
                           int col, ChannelAccumulator<R, kChannels>* acc,
                           const Lanes& lanes = {}) {
  const RaySamples r = PlanSamples(volume, g, s, row, col);
  const bool skipped_any = r.first > 0 || r.last < s.n_samples - 1;
  acc->Reset(R == Reduce::kSum || skipped_any ? 0.0f : -INFINITY);
  if (s.sampling == Sampling::kSegment) {
    AddSamples<Sampling::kSegment>(volume, labels, r, s.soft_labels, lanes,
                                   acc);
  } else {
    AddSamples<Sampling::kClipped>(volume, labels, r, s.soft_labels, lanes,
                                   acc);
  }
  if (R == Reduce::kSum) acc->Scale(r.step_mm);
}

}  // namespace drr::kernels
