// Both renderers against closed-form line integrals through analytic
// phantoms: a voxel-aligned box (exact for Siddon on any ray), and a sphere
// and a cylinder (voxelised finely; agreement to the voxelisation error).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "geometry/pose.h"
#include "gtest/gtest.h"
#include "kernels/pose_geometry.h"
#include "kernels/volume_view.h"
#include "tests/kernels/test_volumes.h"

namespace drr::kernels {
namespace {

using ::drr::geometry::EulerToMatrix;
using ::drr::geometry::Intrinsics;
using ::drr::geometry::InverseIntrinsicMatrix;
using ::drr::geometry::InvertAffine;
using ::drr::geometry::MakeRtInv;
using ::drr::geometry::Mat3d;
using ::drr::geometry::Mat4d;
using ::drr::geometry::Orientation;
using ::drr::geometry::TransformPoint;
using ::drr::geometry::Vec3d;

constexpr float kMu = 0.02f;

// Length of the segment p + t·d, t ∈ [0, 1], inside the box [lo, hi]³.
double BoxChord(const Vec3d& p, const Vec3d& d, double lo, double hi) {
  double t0 = 0, t1 = 1;
  for (int a = 0; a < 3; ++a) {
    if (d[a] == 0) {
      if (p[a] <= lo || p[a] >= hi) return 0;
      continue;
    }
    double ta = (lo - p[a]) / d[a], tb = (hi - p[a]) / d[a];
    if (ta > tb) std::swap(ta, tb);
    t0 = std::max(t0, ta);
    t1 = std::min(t1, tb);
  }
  return t1 > t0
             ? (t1 - t0) * std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
             : 0;
}

// Length of the segment p + t·d, t ∈ [0, 1], inside a ball (c, r).
double BallChord(const Vec3d& p, const Vec3d& d, const Vec3d& c, double r) {
  const Vec3d m{p[0] - c[0], p[1] - c[1], p[2] - c[2]};
  const double a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
  const double b = m[0] * d[0] + m[1] * d[1] + m[2] * d[2];
  const double disc =
      b * b - a * (m[0] * m[0] + m[1] * m[1] + m[2] * m[2] - r * r);
  if (disc <= 0) return 0;
  const double t0 = std::max(0.0, (-b - std::sqrt(disc)) / a);
  const double t1 = std::min(1.0, (-b + std::sqrt(disc)) / a);
  return t1 > t0 ? (t1 - t0) * std::sqrt(a) : 0;
}

// Length of the segment inside the infinite cylinder of axis z through (cx,
// cy).
double CylinderChord(const Vec3d& p, const Vec3d& d, double cx, double cy,
                     double r) {
  const double mx = p[0] - cx, my = p[1] - cy;
  const double a = d[0] * d[0] + d[1] * d[1];
  if (a == 0) {
    return mx * mx + my * my < r * r
               ? std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
               : 0;
  }
  const double b = mx * d[0] + my * d[1];
  const double disc = b * b - a * (mx * mx + my * my - r * r);
  if (disc <= 0) return 0;
  const double t0 = std::max(0.0, (-b - std::sqrt(disc)) / a);
  const double t1 = std::min(1.0, (-b + std::sqrt(disc)) / a);
  return t1 > t0 ? (t1 - t0) * std::sqrt(a + d[2] * d[2]) : 0;
}

// The world-space segment of pixel (row, col) (identity volume affine).
void WorldRay(const Mat4d& rt_inv, const Intrinsics& in, int row, int col,
              Vec3d* p, Vec3d* d) {
  const Vec3d dir =
      InverseIntrinsicMatrix(in) * Vec3d{col + 0.5, row + 0.5, 1.0};
  const Vec3d target{in.sdd * dir[0], in.sdd * dir[1], in.sdd * dir[2]};
  const Vec3d source = in.orthographic
                           ? Vec3d{target[0], target[1], target[2] - in.sdd}
                           : Vec3d{0, 0, 0};
  *p = TransformPoint(rt_inv, source);
  const Vec3d q = TransformPoint(rt_inv, target);
  *d = {q[0] - (*p)[0], q[1] - (*p)[1], q[2] - (*p)[2]};
}

// Cameras: oblique perspective views from outside, and one whose source is
// inside the volume.
struct View {
  Mat4d rt_inv;
  Intrinsics intrinsics;
};

std::vector<View> Views(const Vec3d& centre, double distance) {
  Intrinsics in;
  in.sdd = 2 * distance;
  in.delx = in.dely = 0.9;
  in.height = in.width = 24;
  std::vector<View> views;
  for (Vec3d angles :
       {Vec3d{0, 0, 0}, Vec3d{33, -20, 12}, Vec3d{-70, 45, 80}}) {
    views.push_back({MakeRtInv(EulerToMatrix("ZXY", angles, true),
                               {0, distance, 0}, Orientation::kAP, centre),
                     in});
  }
  // Source inside the volume (1 mm from the centre), looking out.
  views.push_back({MakeRtInv(EulerToMatrix("ZXY", {10, 5, 0}, true), {0, 1, 0},
                             Orientation::kAP, centre),
                   in});
  return views;
}

TEST(AnalyticPhantomTest, SiddonIsExactThroughAVoxelAlignedBoxOnAnyRay) {
  const int n = 24;
  const std::vector<float> box =
      testing::UniformBox(n, 6, 17, kMu);  // box [5.5, 17.5]³
  const VolumeView<float> view{box.data(), n, n, n};
  for (const View& v : Views({11.5, 11.5, 11.5}, 40.0)) {
    const PoseGeometry g =
        MakePoseGeometry(Mat4d::Identity(), v.rt_inv, v.intrinsics);
    int hits = 0;
    for (int row = 0; row < 24; ++row) {
      for (int col = 0; col < 24; ++col) {
        Vec3d p, d;
        WorldRay(v.rt_inv, v.intrinsics, row, col, &p, &d);
        const double expected = kMu * BoxChord(p, d, 5.5, 17.5);
        hits += expected > 0;
        EXPECT_NEAR(testing::SiddonIntegral(view, g, row, col), expected,
                    2e-5 * kMu * 12 + 1e-7)
            << "pixel " << row << "," << col;
      }
    }
    EXPECT_GT(hits, 50);  // the views do see the box, and some rays miss it
  }
}

TEST(AnalyticPhantomTest,
     SphereAndCylinderMatchTheirChordsToVoxelisationAccuracy) {
  // 0.5 mm voxels: the surface is smeared over about one voxel.
  const int n = 96;
  const double spacing = 0.5, radius = 16.0;
  const Vec3d centre{n * spacing / 2, n * spacing / 2, n * spacing / 2};
  const Mat4d affine = Mat4d::FromAffine(
      Mat3d{{{spacing, 0, 0}, {0, spacing, 0}, {0, 0, spacing}}}, {0, 0, 0});
  const Mat4d world_to_voxel = *InvertAffine(affine);
  std::vector<float> ball(n * n * n), rod(n * n * n);
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) {
        const double x = i * spacing - centre[0], y = j * spacing - centre[1],
                     z = k * spacing - centre[2];
        ball[(k * n + j) * n + i] =
            x * x + y * y + z * z < radius * radius ? kMu : 0;
        rod[(k * n + j) * n + i] = x * x + y * y < radius * radius ? kMu : 0;
      }
  const VolumeView<float> ball_view{ball.data(), n, n, n},
      rod_view{rod.data(), n, n, n};
  for (const View& v : Views(centre, 60.0)) {
    const PoseGeometry g =
        MakePoseGeometry(world_to_voxel, v.rt_inv, v.intrinsics);
    const RaySettings fine{24, 24, 4000};
    int hits = 0;
    for (int row = 0; row < 24; row += 2) {
      for (int col = 0; col < 24; col += 2) {
        Vec3d p, d;
        WorldRay(v.rt_inv, v.intrinsics, row, col, &p, &d);
        const double ball_chord = kMu * BallChord(p, d, centre, radius);
        // The cylinder ends with the volume (z ∈ [−0.25, 47.75] mm).
        Vec3d clipped_p = p, clipped_d = d;
        double t0 = 0, t1 = 1;
        if (d[2] != 0) {
          double ta = (-0.25 - p[2]) / d[2],
                 tb = (n * spacing - 0.25 - p[2]) / d[2];
          if (ta > tb) std::swap(ta, tb);
          t0 = std::max(t0, ta);
          t1 = std::min(t1, tb);
        }
        double rod_chord = 0;
        if (t1 > t0) {
          for (int a = 0; a < 3; ++a) {
            clipped_p[a] = p[a] + t0 * d[a];
            clipped_d[a] = (t1 - t0) * d[a];
          }
          rod_chord = kMu * CylinderChord(clipped_p, clipped_d, centre[0],
                                          centre[1], radius);
        }
        const double siddon_ball =
            testing::SiddonIntegral(ball_view, g, row, col);
        const double trilinear_ball =
            testing::LineIntegral(ball_view, g, fine, row, col);
        const double siddon_rod =
            testing::SiddonIntegral(rod_view, g, row, col);
        // A chord's voxelisation error is at most a couple of voxels' width.
        EXPECT_NEAR(siddon_ball, ball_chord, kMu * 2.5 * spacing)
            << row << "," << col;
        EXPECT_NEAR(trilinear_ball, ball_chord, kMu * 2.5 * spacing)
            << row << "," << col;
        EXPECT_NEAR(siddon_rod, rod_chord, kMu * 2.5 * spacing)
            << row << "," << col;
        hits += ball_chord > 0;
      }
    }
    EXPECT_GT(hits, 10);
  }
}

// The exact radiological path of the segment p + t·d, t ∈ [0, 1], through
// `mu` (nx × ny × nz voxels of 1 mm, voxel k spanning (k − 0.5, k + 0.5)), in
// float64: every plane crossing on every axis, sorted, and each piece's
// length times the μ of the voxel holding its midpoint.
double ExactPath(const std::vector<float>& mu, int nx, int ny, int nz,
                 const Vec3d& p, const Vec3d& d) {
  const int n[3] = {nx, ny, nz};
  double t0 = 0, t1 = 1;
  for (int a = 0; a < 3; ++a) {
    if (d[a] == 0) {
      if (p[a] <= -0.5 || p[a] >= n[a] - 0.5) return 0;
      continue;
    }
    double ta = (-0.5 - p[a]) / d[a], tb = (n[a] - 0.5 - p[a]) / d[a];
    if (ta > tb) std::swap(ta, tb);
    t0 = std::max(t0, ta);
    t1 = std::min(t1, tb);
  }
  if (!(t1 > t0)) return 0;
  std::vector<double> ts{t0, t1};
  for (int a = 0; a < 3; ++a) {
    if (d[a] == 0) continue;
    for (int k = 0; k <= n[a]; ++k) {
      const double t = (k - 0.5 - p[a]) / d[a];
      if (t > t0 && t < t1) ts.push_back(t);
    }
  }
  std::sort(ts.begin(), ts.end());
  const double length = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
  double sum = 0;
  for (size_t s = 0; s + 1 < ts.size(); ++s) {
    const double mid = 0.5 * (ts[s] + ts[s + 1]);
    int index[3];
    for (int a = 0; a < 3; ++a) {
      index[a] = std::clamp(
          static_cast<int>(std::floor(p[a] + mid * d[a] + 0.5)), 0, n[a] - 1);
    }
    sum += mu[(static_cast<size_t>(index[2]) * ny + index[1]) * nx + index[0]] *
           (ts[s + 1] - ts[s]) * length;
  }
  return sum;
}

// At the scale of a chest CT seen from a C-arm (a source 850 mm away, 1020 mm
// to the detector, several hundred voxels crossed), Siddon agrees with the
// float64 exact path within 1e-5 of the image maximum: its chord lengths
// are not differences of large float32 ray parameters. So does the walk
// in eight pieces that the CUDA render kernels' lanes take, added in lane
// order.
TEST(AnalyticPhantomTest, SiddonMatchesAFloat64ExactPathAtClinicalScale) {
  const int nx = 300, ny = 260, nz = 90;
  std::vector<float> mu(static_cast<size_t>(nx) * ny * nz);
  uint32_t state = 12345;
  for (float& m : mu) {  // independent voxels: every chord counts
    state = state * 1664525u + 1013904223u;
    m = 0.01f + 0.02f * static_cast<float>(state >> 8) / 16777216.0f;
  }
  const VolumeView<float> view{mu.data(), nx, ny, nz};
  Intrinsics in;
  in.sdd = 1020;
  in.delx = in.dely = 9.0;
  in.height = in.width = 16;
  const Vec3d centre{nx / 2.0, ny / 2.0, nz / 2.0};
  double worst = 0, worst_in_lanes = 0, brightest = 0;
  for (Vec3d angles : {Vec3d{0, 0, 0}, Vec3d{23, -11, 7}, Vec3d{-64, 30, 81}}) {
    const Mat4d rt_inv = MakeRtInv(EulerToMatrix("ZXY", angles, true),
                                   {3, 850, -2}, Orientation::kAP, centre);
    const PoseGeometry g = MakePoseGeometry(Mat4d::Identity(), rt_inv, in);
    for (int row = 0; row < in.height; ++row) {
      for (int col = 0; col < in.width; ++col) {
        Vec3d p, d;
        WorldRay(rt_inv, in, row, col, &p, &d);
        const double exact = ExactPath(mu, nx, ny, nz, p, d);
        brightest = std::max(brightest, exact);
        worst = std::max(
            worst,
            std::fabs(testing::SiddonIntegral(view, g, row, col) - exact));
        float in_lanes = 0;
        for (int lane = 0; lane < 8; ++lane) {
          ChannelAccumulator<Reduce::kSum, 1> piece{0, {0.0f}};
          MarchSiddon(view, NoLabels{}, g, row, col, &piece, RayLane<8>{lane});
          in_lanes += piece.value[0];
        }
        worst_in_lanes = std::max(worst_in_lanes, std::fabs(in_lanes - exact));
      }
    }
  }
  EXPECT_GT(brightest, 2.0);  // the rays cross hundreds of voxels
  EXPECT_LE(worst, 1e-5 * brightest)
      << "worst " << worst << " of " << brightest;
  EXPECT_LE(worst_in_lanes, 1e-5 * brightest)
      << "worst in lanes " << worst_in_lanes << " of " << brightest;
}

TEST(AnalyticPhantomTest, SiddonMissesGiveZero) {
  const int n = 12;
  const std::vector<float> box(n * n * n, kMu);
  const VolumeView<float> view{box.data(), n, n, n};
  Intrinsics in;
  in.sdd = 50;
  in.height = in.width = 6;
  const PoseGeometry g = MakePoseGeometry(
      Mat4d::Identity(), Mat4d::FromAffine(Mat3d::Identity(), {200, 0, 0}), in);
  for (int row = 0; row < 6; ++row)
    for (int col = 0; col < 6; ++col)
      EXPECT_EQ(testing::SiddonIntegral(view, g, row, col), 0.0f);
}

}  // namespace
}  // namespace drr::kernels
