// The vectorised marches (cpu_simd.h): trilinear, its pose gradient and
// Jacobian, and Siddon's walk, one channel or split by hard or soft labels,
// and MIPs, compiled once per instruction set Highway targets and dispatched
// at run time.
// drr_kernels and its users are built with -ffp-contract=off
// (kernels/CMakeLists.txt), so that neither the lanes nor the per-ray bodies
// fuse a multiply and an add and both round alike.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu_simd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// (foreach_target.h includes this file again once per target.)
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/cpu_simd.h"
#include "kernels/pose_gradient.h"
#include "kernels/siddon.h"
#include "kernels/volume_dispatch.h"
#include "kernels/volume_view.h"

HWY_BEFORE_NAMESPACE();
namespace drr::kernels {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;
using FloatLanes = hn::ScalableTag<float>;
using IntLanes = hn::RebindToSigned<FloatLanes>;
using FloatVec = hn::Vec<FloatLanes>;
using IntVec = hn::Vec<IntLanes>;

// The most lanes a vector of this target holds.
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

#if HWY_TARGET <= HWY_AVX3
// The 32-bit words that the 16-bit values data[index] start (each lane's
// value in the low half, the next in memory in the high half), gathered.
// A gather takes signed 32-bit byte offsets, which 2·index passes beyond
// 2³¹ in grids of 2³⁰ voxels or more (kMaxVolumeVoxels allows 2³¹ − 1); so
// the offsets count from 2³¹ bytes past `data`, as 2·index − 2³¹ modulo 2³²
// (the top bit of 2·index flipped), which spans every index.
HWY_INLINE IntVec GatherWordsAt(const void* data, IntVec index) {
  const IntLanes di;
  const auto* base = reinterpret_cast<const int32_t*>(
      reinterpret_cast<uintptr_t>(data) + (uintptr_t{1} << 31));
  return hn::GatherOffset(
      di, base, hn::Xor(hn::ShiftLeft<1>(index), hn::Set(di, INT32_MIN)));
}
#endif

// The 32-bit words that the labels at `index` in a host label buffer
// (kSimdLabelPadding) start: each lane's label in the low half, the next
// label in memory (the next voxel's along x inside a row, or padding) in the
// high half. AVX-512 gathers them; other targets read them lane by lane,
// GCC inserting each lane's word straight into a vector register (as
// ReadPairs).
HWY_INLINE IntVec ReadLabelWords(const uint16_t* data, IntVec index) {
#if HWY_TARGET <= HWY_AVX3
  return GatherWordsAt(data, index);
#else
  const IntLanes di;
  HWY_ALIGN int32_t at[kMaxLanes], words[kMaxLanes];
  hn::Store(index, di, at);
  for (size_t l = 0; l < hn::Lanes(di); ++l)
    std::memcpy(&words[l], data + at[l], sizeof(int32_t));
  return hn::Load(di, words);
#endif
}

// The labels in the low halves of `words`.
HWY_INLINE IntVec LowLabels(IntVec words) {
  return hn::And(words, hn::Set(IntLanes(), 0xFFFF));
}

// The labels at `index` in a host label buffer (kSimdLabelPadding).
HWY_INLINE IntVec ReadLabels(const uint16_t* data, IntVec index) {
  return LowLabels(ReadLabelWords(data, index));
}

// The voxels at `index` as float lanes of tag `d`.
template <class D>
HWY_INLINE hn::Vec<D> GatherVoxels(D d, const float* data,
                                   hn::Vec<hn::RebindToSigned<D>> index) {
  return hn::GatherIndex(d, data, index);
}

// 16-bit voxels: the aligned 32-bit word holding each (the buffer's padding
// keeps the last one readable), shifted so that the voxel is its low half.
template <class D>
HWY_INLINE hn::Vec<hn::RebindToSigned<D>> GatherLowHalves(
    D, const void* data, hn::Vec<hn::RebindToSigned<D>> index) {
  const hn::RebindToSigned<D> di;
  const auto words = hn::GatherIndex(di, static_cast<const int32_t*>(data),
                                     hn::ShiftRight<1>(index));
  return hn::IfThenElse(hn::TestBit(index, hn::Set(di, 1)),
                        hn::ShiftRight<16>(words), words);
}

// The 16-bit voxels in the low halves of `words` as float lanes of tag `d`
// (the pointer only picks the type).
template <class D>
HWY_INLINE hn::Vec<D> WidenLowHalves(D d, const BFloat16*,
                                     hn::Vec<hn::RebindToSigned<D>> words) {
  return hn::BitCast(d, hn::ShiftLeft<16>(words));
}

template <class D>
HWY_INLINE hn::Vec<D> WidenLowHalves(D d, const Half*,
                                     hn::Vec<hn::RebindToSigned<D>> words) {
  // Sign-extending the low half makes the narrowing exact.
  const auto low = hn::ShiftRight<16>(hn::ShiftLeft<16>(words));
  return hn::PromoteTo(
      d, hn::BitCast(hn::Rebind<hwy::float16_t, D>(),
                     hn::DemoteTo(hn::Rebind<int16_t, D>(), low)));
}

// The 16-bit voxels at `index` as float lanes of tag `d`.
template <class D, typename T>
HWY_INLINE hn::Vec<D> GatherVoxels(D d, const T* data,
                                   hn::Vec<hn::RebindToSigned<D>> index) {
  return WidenLowHalves(d, data, GatherLowHalves(d, data, index));
}

// The rays of one group of lanes, PlanSamples's plan of each lane's pixel
// in lanes: the camera-space source, target and step of each segment (the
// gradient's), the voxel-space start a and step ab, the sample range, each
// sample's length step_mm, and the clipped part [t0, t1] of the segment
// with the axes setting its ends and t1 − t0 (PlanSamples's span and
// length; 0, 1, −1, −1 and 1 on whole segments).
struct LaneRays {
  HWY_ALIGN float sx[kMaxLanes], sy[kMaxLanes], sz[kMaxLanes];
  HWY_ALIGN float tx[kMaxLanes], ty[kMaxLanes], tz[kMaxLanes];
  HWY_ALIGN float dx[kMaxLanes], dy[kMaxLanes], dz[kMaxLanes];
  HWY_ALIGN float ax[kMaxLanes], ay[kMaxLanes], az[kMaxLanes];
  HWY_ALIGN float abx[kMaxLanes], aby[kMaxLanes], abz[kMaxLanes];
  HWY_ALIGN float t0[kMaxLanes], t1[kMaxLanes], length[kMaxLanes];
  HWY_ALIGN float step_mm[kMaxLanes];
  HWY_ALIGN int32_t first[kMaxLanes], last[kMaxLanes];
  HWY_ALIGN int32_t axis0[kMaxLanes], axis1[kMaxLanes];
  // RaySamples::inv, the same in every lane.
  float inv;
  int min_first, max_last;
  // The plan of the pixel one row below lane 0's, CellPrefetch's measure of
  // how far apart rows of pixels lie (on the last row a pixel past the
  // image, of which only the geometry is used).
  RaySamples below;

  // Lane l's plan, as PlanSamples gives it (for a lane past the row's end,
  // a ray that misses: every field but inv 0, and last = −1).
  RaySamples Plan(size_t l) const {
    RaySamples r;
    r.camera = {{sx[l], sy[l], sz[l]}, {tx[l], ty[l], tz[l]}};
    r.a = {ax[l], ay[l], az[l]};
    r.ab = {abx[l], aby[l], abz[l]};
    r.inv = inv;
    r.first = first[l];
    r.last = last[l];
    r.step_mm = step_mm[l];
    r.span = {t0[l], t1[l], axis0[l], axis1[l]};
    r.length = length[l];
    return r;
  }
};

// A point or direction of every lane.
using LaneVec3 = std::array<FloatVec, 3>;

// `f` applied to the point p of every lane (rotation/scale and
// translation), rounded as TransformPoint rounds it.
HWY_INLINE LaneVec3 TransformLanes(const Affine3x4& f, const LaneVec3& p) {
  const FloatLanes df;
  LaneVec3 out;
  for (int k = 0; k < 3; ++k) {
    out[k] = hn::Add(hn::Add(hn::Add(hn::Mul(hn::Set(df, f.m[k][0]), p[0]),
                                     hn::Mul(hn::Set(df, f.m[k][1]), p[1])),
                             hn::Mul(hn::Set(df, f.m[k][2]), p[2])),
                     hn::Set(df, f.m[k][3]));
  }
  return out;
}

// ClipToSlab in every lane: narrows [*lo, *hi] to where a + t·d lies
// strictly between `lower` and `upper`, rounding and comparing as it does.
HWY_INLINE void ClipLanesToSlab(FloatVec a, FloatVec d, float lower,
                                float upper, FloatVec* lo, FloatVec* hi) {
  const FloatLanes df;
  const FloatVec low = hn::Set(df, lower), high = hn::Set(df, upper);
  const auto parallel = hn::Eq(d, hn::Zero(df));
  const auto inside = hn::And(hn::Gt(a, low), hn::Lt(a, high));
  const FloatVec at_low = hn::Div(hn::Sub(low, a), d);
  const FloatVec at_high = hn::Div(hn::Sub(high, a), d);
  const auto swap = hn::Gt(at_low, at_high);
  const FloatVec near = hn::IfThenElse(swap, at_high, at_low);
  const FloatVec far = hn::IfThenElse(swap, at_low, at_high);
  const FloatVec narrowed_lo = hn::IfThenElse(hn::Gt(near, *lo), near, *lo);
  const FloatVec narrowed_hi = hn::IfThenElse(hn::Lt(far, *hi), far, *hi);
  *lo = hn::IfThenElse(parallel, *lo, narrowed_lo);
  *hi = hn::IfThenElse(
      parallel, hn::IfThenElse(inside, *hi, hn::Set(df, -1.0f)), narrowed_hi);
}

// Sets up the rays of pixels col_begin + l (l < lanes, a whole vector) of
// `row`, every lane's as PlanSamples plans it per ray and to the same bits,
// all lanes at once; lanes at or past `col_end` march nothing.
template <class Volume>
void SetUpLanes(const Volume& volume, const PoseGeometry& g,
                const RaySettings& s, int row, int col_begin, int col_end,
                size_t lanes, LaneRays* r) {
  const FloatLanes df;
  const IntLanes di;
  const IntVec col = hn::Iota(di, col_begin);
  const auto used = hn::RebindMask(df, hn::Lt(col, hn::Set(di, col_end)));
  // MakeCameraRay.
  const FloatVec u = hn::Add(hn::ConvertTo(df, col), hn::Set(df, 0.5f));
  const float v = static_cast<float>(row) + 0.5f;
  LaneVec3 target, source;
  for (int k = 0; k < 3; ++k) {
    target[k] = hn::Mul(hn::Set(df, g.sdd),
                        hn::Add(hn::Add(hn::Mul(hn::Set(df, g.k_inv[k][0]), u),
                                        hn::Set(df, g.k_inv[k][1] * v)),
                                hn::Set(df, g.k_inv[k][2])));
    source[k] = g.orthographic ? target[k] : hn::Zero(df);
  }
  if (g.orthographic) source[2] = hn::Sub(target[2], hn::Set(df, g.sdd));
  const LaneVec3 step = {hn::Sub(target[0], source[0]),
                         hn::Sub(target[1], source[1]),
                         hn::Sub(target[2], source[2])};
  const LaneVec3 a = TransformLanes(g.camera_to_voxel, source);
  const LaneVec3 to = TransformLanes(g.camera_to_voxel, target);
  const LaneVec3 ab = {hn::Sub(to[0], a[0]), hn::Sub(to[1], a[1]),
                       hn::Sub(to[2], a[2])};
  const FloatVec segment_mm = hn::Sqrt(
      hn::Add(hn::Add(hn::Mul(step[0], step[0]), hn::Mul(step[1], step[1])),
              hn::Mul(step[2], step[2])));
  // Where trilinear support meets the volume (SamplesMeetingVolume,
  // ClipToSupport), and the axes that set the clipped ends.
  FloatVec lo = hn::Zero(df), hi = hn::Set(df, 1.0f);
  IntVec axis0 = hn::Set(di, -1), axis1 = hn::Set(di, -1);
  const int sizes[3] = {volume.nx, volume.ny, volume.nz};
  for (int k = 0; k < 3; ++k) {
    const FloatVec was_lo = lo, was_hi = hi;
    ClipLanesToSlab(a[k], ab[k], -1.0f, static_cast<float>(sizes[k]), &lo, &hi);
    const IntVec axis = hn::Set(di, k);
    // Where an end moved (as C++'s != compares: hn::Ne is an ordered
    // comparison on some targets, though neither end is ever NaN).
    const auto moved_lo = hn::Not(hn::Eq(lo, was_lo));
    const auto moved_hi = hn::Not(hn::Eq(hi, was_hi));
    axis0 = hn::IfThenElse(hn::RebindMask(di, moved_lo), axis, axis0);
    axis1 = hn::IfThenElse(hn::RebindMask(di, moved_hi), axis, axis1);
  }
  const auto hit = hn::Lt(lo, hi);
  const FloatVec intervals = hn::Set(df, static_cast<float>(s.n_samples - 1));
  FloatVec t0, t1, length, step_mm;
  IntVec first, last;
  if (s.sampling == Sampling::kSegment) {
    r->inv = 1.0f / static_cast<float>(s.n_samples - 1);
    first = hn::ConvertTo(
        di, hn::Max(hn::Floor(hn::Mul(lo, intervals)), hn::Zero(df)));
    last =
        hn::ConvertTo(di, hn::Min(hn::Ceil(hn::Mul(hi, intervals)), intervals));
    t0 = hn::Zero(df);
    t1 = length = hn::Set(df, 1.0f);
    axis0 = axis1 = hn::Set(di, -1);
    step_mm = hn::Mul(segment_mm, hn::Set(df, r->inv));
  } else {
    r->inv = 1.0f / static_cast<float>(s.n_samples);
    first = hn::Zero(di);
    last = hn::Set(di, s.n_samples - 1);
    t0 = lo;
    t1 = hi;
    length = hn::IfThenElseZero(hit, hn::Sub(hi, lo));
    step_mm = hn::Mul(hn::Mul(segment_mm, hn::Set(df, r->inv)), length);
  }
  const auto marches = hn::RebindMask(di, hn::And(used, hit));
  first = hn::IfThenElseZero(marches, first);
  last = hn::IfThenElse(marches, last, hn::Set(di, -1));
  const auto store = [&](FloatVec x, float* to_lanes) {
    hn::Store(hn::IfThenElseZero(used, x), df, to_lanes);
  };
  store(source[0], r->sx), store(source[1], r->sy), store(source[2], r->sz);
  store(target[0], r->tx), store(target[1], r->ty), store(target[2], r->tz);
  store(step[0], r->dx), store(step[1], r->dy), store(step[2], r->dz);
  store(a[0], r->ax), store(a[1], r->ay), store(a[2], r->az);
  store(ab[0], r->abx), store(ab[1], r->aby), store(ab[2], r->abz);
  store(t0, r->t0), store(t1, r->t1), store(length, r->length);
  store(step_mm, r->step_mm);
  const auto used_int = hn::RebindMask(di, used);
  hn::Store(first, di, r->first);
  hn::Store(last, di, r->last);
  hn::Store(hn::IfThenElseZero(used_int, axis0), di, r->axis0);
  hn::Store(hn::IfThenElseZero(used_int, axis1), di, r->axis1);
  r->min_first = s.n_samples;
  r->max_last = -1;
  for (size_t l = 0; l < lanes; ++l) {
    if (r->first[l] > r->last[l]) continue;
    r->min_first = std::min(r->min_first, static_cast<int>(r->first[l]));
    r->max_last = std::max(r->max_last, static_cast<int>(r->last[l]));
  }
  r->below = PlanSamples(volume, g, s, row + 1, col_begin);
}

// The parameters of sample i of every lane, as SampleParameter gives them:
// shared by the lanes on whole segments, per lane on clipped ones (each
// lane's own t0 and t1 − t0).
class LaneParameters {
 public:
  LaneParameters(const LaneRays& r, const RaySettings& s)
      : sampling_(s.sampling),
        inv_(1.0f / static_cast<float>(sampling_ == Sampling::kClipped
                                           ? s.n_samples
                                           : s.n_samples - 1)),
        t0_(hn::Load(FloatLanes(), r.t0)),
        length_(hn::Load(FloatLanes(), r.length)) {}

