#include "server/engine/image_losses.h"

#include <cmath>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/status_matchers.h"

namespace drr::server {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::StatusIs;
using ::testing::HasSubstr;

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
  LossSpec mi;
  mi.kind = LossSpec::Kind::kMutualInformation;
  mi.bins = 16;
  specs.push_back(mi);
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
    if (spec.kind == LossSpec::Kind::kMse ||
        spec.kind == LossSpec::Kind::kMutualInformation) {
      continue;  // (not correlations)
    }
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

// Patch NCC as nanodrr writes it: every p×p window (stride 1) normalised on
// its own, the NCCs averaged — window by window, in float64.
double BruteForcePatchNcc(const std::vector<float>& a,
                          const std::vector<float>& b, int h, int w, int p,
                          double eps) {
  double total = 0;
  int windows = 0;
  for (int y = 0; y + p <= h; ++y) {
    for (int x = 0; x + p <= w; ++x) {
      double ma = 0, mb = 0;
      for (int i = 0; i < p; ++i)
        for (int j = 0; j < p; ++j) {
          ma += a[(y + i) * w + x + j];
          mb += b[(y + i) * w + x + j];
        }
      ma /= p * p;
      mb /= p * p;
      double va = 0, vb = 0, cov = 0;
      for (int i = 0; i < p; ++i)
        for (int j = 0; j < p; ++j) {
          const double da = a[(y + i) * w + x + j] - ma;
          const double db = b[(y + i) * w + x + j] - mb;
          va += da * da;
          vb += db * db;
          cov += da * db;
        }
      const double n = double(p) * p;
      total += cov / std::sqrt(va / n + eps) / std::sqrt(vb / n + eps) / n;
      ++windows;
    }
  }
  return total / windows;
}

TEST(ImageLossesTest, PatchNccFromIntegralImagesIsTheWindowByWindowNcc) {
  const std::vector<float> image = Noise(5), target = Noise(6);
  for (int p : {1, 2, 5, 11}) {
    LossSpec spec;
    spec.patch_sizes = {p};
    std::vector<double> grad;
    EXPECT_NEAR(
        LossAndGradient(spec, image.data(), target.data(), kH, kW, &grad),
        BruteForcePatchNcc(image, target, kH, kW, p, spec.eps), 1e-9)
        << p;
  }
}

TEST(ImageLossesTest, LargePatchesNeedOnlyImageSizedMemory) {
  // 257² windows of 256² pixels: copying every window would take 34.6 GB.
  constexpr int kSide = 512;
  std::vector<float> image(kSide * kSide), target(kSide * kSide);
  for (int i = 0; i < kSide * kSide; ++i) {
    image[i] = std::sin(0.01f * i) + 0.001f * (i % 97);
    target[i] = std::cos(0.013f * i);
  }
  LossSpec spec;
  spec.patch_sizes = {256};
  ASSERT_THAT(CheckLoss(spec, kSide, kSide), IsOk());
  std::vector<double> grad;
  const double loss =
      LossAndGradient(spec, image.data(), target.data(), kSide, kSide, &grad);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_GE(loss, -1.0);
  EXPECT_LE(loss, 1.0);
  ASSERT_EQ(grad.size(), size_t(kSide) * kSide);
  for (double g : grad) ASSERT_TRUE(std::isfinite(g));
}

TEST(ImageLossesTest, MutualInformationIsHighestForTheSameImageAnyContrast) {
  const std::vector<float> image = Noise(1), other = Noise(2);
  LossSpec mi;
  mi.kind = LossSpec::Kind::kMutualInformation;
  std::vector<double> grad;
  const double itself =
      LossAndGradient(mi, image.data(), image.data(), kH, kW, &grad);
  const double unrelated =
      LossAndGradient(mi, image.data(), other.data(), kH, kW, &grad);
  EXPECT_GT(itself, 1.0);  // nats: about log(bins) for spread values
  EXPECT_LT(unrelated, 0.6 * itself);
  // Another window and level (inverted too): the same information (to the
  // float32 rounding of the new values).
  std::vector<float> contrast(image.size());
  for (size_t i = 0; i < image.size(); ++i) contrast[i] = 5 - 3 * image[i];
  EXPECT_NEAR(LossAndGradient(mi, contrast.data(), image.data(), kH, kW, &grad),
              itself, 1e-6);
  // A flat image shares nothing, and has no gradient; nor has one whose
  // range float32 cannot resolve (its gradient, ~1/range, would overflow).
  const std::vector<float> flat(image.size(), 2.0f);
  EXPECT_NEAR(LossAndGradient(mi, flat.data(), image.data(), kH, kW, &grad),
              0.0, 1e-6);
  for (double g : grad) EXPECT_EQ(g, 0.0);
  std::vector<float> nearly_flat(image.size(), 1e30f);
  nearly_flat[3] = std::nextafter(1e30f, 2e30f);
  EXPECT_NEAR(
      LossAndGradient(mi, nearly_flat.data(), image.data(), kH, kW, &grad), 0.0,
      1e-6);
  for (double g : grad) EXPECT_EQ(g, 0.0);
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
  // A finite weight whose weighted sum overflows (found by loss_fuzz).
  spec = LossSpec{};
  spec.kind = LossSpec::Kind::kMultiscaleNcc;
  spec.patch_sizes = {0, 4};
  spec.weights = {0.5, 8.98846567431158e307};
  EXPECT_THAT(CheckLoss(spec, kH, kW),
              StatusIs(absl::StatusCode::kInvalidArgument));
  spec.weights = {0.5, -kMaxLossWeight};
  EXPECT_THAT(CheckLoss(spec, kH, kW), IsOk());
  spec = LossSpec{};
  spec.kind = LossSpec::Kind::kMutualInformation;
  for (int bins : {kMinLossBins - 1, kMaxLossBins + 1}) {
    spec.bins = bins;
    EXPECT_THAT(
        CheckLoss(spec, kH, kW),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("loss.bins")));
  }
}

// A subnormal eps made 1/(σx·σy) of a flat patch overflow to an infinite
// gradient (found by loss_fuzz); the smallest eps accepted keeps it finite.
TEST(ImageLossesTest, EpsIsBoundedBelowSoFlatImagesKeepAFiniteGradient) {
  LossSpec spec;
  spec.kind = LossSpec::Kind::kMultiscaleNcc;
  spec.patch_sizes = {0, 4};
  spec.weights = {0.5, 0.5};
  spec.eps = 3.42338897387647e-313;
  EXPECT_THAT(
      CheckLoss(spec, kH, kW),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("loss.eps")));
  spec.eps = kMinLossEps / 2;
  EXPECT_THAT(CheckLoss(spec, kH, kW),
              StatusIs(absl::StatusCode::kInvalidArgument));
  spec.eps = kMinLossEps;
  ASSERT_THAT(CheckLoss(spec, kH, kW), IsOk());
  std::vector<float> flat(kH * kW, 0.0f);
  flat[0] = -5.5e-9f;
  const std::vector<float> target(kH * kW, 0.0f);
  std::vector<double> grad;
  const double loss =
      LossAndGradient(spec, flat.data(), target.data(), kH, kW, &grad);
  EXPECT_TRUE(std::isfinite(loss));
  for (double g : grad) ASSERT_TRUE(std::isfinite(g));
}

}  // namespace
}  // namespace drr::server
