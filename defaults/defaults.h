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

// Mutual information's histogram: bins per image (each image's intensities
// min–max normalised to [0, 1], Gaussian Parzen windows of half a bin).
inline constexpr int kMutualInformationBins = 32;

// A registration's optimiser (Adam with reduce-on-plateau): step sizes of the
// rotation values (radians, or degrees for Euler angles in degrees) and of
// the translation (mm); iterations per scale; how many steps without a
// relative improvement of kRegisterTolerance shrink the steps by
// kRegisterPlateauFactor, and how many such reductions end a scale.
inline constexpr double kRegisterLrRotation = 5e-2;
inline constexpr double kRegisterLrTranslation = 10.0;
inline constexpr int kRegisterIterations = 100;
inline constexpr int kRegisterPatience = 10;
inline constexpr double kRegisterPlateauFactor = 0.5;
inline constexpr double kRegisterTolerance = 1e-4;
inline constexpr int kRegisterMaxReductions = 3;

}  // namespace drr::defaults