  // Whether no lane's parameter falls as the step grows (clipped rays with
  // t1 ≥ t0, not NaN; whole segments always).
  bool Increasing() const {
    const FloatLanes df;
    return sampling_ == Sampling::kSegment ||
           hn::AllTrue(df, length_ >= hn::Zero(df));
  }

  // Where sample i lies along [0, 1] (SampleFraction), in every lane.
  float Fraction(int i) const { return SampleFraction(i, inv_, sampling_); }

  // Where sample i of one ray lies, in voxels, as the march puts it.
  Vec3 Position(const RaySamples& ray, int i) const {
    return sampling_ == Sampling::kSegment
               ? SamplePoint<Sampling::kSegment>(ray, i)
               : SamplePoint<Sampling::kClipped>(ray, i);
  }

  // The parameter t of sample i, in every lane.
  FloatVec At(int i) const {
    const float u = Fraction(i);
    if (sampling_ == Sampling::kSegment) return hn::Set(FloatLanes(), u);
    return hn::Add(t0_, hn::Mul(hn::Set(FloatLanes(), u), length_));
  }

 private:
  Sampling sampling_;
  float inv_;
  FloatVec t0_, length_;
};

// Each lane's ray in voxel coordinates, a + t·ab at sample parameter t.
class LaneLines {
 public:
  explicit LaneLines(const LaneRays& r)
      : a_{hn::Load(FloatLanes(), r.ax), hn::Load(FloatLanes(), r.ay),
           hn::Load(FloatLanes(), r.az)},
        ab_{hn::Load(FloatLanes(), r.abx), hn::Load(FloatLanes(), r.aby),
            hn::Load(FloatLanes(), r.abz)} {}

  // Each lane's coordinate on `axis` at parameter t.
  HWY_INLINE FloatVec At(int axis, FloatVec t) const {
    return hn::Add(a_[axis], hn::Mul(t, ab_[axis]));
  }

  // How far each lane's coordinate on `axis` moves per unit of t.
  HWY_INLINE FloatVec Slope(int axis) const { return ab_[axis]; }

 private:
  FloatVec a_[3], ab_[3];
};

// The lanes whose sample ranges [first, last] hold step i.
HWY_INLINE hn::Mask<IntLanes> SampledAt(IntVec first, IntVec last, int i) {
  const IntVec step = hn::Set(IntLanes(), i);
  return hn::And(hn::Not(step < first), hn::Not(last < step));
}

// One axis of the samples of a step: the cell's lower corner (saturated as
// SaturatingIndex does), the weight of its upper corner, and whether each
// corner lies inside.
struct AxisCell {
  IntVec lower;
  FloatVec weight;
  hn::Mask<IntLanes> lower_inside, upper_inside, meets;
};

HWY_INLINE AxisCell CellOnAxis(FloatVec p, int n) {
  const FloatLanes df;
  const IntLanes di;
  const FloatVec f = hn::Floor(p);
  AxisCell cell;
  cell.lower =
      hn::ConvertTo(di, hn::Min(hn::Max(f, hn::Set(df, -2.0f)),
                                hn::Set(df, static_cast<float>(n + 1))));
  cell.weight = hn::Sub(p, f);
  cell.lower_inside = cell.lower > hn::Set(di, -1);  // (no integer >=)
  cell.upper_inside = cell.lower < hn::Set(di, n - 1);
  cell.meets =
      hn::And(cell.lower > hn::Set(di, -2), cell.lower < hn::Set(di, n));
  return cell;
}

// The cells of the lanes' samples at parameter t, on each axis.
struct LaneCells {
  AxisCell x, y, z;
};

template <typename T>
HWY_INLINE LaneCells CellsAt(const VolumeView<T>& v, const LaneLines& lines,
                             FloatVec t) {
  return {CellOnAxis(lines.At(0, t), v.nx), CellOnAxis(lines.At(1, t), v.ny),
          CellOnAxis(lines.At(2, t), v.nz)};
}

// The flat index of corner c[k] (k = dx + 2·dy + 4·dz) of a cell of a
// volume or label grid, less its lower corner's (summed in int64: in a
// volume one slice thick, k = 7's offset may pass INT32_MAX, and only
// masked-off lanes use it).
template <class Grid>
HWY_INLINE int32_t CornerOffset(const Grid& v, int k) {
  return static_cast<int32_t>((k & 1) + (k & 2 ? int64_t{v.nx} : 0) +
                              (k & 4 ? int64_t{v.nx} * v.ny : 0));
}

// CornerOffset of each corner c[k], worked out once per march for the steps
// whose lanes read all 8 corners (GatherInteriorCorners): true offsets
// there, as a cell has all its corners inside only where the volume has two
// voxels or more on every axis.
struct CornerOffsets {
  template <typename T>
  explicit CornerOffsets(const VolumeView<T>& v) {
    for (int k = 0; k < 8; ++k) at[k] = CornerOffset(v, k);
  }
  int32_t at[8];
};

// The flat index of each lane's voxel (x, y, z) of a volume or label grid
// (VolumeView, LabelView).
template <class Grid>
HWY_INLINE IntVec FlatIndex(const Grid& v, IntVec x, IntVec y, IntVec z) {
  const IntLanes di;
  return hn::Add(hn::Add(hn::Mul(z, hn::Set(di, v.nx * v.ny)),
                         hn::Mul(y, hn::Set(di, v.nx))),
                 x);
}

// GatherInteriorCorners(v, offsets, lower, c) sets the 8 corners
// c[dx + 2·dy + 4·dz] of the cells whose lower corners lie at flat indices
// `lower`, every corner inside the volume (so x + 1 is, too). Each row of a
// cell is read as one word per lane holding its corners x and x + 1: on
// AVX-512 with gather instructions, on other vector targets lane by lane
// (docs/renderer.md, "Reading the interior run's corners"); on HWY_SCALAR
// each corner on its own.
#if HWY_TARGET <= HWY_AVX3
// AVX-512: the pairs gathered. On the AVX-512 Xeon host the trilinear
// render of float32 voxels ran 1.1× (one pose) to 1.3× (eight) faster than
// with the reads lane by lane below, of 16-bit voxels 1.3–1.5×.

// Float voxels: each lane's pair, a 64-bit word gathered at its byte
// offset, parted into the corners x and x + 1.
HWY_INLINE void GatherInteriorCorners(const VolumeView<float>& v,
                                      const CornerOffsets& offsets,
                                      IntVec lower, FloatVec c[8]) {
  const FloatLanes df;
  const hn::Repartition<int64_t, FloatLanes> d64;
  const hn::Half<IntLanes> half;
  const auto low_bytes =
      hn::ShiftLeft<2>(hn::PromoteTo(d64, hn::LowerHalf(half, lower)));
  const auto high_bytes =
      hn::ShiftLeft<2>(hn::PromoteTo(d64, hn::UpperHalf(half, lower)));
  for (int row = 0; row < 4; ++row) {
    const auto* pairs =
        reinterpret_cast<const int64_t*>(v.data + offsets.at[2 * row]);
    const FloatVec first =
        hn::BitCast(df, hn::GatherOffset(d64, pairs, low_bytes));
    const FloatVec second =
        hn::BitCast(df, hn::GatherOffset(d64, pairs, high_bytes));
    c[2 * row] = hn::ConcatEven(df, second, first);
    c[2 * row + 1] = hn::ConcatOdd(df, second, first);
  }
}

// 16-bit voxels: each lane's pair, a 32-bit word gathered, widened into the
// corners x and x + 1.
template <typename T>
HWY_INLINE void GatherInteriorCorners(const VolumeView<T>& v,
                                      const CornerOffsets& offsets,
                                      IntVec lower, FloatVec c[8]) {
  static_assert(sizeof(T[2]) == sizeof(int32_t), "16-bit voxels");
  const FloatLanes df;
  for (int row = 0; row < 4; ++row) {
    const IntVec words = GatherWordsAt(v.data + offsets.at[2 * row], lower);
    c[2 * row] = WidenLowHalves(df, v.data, words);
    c[2 * row + 1] = WidenLowHalves(df, v.data, hn::ShiftRight<16>(words));
  }
}
#elif HWY_TARGET != HWY_SCALAR
// Lane l's voxel data[at[l]] and the next along x (a cell row's corners x
// and x + 1), copied side by side into `pairs`: one scalar read per lane.
// GCC turns the copies and the vector load after them into loads inserted
// straight into vector registers. On the Zen 3 host the interior run went
// 1.24× faster for float32 voxels and 1.6× for 16-bit ones than with AVX2's
// gathers (docs/renderer.md).
template <typename T>
HWY_INLINE void ReadPairs(const T* data, const int32_t* at, size_t lanes,
                          void* pairs) {
  for (size_t l = 0; l < lanes; ++l)
    std::memcpy(static_cast<char*>(pairs) + l * sizeof(T[2]), data + at[l],
                sizeof(T[2]));
}

// Float voxels: each lane's pair, the two halves of a 64-bit word, parted
// into the corners x and x + 1.
HWY_INLINE void GatherInteriorCorners(const VolumeView<float>& v,
                                      const CornerOffsets& offsets,
                                      IntVec lower, FloatVec c[8]) {
  const FloatLanes df;
  const size_t lanes = hn::Lanes(df);
  HWY_ALIGN int32_t at[kMaxLanes];
  hn::Store(lower, IntLanes(), at);
  HWY_ALIGN float pairs[2 * kMaxLanes];
  for (int row = 0; row < 4; ++row) {
    ReadPairs(v.data + offsets.at[2 * row], at, lanes, pairs);
    const FloatVec first = hn::Load(df, pairs);
    const FloatVec second = hn::Load(df, pairs + lanes);
    c[2 * row] = hn::ConcatEven(df, second, first);
    c[2 * row + 1] = hn::ConcatOdd(df, second, first);
  }
}

// 16-bit voxels: each lane's pair, the two halves of a 32-bit word, widened
// into the corners x and x + 1.
template <typename T>
HWY_INLINE void GatherInteriorCorners(const VolumeView<T>& v,
                                      const CornerOffsets& offsets,
                                      IntVec lower, FloatVec c[8]) {
  static_assert(sizeof(T[2]) == sizeof(int32_t), "16-bit voxels");
  const FloatLanes df;
  const IntLanes di;
  const size_t lanes = hn::Lanes(df);
  HWY_ALIGN int32_t at[kMaxLanes];
  hn::Store(lower, di, at);
  HWY_ALIGN int32_t pairs[kMaxLanes];
  for (int row = 0; row < 4; ++row) {
    ReadPairs(v.data + offsets.at[2 * row], at, lanes, pairs);
    const IntVec words = hn::Load(di, pairs);
    c[2 * row] = WidenLowHalves(df, v.data, words);
    c[2 * row + 1] = WidenLowHalves(df, v.data, hn::ShiftRight<16>(words));
  }
}
#else
// Any voxels: each corner gathered on its own.
template <typename T>
HWY_INLINE void GatherInteriorCorners(const VolumeView<T>& v,
                                      const CornerOffsets& offsets,
                                      IntVec lower, FloatVec c[8]) {
  const FloatLanes df;
  const IntLanes di;
  for (int k = 0; k < 8; ++k)
    c[k] = GatherVoxels(df, v.data, hn::Add(lower, hn::Set(di, offsets.at[k])));
}
#endif

// The lanes of `reads` whose cell (x, y, z) has its corner c[k] (k = dx +
// 2·dy + 4·dz) inside the volume; `reads` only lanes whose cells meet it.
HWY_INLINE hn::Mask<IntLanes> CornerInside(const AxisCell& x, const AxisCell& y,
                                           const AxisCell& z,
                                           hn::Mask<IntLanes> reads, int k) {
  return hn::And(reads,
                 hn::And(k & 1 ? x.upper_inside : x.lower_inside,
                         hn::And(k & 2 ? y.upper_inside : y.lower_inside,
                                 k & 4 ? z.upper_inside : z.lower_inside)));
}

// The corners of each lane's cell (x, y, z) inside the volume in the lanes
// of `reads` (lanes whose cells meet it), the rest zero.
template <typename T>
HWY_INLINE void GatherCorners(const VolumeView<T>& v, const AxisCell& x,
                              const AxisCell& y, const AxisCell& z,
                              hn::Mask<IntLanes> reads, FloatVec c[8]) {
  const FloatLanes df;
  const IntVec lower = FlatIndex(v, x.lower, y.lower, z.lower);
  for (int k = 0; k < 8; ++k) {
    const IntVec index =
        hn::Add(lower, hn::Set(IntLanes(), CornerOffset(v, k)));
    const auto inside = CornerInside(x, y, z, reads, k);
    c[k] = hn::IfThenElseZero(
        hn::RebindMask(df, inside),
        GatherVoxels(df, v.data, hn::IfThenElseZero(inside, index)));
  }
}

// VolumeView::operator()'s interpolation inside the volume, over the
// gathered corners c[dx + 2·dy + 4·dz], in its order.
HWY_INLINE FloatVec Interpolate(const FloatVec c[8], FloatVec wx, FloatVec wy,
                                FloatVec wz) {
  const FloatVec c00 = hn::Add(c[0], hn::Mul(wx, hn::Sub(c[1], c[0])));
  const FloatVec c10 = hn::Add(c[2], hn::Mul(wx, hn::Sub(c[3], c[2])));
  const FloatVec c01 = hn::Add(c[4], hn::Mul(wx, hn::Sub(c[5], c[4])));
  const FloatVec c11 = hn::Add(c[6], hn::Mul(wx, hn::Sub(c[7], c[6])));
  const FloatVec c0 = hn::Add(c00, hn::Mul(wy, hn::Sub(c10, c00)));
  const FloatVec c1 = hn::Add(c01, hn::Mul(wy, hn::Sub(c11, c01)));
  return hn::Add(c0, hn::Mul(wz, hn::Sub(c1, c0)));
}

// Each corner's share (w_z·w_y)·w_x·μ of a sample among the gathered
// corners c[dx + 2·dy + 4·dz] (zero outside the volume), as
// VolumeView::operator() weighs them at the volume's faces and
// AddSoftSample everywhere.
HWY_INLINE void CornerShares(const FloatVec c[8], FloatVec wx, FloatVec wy,
                             FloatVec wz, FloatVec share[8]) {
  const FloatVec one = hn::Set(FloatLanes(), 1.0f);
  const FloatVec w_x[2] = {hn::Sub(one, wx), wx};
  const FloatVec w_y[2] = {hn::Sub(one, wy), wy};
  const FloatVec w_z[2] = {hn::Sub(one, wz), wz};
  for (int dz = 0; dz < 2; ++dz)
    for (int dy = 0; dy < 2; ++dy) {
      const FloatVec w_zy = hn::Mul(w_z[dz], w_y[dy]);
      for (int dx = 0; dx < 2; ++dx) {
        const int k = dx + 2 * dy + 4 * dz;
        share[k] = hn::Mul(hn::Mul(w_zy, w_x[dx]), c[k]);
      }
    }
}

// VolumeView::operator()'s sum at the volume's faces, in its order: corners
// outside (zero here) add nothing.
HWY_INLINE FloatVec WeightedCornerSum(const FloatVec c[8], FloatVec wx,
                                      FloatVec wy, FloatVec wz) {
  FloatVec share[8];
  CornerShares(c, wx, wy, wz, share);
  FloatVec sum = hn::Zero(FloatLanes());
  for (int k = 0; k < 8; ++k) sum = hn::Add(sum, share[k]);
  return sum;
}

// Reads the trilinear marches' corners ahead of use where rays or rows of
// pixels lie apart: while sample i is interpolated, the cells of sample
// i + kStepsAhead are fetched into the cache. Off in volumes too thin for a
// cell's four rows (one slice). Where neighbouring rays in a row lie closer
// than kSparseGap voxels and rows of pixels closer than kSparseRowGap, each
// row of pixels reads mostly the cache lines the rows before it read, and
// prefetching only costs instructions. Reference case (rays 2.1 voxels
// apart, rows 0.6) on a Zen 3 host: 33.6–35.9 ms per DRR without,
// 27.4–27.6 ms with; at 64² px 11.6–13.5 ms against 5.0–6.4; at 400² px
// (rays 1.1 voxels apart, rows 0.3) within 4 %, at 1024² px (0.43 and
// 0.12) 12 % slower with. The chest resampled to 256³ (rays 1.1 voxels
// apart, rows 1.15): 31.6 ms without, 22.2 ms with.
template <typename T>
class CellPrefetch {
 public:
  // Steps ahead: 8 on AVX-512, whose gathers read a step's corners (on the
  // AVX-512 Xeon host 1.17× faster than 4 at one pose, as fast at eight; 16
  // no faster than 8); 4 on narrower targets, which read them lane by lane
  // (on the Zen 3 host 8 ran 0.87× the speed of 4).
#if HWY_TARGET <= HWY_AVX3
  static constexpr int kStepsAhead = 8;
#else
  static constexpr int kStepsAhead = 4;
#endif
  static constexpr float kSparseGap = 2.0f;
  static constexpr float kSparseRowGap = 1.0f;

