// The pose gradient (vector–Jacobian product) against central finite
// differences of the renderer itself.
#include <cmath>
#include <random>
#include <vector>

#include "geometry/pose.h"
#include "gtest/gtest.h"
#include "kernels/executor.h"
#include "kernels/pose_geometry.h"

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

struct GradientCase {
  std::unique_ptr<Executor> cpu = MakeCpuExecutor(2);
  std::shared_ptr<ResidentVolume> resident;
  std::vector<PoseGeometry> poses;
  RenderSettings settings;
  std::vector<float> upstream;

  GradientCase() {
    const std::vector<float> volume = Blobs();
    EXPECT_TRUE(cpu->MakeResident(volume.data(), nullptr, kShape,
                                  StorageType::kFloat32, &resident)
                    .ok());
    Intrinsics in;
    in.sdd = 150;
    in.delx = in.dely = 1.0;
    in.height = 12;
    in.width = 14;
    for (double angle : {10.0, -35.0}) {
      poses.push_back(MakePoseGeometry(
          Mat4d::Identity(),
          MakeRtInv(EulerToMatrix("ZXY", {angle, 8, -4}, true), {0, 80, 0},
                    Orientation::kAP, {17, 15, 13}),
          in));
    }
    settings.rays = {12, 14, 2000};
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> weight(-1.0f, 1.0f);
    upstream.resize(poses.size() * 12 * 14);
    for (float& w : upstream) w = weight(rng);
  }

  // Σ upstream · image for the poses as they are now.
  double Loss() {
    std::vector<float> images(upstream.size());
    EXPECT_TRUE(
        cpu->Render(*resident, poses.data(), 2, settings, images.data()).ok());
    double loss = 0;
    for (size_t i = 0; i < images.size(); ++i)
      loss += static_cast<double>(upstream[i]) * images[i];
    return loss;
  }

  std::vector<double> Gradient(Executor& executor) {
    std::vector<double> grad(poses.size() * 12);
    const KernelStatus status = executor.PoseGradient(
        *resident, poses.data(), 2, settings, upstream.data(), grad.data());
    EXPECT_TRUE(status.ok()) << status.message();
    return grad;
  }
};

TEST(PoseGradientTest, MatchesCentralDifferencesOfTheRenderer) {
  GradientCase s;
  const std::vector<double> grad = s.Gradient(*s.cpu);
  for (int pose = 0; pose < 2; ++pose) {
    double scale = 0;
    for (int k = 0; k < 12; ++k)
      scale = std::max(
          scale, std::fabs(grad[pose * 12 + k]) * (k % 4 == 3 ? 1.0 : 20.0));
    for (int k = 0; k < 12; ++k) {
      // Steps move samples by ~0.05 voxel: translations directly, linear
      // entries through camera coordinates of ~100 mm.
      const double h = k % 4 == 3 ? 0.05 : 0.05 / 100;
      float& entry = s.poses[pose].camera_to_voxel.m[k / 4][k % 4];
      const float original = entry;
      entry = original + static_cast<float>(h);
      const double up = s.Loss();
      entry = original - static_cast<float>(h);
      const double down = s.Loss();
      entry = original;
      const double numeric = (up - down) / (2 * h);
      const double unit =
          k % 4 == 3 ? 1.0 : 20.0;  // compare in comparable units
      EXPECT_NEAR(grad[pose * 12 + k] * unit, numeric * unit, 0.01 * scale)
          << "pose " << pose << " entry " << k;
    }
  }
}

TEST(PoseGradientTest, IsDeterministicAndIndependentOfThreads) {
  GradientCase s;
  std::unique_ptr<Executor> one_thread = MakeCpuExecutor(1);
  const std::vector<double> a = s.Gradient(*s.cpu);
  EXPECT_EQ(a, s.Gradient(*s.cpu));
  std::shared_ptr<ResidentVolume> resident;
  const std::vector<float> volume = Blobs();
  ASSERT_TRUE(one_thread
                  ->MakeResident(volume.data(), nullptr, kShape,
                                 StorageType::kFloat32, &resident)
                  .ok());
  std::vector<double> b(a.size());
  ASSERT_TRUE(one_thread
                  ->PoseGradient(*resident, s.poses.data(), 2, s.settings,
                                 s.upstream.data(), b.data())
                  .ok());
  EXPECT_EQ(a, b);
}

TEST(PoseGradientTest, JacobianContractedWithTheUpstreamIsTheGradient) {
  GradientCase s;
  const std::vector<double> grad = s.Gradient(*s.cpu);
  std::vector<float> jacobian(s.upstream.size() * 12);
  ASSERT_TRUE(s.cpu
                  ->PoseJacobian(*s.resident, s.poses.data(), 2, s.settings,
                                 jacobian.data())
                  .ok());
  for (int pose = 0; pose < 2; ++pose) {
    for (int k = 0; k < 12; ++k) {
      double sum = 0;
      for (int px = 0; px < 12 * 14; ++px) {
        const size_t i = static_cast<size_t>(pose) * 12 * 14 + px;
        sum += double{s.upstream[i]} * jacobian[i * 12 + k];
      }
      EXPECT_NEAR(sum, grad[pose * 12 + k],
                  1e-5 * std::fabs(grad[pose * 12 + k]) + 1e-6);
    }
  }
}

TEST(PoseGradientTest, RefusesModesWithoutAGradient) {
  GradientCase s;
  std::vector<double> grad(24);
  for (auto change :
       {+[](RenderSettings& r) { r.renderer = Renderer::kSiddon; },
        +[](RenderSettings& r) { r.reduce = Reduce::kMax; }}) {
    RenderSettings settings = s.settings;
    change(settings);
    EXPECT_EQ(s.cpu
                  ->PoseGradient(*s.resident, s.poses.data(), 2, settings,
                                 s.upstream.data(), grad.data())
                  .code(),
              KernelCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace drr::kernels
