
// The pose gradient (vector–Jacobian product) against central finite
// differences of the renderer itself, on every executor present.
#include "kernels/pose_gradient.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "geometry/pose.h"
#include "gtest/gtest.h"
#include "kernels/executor.h"
#include "kernels/pose_geometry.h"
#include "kernels/volume_view.h"
#include "tests/kernels/executor_testing.h"

namespace drr::kernels {
namespace {

using ::drr::geometry::EulerToMatrix;
using ::drr::geometry::Intrinsics;
using ::drr::geometry::MakeRtInv;
using ::drr::geometry::Mat4d;
using ::drr::geometry::Orientation;

constexpr VolumeShape kShape{36, 32, 28};

// A smooth volume: two Gaussian blobs on a constant `background` (whose
// faces then carry gradient where rays enter and leave the volume), so the
// line integrals are smooth in the pose up to trilinear interpolation's
// kinks.
std::vector<float> Blobs(float background = 0.0f) {
  std::vector<float> v(kShape.voxels());
  for (int k = 0; k < kShape.nz; ++k)
    for (int j = 0; j < kShape.ny; ++j)
      for (int i = 0; i < kShape.nx; ++i) {
        const double a = (i - 15.0) * (i - 15.0) + (j - 16.0) * (j - 16.0) +
                         (k - 12.0) * (k - 12.0);
        const double b = (i - 24.0) * (i - 24.0) + (j - 12.0) * (j - 12.0) +
                         (k - 17.0) * (k - 17.0);
        v[(static_cast<size_t>(k) * kShape.ny + j) * kShape.nx + i] =
            background + static_cast<float>(0.03 * std::exp(-a / 40.0) +
                                            0.02 * std::exp(-b / 18.0));
      }
  return v;
}

// Classes 0..2 in slabs along x, crossing both blobs.
std::vector<uint16_t> SlabLabels() {
  std::vector<uint16_t> labels(kShape.voxels());
  for (size_t v = 0; v < labels.size(); ++v)
    labels[v] = static_cast<uint16_t>((v % kShape.nx) / 12);
  return labels;
}

// Where the test's cameras are: perspective, 80 mm from the volume's centre
// (every ray enters and leaves it); orthographic there (sources off the
// origin); perspective with the source inside the volume, 10 mm from its
// centre (rays start in it).
enum class Camera { kPerspective, kOrthographic, kSourceInside };

// How the differentiated render samples its rays.
struct Variant {
  const char* name;
  Projector projector;
  Sampling sampling;
  int n_samples;
  // SlabLabels' three classes, one channel each.
  bool labels;
  // With labels: soft ones.
  bool soft_labels;
  // Blobs' background.
  float background;
  Camera camera;
  // The finite differences' step, as a fraction of ~0.05 voxel: sparse
  // samples make the integral kink at every cell face a sample crosses.
  double step;
  // The agreement asked for, as a fraction of the largest entry: per-class
  // upstream weights make the class-weighted volume kink where classes meet.
  double tolerance;
};

// Whole segments; clipped ones, densely sampled and sparsely enough that
// the ends' dependence on the pose (the clip terms) shows; soft labels;
// Siddon's exact path, summed and per class (its voxels are steps, so the
// image kinks wherever a ray meets a voxel edge: small steps), from
// orthographic sources (off the camera origin) and from a source inside the
// volume (whose in-volume points are ~25 mm from it rather than ~100: larger
// steps, or float32 rounding swamps the differences).
// (Without the clip terms clipped_sparse is off by 20 %; without the exit
// term every Siddon variant fails, without the sources' term the
// orthographic one.)
constexpr Variant kVariants[] = {
    {"segment", Projector::kTrilinear, Sampling::kSegment, 2000, false, false,
     0.0f, Camera::kPerspective, 1.0, 0.01},
    {"clipped", Projector::kTrilinear, Sampling::kClipped, 2000, false, false,
     0.0f, Camera::kPerspective, 1.0, 0.01},
    {"clipped_sparse", Projector::kTrilinear, Sampling::kClipped, 24, false,
     false, 0.0f, Camera::kPerspective, 0.04, 0.01},
    {"soft_labels", Projector::kTrilinear, Sampling::kSegment, 2000, true, true,
     0.0f, Camera::kPerspective, 1.0, 0.02},
    {"soft_labels_clipped", Projector::kTrilinear, Sampling::kClipped, 40, true,
     true, 0.0f, Camera::kPerspective, 0.04, 0.01},
    {"siddon", Projector::kSiddon, Sampling::kSegment, 2, false, false, 0.01f,
     Camera::kPerspective, 0.04, 0.01},
    {"siddon_labels", Projector::kSiddon, Sampling::kSegment, 2, true, false,
     0.01f, Camera::kPerspective, 0.04, 0.02},
    {"siddon_orthographic", Projector::kSiddon, Sampling::kSegment, 2, false,
     false, 0.01f, Camera::kOrthographic, 0.04, 0.01},
    {"siddon_source_inside", Projector::kSiddon, Sampling::kSegment, 2, false,
     false, 0.01f, Camera::kSourceInside, 0.2, 0.02},
};

class PoseGradientTest
    : public ::testing::TestWithParam<std::tuple<std::string, Variant>> {
 protected:
  void SetUp() override {
    const auto& [executor, variant] = GetParam();
    executor_ = testing::MakeExecutor(executor);
    const std::vector<uint16_t> labels = SlabLabels();
    resident_ =
        testing::MakeResident(*executor_, Blobs(variant.background),
                              variant.labels ? labels.data() : nullptr, kShape);
    Intrinsics in;
    in.sdd = 150;
    in.delx = in.dely = 1.0;
    in.height = 12;
    in.width = 14;
    in.orthographic = variant.camera == Camera::kOrthographic;
    const double distance = variant.camera == Camera::kSourceInside ? 10 : 80;
    for (double angle : {10.0, -35.0}) {
      poses_.push_back(MakePoseGeometry(
          Mat4d::Identity(),
          MakeRtInv(EulerToMatrix("ZXY", {angle, 8, -4}, true),
                    {0, distance, 0}, Orientation::kAP, {17, 15, 13}),
          in));
    }
    settings_.rays = {12, 14, variant.n_samples, variant.sampling,
                      variant.soft_labels};
    settings_.projector = variant.projector;
    settings_.channels = variant.labels ? 3 : 1;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> weight(-1.0f, 1.0f);
    upstream_.resize(poses_.size() * settings_.channels * 12 * 14);
    for (float& w : upstream_) w = weight(rng);
  }

  // Σ upstream · image for the poses as they are now.
  double Loss() {
    const std::vector<float> images =
        testing::RenderImages(*executor_, *resident_, poses_, settings_);
    double loss = 0;
    for (size_t i = 0; i < images.size(); ++i)
      loss += static_cast<double>(upstream_[i]) * images[i];
    return loss;
  }

  std::vector<double> Gradient() {
    return testing::PoseGradients(*executor_, *resident_, poses_, settings_,
                                  upstream_);
  }

  std::unique_ptr<Executor> executor_;
  std::shared_ptr<const ResidentVolume> resident_;
  std::vector<PoseGeometry> poses_;
  RenderSettings settings_;
  std::vector<float> upstream_;
};

TEST_P(PoseGradientTest, MatchesCentralDifferencesOfTheRenderer) {
  const Variant& variant = std::get<1>(GetParam());
  const std::vector<double> grad = Gradient();
  constexpr int kM = kPoseMapEntries;
  for (int pose = 0; pose < 2; ++pose) {
    double scale = 0;
    for (int k = 0; k < kM; ++k)
      scale = std::max(
          scale, std::fabs(grad[pose * kM + k]) * (k % 4 == 3 ? 1.0 : 20.0));
    for (int k = 0; k < kM; ++k) {
      // Steps move samples by ~0.05 voxel: translations directly, linear
      // entries through camera coordinates of ~100 mm.
      const double h = (k % 4 == 3 ? 0.05 : 0.05 / 100) * variant.step;
      float& entry = poses_[pose].camera_to_voxel.m[k / 4][k % 4];
      const float original = entry;
      entry = original + static_cast<float>(h);
      const double up = Loss();
      entry = original - static_cast<float>(h);
      const double down = Loss();
      entry = original;
      const double numeric = (up - down) / (2 * h);
      const double unit =
          k % 4 == 3 ? 1.0 : 20.0;  // compare in comparable units
      EXPECT_NEAR(grad[pose * kM + k] * unit, numeric * unit,
                  variant.tolerance * scale)
          << "pose " << pose << " entry " << k;
    }
  }
}

TEST_P(PoseGradientTest, IsDeterministic) {
  const std::vector<double> a = Gradient();
  EXPECT_EQ(a, Gradient());
}

TEST_P(PoseGradientTest, JacobianContractedWithTheUpstreamIsTheGradient) {
  const std::vector<double> grad = Gradient();
  const std::vector<float> jacobian =
      testing::PoseJacobians(*executor_, *resident_, poses_, settings_);
  constexpr int kM = kPoseMapEntries;
  for (int pose = 0; pose < 2; ++pose) {
    for (int k = 0; k < kM; ++k) {
      double sum = 0;
      const int values = settings_.channels * 12 * 14;
      for (int px = 0; px < values; ++px) {
        const size_t i = static_cast<size_t>(pose) * values + px;
        sum += double{upstream_[i]} * jacobian[i * kM + k];
      }
      EXPECT_NEAR(sum, grad[pose * kM + k],
                  1e-5 * std::fabs(grad[pose * kM + k]) + 1e-6);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Executors, PoseGradientTest,
    ::testing::Combine(::testing::ValuesIn(testing::AvailableExecutors()),
                       ::testing::ValuesIn(kVariants)),
    [](const ::testing::TestParamInfo<PoseGradientTest::ParamType>& info) {
      return std::get<0>(info.param) + "_" + std::get<1>(info.param).name;
    });

// The CUDA kernel deals a ray's samples (or pieces of Siddon's walk) to 8
// threads, each adding the VJP of its own (RayLane), and sums the threads'
// parts: on the host, the 8 lanes' parts of every ray of every variant
// (labelled trilinear ones with hard labels too) add up to the one-lane
// VJP, up to rounding.
TEST(PoseVjpLanesTest, EightLanesAddUpToTheRaysVjp) {
  const std::vector<float> mu = Blobs(0.01f);
  const std::vector<uint16_t> classes = SlabLabels();
  const VolumeView<float> volume{mu.data(), kShape.nx, kShape.ny, kShape.nz};
  const LabelView labels{classes.data(), kShape.nx, kShape.ny, kShape.nz};
  Intrinsics in;
  in.sdd = 150;
  in.delx = in.dely = 1.0;
  in.height = 12;
  in.width = 14;
  const PoseGeometry pose =
      MakePoseGeometry(Mat4d::Identity(),
                       MakeRtInv(EulerToMatrix("ZXY", {10, 8, -4}, true),
                                 {0, 80, 0}, Orientation::kAP, {17, 15, 13}),
                       in);
  const float upstream[3] = {0.7f, -1.3f, 0.4f};
  // Every ray's 8 lanes against its one-lane VJP.
  auto expect_lanes_add_up = [&](auto projector, const auto& labels,
                                 const RaySettings& rays, int channels,
                                 const char* name) {
    constexpr Projector kProjector = decltype(projector)::value;
    for (int row = 0; row < 12; ++row) {
      for (int col = 0; col < 14; ++col) {
        float whole[kPoseMapEntries] = {};
        MarchPoseVjp<kProjector>(volume, labels, pose, rays, row, col, upstream,
                                 1, channels, whole);
        float lanes[kPoseMapEntries] = {};
        for (int lane = 0; lane < 8; ++lane) {
          MarchPoseVjp<kProjector>(volume, labels, pose, rays, row, col,
                                   upstream, 1, channels, lanes,
                                   RayLane<8>{lane});
        }
        float scale = 0;
        for (float g : whole) scale = std::max(scale, std::fabs(g));
        ASSERT_GT(scale, 0.0f) << name << " row " << row << " col " << col;
        for (int k = 0; k < kPoseMapEntries; ++k) {
          EXPECT_NEAR(lanes[k], whole[k], 1e-5f * scale)
              << name << " row " << row << " col " << col << " entry " << k;
        }
      }
    }
  };
  auto expect_variant_adds_up = [&](auto projector, const Variant& variant) {
    const RaySettings rays{12, 14, variant.n_samples, variant.sampling,
                           variant.soft_labels};
    if (variant.labels) {
      expect_lanes_add_up(projector, labels, rays, 3, variant.name);
      // Hard labels, and a class that weighs nothing (channels 2 of 3).
      RaySettings hard = rays;
      hard.soft_labels = false;
      expect_lanes_add_up(projector, labels, hard, 2, variant.name);
    } else {
      expect_lanes_add_up(projector, NoLabels{}, rays, 1, variant.name);
    }
  };
  for (const Variant& variant : kVariants) {
    if (variant.projector == Projector::kTrilinear) {
      expect_variant_adds_up(
          std::integral_constant<Projector, Projector::kTrilinear>{}, variant);
    } else {
      expect_variant_adds_up(
          std::integral_constant<Projector, Projector::kSiddon>{}, variant);
    }
  }
}

TEST(CpuPoseGradientTest, DoesNotDependOnTheThreadCount) {
  const std::vector<float> volume = Blobs();
  std::vector<std::vector<double>> gradients;
  for (int threads : {1, 3}) {
    std::unique_ptr<Executor> cpu = MakeCpuExecutor(threads);
    Intrinsics in;
    in.sdd = 150;
    in.height = 12;
    in.width = 14;
    const std::vector<PoseGeometry> poses = {
        MakePoseGeometry(Mat4d::Identity(),
                         MakeRtInv(EulerToMatrix("ZXY", {10, 8, -4}, true),
                                   {0, 80, 0}, Orientation::kAP, {17, 15, 13}),
                         in)};
    RenderSettings settings;
    settings.rays = {12, 14, 500};
    const std::vector<float> upstream(12 * 14, 0.5f);
    gradients.push_back(testing::PoseGradients(
        *cpu, *testing::MakeResident(*cpu, volume, nullptr, kShape), poses,
        settings, upstream));
  }
  EXPECT_EQ(gradients[0], gradients[1]);
}

}  // namespace
}  // namespace drr::kernels