  // Always inlined: where GCC called it instead, a march split by label ran
  // 2.5 % more instructions (reference case, AVX2, cachegrind).
  // `labels`: the label grid whose cells to fetch too, or nullptr.
  HWY_INLINE CellPrefetch(const VolumeView<T>& v, const LaneRays& r,
                          const LaneParameters& parameters,
                          const uint16_t* labels = nullptr)
      : v_(v), parameters_(parameters), lines_(r), labels_(labels) {
    const int64_t sy = v.nx, sz = int64_t{v.nx} * v.ny;
    const int64_t last_lower = sz * v.nz - 1 - sz - sy;
    if (last_lower < 0 || !Sparse(r, parameters)) return;
    last_lower_ = static_cast<int32_t>(last_lower);
    ChooseLanes((r.min_first + r.max_last) / 2);
  }

  // Whether this group of rays prefetches.
  bool active() const { return picked_count_ > 0; }

  // Prefetches the cells of step i + kStepsAhead.
  HWY_INLINE void Ahead(int i) const {
    if (active()) Fetch(LowerCorners(i + kStepsAhead));
  }

  // Prefetches the four rows (y, z and their successors) of the cells whose
  // lower corners lie at flat indices `lower` (clamped into the volume), on
  // the lanes ChooseLanes picked.
  HWY_INLINE void Fetch(IntVec lower) const {
    const IntLanes di;
    HWY_ALIGN int32_t at[kMaxLanes];
    hn::Store(hn::Min(hn::Max(lower, hn::Zero(di)), hn::Set(di, last_lower_)),
              di, at);
    const T* data = v_.data;
    const int64_t sy = v_.nx, sz = int64_t{v_.nx} * v_.ny;
    for (int k = 0; k < picked_count_; ++k) {
      const T* cell = data + at[picked_[k]];
      hwy::Prefetch(cell);
      hwy::Prefetch(cell + sy);
      hwy::Prefetch(cell + sz);
      hwy::Prefetch(cell + sz + sy);
      if (labels_ == nullptr) continue;
      const uint16_t* labels = labels_ + at[picked_[k]];
      hwy::Prefetch(labels);
      hwy::Prefetch(labels + sy);
      hwy::Prefetch(labels + sz);
      hwy::Prefetch(labels + sz + sy);
    }
  }

 private:
  static size_t Lanes() { return hn::Lanes(FloatLanes()); }

  // Whether, halfway along the march, the rays of lanes 0 and 1 lie
  // kSparseGap voxels apart or more on some axis, or lane 0's ray and the
  // ray of the pixel below it kSparseRowGap; a lone ray counts as sparse.
  static bool Sparse(const LaneRays& r, const LaneParameters& parameters) {
    if (Lanes() < 2 || r.first[1] > r.last[1]) return true;
    const int middle = (r.min_first + r.max_last) / 2;
    const Vec3 p = parameters.Position(r.Plan(0), middle);
    const auto apart = [&](const RaySamples& ray, float gap) {
      const Vec3 q = parameters.Position(ray, middle);
      return std::fabs(q.x - p.x) >= gap || std::fabs(q.y - p.y) >= gap ||
             std::fabs(q.z - p.z) >= gap;
    };
    return apart(r.Plan(1), kSparseGap) || apart(r.below, kSparseRowGap);
  }

  // Picks the lanes to prefetch, once per group, from the spread of the
  // lanes' lower corners at step i (the middle one): the first, the last,
  // and enough between them that about one picked lane falls in each cache
  // line of lower corners there.
  void ChooseLanes(int i) {
    HWY_ALIGN int32_t at[kMaxLanes];
    hn::Store(LowerCorners(i), IntLanes(), at);
    const size_t lanes = Lanes();
    const int64_t line = 64 / sizeof(T);  // voxels per cache line
    const int64_t spread = std::abs(int64_t{at[lanes - 1]} - at[0]);
    size_t stride = lanes - 1;
    if (spread > line)
      stride = static_cast<size_t>(line * (lanes - 1) / spread);
    stride = std::max<size_t>(stride, 1);
    for (size_t l = 0;; l = std::min(l + stride, lanes - 1)) {
      picked_[picked_count_++] = static_cast<int>(l);
      if (l == lanes - 1) break;
    }
  }

  // The flat index of each lane's lower corner at step i, each coordinate
  // clamped into the volume first.
  HWY_INLINE IntVec LowerCorners(int i) const {
    const FloatLanes df;
    const IntLanes di;
    const FloatVec t = parameters_.At(i);
    const auto cell = [&](int axis, int n) {
      return hn::ConvertTo(di,
                           hn::Min(hn::Max(lines_.At(axis, t), hn::Zero(df)),
                                   hn::Set(df, static_cast<float>(n - 1))));
    };
    return FlatIndex(v_, cell(0, v_.nx), cell(1, v_.ny), cell(2, v_.nz));
  }

  const VolumeView<T>& v_;
  const LaneParameters& parameters_;
  const LaneLines lines_;
  const uint16_t* labels_;
  int32_t last_lower_ = 0;      // the last lower corner whose 4 rows lie inside
  int picked_[kMaxLanes] = {};  // the lanes ChooseLanes picked
  int picked_count_ = 0;
};

// Each lane of `f`, an integral float within ±2^22, as an integer: adding
// 1.5·2^23 makes the integer the float's low mantissa bits, exactly (cheaper
// than ConvertTo, which also handles lanes out of the integers' range).
HWY_INLINE IntVec IntegralToInt(FloatVec f) {
  const FloatLanes df;
  const IntLanes di;
  const float kShift = 12582912.0f;  // 1.5·2^23, whose bits are 0x4B400000
  return hn::Sub(hn::BitCast(di, hn::Add(f, hn::Set(df, kShift))),
                 hn::Set(di, 0x4B400000));
}

// The steps [begin, end) of a group of lanes.
struct StepRun {
  int begin, end;
};

// The steps at which every lane's sample counts and has all 8 corners
// inside the volume. Each of those conditions holds on an interval of
// steps, as the samples' parameter grows with the step and each coordinate
// moves one way: a growing coordinate comes to pass 0 and ceases to lie
// below n − 1, a falling one the reverse. So the run starts where all that
// turn true have, and ends where the first that turns false does; both are
// found by bisection. Empty where a lane's parameter falls (t1 < t0, or
// NaN), or an axis is too long for IntegralToInt.
template <typename T>
StepRun InteriorRun(const VolumeView<T>& v, const LaneRays& r,
                    const LaneParameters& parameters) {
  const FloatLanes df;
  const IntLanes di;
  constexpr int kLongestAxis = 1 << 22;
  const StepRun none{r.min_first, r.min_first};
  if (!parameters.Increasing() || v.nx >= kLongestAxis ||
      v.ny >= kLongestAxis || v.nz >= kLongestAxis)
    return none;
  const LaneLines lines(r);
  const int n[3] = {v.nx, v.ny, v.nz};
  const IntVec first = hn::Load(di, r.first), last = hn::Load(di, r.last);
  // Whether at step i all the conditions that turn true (`rising`), or all
  // that turn false, hold in every lane.
  const auto all_hold = [&](int i, bool rising) {
    const FloatVec t = parameters.At(i);
    const IntVec step = hn::Set(di, i);
    auto holds = rising ? hn::Not(step < first) : hn::Not(last < step);
    for (int axis = 0; axis < 3; ++axis) {
      const FloatVec p = lines.At(axis, t);
      const auto above_0 = p >= hn::Zero(df);
      const auto below_n = p < hn::Set(df, static_cast<float>(n[axis] - 1));
      const auto grows = lines.Slope(axis) > hn::Zero(df);
      const auto turning_true =
          hn::Or(hn::And(grows, above_0), hn::AndNot(grows, below_n));
      const auto turning_false =
          hn::Or(hn::And(grows, below_n), hn::AndNot(grows, above_0));
      holds = hn::And(
          holds, hn::RebindMask(di, rising ? turning_true : turning_false));
    }
    return hn::AllTrue(di, holds);
  };
  int low = r.min_first, high = r.max_last + 1;
  while (low < high) {
    const int middle = low + (high - low) / 2;
    if (all_hold(middle, true))
      high = middle;
    else
      low = middle + 1;
  }
  const int begin = low;
  high = r.max_last + 1;
  while (low < high) {
    const int middle = low + (high - low) / 2;
    if (all_hold(middle, false))
      low = middle + 1;
    else
      high = middle;
  }
  return {begin, low};
}

// The samples of step i of every lane: the flat index of its cell's lower
// corner and the weights of its upper corners, for samples inside the
// volume as CellOnAxis gives them there.
struct InteriorCell {
  IntVec lower;
  FloatVec wx, wy, wz;
};

// The cells of the lanes' samples along rays a + t·ab.
class InteriorCells {
 public:
  // The rays of `r`, sampled at `parameters`.
  InteriorCells(const LaneRays& r, const LaneParameters& parameters)
      : parameters_(parameters), lines_(r) {}

  // The cells of step i (garbage, but no fault, off the interior run).
  template <typename T>
  HWY_INLINE InteriorCell At(const VolumeView<T>& v, int i) const {
    const FloatVec t = parameters_.At(i);
    const FloatVec px = lines_.At(0, t), py = lines_.At(1, t),
                   pz = lines_.At(2, t);
    const FloatVec fx = hn::Floor(px), fy = hn::Floor(py), fz = hn::Floor(pz);
    return {
        FlatIndex(v, IntegralToInt(fx), IntegralToInt(fy), IntegralToInt(fz)),
        hn::Sub(px, fx), hn::Sub(py, fy), hn::Sub(pz, fz)};
  }

 private:
  const LaneParameters& parameters_;
  const LaneLines lines_;
};

// Calls visit(i, cell, corners) for each step i of `run`, in order, with
// the cells of its samples (every one inside the volume) and their corners.
// Each step's cells are computed kStepsAhead steps early, and prefetched
// then where the prefetch is active.
template <typename T, class Visit>
HWY_INLINE void ForInteriorSteps(const VolumeView<T>& v,
                                 const InteriorCells& cells,
                                 const CellPrefetch<T>& prefetch, StepRun run,
                                 Visit visit) {
  constexpr int kAhead = CellPrefetch<T>::kStepsAhead;
  static_assert((kAhead & (kAhead - 1)) == 0, "a ring indexed by a mask");
  if (run.begin >= run.end) return;
  const CornerOffsets offsets(v);
  InteriorCell ring[kAhead];
  for (int k = 0; k < kAhead; ++k) ring[k] = cells.At(v, run.begin + k);
  FloatVec corners[8];
  for (int i = run.begin; i < run.end; ++i) {
    InteriorCell& slot = ring[(i - run.begin) & (kAhead - 1)];
    const InteriorCell cell = slot;
    slot = cells.At(v, i + kAhead);
    if (prefetch.active()) prefetch.Fetch(slot.lower);
    GatherInteriorCorners(v, offsets, cell.lower, corners);
    visit(i, cell, corners);
  }
}

// The most channels one march of a render split by label sums: a render of
// more takes a march per kSimdClassesPerPass channels, as the body takes one
// per kChannelsPerPass.
constexpr int kSimdClassesPerPass = 256;

// Each lane's sums per class of one march of a render split by label, as
// the body's ChannelAccumulator sums them: rows 0 .. n − 1 of a float per
// lane sum the classes first .. first + n − 1; row n takes the samples of
// every other class, which this march does not count. The sum of the class
// of each lane's latest sample is held in a vector (its row's entry stale
// meanwhile), where the next sample of the same class, mostly that of the
// neighbouring voxel, adds to it; a lane that meets another class puts it
// back and takes up that class's. So each sum takes its samples in order, as
// the body's does.
class ClassTable {
 public:
  // The sums of classes first .. first + n − 1.
  ClassTable(int first, int n)
      : first_(first), n_(n), rows_((n + 1) * hn::Lanes(FloatLanes())) {}

  // Sets every sum to zero for the next group of lanes, each lane's held
  // sum that of row 0.
  void Clear() {
    std::fill(rows_.begin(), rows_.end(), 0.0f);
    held_ = hn::Zero(FloatLanes());
    row_ = hn::Zero(IntLanes());
  }

  // Adds `value` to the sum of class `label` of each lane in `counts` (the
  // other lanes keep theirs as they are).
  HWY_INLINE void Add(IntVec label, hn::Mask<IntLanes> counts, FloatVec value) {
    const IntLanes di;
    const IntVec offset = hn::Sub(label, hn::Set(di, first_));
    const IntVec n = hn::Set(di, n_);
    const IntVec row = hn::IfThenElse(
        hn::And(offset > hn::Set(di, -1), offset < n), offset, n);
    const IntVec to = hn::IfThenElse(counts, row, row_);
    if (!hn::AllTrue(di, to == row_)) Hold(to);
    held_ = hn::Add(
        held_, hn::IfThenElseZero(hn::RebindMask(FloatLanes(), counts), value));
  }

  // Adds `value` to the sum of the class of each lane's latest Add, in every
  // lane.
  HWY_INLINE void AddToLatest(FloatVec value) { held_ = hn::Add(held_, value); }

  // Writes lane l's sums (l < used), each times scale[l], to the channels
  // first .. first + n − 1 of pixel l: out[channel · channel_stride + l].
  void Write(size_t used, const float* scale, float* out,
             long long channel_stride) {
    Hold(hn::Set(IntLanes(), n_));
    for (int c = 0; c < n_; ++c)
      for (size_t l = 0; l < used; ++l)
        out[(first_ + c) * channel_stride + static_cast<long long>(l)] =
            rows_[c * Lanes() + l] * scale[l];
  }

