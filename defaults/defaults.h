// Every default of a render request, written once: what the server uses for
// a field a request leaves unset (proto3 `optional`), what drrctl's help
// shows, and what the C++ types start from. Python clients leave fields unset
// and so get these too. Most are nanodrr's, so that an all-default request
// renders nanodrr's reference DRR (design.md §8).
#pragma once

namespace drr::defaults {

// The reference camera of nanodrr's benchmark: source-to-detector distance
// and pixel spacing (mm), principal-point offset (mm), detector size
// (pixels).
inline constexpr double kSdd = 1020.0;
inline constexpr double kDelx = 2.0;
inline constexpr double kDely = 2.0;
inline constexpr double kX0 = 0.0;
inline constexpr double kY0 = 0.0;
inline constexpr int kHeight = 200;
inline constexpr int kWidth = 200;

// The reference pose's camera centre relative to the isocenter (mm), and the
// Euler convention of nanodrr's make_rt_inv.
inline constexpr double kTranslation[3] = {0.0, 850.0, 0.0};
inline constexpr char kEulerConvention[] = "ZXY";

// Trilinear samples per ray over the whole source→detector segment.
inline constexpr int kSamples = 500;

// nanodrr's bilinear HU → μ map (≈70 keV): μ of water and of bone per mm,
// and the HU of bone.
inline constexpr double kMuWater = 0.0192;
inline constexpr double kMuBone = 0.0573;
inline constexpr double kHuBone = 1000.0;

// nanodrr's metrics: ε added to each variance of NCC (1e-4 for multiscale
// NCC) and the Gaussian blur σ (pixels) of gradient NCC.
inline constexpr double kNccEps = 1e-7;
inline constexpr double kMultiscaleNccEps = 1e-4;
inline constexpr double kGradientNccSigma = 1.0;

}  // namespace drr::defaults
