#include "server/engine/image_losses.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/status_matchers.h"

namespace drr::server {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::StatusIs;

constexpr int kH = 11, kW = 13;

std::vector<float> Noise(int seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(1.0f, 0.5f);
  std::vector<float> v(kH * kW);
  for (float& x : v) x = n(rng);
  return v;
}

std::vector<LossSpec> AllSpecs() {
  std::vector<LossSpec> specs;
  LossSpec ncc;
  specs.push_back(ncc);
  LossSpec patch = ncc;
  patch.patch_sizes = {5};
  specs.push_back(patch);
  LossSpec multi;
  multi.kind = LossSpec::Kind::kMultiscaleNcc;
  multi.patch_sizes = {0, 3, 7};
  multi.weights = {0.5, 0.3, 0.2};
  multi.eps = 1e-4;
  specs.push_back(multi);
  LossSpec gradient;
  gradient.kind = LossSpec::Kind::kGradientNcc;
  specs.push_back(gradient);
  LossSpec gradient_patch = gradient;
  gradient_patch.patch_sizes = {4};
  gradient_patch.sigma = 0.7;
  specs.push_back(gradient_patch);
  LossSpec mse;
  mse.kind = LossSpec::Kind::kMse;
  specs.push_back(mse);
  return specs;
}

TEST(ImageLossesTest, GradientsMatchCentralDifferences) {
  const std::vector<float> image = Noise(1), target = Noise(2);
  for (const LossSpec& spec : AllSpecs()) {
    ASSERT_THAT(CheckLoss(spec, kH, kW), IsOk());
    std::vector<double> grad, unused;
    LossAndGradient(spec, image.data(), target.data(), kH, kW, &grad);
    for (int i = 0; i < kH * kW; i += 7) {
      std::vector<float> moved = image;
      const float h = 1e-2f;
      moved[i] = image[i] + h;
      const double up =
          LossAndGradient(spec, moved.data(), target.data(), kH, kW, &unused);
      moved[i] = image[i] - h;
      const double down =
          LossAndGradient(spec, moved.data(), target.data(), kH, kW, &unused);
      EXPECT_NEAR(grad[i], (up - down) / (2.0 * h),
                  2e-4 + 1e-3 * std::fabs(grad[i]))
          << "kind " << int(spec.kind) << " pixel " << i;
    }
  }
}

TEST(ImageLossesTest, NccIsOneForItselfAndMinusOneForItsNegative) {
  const std::vector<float> image = Noise(3);
  std::vector<float> negative(image.size()), scaled(image.size());
  for (size_t i = 0; i < image.size(); ++i) {
    negative[i] = -image[i];
    scaled[i] =
        3.0f *
        image[i];  // (an offset would show at the Sobel filter's zero border)
  }
  std::vector<double> grad;
  for (const LossSpec& spec : AllSpecs()) {
    if (spec.kind == LossSpec::Kind::kMse) continue;
    double weights = 0;
    for (size_t i = 0; i < spec.weights.size(); ++i) {
      weights += spec.kind == LossSpec::Kind::kMultiscaleNcc || i == 0
                     ? spec.weights[i]
                     : 0;
    }
    EXPECT_NEAR(
        LossAndGradient(spec, image.data(), scaled.data(), kH, kW, &grad),
        weights, 1e-3);
    EXPECT_NEAR(
        LossAndGradient(spec, image.data(), negative.data(), kH, kW, &grad),
        -weights, 1e-3);
  }
  LossSpec mse;
  mse.kind = LossSpec::Kind::kMse;
  EXPECT_NEAR(LossAndGradient(mse, image.data(), image.data(), kH, kW, &grad),
              0.0, 1e-12);
}

TEST(ImageLossesTest, RefusesPatchSizesWhoseWindowsWouldExhaustMemory) {
  LossSpec spec;
  spec.patch_sizes = {256};  // 257² windows of 256² pixels: 34.6 GB
  EXPECT_THAT(CheckLoss(spec, 512, 512),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       ::testing::HasSubstr("loss.patch_sizes[0]")));
  spec.patch_sizes = {9};  // nanodrr's usual sizes stay well inside
  EXPECT_THAT(CheckLoss(spec, 512, 512), IsOk());
  spec.patch_sizes = {0};
  EXPECT_THAT(CheckLoss(spec, 4096, 4096), IsOk());
}

TEST(ImageLossesTest, RejectsBadSpecs) {
  LossSpec spec;
  spec.patch_sizes = {20};
  EXPECT_THAT(CheckLoss(spec, kH, kW),
              StatusIs(absl::StatusCode::kInvalidArgument));
  spec.patch_sizes = {3, 5};
  EXPECT_THAT(CheckLoss(spec, kH, kW),
              StatusIs(absl::StatusCode::kInvalidArgument));
  spec = LossSpec{};
  spec.eps = 0;
  EXPECT_THAT(CheckLoss(spec, kH, kW),
              StatusIs(absl::StatusCode::kInvalidArgument));
  spec = LossSpec{};
  spec.kind = LossSpec::Kind::kGradientNcc;
  spec.sigma = 10;
  EXPECT_THAT(CheckLoss(spec, kH, kW),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace drr::server