 private:
  // Puts each lane's held sum back in its row and takes up that of row
  // to[l] instead, where the two differ.
  void Hold(IntVec to) {
    const FloatLanes df;
    const IntLanes di;
    HWY_ALIGN float held[kMaxLanes];
    HWY_ALIGN int32_t from[kMaxLanes], next[kMaxLanes];
    hn::Store(held_, df, held);
    hn::Store(row_, di, from);
    hn::Store(to, di, next);
    for (size_t l = 0; l < hn::Lanes(df); ++l) {
      if (next[l] == from[l]) continue;
      rows_[from[l] * Lanes() + l] = held[l];
      held[l] = rows_[next[l] * Lanes() + l];
    }
    held_ = hn::Load(df, held);
    row_ = to;
  }

  static size_t Lanes() { return hn::Lanes(FloatLanes()); }

  int first_, n_;
  std::vector<float> rows_;
  FloatVec held_;
  IntVec row_;
};

// Each lane's sum of its samples: a render of one channel.
class LaneSum {
 public:
  LaneSum() : sum_(hn::Zero(FloatLanes())) {}

  // Adds the samples at parameter t of the lanes in `sampled` (their
  // planned samples) whose support `meets` the volume; the others are zero
  // (the body adds them, a no-op).
  HWY_INLINE void Add(FloatVec /*t*/, hn::Mask<FloatLanes> sampled,
                      hn::Mask<FloatLanes> meets, FloatVec sample) {
    sum_ = hn::Add(sum_, hn::IfThenElseZero(hn::And(sampled, meets), sample));
  }
  // Adds a step of the interior run, at parameter t, where every lane's
  // sample counts.
  HWY_INLINE void AddInterior(FloatVec /*t*/, FloatVec sample) {
    sum_ = hn::Add(sum_, sample);
  }
  FloatVec sum() const { return sum_; }

 private:
  FloatVec sum_;
};

// The larger of `largest` and `sample` in the lanes of `counts`, as the
// body's ChannelAccumulator takes it (a NaN sample, or one no larger, leaves
// `largest` as it is); `largest` in the others.
HWY_INLINE FloatVec Larger(FloatVec largest, hn::Mask<FloatLanes> counts,
                           FloatVec sample) {
  return hn::IfThenElse(hn::And(counts, sample > largest), sample, largest);
}

// Each lane's largest sample: a MIP of one channel.
class LaneMax {
 public:
  // Starting from `start` in each lane (the body's Reset).
  explicit LaneMax(FloatVec start) : max_(start) {}

  // Takes in the samples at parameter t of the lanes in `sampled`: zero
  // where their support does not meet the volume (the body's sample there,
  // which joins the maximum: a ray's planned samples may reach one past
  // those that meet it, PlanSamples).
  HWY_INLINE void Add(FloatVec /*t*/, hn::Mask<FloatLanes> sampled,
                      hn::Mask<FloatLanes> meets, FloatVec sample) {
    max_ = Larger(max_, sampled, hn::IfThenElseZero(meets, sample));
  }
  // Takes in a step of the interior run, where every lane's sample counts.
  HWY_INLINE void AddInterior(FloatVec /*t*/, FloatVec sample) {
    max_ = hn::IfThenElse(sample > max_, sample, max_);
  }
  FloatVec max() const { return max_; }

 private:
  FloatVec max_;
};

// Where each lane's MIP starts, as MarchTrilinear resets it: zero where some
// of the ray's n samples lie outside [first, last] (a zero joins the
// maximum), else −∞.
HWY_INLINE FloatVec MaxStart(const LaneRays& r, int n) {
  const FloatLanes df;
  const IntLanes di;
  const auto skipped_any = hn::Or(hn::Load(di, r.first) > hn::Zero(di),
                                  hn::Load(di, r.last) < hn::Set(di, n - 1));
  return hn::IfThenElse(hn::RebindMask(df, skipped_any), hn::Zero(df),
                        hn::Set(df, -INFINITY));
}

// Each lane's class at parameter t of `lines`: LabelView::Nearest of its
// point, lane by lane (class 0 outside the volume).
HWY_INLINE IntVec NearestLabels(const LabelView& labels, const LaneLines& lines,
                                FloatVec t) {
  const FloatLanes df;
  HWY_ALIGN float x[kMaxLanes], y[kMaxLanes], z[kMaxLanes];
  HWY_ALIGN int32_t label[kMaxLanes];
  hn::Store(lines.At(0, t), df, x);
  hn::Store(lines.At(1, t), df, y);
  hn::Store(lines.At(2, t), df, z);
  for (size_t l = 0; l < hn::Lanes(df); ++l)
    label[l] = labels.Nearest({x[l], y[l], z[l]});
  return hn::Load(IntLanes(), label);
}

// NearestLabels where every lane's nearest voxel lies inside the volume (the
// interior run): rounded to even on each axis in the lanes, as
// LabelView::Nearest rounds.
HWY_INLINE IntVec InteriorLabels(const LabelView& labels,
                                 const LaneLines& lines, FloatVec t) {
  auto axis = [&](int a) { return IntegralToInt(hn::Round(lines.At(a, t))); };
  return ReadLabels(labels.data, FlatIndex(labels, axis(0), axis(1), axis(2)));
}

// Each lane's sums per class (ClassTable), for a render split by label: each
// sample goes to the class of the voxel nearest it (LabelView::Nearest).
class LaneClassSums {
 public:
  // The samples of the lanes of `r`, summed into `table`.
  LaneClassSums(const LabelView& labels, const LaneRays& r, ClassTable* table)
      : labels_(labels), lines_(r), table_(table) {}

  // Adds the samples at parameter t of the lanes in `sampled` whose support
  // `meets` the volume, each to the class the body's LabelView::Nearest
  // gives; the others are zero (a no-op).
  HWY_INLINE void Add(FloatVec t, hn::Mask<FloatLanes> sampled,
                      hn::Mask<FloatLanes> meets, FloatVec sample) {
    const auto counts = hn::And(sampled, meets);
    if (hn::AllFalse(FloatLanes(), counts)) return;
    table_->Add(NearestLabels(labels_, lines_, t),
                hn::RebindMask(IntLanes(), counts), sample);
  }

  // Adds a step of the interior run at parameter t, where every lane's
  // sample counts and its nearest voxel is inside.
  HWY_INLINE void AddInterior(FloatVec t, FloatVec sample) {
    const IntLanes di;
    table_->Add(InteriorLabels(labels_, lines_, t),
                hn::FirstN(di, hn::Lanes(di)), sample);
  }

 private:
  const LabelView& labels_;
  const LaneLines lines_;
  ClassTable* table_;
};

// The classes of the corners c[dx + 2·dy + 4·dz] of the lanes' cells: in
// the lanes of inside[k] (corners inside the volume) the label of the
// corner, elsewhere voxel 0's (callers mask those lanes).
HWY_INLINE void CornerLabels(const LabelView& labels, const LaneCells& cells,
                             const hn::Mask<IntLanes> inside[8],
                             IntVec label[8]) {
  const IntVec lower =
      FlatIndex(labels, cells.x.lower, cells.y.lower, cells.z.lower);
  for (int k = 0; k < 8; ++k) {
    const IntVec index =
        hn::Add(lower, hn::Set(IntLanes(), CornerOffset(labels, k)));
    label[k] = ReadLabels(labels.data, hn::IfThenElseZero(inside[k], index));
  }
}

// Without labels every corner is of class 0.
HWY_INLINE void CornerLabels(NoLabels, const LaneCells&,
                             const hn::Mask<IntLanes>[8], IntVec label[8]) {
  for (int k = 0; k < 8; ++k) label[k] = hn::Zero(IntLanes());
}

// The classes of the corners c[dx + 2·dy + 4·dz] of cells whose lower
// corners lie at flat indices `lower`, every corner inside the volume: a
// word read per row of a cell holds the labels of its corners x and x + 1.
HWY_INLINE void InteriorCornerLabels(const LabelView& labels, IntVec lower,
                                     IntVec label[8]) {
  for (int row = 0; row < 4; ++row) {
    const IntVec words = ReadLabelWords(
        labels.data,
        hn::Add(lower, hn::Set(IntLanes(), CornerOffset(labels, 2 * row))));
    label[2 * row] = LowLabels(words);
    label[2 * row + 1] = LowLabels(hn::ShiftRight<16>(words));
  }
}

HWY_INLINE void InteriorCornerLabels(NoLabels, IntVec, IntVec label[8]) {
  for (int k = 0; k < 8; ++k) label[k] = hn::Zero(IntLanes());
}

// Each lane's sums per class (ClassTable), for a render split by soft labels
// (nanodrr 0.1.7's): each of a sample's 8 neighbours inside the volume adds
// its share (CornerShares) to its own class, one after the other in the
// body's order (AddSoftSample); without labels (NoLabels) every share goes
// to class 0, still one at a time. Marches hand it the corners of each step
// (kTakesCorners).
template <class Labels>
class LaneSoftClassSums {
 public:
  // The shares, by the classes of `labels`, summed into `table`.
  LaneSoftClassSums(const Labels& labels, ClassTable* table)
      : labels_(labels), table_(table) {}

  // Adds the shares of the corners inside the volume c (zero outside) of the
  // lanes' cells `cells`, in the lanes of `counts`: their planned samples,
  // whose support meets the volume.
  HWY_INLINE void AddCorners(const LaneCells& cells, hn::Mask<IntLanes> counts,
                             const FloatVec c[8]) {
    if (hn::AllFalse(IntLanes(), counts)) return;
    hn::Mask<IntLanes> inside[8];
    for (int k = 0; k < 8; ++k)
      inside[k] = CornerInside(cells.x, cells.y, cells.z, counts, k);
    FloatVec share[8];
    CornerShares(c, cells.x.weight, cells.y.weight, cells.z.weight, share);
    IntVec label[8];
    CornerLabels(labels_, cells, inside, label);
    for (int k = 0; k < 8; ++k) table_->Add(label[k], inside[k], share[k]);
  }

  // Adds the shares of a step of the interior run, where every lane's sample
  // counts and has its 8 corners c inside.
  HWY_INLINE void AddInteriorCorners(const InteriorCell& cell,
                                     const FloatVec c[8]) {
    const IntLanes di;
    FloatVec share[8];
    CornerShares(c, cell.wx, cell.wy, cell.wz, share);
    IntVec label[8];
    InteriorCornerLabels(labels_, cell.lower, label);
    const auto all = hn::FirstN(di, hn::Lanes(di));
    auto same = label[1] == label[0];
    for (int k = 2; k < 8; ++k) same = hn::And(same, label[k] == label[0]);
    if (hn::AllTrue(di, same)) {
      // Every lane's 8 corners share a class (mostly so): the first share
      // takes up its sum, and the other seven add to it without their
      // classes being compared again.
      table_->Add(label[0], all, share[0]);
      for (int k = 1; k < 8; ++k) table_->AddToLatest(share[k]);
      return;
    }
    for (int k = 0; k < 8; ++k) table_->Add(label[k], all, share[k]);
  }

