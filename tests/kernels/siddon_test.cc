// Siddon's walk shared by lanes (WalkSiddon with several Lanes, as the CUDA
// render kernels walk it): the pieces of the lanes, put end to end, are the
// whole walk, voxel for voxel and float for float.
#include "kernels/siddon.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "geometry/pose.h"
#include "gtest/gtest.h"
#include "kernels/pose_geometry.h"
#include "kernels/ray_march.h"
#include "kernels/volume_view.h"
#include "tests/kernels/test_volumes.h"

namespace drr::kernels {
namespace {

using ::drr::geometry::EulerToMatrix;
using ::drr::geometry::Intrinsics;
using ::drr::geometry::MakeRtInv;
using ::drr::geometry::Mat4d;
using ::drr::geometry::Orientation;

// One voxel of a walk: its index, the u where the walk enters and leaves it,
// and the axis of the plane where it leaves.
struct Visit {
  int i, j, k;
  float from, to;
  int to_axis;
};

// A volume's shape, all Siddon's walk reads of it.
struct Shape {
  int nx, ny, nz;
};

// The segment a + α·d, α ∈ [0, 1], in voxel coordinates, planned as
// PlanSiddon plans a camera's ray.
SiddonRay PlanSegment(const Shape& shape, const Vec3& a, const Vec3& d) {
  SiddonRay r{};
  r.ax = a.x, r.ay = a.y, r.az = a.z;
  r.dx = d.x, r.dy = d.y, r.dz = d.z;
  r.length = std::sqrt(r.dx * r.dx + r.dy * r.dy + r.dz * r.dz);
  r.inside = ClippedSpan<double>{0.0, 1.0, -1, -1};
  ClipSpanToSlab(r.ax, r.dx, -0.5, shape.nx - 0.5, 0, &r.inside);
  ClipSpanToSlab(r.ay, r.dy, -0.5, shape.ny - 0.5, 1, &r.inside);
  ClipSpanToSlab(r.az, r.dz, -0.5, shape.nz - 0.5, 2, &r.inside);
  return r;
}

// The voxels WalkSiddon visits, as lane `lane` of kLanes (kLanes = 1: the
// whole walk).
template <int kLanes>
std::vector<Visit> Walk(const Shape& shape, const SiddonRay& r, int lane) {
  std::vector<Visit> visits;
  auto record = [&](int i, int j, int k, float from, float to, int to_axis) {
    visits.push_back({i, j, k, from, to, to_axis});
  };
  if constexpr (kLanes == 1) {
    WalkSiddon(shape, r, record);
  } else {
    WalkSiddon(shape, r, record, RayLane<kLanes>{lane});
  }
  return visits;
}

// Every lane's piece of the walk of `r`, end to end, with the two halves of
// each voxel where a piece ends joined again.
template <int kLanes>
std::vector<Visit> WalkInPieces(const Shape& shape, const SiddonRay& r) {
  std::vector<Visit> joined;
  for (int lane = 0; lane < kLanes; ++lane) {
    const std::vector<Visit> piece = Walk<kLanes>(shape, r, lane);
    for (size_t v = 0; v < piece.size(); ++v) {
      const Visit& visit = piece[v];
      if (v == 0 && !joined.empty()) {
        Visit& last = joined.back();
        EXPECT_EQ(last.to_axis, -1) << "lane " << lane << " starts after "
                                    << "a piece that did not end at it";
        EXPECT_EQ(last.to, visit.from) << "lane " << lane;
        EXPECT_TRUE(last.i == visit.i && last.j == visit.j && last.k == visit.k)
            << "lane " << lane << " starts in another voxel";
        last.to = visit.to;
        last.to_axis = visit.to_axis;
        continue;
      }
      joined.push_back(visit);
    }
  }
  return joined;
}

template <int kLanes>
void ExpectPiecesMakeTheWalk(const Shape& shape, const SiddonRay& r,
                             const char* name) {
  ASSERT_LT(r.inside.t0, r.inside.t1) << name << ": the segment misses";
  const std::vector<Visit> whole = Walk<1>(shape, r, 0);
  const std::vector<Visit> pieces = WalkInPieces<kLanes>(shape, r);
  ASSERT_EQ(pieces.size(), whole.size()) << name << ", " << kLanes << " lanes";
  for (size_t v = 0; v < whole.size(); ++v) {
    const Visit &w = whole[v], &p = pieces[v];
    ASSERT_TRUE(w.i == p.i && w.j == p.j && w.k == p.k)
        << name << ", " << kLanes << " lanes, voxel " << v;
    ASSERT_EQ(w.from, p.from)
        << name << ", " << kLanes << " lanes, voxel " << v;
    ASSERT_EQ(w.to, p.to) << name << ", " << kLanes << " lanes, voxel " << v;
    ASSERT_EQ(w.to_axis, p.to_axis) << name << ", voxel " << v;
  }
}

template <int kLanes>
void ExpectPiecesMakeTheWalk(const Shape& shape, const Vec3& a, const Vec3& d,
                             const char* name) {
  ExpectPiecesMakeTheWalk<kLanes>(shape, PlanSegment(shape, a, d), name);
}

template <int kLanes>
void ExpectPiecesMakeEveryWalk() {
  const Shape shape{16, 16, 16};
  // Planes crossed at u = 1, 2, ..., 15 and pieces starting at u = 2l (8
  // lanes): every piece starts on a crossing.
  ExpectPiecesMakeTheWalk<kLanes>(shape, {-3, 7.2f, 3.3f}, {22, 0, 0},
                                  "along x");
  // Through the edges and corners of voxels: two or three planes crossed at
  // once, voxels walked through for no length.
  ExpectPiecesMakeTheWalk<kLanes>(shape, {-3, -3, 5.1f}, {22, 22, 0}, "x = y");
  ExpectPiecesMakeTheWalk<kLanes>(shape, {-3, -3, -3}, {22, 22, 22},
                                  "the diagonal");
  ExpectPiecesMakeTheWalk<kLanes>(shape, {18, 18, 18}, {-22, -22, -22},
                                  "the diagonal, back");
  // A source inside the volume, and a segment that ends inside it.
  ExpectPiecesMakeTheWalk<kLanes>(shape, {8.1f, 7.3f, 6.2f}, {30, -12, 5},
                                  "from inside");
  ExpectPiecesMakeTheWalk<kLanes>(shape, {-2, 3.3f, 4.4f}, {10, 1, 1},
                                  "ends inside");
  // A walk that leaves the volume before its end, as rounding can make it
  // (here by far: the plan's end moved to the segment's): the lanes whose
  // pieces start past the volume visit nothing.
  SiddonRay past_the_end = PlanSegment(shape, {-3, 7.2f, 3.3f}, {44, 0, 0});
  past_the_end.inside.t1 = 1.0;
  ExpectPiecesMakeTheWalk<kLanes>(shape, past_the_end, "past the end");
  // A piece starting on the plane where the walk leaves the volume early
  // (u = 16, the fifth of eight pieces of 32).
  SiddonRay leaving_at_a_start =
      PlanSegment(shape, {-3, 7.2f, 3.3f}, {34.5f, 0, 0});
  leaving_at_a_start.inside.t1 = 1.0;
  ExpectPiecesMakeTheWalk<kLanes>(shape, leaving_at_a_start,
                                  "leaving at a piece's start");
  // So nearly parallel to y's planes that the step between them overflows
  // float32 (+inf; NearlyParallelRayWalksAlongItsAxis).
  ExpectPiecesMakeTheWalk<kLanes>(shape, {-3, 5.2f, 5.2f}, {22, 5e-38f, 0},
                                  "nearly parallel");
  // A segment of no length inside a voxel: the whole walk visits it, and
  // every piece but the last is empty.
  ExpectPiecesMakeTheWalk<kLanes>(shape, {5.2f, 5.3f, 5.4f}, {0, 0, 0},
                                  "no length");
  // A short segment: fewer voxels than lanes.
  ExpectPiecesMakeTheWalk<kLanes>(shape, {7.2f, 7.7f, 7.1f}, {0.9f, 0.4f, 0},
                                  "short");
  // Oblique segments, long and short, from everywhere.
  uint32_t state = 2024;
  auto uniform = [&state](float lo, float hi) {
    state = state * 1664525u + 1013904223u;
    return lo + (hi - lo) * static_cast<float>(state >> 8) / 16777216.0f;
  };
  for (int n = 0; n < 300; ++n) {
    const Vec3 a{uniform(-10, 26), uniform(-10, 26), uniform(-10, 26)};
    const Vec3 centre{uniform(2, 14), uniform(2, 14), uniform(2, 14)};
    const float reach = uniform(0.2f, 3.0f);
    const Vec3 d{(centre.x - a.x) * reach, (centre.y - a.y) * reach,
                 (centre.z - a.z) * reach};
    if (!(PlanSegment(shape, a, d).inside.t0 <
          PlanSegment(shape, a, d).inside.t1))
      continue;
    ExpectPiecesMakeTheWalk<kLanes>(shape, a, d, "oblique");
  }
}

TEST(SiddonLanesTest, EightLanesPiecesMakeTheWholeWalk) {
  ExpectPiecesMakeEveryWalk<8>();
}

TEST(SiddonLanesTest, ThreeLanesPiecesMakeTheWholeWalk) {
  ExpectPiecesMakeEveryWalk<3>();
}

TEST(SiddonLanesTest, SixtyFourLanesPiecesMakeTheWholeWalk) {
  ExpectPiecesMakeEveryWalk<64>();  // many pieces with no crossing
}

// A step between planes that overflows float32 (+inf) is never multiplied
// by zero (NaN) to find the first crossing: the walk goes along x.
TEST(SiddonLanesTest, NearlyParallelRayWalksAlongItsAxis) {
  const Shape shape{16, 16, 16};
  const SiddonRay r = PlanSegment(shape, {-3, 5.2f, 5.2f}, {22, 5e-38f, 0});
  ASSERT_EQ(StartSiddon(shape, r).axis[1].step, INFINITY);
  const std::vector<Visit> walk = Walk<1>(shape, r, 0);
  ASSERT_EQ(walk.size(), 16u);
  for (int i = 0; i < 16; ++i) {
    EXPECT_TRUE(walk[i].i == i && walk[i].j == 5 && walk[i].k == 5) << i;
    EXPECT_EQ(walk[i].to - walk[i].from, 1.0f) << i;
  }
}

// The lanes' parts of a render, combined as the CUDA kernel combines them
// (in lane order), against the one-thread render: sums to rounding, maxima
// and label channels as the walk's voxels give them.
TEST(SiddonLanesTest, LanesCombinedRenderWhatOneThreadRenders) {
  const int n = 24;
  const std::vector<float> mu = testing::WavyVolume(n, n, n);
  std::vector<uint16_t> label_data(mu.size());
  for (size_t v = 0; v < mu.size(); ++v) label_data[v] = (v * 7 / 5) % 3;
  const VolumeView<float> volume{mu.data(), n, n, n};
  const LabelView labels{label_data.data(), n, n, n};
  Intrinsics in;
  in.sdd = 90;
  in.delx = in.dely = 2.0;
  in.height = in.width = 10;
  const PoseGeometry g = MakePoseGeometry(
      Mat4d::Identity(),
      MakeRtInv(EulerToMatrix("ZXY", {14, -9, 21}, true), {1, 45, -2},
                Orientation::kAP, {n / 2.0, n / 2.0, n / 2.0}),
      in);
  constexpr int kLanes = 8;
  int crossing = 0;
  for (int row = 0; row < in.height; ++row) {
    for (int col = 0; col < in.width; ++col) {
      ChannelAccumulator<Reduce::kSum, 3> sum{0, {}};
      ChannelAccumulator<Reduce::kMax, 1> max{0, {}};
      MarchSiddon(volume, labels, g, row, col, &sum);
      MarchSiddon(volume, NoLabels{}, g, row, col, &max);
      float lane_sum[3] = {}, lane_max = 0;
      for (int lane = 0; lane < kLanes; ++lane) {
        ChannelAccumulator<Reduce::kSum, 3> s{0, {}};
        ChannelAccumulator<Reduce::kMax, 1> m{0, {}};
        MarchSiddon(volume, labels, g, row, col, &s, RayLane<kLanes>{lane});
        MarchSiddon(volume, NoLabels{}, g, row, col, &m, RayLane<kLanes>{lane});
        for (int c = 0; c < 3; ++c)
          lane_sum[c] = lane == 0 ? s.value[c] : lane_sum[c] + s.value[c];
        lane_max = lane == 0 ? m.value[0] : std::fmax(lane_max, m.value[0]);
      }
      for (int c = 0; c < 3; ++c)
        EXPECT_NEAR(lane_sum[c], sum.value[c], 2e-6f * sum.value[c] + 1e-9f)
            << "row " << row << " col " << col << " class " << c;
      EXPECT_EQ(lane_max, max.value[0]) << "row " << row << " col " << col;
      crossing += sum.value[0] > 0 && sum.value[1] > 0 && sum.value[2] > 0;
    }
  }
  EXPECT_GT(crossing, 50);  // most rays cross voxels of every class
}

}  // namespace
}  // namespace drr::kernels
