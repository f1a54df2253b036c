// Image similarity losses between a rendered image and a target, with their
// gradients, in nanodrr's definitions (metrics/ncc.py): NCC (global or over
// patches), multiscale NCC, gradient NCC (Gaussian blur, Sobel, then NCC) and
// MSE; and mutual information over a Parzen-window joint histogram. Host code
// in float64; no gRPC.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "defaults/defaults.h"

namespace drr::server {

// Which loss, and its parameters.
struct LossSpec {
  enum class Kind {
    kNcc,
    kMultiscaleNcc,
    kGradientNcc,
    kMse,
    kMutualInformation
  };
  Kind kind = Kind::kNcc;
  // NCC scales: 0 = the whole image, p = every p×p patch (stride 1). kNcc and
  // kGradientNcc use the first (default: whole image); kMultiscaleNcc sums
  // weights[i]·NCC(patch_sizes[i]).
  std::vector<int> patch_sizes{0};
  std::vector<double> weights{1.0};
  // Gaussian blur σ (pixels) of kGradientNcc; 0 = no blur.
  double sigma = defaults::kGradientNccSigma;
  // Added to each variance (defaults::kMultiscaleNccEps suits
  // kMultiscaleNcc); for kMutualInformation, to each probability under a
  // logarithm.
  double eps = defaults::kNccEps;
  // kMutualInformation: histogram bins per image.
  int bins = defaults::kMutualInformationBins;
};

// Fewest and most histogram bins of mutual information.
inline constexpr int kMinLossBins = 8;
inline constexpr int kMaxLossBins = 256;

// Largest |weight| of one scale of a multiscale loss: beyond it a weighted
// sum of similarities could overflow.
inline constexpr double kMaxLossWeight = 1e6;

// Smallest eps a loss takes: below it the reciprocal deviations of a flat
// image or patch (1/√eps) overflow its gradient.
inline constexpr double kMinLossEps = 1e-12;

// Why `spec` cannot be applied to height × width images, or OK: malformed
// values are INVALID_ARGUMENT. Every loss takes O(height · width) memory and
// time, whatever its patch sizes (windows are summed with integral images).
absl::Status CheckLoss(const LossSpec& spec, int height, int width);

// The loss between `image` and `target` (height × width, row-major) and, in
// `gradient`, its derivative with respect to every pixel of `image`. NCC
// variants are similarities in [−1, 1] (higher is better), mutual
// information a similarity in nats (higher is better; 0 for a flat image),
// MSE is a distance; `spec` must pass CheckLoss.
double LossAndGradient(const LossSpec& spec, const float* image,
                       const float* target, int height, int width,
                       std::vector<double>* gradient);

}  // namespace drr::server