 private:
  const Labels& labels_;
  ClassTable* table_;
};

// The classes of a label grid, for prefetching: none without labels.
HWY_INLINE const uint16_t* LabelData(const LabelView& labels) {
  return labels.data;
}
HWY_INLINE const uint16_t* LabelData(NoLabels) { return nullptr; }

// Whether a march hands `Sums` each step's corners (LaneSoftClassSums),
// rather than its samples.
template <class Sums>
constexpr bool kTakesCorners = false;
template <class Labels>
constexpr bool kTakesCorners<LaneSoftClassSums<Labels>> = true;

// Adds to `sums` (LaneSum, LaneMax, LaneClassSums, LaneClassMaxSamples;
// LaneSoftClassSums takes the corners instead) the samples of steps
// [from, to), each lane only its own, as VolumeView::operator() computes
// them: interpolated where all 8 corners are inside, else the weighted sum
// of the corners inside.
template <typename T, class Sums>
void MarchAnywhere(const VolumeView<T>& v, const LaneRays& r,
                   const LaneParameters& parameters,
                   const CellPrefetch<T>& prefetch, int from, int to,
                   Sums* sums) {
  const FloatLanes df;
  const IntLanes di;
  const LaneLines lines(r);
  const CornerOffsets offsets(v);
  const IntVec first = hn::Load(di, r.first), last = hn::Load(di, r.last);
  for (int i = from; i < to; ++i) {
    const FloatVec t = parameters.At(i);
    prefetch.Ahead(i);
    const auto [x, y, z] = CellsAt(v, lines, t);
    const auto sampled = SampledAt(first, last, i);
    const auto meets = hn::And(x.meets, hn::And(y.meets, z.meets));
    const auto counts = hn::And(sampled, meets);
    const auto interior = hn::And(
        counts, hn::And(hn::And(x.lower_inside, x.upper_inside),
                        hn::And(hn::And(y.lower_inside, y.upper_inside),
                                hn::And(z.lower_inside, z.upper_inside))));
    FloatVec corners[8];
    if constexpr (!kTakesCorners<Sums>) {
      // Every lane that counts has its whole cell inside (most of these
      // steps: where the lanes' sample ranges start and end a few steps
      // apart): its corners are read and interpolated as in the interior
      // run. The lanes that do not count read the cell at voxel 0, inside
      // too (a cell is inside only where every axis has 2 voxels or more);
      // `sums` takes their values nowhere (the samples of a MIP's lanes that
      // do not meet the volume are zero, as before).
      if (hn::AllFalse(di, hn::AndNot(interior, counts))) {
        FloatVec sample = hn::Zero(df);
        if (!hn::AllFalse(di, counts)) {
          const IntVec lower = FlatIndex(v, x.lower, y.lower, z.lower);
          GatherInteriorCorners(v, offsets, hn::IfThenElseZero(counts, lower),
                                corners);
          sample = Interpolate(corners, x.weight, y.weight, z.weight);
        }
        sums->Add(t, hn::RebindMask(df, sampled), hn::RebindMask(df, meets),
                  sample);
        continue;
      }
    }
    GatherCorners(v, x, y, z, counts, corners);
    if constexpr (kTakesCorners<Sums>) {
      sums->AddCorners({x, y, z}, counts, corners);
    } else {
      const FloatVec sample = hn::IfThenElse(
          hn::RebindMask(df, interior),
          Interpolate(corners, x.weight, y.weight, z.weight),
          WeightedCornerSum(corners, x.weight, y.weight, z.weight));
      sums->Add(t, hn::RebindMask(df, sampled), hn::RebindMask(df, meets),
                sample);
    }
  }
}

// Marches the lanes of `r` in lockstep over the union of their sample
// ranges, adding each lane's samples to `sums` in order: the interior run
// apart, each step anywhere else. `labels`: a label grid the samples read,
// prefetched beside the voxels, or nullptr.
template <typename T, class Sums>
HWY_INLINE void MarchLanes(const VolumeView<T>& v, const LaneRays& r,
                           const LaneParameters& parameters, Sums* sums,
                           const uint16_t* labels = nullptr) {
  const CellPrefetch<T> prefetch(v, r, parameters, labels);
  const StepRun interior = InteriorRun(v, r, parameters);
  MarchAnywhere(v, r, parameters, prefetch, r.min_first, interior.begin, sums);
  ForInteriorSteps(v, InteriorCells(r, parameters), prefetch, interior,
                   [&](int i, const InteriorCell& cell, const FloatVec c[8]) {
                     if constexpr (kTakesCorners<Sums>) {
                       sums->AddInteriorCorners(cell, c);
                     } else {
                       sums->AddInterior(
                           parameters.At(i),
                           Interpolate(c, cell.wx, cell.wy, cell.wz));
                     }
                   });
  MarchAnywhere(v, r, parameters, prefetch, interior.end, r.max_last + 1, sums);
}

// Writes MarchTrilinear's values of pixels [col_begin, col_end) of `row`,
// reducing by R, to out[0 .. col_end − col_begin).
template <Reduce R, typename T>
void MarchSpan(const VolumeView<T>& v, const PoseGeometry& g,
               const RaySettings& s, int row, int col_begin, int col_end,
               float* out) {
  const FloatLanes df;
  const size_t lanes = hn::Lanes(df);
  LaneRays rays;
  HWY_ALIGN float values[kMaxLanes];
  for (int col = col_begin; col < col_end; col += static_cast<int>(lanes)) {
    SetUpLanes(v, g, s, row, col, col_end, lanes, &rays);
    const LaneParameters parameters(rays, s);
    const size_t used = std::min(lanes, static_cast<size_t>(col_end - col));
    float* to = out + (col - col_begin);
    if constexpr (R == Reduce::kSum) {
      LaneSum sum;
      MarchLanes(v, rays, parameters, &sum);
      hn::Store(sum.sum(), df, values);
      for (size_t l = 0; l < used; ++l) to[l] = values[l] * rays.step_mm[l];
    } else {
      LaneMax max(MaxStart(rays, s.n_samples));
      MarchLanes(v, rays, parameters, &max);
      hn::Store(max.max(), df, values);
      std::copy(values, values + used, to);
    }
  }
}

// Siddon's walk (WalkSiddon) for the rays of consecutive pixels, one lane
// each, in the float32 lanes of the trilinear march. Every lane steps one
// voxel boundary per iteration until its segment or the volume ends.

// The walk's state per lane, set up as WalkSiddon does before its loop
// (StartSiddon).
struct SiddonLanes {
  HWY_ALIGN float first[3][kMaxLanes];
  HWY_ALIGN float step[3][kMaxLanes];
  // The crossings along each axis that take the walk out of the volume
  // (+inf in lanes that do not walk). The walk moves one voxel per crossing
  // from inside, so it leaves exactly when an axis' count reaches this
  // (exact in float32: at most the axis' voxels).
  HWY_ALIGN float exit_crossings[3][kMaxLanes];
  // The flat index of the voxel the walk starts in, and how far the index
  // moves on crossing each axis (±stride).
  HWY_ALIGN int32_t voxel[kMaxLanes];
  HWY_ALIGN int32_t voxel_step[3][kMaxLanes];
  HWY_ALIGN float end[kMaxLanes];
  // The axis of the plane where the segment leaves the volume (its
  // inside.axis1, −1 for the segment's own end), as a float.
  HWY_ALIGN float exit_axis[kMaxLanes];
  HWY_ALIGN int32_t walking[kMaxLanes];  // −1: the lane walks, else 0
  float scale[kMaxLanes];
  // Whether every lane prefetches at every crossing; else half the lanes
  // do, in turn, where neighbouring rays start less than kApartVoxels apart
  // and share many of the lines they read.
  bool every_lane_prefetches;
};

// How far apart (voxels, on some axis) lanes 0 and 1 start where each lane
// prefetches at every crossing. Reference case (rays 2.1 voxels apart) on
// the Zen 3 host, before the walk ran in chunks: every lane 25.1 ms, half
// 22.1 ms; at 64² px (6.6 voxels apart) 6.3 ms against 7.1; at 1024² px
// half about 6 % faster. In chunks, every lane 0.99× half's speed (medians
// of 10 alternating runs, reference case).
constexpr int kApartVoxels = 4;

// Crossings per chunk of the walk: WalkSiddonLanes finds a chunk's crossings
// first, prefetching the voxels as it finds them (every lane's, or half the
// lanes' in turn), and reads their μ after, so that the prefetches run up
// to a chunk ahead of the reads, and the reads mostly do not hold up the
// walk's arithmetic. Reference case on the Zen 3 host, medians of 10
// alternating runs at batch 1 against prefetching each voxel 8 crossings
// ahead in one loop: 1.32× faster with chunks of 64 (1.03× at batch 8, the
// poses' voxels already in cache), 1.22× with 32, and 128 and 256 no faster
// than 64; with the voxel 8 crossings ahead prefetched instead of each
// lane's own, 1.09–1.15×; without prefetching, 0.85×.
constexpr int kChunk = 64;

// Sets up the walks of the rays of pixels [col_begin, col_begin + lanes) of
// `row` (no walk past col_end), and keeps each lane's plan in plans[lane]
// unless `plans` is nullptr.
template <class Volume>
HWY_INLINE void SetUpSiddonLanes(const Volume& volume, const PoseGeometry& g,
                                 int row, int col_begin, int col_end,
                                 size_t lanes, SiddonLanes* w,
                                 SiddonRay* plans = nullptr) {
  const int stride[3] = {1, volume.nx, volume.nx * volume.ny};
  int first_two_starts[2][3] = {};  // the (i, j, k) lanes 0 and 1 start in
  for (size_t l = 0; l < lanes; ++l) {
    const int col = col_begin + static_cast<int>(l);
    w->walking[l] = 0;
    w->voxel[l] = 0;
    w->scale[l] = 0.0f;
    w->end[l] = 0.0f;
    w->exit_axis[l] = -1.0f;
    for (int axis = 0; axis < 3; ++axis) {
      w->first[axis][l] = INFINITY;
      w->step[axis][l] = 0.0f;
      w->exit_crossings[axis][l] = INFINITY;
      w->voxel_step[axis][l] = 0;
    }
    if (col >= col_end) continue;
    const SiddonRay r = PlanSiddon(volume, g, row, col);
    if (plans != nullptr) plans[l] = r;
    if (!(r.inside.t0 < r.inside.t1)) continue;  // the body returns 0
    const SiddonStart start = StartSiddon(volume, r);
    const int n[3] = {volume.nx, volume.ny, volume.nz};
    for (int axis = 0; axis < 3; ++axis) {
      const SiddonAxis& a = start.axis[axis];
      w->first[axis][l] = a.first;
      w->step[axis][l] = a.step;
      w->exit_crossings[axis][l] = ExitCrossings(a, n[axis]);
      w->voxel_step[axis][l] = a.direction * stride[axis];
    }
    w->voxel[l] = start.axis[0].index + stride[1] * start.axis[1].index +
                  stride[2] * start.axis[2].index;
    w->end[l] = start.end;
    w->exit_axis[l] = static_cast<float>(r.inside.axis1);
    w->scale[l] = MillimetresPerU(r);
    w->walking[l] = -1;
    if (l < 2)
      for (int axis = 0; axis < 3; ++axis)
        first_two_starts[l][axis] = start.axis[axis].index;
  }
  // Every lane prefetches where there is one lane or lanes 0 and 1 do not
  // both walk; else where they start kApartVoxels apart or more on some axis.
  w->every_lane_prefetches = lanes < 2 || !w->walking[0] || !w->walking[1];
  for (int axis = 0; axis < 3 && !w->every_lane_prefetches; ++axis)
    if (std::abs(first_two_starts[1][axis] - first_two_starts[0][axis]) >=
        kApartVoxels)
      w->every_lane_prefetches = true;
}

// The crossings of one chunk of a walk: at each, the voxel each lane was in
// (kNotWalking, below every voxel index, for lanes not walking) and the
// chord it walked there, Δu.
struct WalkChunk {
  static constexpr int32_t kNotWalking = -1;
  HWY_ALIGN int32_t voxel[kChunk][kMaxLanes];
  HWY_ALIGN float chord[kChunk][kMaxLanes];
  int size = 0;
};

// A chunk of a walk for the gradient: also, at each crossing, the u where
// each lane left its voxel and the axis of the plane there (WalkSiddon's
// `to` and `to_axis`, as floats; kNoPlane for lanes not walking).
struct WalkChunkWithPlanes : WalkChunk {
  static constexpr float kNoPlane = -2.0f;
  HWY_ALIGN float to[kChunk][kMaxLanes];
  HWY_ALIGN float to_axis[kChunk][kMaxLanes];
};

// Takes each crossing of `chunk` into each lane's `value`, in order, as the
// body does, for the lanes then walking only: adds μ·Δu (kSum), or keeps μ
// where it is larger (kMax).
template <Reduce R, typename T>
HWY_INLINE FloatVec TakeChunk(const VolumeView<T>& v, const WalkChunk& chunk,
                              FloatVec value) {
  const FloatLanes df;
  const IntLanes di;
  for (int k = 0; k < chunk.size; ++k) {
    const IntVec voxel = hn::Load(di, chunk.voxel[k]);
    const auto walked = voxel > hn::Set(di, WalkChunk::kNotWalking);
    const FloatVec mu =
        GatherVoxels(df, v.data, hn::IfThenElseZero(walked, voxel));
    if constexpr (R == Reduce::kSum) {
      value = hn::Add(
          value, hn::IfThenElseZero(hn::RebindMask(df, walked),
                                    hn::Mul(mu, hn::Load(df, chunk.chord[k]))));
    } else {
      value = Larger(value, hn::RebindMask(df, walked), mu);
    }
  }
  return value;
}

// Walks the lanes of `w` in lockstep, in chunks of kChunk crossings, and
// hands each chunk to on_chunk(chunk) once it is found; kRecordsPlanes: a
// WalkChunkWithPlanes. The walk keeps the flat voxel index and counts
// crossings per axis, where the body keeps (i, j, k): a lane leaves the
// volume when an axis' count reaches its exit crossings.
template <bool kRecordsPlanes, typename T, class OnChunk>
void WalkSiddonLanes(const VolumeView<T>& v, const SiddonLanes& w,
                     const OnChunk& on_chunk) {
  const FloatLanes df;
  const IntLanes di;
  FloatVec first[3], step[3], next[3], crossed[3], exit_crossings[3];
  IntVec voxel_step[3];
  for (int axis = 0; axis < 3; ++axis) {
    first[axis] = next[axis] = hn::Load(df, w.first[axis]);
    step[axis] = hn::Load(df, w.step[axis]);
    crossed[axis] = hn::Zero(df);
    exit_crossings[axis] = hn::Load(df, w.exit_crossings[axis]);
    voxel_step[axis] = hn::Load(di, w.voxel_step[axis]);
  }
  const FloatVec end = hn::Load(df, w.end), one = hn::Set(df, 1.0f);
  const FloatVec exit_axis = hn::Load(df, w.exit_axis);
  const IntVec not_walking = hn::Set(di, WalkChunk::kNotWalking);
  const size_t lanes = hn::Lanes(df);
  // The lanes prefetching at a crossing: every one, or even and odd in turn.
  const bool every_lane_prefetches = w.every_lane_prefetches;
  IntVec voxel = hn::Load(di, w.voxel);
  FloatVec u = hn::Zero(df);
  auto walking = hn::RebindMask(df, hn::Load(di, w.walking) == hn::Set(di, -1));
  std::conditional_t<kRecordsPlanes, WalkChunkWithPlanes, WalkChunk> chunk;
  // Every iteration crosses one boundary in every walking lane, which
  // bounds the walk as it bounds the body's.
  int steps = v.nx + v.ny + v.nz + 3;
  while (steps > 0 && !hn::AllFalse(df, walking)) {
    for (chunk.size = 0;
         chunk.size < kChunk && steps > 0 && !hn::AllFalse(df, walking);
         ++chunk.size, --steps) {
      // The axis whose boundary comes next, as the body chooses it.
      const auto x_before_y = next[0] < next[1];
      const auto on_x = hn::And(x_before_y, next[0] < next[2]);
      const auto on_y = hn::AndNot(x_before_y, next[1] < next[2]);
      FloatVec crossing =
          hn::IfThenElse(on_x, next[0], hn::IfThenElse(on_y, next[1], next[2]));
      const auto last = crossing >= end;
      crossing = hn::IfThenElse(last, end, crossing);
      // The voxel each walking lane is in, read ahead of TakeChunk.
      int32_t* in = chunk.voxel[chunk.size];
      hn::Store(hn::IfThenElse(hn::RebindMask(di, walking), voxel, not_walking),
                di, in);
      for (size_t l = every_lane_prefetches ? 0 : steps & 1; l < lanes;
           l += every_lane_prefetches ? 1 : 2)
        if (in[l] > WalkChunk::kNotWalking) hwy::Prefetch(v.data + in[l]);
      hn::Store(hn::Sub(crossing, u), df, chunk.chord[chunk.size]);
      if constexpr (kRecordsPlanes) {
        hn::Store(crossing, df, chunk.to[chunk.size]);
        const FloatVec axis = hn::IfThenElse(
            last, exit_axis,
            hn::IfThenElse(on_x, hn::Zero(df),
                           hn::IfThenElse(on_y, one, hn::Set(df, 2.0f))));
        hn::Store(hn::IfThenElse(walking, axis,
                                 hn::Set(df, WalkChunkWithPlanes::kNoPlane)),
                  df, chunk.to_axis[chunk.size]);
      }
      walking = hn::AndNot(last, walking);
      u = crossing;
      const hn::Mask<FloatLanes> moves[3] = {
          hn::And(walking, on_x), hn::And(walking, on_y),
          hn::AndNot(hn::Or(on_x, on_y), walking)};
      for (int axis = 0; axis < 3; ++axis) {
        crossed[axis] =
            hn::Add(crossed[axis], hn::IfThenElseZero(moves[axis], one));
        next[axis] = hn::IfThenElse(
            moves[axis],
            hn::Add(first[axis], hn::Mul(crossed[axis], step[axis])),
            next[axis]);
      }
      const auto leaves = hn::Or(crossed[0] == exit_crossings[0],
                                 hn::Or(crossed[1] == exit_crossings[1],
                                        crossed[2] == exit_crossings[2]));
      const auto on_x_i = hn::RebindMask(di, on_x),
                 on_y_i = hn::RebindMask(di, on_y);
      voxel = hn::Add(voxel,
                      hn::IfThenElseZero(
                          hn::RebindMask(di, walking),
                          hn::IfThenElse(on_x_i, voxel_step[0],
                                         hn::IfThenElse(on_y_i, voxel_step[1],
                                                        voxel_step[2]))));
      walking = hn::AndNot(leaves, walking);
    }
    on_chunk(chunk);
  }
}

// Where the MIP of each of the first `used` lanes of `plans` starts, as
// MarchSiddon resets it: zero where part of the segment lies outside the
// volume, else −∞ (zero in the lanes past `used`).
HWY_INLINE FloatVec SiddonMaxStart(const SiddonRay* plans, size_t used) {
  const FloatLanes df;
  HWY_ALIGN float start[kMaxLanes];
  for (size_t l = 0; l < hn::Lanes(df); ++l)
    start[l] =
        l < used && !(plans[l].inside.t0 > 0.0 || plans[l].inside.t1 < 1.0)
            ? -INFINITY
            : 0.0f;
  return hn::Load(df, start);
}

// Writes MarchSiddon's values of pixels [col_begin, col_end) of `row`,
// reducing by R, to out[0 .. col_end − col_begin).
template <Reduce R, typename T>
void WalkSpan(const VolumeView<T>& v, const PoseGeometry& g, int row,
              int col_begin, int col_end, float* out) {
  const FloatLanes df;
  const size_t lanes = hn::Lanes(df);
  SiddonLanes walk;
  SiddonRay plans[kMaxLanes];
  HWY_ALIGN float values[kMaxLanes];
  for (int col = col_begin; col < col_end; col += static_cast<int>(lanes)) {
    const size_t used = std::min(lanes, static_cast<size_t>(col_end - col));
    float* to = out + (col - col_begin);
    if constexpr (R == Reduce::kSum) {
      SetUpSiddonLanes(v, g, row, col, col_end, lanes, &walk);
      FloatVec sum = hn::Zero(df);
      WalkSiddonLanes</*kRecordsPlanes=*/false>(
          v, walk,
          [&](const WalkChunk& chunk) { sum = TakeChunk<R>(v, chunk, sum); });
      hn::Store(sum, df, values);
      for (size_t l = 0; l < used; ++l) to[l] = values[l] * walk.scale[l];
    } else {
      SetUpSiddonLanes(v, g, row, col, col_end, lanes, &walk, plans);
      FloatVec largest = SiddonMaxStart(plans, used);
      WalkSiddonLanes</*kRecordsPlanes=*/false>(
          v, walk, [&](const WalkChunk& chunk) {
            largest = TakeChunk<R>(v, chunk, largest);
          });
      hn::Store(largest, df, values);
      std::copy(values, values + used, to);
    }
  }
}

// Adds μ·Δu of each crossing of `chunk` to the class of its voxel in
// `table`, in order, as the body adds it, for the lanes then walking only.
template <typename T>
HWY_INLINE void AddChunkByClass(const VolumeView<T>& v, const LabelView& labels,
                                const WalkChunk& chunk, ClassTable* table) {
  const FloatLanes df;
  const IntLanes di;
  for (int k = 0; k < chunk.size; ++k) {
    const IntVec voxel = hn::Load(di, chunk.voxel[k]);
    const auto walked = voxel > hn::Set(di, WalkChunk::kNotWalking);
    const IntVec at = hn::IfThenElseZero(walked, voxel);
    table->Add(
        ReadLabels(labels.data, at), walked,
        hn::Mul(GatherVoxels(df, v.data, at), hn::Load(df, chunk.chord[k])));
  }
}

// The most channels one march of a MIP split by label takes: each sample is
// compared with every one of them, so a MIP of more takes a march per
// kMipClassesPerPass channels, as the body takes one per kChannelsPerPass.
constexpr int kMipClassesPerPass = 8;

// Each lane's largest sample per class of one march of a MIP split by
// label, as the body's ChannelAccumulator takes them: a sample of class c
// joins class c's maximum as itself and every other class's as zero.
class LaneClassMax {
 public:
  // The maxima of classes first .. first + n − 1 (n ≤ kMipClassesPerPass),
  // each starting from `start` (the body's Reset).
  LaneClassMax(int first, int n, FloatVec start) : first_(first), n_(n) {
    for (int c = 0; c < n_; ++c) max_[c] = start;
  }

