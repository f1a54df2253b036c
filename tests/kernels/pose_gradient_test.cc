// The pose gradient (vector–Jacobian product) against central finite
// differences of the renderer itself, on every executor present.
#include <cmath>
#include <random>
#include <vector>

#include "geometry/pose.h"
#include "gtest/gtest.h"
#include "kernels/executor.h"
#include "kernels/pose_geometry.h"
#include "tests/kernels/executor_testing.h"

namespace drr::kernels {
namespace {

using ::drr::geometry::EulerToMatrix;
using ::drr::geometry::Intrinsics;
using ::drr::geometry::MakeRtInv;
using ::drr::geometry::Mat4d;
using ::drr::geometry::Orientation;

constexpr VolumeShape kShape{36, 32, 28};

// A smooth volume: two Gaussian blobs, so the line integrals are smooth in
// the pose up to trilinear interpolation's kinks.
std::vector<float> Blobs() {
  std::vector<float> v(kShape.voxels());
  for (int k = 0; k < kShape.nz; ++k)
    for (int j = 0; j < kShape.ny; ++j)
      for (int i = 0; i < kShape.nx; ++i) {
        const double a = (i - 15.0) * (i - 15.0) + (j - 16.0) * (j - 16.0) +
                         (k - 12.0) * (k - 12.0);
        const double b = (i - 24.0) * (i - 24.0) + (j - 12.0) * (j - 12.0) +
                         (k - 17.0) * (k - 17.0);
        v[(static_cast<size_t>(k) * kShape.ny + j) * kShape.nx + i] =
            static_cast<float>(0.03 * std::exp(-a / 40.0) +
                               0.02 * std::exp(-b / 18.0));
      }
  return v;
}

class PoseGradientTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    executor_ = testing::MakeExecutor(GetParam());
    resident_ = testing::MakeResident(*executor_, Blobs(), nullptr, kShape);
    Intrinsics in;
    in.sdd = 150;
    in.delx = in.dely = 1.0;
    in.height = 12;
    in.width = 14;
    for (double angle : {10.0, -35.0}) {
      poses_.push_back(MakePoseGeometry(
          Mat4d::Identity(),
          MakeRtInv(EulerToMatrix("ZXY", {angle, 8, -4}, true), {0, 80, 0},
                    Orientation::kAP, {17, 15, 13}),
          in));
    }
    settings_.rays = {12, 14, 2000};
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> weight(-1.0f, 1.0f);
    upstream_.resize(poses_.size() * 12 * 14);
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
      const double h = k % 4 == 3 ? 0.05 : 0.05 / 100;
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
      EXPECT_NEAR(grad[pose * kM + k] * unit, numeric * unit, 0.01 * scale)
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
      for (int px = 0; px < 12 * 14; ++px) {
        const size_t i = static_cast<size_t>(pose) * 12 * 14 + px;
        sum += double{upstream_[i]} * jacobian[i * kM + k];
      }
      EXPECT_NEAR(sum, grad[pose * kM + k],
                  1e-5 * std::fabs(grad[pose * kM + k]) + 1e-6);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Executors, PoseGradientTest,
                         ::testing::ValuesIn(testing::AvailableExecutors()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

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