  // Takes in `value`, of class label[l], in the lanes of `counts`.
  HWY_INLINE void Take(IntVec label, hn::Mask<FloatLanes> counts,
                       FloatVec value) {
    const FloatLanes df;
    const IntLanes di;
    for (int c = 0; c < n_; ++c) {
      const auto of_class =
          hn::RebindMask(df, label == hn::Set(di, first_ + c));
      max_[c] = Larger(max_[c], counts, hn::IfThenElseZero(of_class, value));
    }
  }

  // Writes lane l's maxima (l < used) to the channels first .. first + n − 1
  // of pixel l: out[channel · channel_stride + l].
  void Write(size_t used, float* out, long long channel_stride) const {
    HWY_ALIGN float values[kMaxLanes];
    for (int c = 0; c < n_; ++c) {
      hn::Store(max_[c], FloatLanes(), values);
      std::copy(values, values + used, out + (first_ + c) * channel_stride);
    }
  }

 private:
  int first_, n_;
  FloatVec max_[kMipClassesPerPass];
};

// The trilinear samples of a MIP split by label, taken into a LaneClassMax,
// each of the class the body's LabelView::Nearest gives.
class LaneClassMaxSamples {
 public:
  // The samples of the lanes of `r`, taken into `max`.
  LaneClassMaxSamples(const LabelView& labels, const LaneRays& r,
                      LaneClassMax* max)
      : labels_(labels), lines_(r), max_(max) {}

  // Takes in the samples at parameter t of the lanes in `sampled`: zero in
  // every class where their support does not meet the volume (LaneMax).
  HWY_INLINE void Add(FloatVec t, hn::Mask<FloatLanes> sampled,
                      hn::Mask<FloatLanes> meets, FloatVec sample) {
    const FloatLanes df;
    if (hn::AllFalse(df, sampled)) return;
    const IntVec label = hn::AllFalse(df, meets)
                             ? hn::Zero(IntLanes())
                             : NearestLabels(labels_, lines_, t);
    max_->Take(label, sampled, hn::IfThenElseZero(meets, sample));
  }

  // Takes in a step of the interior run at parameter t, where every lane's
  // sample counts and its nearest voxel is inside.
  HWY_INLINE void AddInterior(FloatVec t, FloatVec sample) {
    const FloatLanes df;
    max_->Take(InteriorLabels(labels_, lines_, t),
               hn::FirstN(df, hn::Lanes(df)), sample);
  }

 private:
  const LabelView& labels_;
  const LaneLines lines_;
  LaneClassMax* max_;
};

// Takes each crossing of `chunk` into `max`, in order, as the body takes
// it: μ of the voxel, of the voxel's class, for the lanes then walking only.
template <typename T>
HWY_INLINE void TakeChunkByClass(const VolumeView<T>& v,
                                 const LabelView& labels,
                                 const WalkChunk& chunk, LaneClassMax* max) {
  const FloatLanes df;
  const IntLanes di;
  for (int k = 0; k < chunk.size; ++k) {
    const IntVec voxel = hn::Load(di, chunk.voxel[k]);
    const auto walked = voxel > hn::Set(di, WalkChunk::kNotWalking);
    const IntVec at = hn::IfThenElseZero(walked, voxel);
    max->Take(ReadLabels(labels.data, at), hn::RebindMask(df, walked),
              GatherVoxels(df, v.data, at));
  }
}

// Writes the MIP channels of pixels [col_begin, col_end) of row `row` of
// pose `g`, split by `labels`: channel c of pixel col to
// out[c · channel_stride + col − col_begin], a march (Siddon's walk or the
// trilinear samples) per kMipClassesPerPass channels.
template <typename T>
void MipClassesSpan(const VolumeView<T>& v, const LabelView& labels,
                    const PoseGeometry& g, const RenderSettings& s, int row,
                    int col_begin, int col_end, float* out,
                    long long channel_stride) {
  const size_t lanes = hn::Lanes(FloatLanes());
  LaneRays rays;
  SiddonLanes walk;
  SiddonRay plans[kMaxLanes];
  for (int first = 0; first < s.channels; first += kMipClassesPerPass) {
    const int n = std::min(kMipClassesPerPass, s.channels - first);
    for (int col = col_begin; col < col_end; col += static_cast<int>(lanes)) {
      const size_t used = std::min(lanes, static_cast<size_t>(col_end - col));
      float* to = out + (col - col_begin);
      if (s.projector == Projector::kSiddon) {
        SetUpSiddonLanes(v, g, row, col, col_end, lanes, &walk, plans);
        LaneClassMax max(first, n, SiddonMaxStart(plans, used));
        WalkSiddonLanes</*kRecordsPlanes=*/false>(
            v, walk, [&](const WalkChunk& chunk) {
              TakeChunkByClass(v, labels, chunk, &max);
            });
        max.Write(used, to, channel_stride);
      } else {
        SetUpLanes(v, g, s.rays, row, col, col_end, lanes, &rays);
        LaneClassMax max(first, n, MaxStart(rays, s.rays.n_samples));
        LaneClassMaxSamples samples(labels, rays, &max);
        MarchLanes(v, rays, LaneParameters(rays, s.rays), &samples);
        max.Write(used, to, channel_stride);
      }
    }
  }
}

// Whether the body renders `s` with soft labels: each trilinear sample's
// corners add their shares one by one (AddSoftSample), labels or not. Soft
// labels change nothing else (Siddon's walk, MIPs).
bool SharesCorners(const RenderSettings& s) {
  return s.rays.soft_labels && s.projector == Projector::kTrilinear &&
         s.reduce == Reduce::kSum;
}

// Writes the summed channels of pixels [col_begin, col_end) of row `row` of
// pose `g`, split by `labels`: channel c of pixel col to
// out[c · channel_stride + col − col_begin], a march (Siddon's walk or the
// trilinear samples) per kSimdClassesPerPass channels. Without labels
// (NoLabels) only where SharesCorners(s), for one channel.
template <typename T, class Labels>
void MarchClassesSpan(const VolumeView<T>& v, const Labels& labels,
                      const PoseGeometry& g, const RenderSettings& s, int row,
                      int col_begin, int col_end, float* out,
                      long long channel_stride) {
  constexpr bool kHardLabels = std::is_same_v<Labels, LabelView>;
  const size_t lanes = hn::Lanes(FloatLanes());
  LaneRays rays;
  SiddonLanes walk;
  float scale[kMaxLanes];
  for (int first = 0; first < s.channels; first += kSimdClassesPerPass) {
    ClassTable table(first, std::min(kSimdClassesPerPass, s.channels - first));
    for (int col = col_begin; col < col_end; col += static_cast<int>(lanes)) {
      table.Clear();
      if (SharesCorners(s)) {
        SetUpLanes(v, g, s.rays, row, col, col_end, lanes, &rays);
        LaneSoftClassSums sums(labels, &table);
        MarchLanes(v, rays, LaneParameters(rays, s.rays), &sums,
                   LabelData(labels));
        for (size_t l = 0; l < lanes; ++l) scale[l] = rays.step_mm[l];
      } else if constexpr (kHardLabels) {
        if (s.projector == Projector::kSiddon) {
          SetUpSiddonLanes(v, g, row, col, col_end, lanes, &walk);
          WalkSiddonLanes</*kRecordsPlanes=*/false>(
              v, walk, [&](const WalkChunk& chunk) {
                AddChunkByClass(v, labels, chunk, &table);
              });
          std::copy(walk.scale, walk.scale + lanes, scale);
        } else {
          SetUpLanes(v, g, s.rays, row, col, col_end, lanes, &rays);
          LaneClassSums sums(labels, rays, &table);
          MarchLanes(v, rays, LaneParameters(rays, s.rays), &sums);
          for (size_t l = 0; l < lanes; ++l) scale[l] = rays.step_mm[l];
        }
      } else {
        std::abort();  // without labels only soft ones split (RenderSpan)
      }
      table.Write(std::min(lanes, static_cast<size_t>(col_end - col)), scale,
                  out + (col - col_begin), channel_stride);
    }
  }
}

template <typename T>
void MarchSpanOf(const VolumeView<T>& v, const PoseGeometry& g,
                 const RenderSettings& s, int row, int col_begin, int col_end,
                 float* out) {
  WithReduce(s, [&](auto reduce) {
    constexpr Reduce R = decltype(reduce)::value;
    if (s.projector == Projector::kSiddon) {
      WalkSpan<R>(v, g, row, col_begin, col_end, out);
    } else {
      MarchSpan<R>(v, g, s.rays, row, col_begin, col_end, out);
    }
  });
}

void RenderSpan(const VolumeBuffers& volume, const PoseGeometry& g,
                const RenderSettings& s, int row, int col_begin, int col_end,
                float* out, long long channel_stride) {
  VisitVolume(volume, s, [&](const auto& view, const auto& labels) {
    if constexpr (std::is_same_v<std::decay_t<decltype(labels)>, LabelView>) {
      if (s.reduce == Reduce::kMax) {
        MipClassesSpan(view, labels, g, s, row, col_begin, col_end, out,
                       channel_stride);
      } else {
        MarchClassesSpan(view, labels, g, s, row, col_begin, col_end, out,
                         channel_stride);
      }
    } else {
      if (SharesCorners(s)) {
        // Class 0's shares, one at a time, as the body adds them.
        RenderSettings one_channel = s;
        one_channel.channels = 1;
        MarchClassesSpan(view, labels, g, one_channel, row, col_begin, col_end,
                         out, channel_stride);
      } else {
        MarchSpanOf(view, g, s, row, col_begin, col_end, out);
      }
      // Without labels every sample is class 0: further channels are zero.
      for (int c = 1; c < s.channels; ++c)
        std::fill_n(out + c * channel_stride, col_end - col_begin, 0.0f);
    }
  });
}

// SampleWithGradient's gradient over gathered corners c[dx + 2·dy + 4·dz]
// (zero outside the volume), in its order.
HWY_INLINE void CornerGradient(const FloatVec c[8], FloatVec wx, FloatVec wy,
                               FloatVec wz, FloatVec* gx, FloatVec* gy,
                               FloatVec* gz) {
  const FloatLanes df;
  const FloatVec one = hn::Set(df, 1.0f);
  const FloatVec a_x[2] = {hn::Sub(one, wx), wx};
  const FloatVec a_y[2] = {hn::Sub(one, wy), wy};
  const FloatVec a_z[2] = {hn::Sub(one, wz), wz};
  const FloatVec sign[2] = {hn::Set(df, -1.0f), one};
  *gx = *gy = *gz = hn::Zero(df);
  for (int dz = 0; dz < 2; ++dz)
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) {
        const FloatVec v = c[dx + 2 * dy + 4 * dz];
        *gx = hn::Add(*gx,
                      hn::Mul(hn::Mul(hn::Mul(sign[dx], a_y[dy]), a_z[dz]), v));
        *gy = hn::Add(*gy,
                      hn::Mul(hn::Mul(hn::Mul(a_x[dx], sign[dy]), a_z[dz]), v));
        *gz = hn::Add(*gz,
                      hn::Mul(hn::Mul(hn::Mul(a_x[dx], a_y[dy]), sign[dz]), v));
      }
}

// SampleWithGradient's value over gathered corners c[dx + 2·dy + 4·dz]
// (zero outside the volume), in its order.
HWY_INLINE FloatVec CornerValue(const FloatVec c[8], FloatVec wx, FloatVec wy,
                                FloatVec wz) {
  const FloatLanes df;
  const FloatVec one = hn::Set(df, 1.0f);
  const FloatVec a_x[2] = {hn::Sub(one, wx), wx};
  const FloatVec a_y[2] = {hn::Sub(one, wy), wy};
  const FloatVec a_z[2] = {hn::Sub(one, wz), wz};
  FloatVec value = hn::Zero(df);
  for (int dz = 0; dz < 2; ++dz)
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx)
        value =
            hn::Add(value, hn::Mul(hn::Mul(hn::Mul(a_x[dx], a_y[dy]), a_z[dz]),
                                   c[dx + 2 * dy + 4 * dz]));
  return value;
}

// The lanes whose upstream weight w is not zero, as the body's `w == 0`
// test sees it: NaN counts. (Highway's Ne is an ordered compare on AVX2,
// false for NaN.)
HWY_INLINE hn::Mask<FloatLanes> NonZero(FloatVec w) {
  return hn::Not(hn::Eq(w, hn::Zero(FloatLanes())));
}

// The upstream weights of a group of lanes in a VJP whose samples are all
// of class 0, which it weighs (a render without labels: its gradient, or
// its Jacobian's first channel): a weight per lane, whatever the sample.
class RayWeights {
 public:
  // Whether a lane's weight may change from sample to sample.
  static constexpr bool kPerSample = false;
  // Whether the policy weighs each sample's corners (WeighCorners) rather
  // than the sample.
  static constexpr bool kWeighsCorners = false;

  // Sets the weights for the next group of lanes: weight(0, l) in lane l <
  // used, zero in the others.
  template <class Weight>
  void Fill(size_t used, const Weight& weight) {
    HWY_ALIGN float w[kMaxLanes];
    for (size_t l = 0; l < kMaxLanes; ++l)
      w[l] = l < used ? weight(0, l) : 0.0f;
    w_ = hn::Load(FloatLanes(), w);
  }

  // Each lane's weight of its sample at parameter t of `lines` (anywhere, or
  // in the interior run).
  HWY_INLINE FloatVec At(const LaneLines&, FloatVec) const { return w_; }
  HWY_INLINE FloatVec AtInterior(const LaneLines&, FloatVec) const {
    return w_;
  }

  // Each lane's voxel of μ `mu` (flat index `at`, read by lanes then
  // walking) as ClassWeightedVolume weighs it: μ·w.
  HWY_INLINE FloatVec Weigh(IntVec, FloatVec mu) const {
    return hn::Mul(mu, w_);
  }

  // Whether every lane is weighed (the interior run marches unmasked).
  bool AllWeighed() const {
    return hn::AllFalse(FloatLanes(), hn::Eq(w_, hn::Zero(FloatLanes())));
  }

 private:
  FloatVec w_;
};

// The weights of a VJP whose samples are all of class 0, which it does not
// weigh (the Jacobian's channels past the first of a render without
// labels): every sample skipped, and Siddon's voxels weighed 0 (not μ·0,
// which is NaN for an infinite μ), as the body's SingleClass sees them.
class NoWeights {
 public:
  static constexpr bool kPerSample = false;
  static constexpr bool kWeighsCorners = false;

  template <class Weight>
  void Fill(size_t, const Weight&) {}
  HWY_INLINE FloatVec At(const LaneLines&, FloatVec) const {
    return hn::Zero(FloatLanes());
  }
  HWY_INLINE FloatVec AtInterior(const LaneLines&, FloatVec) const {
    return hn::Zero(FloatLanes());
  }
  HWY_INLINE FloatVec Weigh(IntVec, FloatVec) const {
    return hn::Zero(FloatLanes());
  }
  bool AllWeighed() const { return false; }
};

// Each lane's upstream weight of each class of a VJP split by label:
// classes first .. first + n − 1 (MarchTrilinearVjp's
// upstream[c · channel_stride], or SingleClass's one class), every other
// class nothing.
class ClassWeightTable {
 public:
  ClassWeightTable(int first, int n)
      : first_(first),
        n_(n),
        rows_((static_cast<size_t>(n) + 1) * hn::Lanes(FloatLanes())) {}

  // Sets the weights for the next group of lanes: weight(c, l) of class c in
  // lane l < used, zero in the others.
  template <class Weight>
  void Fill(size_t used, const Weight& weight) {
    const size_t lanes = hn::Lanes(FloatLanes());
    for (int c = 0; c <= n_; ++c)
      for (size_t l = 0; l < lanes; ++l)
        rows_[c * lanes + l] =
            c < n_ && l < used ? weight(first_ + c, l) : 0.0f;
  }

  // Each lane's weight of class label[l]: zero for classes not weighed.
  // Up to kSelectedClasses classes, each lane's row is selected rather than
  // gathered (the reference case's gradient in three tissue classes on the
  // Zen 3 host, batch 1: 35 ms against 37.5 ms, three single runs each, the
  // same hour).
  HWY_INLINE FloatVec Of(IntVec label) const {
    const FloatLanes df;
    const IntLanes di;
    const IntVec row = hn::IfThenElse(
        Weighed(label), hn::Sub(label, hn::Set(di, first_)), hn::Set(di, n_));
    const size_t lanes = hn::Lanes(di);
    if (n_ <= kSelectedClasses) {
      FloatVec w = hn::Zero(df);
      for (int c = 0; c < n_; ++c) {
        w = hn::IfThenElse(hn::RebindMask(df, row == hn::Set(di, c)),
                           hn::LoadU(df, rows_.data() + c * lanes), w);
      }
      return w;
    }
    const IntVec at =
        hn::Add(hn::Mul(row, hn::Set(di, static_cast<int32_t>(lanes))),
                hn::Iota(di, 0));
    return hn::GatherIndex(df, rows_.data(), at);
  }

  // As ClassWeightedVolume: each lane's μ·w of a voxel of class label[l], or
  // zero for a class not weighed (not μ·0, which is NaN for an infinite μ).
  HWY_INLINE FloatVec Weigh(IntVec label, FloatVec mu) const {
    return hn::IfThenElseZero(hn::RebindMask(FloatLanes(), Weighed(label)),
                              hn::Mul(mu, Of(label)));
  }

 private:
  // The lanes whose class `label` is weighed.
  HWY_INLINE hn::Mask<IntLanes> Weighed(IntVec label) const {
    const IntLanes di;
    const IntVec offset = hn::Sub(label, hn::Set(di, first_));
    return hn::And(offset > hn::Set(di, -1), offset < hn::Set(di, n_));
  }

  static constexpr int kSelectedClasses = 4;

  int first_, n_;
  // rows_[c · lanes + l]: lane l's weight of class first + c; row n zeros.
  std::vector<float> rows_;
};

// The upstream weights of a group of lanes in a VJP split by label: each
// sample weighs the weight of its class (LabelView::Nearest, or the voxel's
// for Siddon) in a ClassWeightTable.
class ClassWeights {
 public:
  static constexpr bool kPerSample = true;
  static constexpr bool kWeighsCorners = false;

  ClassWeights(const LabelView& labels, int first, int n)
      : labels_(labels), table_(first, n) {}

  template <class Weight>
  void Fill(size_t used, const Weight& weight) {
    table_.Fill(used, weight);
  }

  HWY_INLINE FloatVec At(const LaneLines& lines, FloatVec t) const {
    return table_.Of(NearestLabels(labels_, lines, t));
  }
  HWY_INLINE FloatVec AtInterior(const LaneLines& lines, FloatVec t) const {
    return table_.Of(InteriorLabels(labels_, lines, t));
  }

  // Each lane's voxel of μ `mu` at flat index `at`, weighed by its class.
  HWY_INLINE FloatVec Weigh(IntVec at, FloatVec mu) const {
    return table_.Weigh(ReadLabels(labels_.data, at), mu);
  }

  // Samples of classes not weighed are skipped lane by lane, never all.
  bool AllWeighed() const { return true; }

 private:
  const LabelView& labels_;
  ClassWeightTable table_;
};

// The upstream weights of a group of lanes in a trilinear VJP split by soft
// labels: no sample is skipped, and each sample's corners are weighed by
// their own classes' weights in a ClassWeightTable before the interpolation
// (SumVjpSamples' gradient of the ClassWeightedVolume). Without labels
// (NoLabels) every corner is of class 0.
template <class Labels>
class SoftClassWeights {
 public:
  static constexpr bool kPerSample = false;
  static constexpr bool kWeighsCorners = true;

  SoftClassWeights(const Labels& labels, int first, int n)
      : labels_(labels), table_(first, n) {}

  template <class Weight>
  void Fill(size_t used, const Weight& weight) {
    table_.Fill(used, weight);
  }

  // The samples themselves weigh 1: their corners carry the weights.
  HWY_INLINE FloatVec At(const LaneLines&, FloatVec) const {
    return hn::Set(FloatLanes(), 1.0f);
  }
  HWY_INLINE FloatVec AtInterior(const LaneLines&, FloatVec) const {
    return hn::Set(FloatLanes(), 1.0f);
  }
  bool AllWeighed() const { return true; }

  // Weighs the corners c (zero outside the volume) of the lanes' cells
  // `cells`, in the lanes of `reads` (lanes whose cells meet the volume):
  // those inside by their classes, the others zero.
  HWY_INLINE void WeighCorners(const LaneCells& cells, hn::Mask<IntLanes> reads,
                               FloatVec c[8]) const {
    hn::Mask<IntLanes> inside[8];
    for (int k = 0; k < 8; ++k)
      inside[k] = CornerInside(cells.x, cells.y, cells.z, reads, k);
    IntVec label[8];
    CornerLabels(labels_, cells, inside, label);
    for (int k = 0; k < 8; ++k) {
      c[k] = hn::IfThenElseZero(hn::RebindMask(FloatLanes(), inside[k]),
                                table_.Weigh(label[k], c[k]));
    }
  }

  // Weighs the corners c of cells whose lower corners lie at flat indices
  // `lower`, every corner inside the volume (the interior run).
  HWY_INLINE void WeighInteriorCorners(IntVec lower, FloatVec c[8]) const {
    IntVec label[8];
    InteriorCornerLabels(labels_, lower, label);
    for (int k = 0; k < 8; ++k) c[k] = table_.Weigh(label[k], c[k]);
  }

  // The label grid the corners read, to prefetch: none without labels.
  const uint16_t* labels() const { return LabelData(labels_); }

 private:
  const Labels& labels_;
  ClassWeightTable table_;
};

// Each lane's VjpSums, as SumVjpSamples gives them: the 12 entries at
// entry[k·lanes + lane], and for clipped rays along, along_u and values.
struct LaneVjpSums {
  HWY_ALIGN float entry[kPoseMapEntries * kMaxLanes];
  HWY_ALIGN float along[kMaxLanes], along_u[kMaxLanes], values[kMaxLanes];

  // Lane `l`'s sums.
  VjpSums Of(size_t l, size_t lanes) const {
    VjpSums sums;
    for (int k = 0; k < kPoseMapEntries; ++k)
      sums.entry[k] = entry[k * lanes + l];
    sums.along = along[l];
    sums.along_u = along_u[l];
    sums.values = values[l];
    return sums;
  }
};

// The running sums of SumVjpSamples, one lane per ray.
class LaneVjpAccumulator {
 public:
  // Zero sums for the rays of `r`; `clipped`: whether to sum along, along_u
  // and values too.
  LaneVjpAccumulator(const LaneRays& r, bool clipped)
      : sx_(hn::Load(FloatLanes(), r.sx)),
        sy_(hn::Load(FloatLanes(), r.sy)),
        sz_(hn::Load(FloatLanes(), r.sz)),
        dx_(hn::Load(FloatLanes(), r.dx)),
        dy_(hn::Load(FloatLanes(), r.dy)),
        dz_(hn::Load(FloatLanes(), r.dz)),
        lines_(r),
        clipped_(clipped) {
    for (FloatVec& entry : sum_) entry = hn::Zero(FloatLanes());
    along_ = along_u_ = values_ = hn::Zero(FloatLanes());
  }

  // Adds the samples at parameter t (fraction u of the segment) over
  // corners c with upper-corner weights wx, wy, wz, times upstream weights
  // w: in the lanes of `adds`, with a zero gradient and value outside
  // `supported` (the samples whose support misses the volume); kMasked
  // false: in every lane, all supported.
  template <bool kMasked>
  HWY_INLINE void Add(FloatVec t, float u, const FloatVec c[8], FloatVec wx,
                      FloatVec wy, FloatVec wz, FloatVec w,
                      hn::Mask<FloatLanes> adds,
                      hn::Mask<FloatLanes> supported) {
    const FloatLanes df;
    const auto only = [&](hn::Mask<FloatLanes> lanes, FloatVec x) {
      return kMasked ? hn::IfThenElseZero(lanes, x) : x;
    };
    FloatVec gx, gy, gz;
    CornerGradient(c, wx, wy, wz, &gx, &gy, &gz);
    // A sample whose support misses the volume has a zero gradient (whatever
    // its weights), and still counts: w·0 is NaN for a non-finite w.
    gx = only(supported, gx);
    gy = only(supported, gy);
    gz = only(supported, gz);
    const FloatVec point[3] = {hn::Add(sx_, hn::Mul(t, dx_)),
                               hn::Add(sy_, hn::Mul(t, dy_)),
                               hn::Add(sz_, hn::Mul(t, dz_))};
    const FloatVec cw[3] = {hn::Mul(w, gx), hn::Mul(w, gy), hn::Mul(w, gz)};
    for (int row = 0; row < 3; ++row) {
      for (int col = 0; col < 3; ++col)
        sum_[4 * row + col] = hn::Add(sum_[4 * row + col],
                                      only(adds, hn::Mul(cw[row], point[col])));
      sum_[4 * row + 3] = hn::Add(sum_[4 * row + 3], only(adds, cw[row]));
    }
    if (!clipped_) return;
    const FloatVec value = only(supported, CornerValue(c, wx, wy, wz));
    const FloatVec d = hn::Add(hn::Add(hn::Mul(cw[0], lines_.Slope(0)),
                                       hn::Mul(cw[1], lines_.Slope(1))),
                               hn::Mul(cw[2], lines_.Slope(2)));
    along_ = hn::Add(along_, only(adds, d));
    along_u_ = hn::Add(along_u_, only(adds, hn::Mul(hn::Set(df, u), d)));
    values_ = hn::Add(values_, only(adds, hn::Mul(w, value)));
  }

  // Writes each lane's sums to `out`.
  void Store(LaneVjpSums* out) const {
    const FloatLanes df;
    const size_t lanes = hn::Lanes(df);
    for (int k = 0; k < kPoseMapEntries; ++k)
      hn::Store(sum_[k], df, out->entry + k * lanes);
    hn::Store(along_, df, out->along);
    hn::Store(along_u_, df, out->along_u);
    hn::Store(values_, df, out->values);
  }

 private:
  // Camera-space source and step, the voxel-space rays.
  FloatVec sx_, sy_, sz_, dx_, dy_, dz_;
  LaneLines lines_;
  bool clipped_;
  FloatVec sum_[kPoseMapEntries], along_, along_u_, values_;  // the sums
};

// Adds to `sums` the samples of steps [from, to) of the lanes of `r`, each
// lane only its own and only where `weights` weighs it (the body skips a
// sample of weight zero).
template <typename T, class Weights>
void MarchVjpAnywhere(const VolumeView<T>& v, const LaneRays& r,
                      const LaneParameters& parameters,
                      const CellPrefetch<T>& prefetch, const Weights& weights,
                      int from, int to, LaneVjpAccumulator* sums) {
  const FloatLanes df;
  const IntLanes di;
  const LaneLines lines(r);
  const IntVec first = hn::Load(di, r.first), last = hn::Load(di, r.last);
  for (int i = from; i < to; ++i) {
    const FloatVec t = parameters.At(i);
    prefetch.Ahead(i);
    const auto sampled = SampledAt(first, last, i);
    if (hn::AllFalse(di, sampled)) continue;
    const FloatVec w = weights.At(lines, t);
    const auto counts = hn::And(sampled, hn::RebindMask(di, NonZero(w)));
    if (hn::AllFalse(di, counts)) continue;
    const auto [x, y, z] = CellsAt(v, lines, t);
    const auto meets = hn::And(x.meets, hn::And(y.meets, z.meets));
    FloatVec corners[8];
    GatherCorners(v, x, y, z, hn::And(counts, meets), corners);
    if constexpr (Weights::kWeighsCorners)
      weights.WeighCorners({x, y, z}, hn::And(counts, meets), corners);
    sums->Add<true>(t, parameters.Fraction(i), corners, x.weight, y.weight,
                    z.weight, w, hn::RebindMask(df, counts),
                    hn::RebindMask(df, meets));
  }
}

// MarchTrilinearVjp's samples (SumVjpSamples) for the lanes of `r` with
// upstream weights `weights` (RayWeights, NoWeights, ClassWeights or
// SoftClassWeights), marched in lockstep: the interior run apart, each step
// anywhere else.
template <typename T, class Weights>
void MarchLanesVjp(const VolumeView<T>& v, const LaneRays& r,
                   const Weights& weights, const RaySettings& s,
                   LaneVjpSums* out) {
  const FloatLanes df;
  const LaneParameters parameters(r, s);
  const LaneLines lines(r);
  const uint16_t* prefetched_labels = nullptr;
  if constexpr (Weights::kWeighsCorners) prefetched_labels = weights.labels();
  const CellPrefetch<T> prefetch(v, r, parameters, prefetched_labels);
  const StepRun interior = weights.AllWeighed()
                               ? InteriorRun(v, r, parameters)
                               : StepRun{r.min_first, r.min_first};
  LaneVjpAccumulator sums(r, s.sampling == Sampling::kClipped);
  MarchVjpAnywhere(v, r, parameters, prefetch, weights, r.min_first,
                   interior.begin, &sums);
  const auto all = hn::FirstN(df, hn::Lanes(df));
  ForInteriorSteps(v, InteriorCells(r, parameters), prefetch, interior,
                   [&](int i, const InteriorCell& cell, const FloatVec c[8]) {
                     const FloatVec t = parameters.At(i);
                     const float u = parameters.Fraction(i);
                     const FloatVec w = weights.AtInterior(lines, t);
                     if constexpr (Weights::kWeighsCorners) {
                       FloatVec weighed[8];
                       std::copy(c, c + 8, weighed);
                       weights.WeighInteriorCorners(cell.lower, weighed);
                       sums.Add<false>(t, u, weighed, cell.wx, cell.wy, cell.wz,
                                       w, all, all);
                     } else if constexpr (Weights::kPerSample) {
                       // Split by label, a lane whose sample weighs zero adds
                       // nothing.
                       sums.Add<true>(t, u, c, cell.wx, cell.wy, cell.wz, w,
                                      NonZero(w), all);
                     } else {
                       sums.Add<false>(t, u, c, cell.wx, cell.wy, cell.wz, w,
                                       all, all);
                     }
                   });
  MarchVjpAnywhere(v, r, parameters, prefetch, weights, interior.end,
                   r.max_last + 1, &sums);
  sums.Store(out);
}

// MarchSiddonVjp's walks (SiddonVjpWalk) for the lanes of a Siddon walk,
// fed a chunk of crossings at a time: the weighted voxels and their changes
// in float32 lanes, then the crossings' float64 sums half the lanes at a
// time, each lane in its body's order.
class LaneSiddonVjp {
 public:
  using DoubleLanes = hn::Repartition<double, FloatLanes>;
  using DoubleVec = hn::Vec<DoubleLanes>;

  // Walks starting as the body's (SiddonVjpWalk::Start) for the rays planned
  // in plans[0, used); the other lanes hold zeros.
  LaneSiddonVjp(const SiddonRay* plans, size_t used) {
    for (size_t l = 0; l < kMaxLanes; ++l) {
      const SiddonVjpWalk start =
          l < used ? SiddonVjpWalk::Start(plans[l]) : SiddonVjpWalk{};
      for (double* sum : sums_) sum[l] = 0.0;
      behind_[l] = start.behind;
      behind_axis_[l] = start.behind_axis;
      alpha_per_u_[l] = l < used ? AlphaPerU(plans[l]) : 0.0;
      t0_[l] = l < used ? plans[l].inside.t0 : 0.0;
      before_[l] = start.before;
    }
  }

  // Crosses the boundaries of `chunk` (a walk's, with its planes recorded),
  // its voxels weighed by `weights` (RayWeights, NoWeights or ClassWeights).
  template <typename T, class Weights>
  void Add(const VolumeView<T>& v, const WalkChunkWithPlanes& chunk,
           const Weights& weights) {
    WeighVoxels(v, chunk, weights);
    const size_t half = hn::Lanes(DoubleLanes());
    for (size_t first = 0; first < hn::Lanes(FloatLanes()); first += half)
      SumCrossings(chunk, first);
  }

  // Lane `l`'s walk so far.
  SiddonVjpWalk Of(size_t l) const {
    return {{sums_[0][l], sums_[1][l]},        {sums_[2][l], sums_[3][l]},
            {sums_[4][l], sums_[5][l]},        behind_[l],
            static_cast<int>(behind_axis_[l]), before_[l]};
  }

 private:
  // Each crossing's change of the weighted voxel (w·μ, or 0 for a class
  // not weighed), before − weighted, into change_ (zero in lanes not
  // walking); the last weighted voxel into before_.
  template <typename T, class Weights>
  void WeighVoxels(const VolumeView<T>& v, const WalkChunk& chunk,
                   const Weights& weights) {
    const FloatLanes df;
    const IntLanes di;
    FloatVec before = hn::Load(df, before_);
    for (int k = 0; k < chunk.size; ++k) {
      const IntVec voxel = hn::Load(di, chunk.voxel[k]);
      const auto walked = voxel > hn::Set(di, WalkChunk::kNotWalking);
      const auto walked_f = hn::RebindMask(df, walked);
      const IntVec at = hn::IfThenElseZero(walked, voxel);
      const FloatVec w = weights.Weigh(at, GatherVoxels(df, v.data, at));
      hn::Store(hn::IfThenElseZero(walked_f, hn::Sub(before, w)), df,
                change_[k]);
      before = hn::IfThenElse(walked_f, w, before);
    }
    hn::Store(before, df, before_);
  }

  // SiddonVjpWalk::Cross for each crossing of `chunk`, then the boundary
  // behind moved to the crossing's plane, in lanes [first, first + half).
  void SumCrossings(const WalkChunkWithPlanes& chunk, size_t first) {
    const DoubleLanes dd;
    const hn::Rebind<float, DoubleLanes> dh;
    DoubleVec sums[6];
    for (int i = 0; i < 6; ++i) sums[i] = hn::Load(dd, sums_[i] + first);
    DoubleVec behind = hn::Load(dd, behind_ + first);
    DoubleVec behind_axis = hn::Load(dd, behind_axis_ + first);
    const DoubleVec t0 = hn::Load(dd, t0_ + first);
    const DoubleVec alpha_per_u = hn::Load(dd, alpha_per_u_ + first);
    const DoubleVec no_plane = hn::Set(dd, WalkChunkWithPlanes::kNoPlane);
    for (int k = 0; k < chunk.size; ++k) {
      const DoubleVec to_axis =
          hn::PromoteTo(dd, hn::LoadU(dh, chunk.to_axis[k] + first));
      const auto visited = hn::Ne(to_axis, no_plane);
      const DoubleVec c = hn::PromoteTo(dd, hn::LoadU(dh, change_[k] + first));
      const DoubleVec c_alpha = hn::Mul(c, behind);
      for (int axis = 0; axis < 3; ++axis) {
        const auto on = hn::And(
            visited,
            hn::Eq(behind_axis, hn::Set(dd, static_cast<double>(axis))));
        sums[2 * axis] =
            hn::IfThenElse(on, hn::Add(sums[2 * axis], c), sums[2 * axis]);
        sums[2 * axis + 1] = hn::IfThenElse(
            on, hn::Add(sums[2 * axis + 1], c_alpha), sums[2 * axis + 1]);
      }
      const DoubleVec to =
          hn::PromoteTo(dd, hn::LoadU(dh, chunk.to[k] + first));
      behind = hn::IfThenElse(visited, hn::Add(t0, hn::Mul(to, alpha_per_u)),
                              behind);
      behind_axis = hn::IfThenElse(visited, to_axis, behind_axis);
    }
    for (int i = 0; i < 6; ++i) hn::Store(sums[i], dd, sums_[i] + first);
    hn::Store(behind, dd, behind_ + first);
    hn::Store(behind_axis, dd, behind_axis_ + first);
  }

  // Each lane's SiddonVjpWalk: x.c, x.c_alpha, y.c, y.c_alpha, z.c,
  // z.c_alpha; behind, behind_axis (as a double) and before.
  HWY_ALIGN double sums_[6][kMaxLanes];
  HWY_ALIGN double behind_[kMaxLanes], behind_axis_[kMaxLanes];
  HWY_ALIGN float before_[kMaxLanes];
  // Each lane's ray: where its segment enters the volume (α), and the factor
  // from the walk's u to α.
  HWY_ALIGN double t0_[kMaxLanes], alpha_per_u_[kMaxLanes];
  // The chunk's changes of the weighted voxel, crossing by crossing.
  HWY_ALIGN float change_[kChunk][kMaxLanes];
};

// Siddon's VJP of the rays of pixels [col_begin, col_end) of row `row` of
// pose `g`, a group of lanes at a time, each voxel weighed by `weights`
// filled with weight(c, i), the upstream weight of class c for pixel
// col_begin + i; hands each ray's float entries (MarchSiddonVjp's, from
// zero) to ray_done(i, entries), left to right.
template <typename T, class Weights, class Weight, class RayDone>
void WalkVjpRays(const VolumeView<T>& v, const PoseGeometry& g, int row,
                 int col_begin, int col_end, Weights& weights,
                 const Weight& weight, const RayDone& ray_done) {
  const size_t lanes = hn::Lanes(FloatLanes());
  SiddonLanes walk;
  SiddonRay plans[kMaxLanes];
  for (int col = col_begin; col < col_end; col += static_cast<int>(lanes)) {
    SetUpSiddonLanes(v, g, row, col, col_end, lanes, &walk, plans);
    const size_t used = std::min(lanes, static_cast<size_t>(col_end - col));
    const int first = col - col_begin;
    weights.Fill(used, [&](int c, size_t l) {
      return weight(c, first + static_cast<int>(l));
    });
    LaneSiddonVjp sums(plans, used);
    WalkSiddonLanes</*kRecordsPlanes=*/true>(
        v, walk,
        [&](const WalkChunkWithPlanes& chunk) { sums.Add(v, chunk, weights); });
    for (size_t l = 0; l < used; ++l) {
      float ray[kPoseMapEntries] = {};
      if (walk.walking[l]) FinishSiddonVjp(plans[l], sums.Of(l), ray);
      ray_done(first + static_cast<int>(l), ray);
    }
  }
}

// Marches the rays of pixels [col_begin, col_end) of row `row` of pose `g`,
// a group of lanes at a time, each sample weighed by `weights` filled as
// WalkVjpRays fills them, and hands each ray's float entries
// (MarchTrilinearVjp's, from zero) to ray_done(i, entries), left to right.
template <typename T, class Weights, class Weight, class RayDone>
void MarchVjpRays(const VolumeView<T>& v, const PoseGeometry& g,
                  const RaySettings& s, int row, int col_begin, int col_end,
                  Weights& weights, const Weight& weight,
                  const RayDone& ray_done) {
  const size_t lanes = hn::Lanes(FloatLanes());
  LaneRays rays;
  LaneVjpSums sums;
  for (int col = col_begin; col < col_end; col += static_cast<int>(lanes)) {
    SetUpLanes(v, g, s, row, col, col_end, lanes, &rays);
    const size_t used = std::min(lanes, static_cast<size_t>(col_end - col));
    const int first = col - col_begin;
    weights.Fill(used, [&](int c, size_t l) {
      return weight(c, first + static_cast<int>(l));
    });
    MarchLanesVjp(v, rays, weights, s, &sums);
    for (size_t l = 0; l < used; ++l) {
      float ray[kPoseMapEntries] = {};
      AddVjp(rays.Plan(l), sums.Of(l, lanes), ray);
      ray_done(first + static_cast<int>(l), ray);
    }
  }
}

// The VJP of the rays of pixels [col_begin, col_end) of row `row` of pose
// `g` (MarchVjpRays, or WalkVjpRays for Siddon) for the classes first ..
// first + n − 1 of `labels` (LabelView, or NoLabels: every sample class 0),
// class c weighing weight(c, i) at pixel col_begin + i and the others
// nothing.
template <typename T, class Labels, class Weight, class RayDone>
void VjpRays(const VolumeView<T>& v, const Labels& labels,
             const PoseGeometry& g, const RenderSettings& s, int row,
             int col_begin, int col_end, int first, int n, const Weight& weight,
             const RayDone& ray_done) {
  const auto rays = [&](auto& weights) {
    if (s.projector == Projector::kSiddon) {
      WalkVjpRays(v, g, row, col_begin, col_end, weights, weight, ray_done);
    } else {
      MarchVjpRays(v, g, s.rays, row, col_begin, col_end, weights, weight,
                   ray_done);
    }
  };
  if (s.projector == Projector::kTrilinear && s.rays.soft_labels) {
    SoftClassWeights weights(labels, first, n);
    MarchVjpRays(v, g, s.rays, row, col_begin, col_end, weights, weight,
                 ray_done);
  } else if constexpr (std::is_same_v<Labels, LabelView>) {
    ClassWeights weights(labels, first, n);
    rays(weights);
  } else if (first == 0 && n > 0) {
    RayWeights weights;
    rays(weights);
  } else {
    NoWeights weights;
    rays(weights);
  }
}

void AddVjpSpan(const VolumeBuffers& volume, const PoseGeometry& g,
                const RenderSettings& s, int row, int col_begin, int col_end,
                const float* upstream, long long channel_stride,
                double* row_sum) {
  VisitVolume(volume, s, [&](const auto& view, const auto& labels) {
    // As GradientRows sums the body's rays: each ray's float entries, then
    // the row's in double, left to right.
    VjpRays(
        view, labels, g, s, row, col_begin, col_end, 0, s.channels,
        [&](int c, int i) { return upstream[c * channel_stride + i]; },
        [&](int /*i*/, const float* ray) {
          for (int k = 0; k < kPoseMapEntries; ++k) row_sum[k] += ray[k];
        });
  });
}

void WriteJacobianSpan(const VolumeBuffers& volume, const PoseGeometry& g,
                       const RenderSettings& s, int row, int col_begin,
                       int col_end, float* out, long long channel_stride) {
  VisitVolume(volume, s, [&](const auto& view, const auto& labels) {
    // As JacobianRows: each channel's rays for upstream weight 1 on its
    // class alone (SingleClass).
    for (int c = 0; c < s.channels; ++c) {
      float* channel = out + c * channel_stride;
      VjpRays(
          view, labels, g, s, row, col_begin, col_end, c, 1,
          [](int, int) { return 1.0f; },
          [&](int i, const float* ray) {
            std::copy(ray, ray + kPoseMapEntries,
                      channel + i * kPoseMapEntries);
          });
    }
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace drr::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace drr::kernels {

HWY_EXPORT(RenderSpan);
HWY_EXPORT(AddVjpSpan);
HWY_EXPORT(WriteJacobianSpan);

bool SimdRenders(const RenderSettings& settings) {
  return !ReadsQuads(settings);
}

bool SimdDifferentiates(const RenderSettings& settings) {
  return settings.reduce == Reduce::kSum && !ReadsQuads(settings);
}

const char* SimdTargetName() {
  const int64_t targets = hwy::SupportedTargets() & HWY_TARGETS;
  return hwy::TargetName(targets & -targets);  // the best: the lowest bit
}

std::vector<std::string> SimdTargets() {
  std::vector<std::string> names;
  for (int64_t target : hwy::SupportedAndGeneratedTargets())
    names.push_back(hwy::TargetName(target));
  return names;
}

void UseSimdTarget(const std::string& target) {
  hwy::SetSupportedTargetsForTest(0);  // every target this CPU supports
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) {
    if (target == hwy::TargetName(t)) hwy::SetSupportedTargetsForTest(t);
  }
}

void RenderSimdSpan(const VolumeBuffers& volume, const PoseGeometry& g,
                    const RenderSettings& settings, int row, int col_begin,
                    int col_end, float* out, long long channel_stride) {
  HWY_DYNAMIC_DISPATCH(RenderSpan)
  (volume, g, settings, row, col_begin, col_end, out, channel_stride);
}

void AddVjpSimdSpan(const VolumeBuffers& volume, const PoseGeometry& g,
                    const RenderSettings& settings, int row, int col_begin,
                    int col_end, const float* upstream,
                    long long channel_stride, double row_sum[kPoseMapEntries]) {
  HWY_DYNAMIC_DISPATCH(AddVjpSpan)
  (volume, g, settings, row, col_begin, col_end, upstream, channel_stride,
   row_sum);
}

void WriteJacobianSimdSpan(const VolumeBuffers& volume, const PoseGeometry& g,
                           const RenderSettings& settings, int row,
                           int col_begin, int col_end, float* out,
                           long long channel_stride) {
  HWY_DYNAMIC_DISPATCH(WriteJacobianSpan)
  (volume, g, settings, row, col_begin, col_end, out, channel_stride);
}

}  // namespace drr::kernels
#endif  // HWY_ONCE
