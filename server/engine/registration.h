// 2D/3D registration next to the renderer: Adam on the parameters of one or
// more start poses (rendered together, one batched loss call per iteration),
// coarse detector scales first, the steps shrunk when the loss stops
// improving. No round trip per iteration; no gRPC.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "defaults/defaults.h"
#include "server/engine/limits.h"
#include "server/engine/render_call.h"
#include "server/engine/render_engine.h"
#include "server/engine/target_store.h"

namespace drr::server {

// How the pose parameters are optimised: Adam, with reduce-on-plateau.
struct OptimizerSpec {
  // Step size of the rotation values and of the translation (mm).
  double lr_rotation = defaults::kRegisterLrRotation;
  double lr_translation = defaults::kRegisterLrTranslation;
  // Most iterations at each scale.
  int iterations = defaults::kRegisterIterations;
  // A similarity (NCC variants) at least this, or an MSE at most this, ends
  // the finest scale (a coarser one moves on to the next).
  std::optional<double> stop_at;
  // Iterations without the best loss improving by `tolerance` (relative)
  // before the steps shrink by `plateau_factor`; after `max_reductions`
  // such reductions the scale ends.
  int patience = defaults::kRegisterPatience;
  double plateau_factor = defaults::kRegisterPlateauFactor;
  double tolerance = defaults::kRegisterTolerance;
  int max_reductions = defaults::kRegisterMaxReductions;
};

// Most starts of one registration (they render as one batch).
inline constexpr int kMaxRegistrationStarts = 64;
// Most iterations of one registration, over all its scales (its trajectory
// is kept: one step per iteration).
inline constexpr int kMaxRegistrationIterations = 10000;
// Largest detector downsampling factor.
inline constexpr int kMaxRegistrationScale = 64;
// Most losses one registration's trajectory keeps: iterations (over all
// scales) × starts.
inline constexpr int kMaxRegistrationLosses = 200000;

// One registration: the loss call of its start poses at full detector size,
// the optimiser, and the scales.
struct RegistrationSpec {
  // A loss call whose poses are the starts, each parameterized; its
  // intrinsics are those of the target's full size.
  RenderCall call;
  OptimizerSpec optimizer;
  // Detector downsampling factors, coarsest first, each dividing the height
  // and width: at factor f the detector has (height/f)×(width/f) pixels of
  // f·delx × f·dely mm, and the target is averaged over f×f blocks.
  std::vector<int> scales{1};
};

// Why a registration ended.
enum class RegistrationStop {
  // The finest scale reached stop_at.
  kReachedStopAt,
  // The finest scale stopped improving (max_reductions reductions).
  kPlateau,
  // The finest scale ran all its iterations.
  kIterations,
};

// One iteration: every start's loss at its current parameters, and the best
// of them so far at this scale.
struct RegistrationStep {
  int iteration = 0;  // counted over all scales, from 0
  int scale = 1;
  std::vector<double> losses;  // one per start
  int best_start = 0;
  double best_loss = 0;
  // The best start's parameters (rotation values then translation) when it
  // had best_loss.
  std::vector<double> best_parameters;
};

// What a registration found: the best start at the finest scale.
struct RegistrationOutcome {
  int start = 0;
  double loss = 0;
  std::vector<double> parameters;  // rotation values then translation
  int iterations = 0;
  RegistrationStop stopped_by = RegistrationStop::kIterations;
  std::vector<RegistrationStep> trajectory;
};

// Checks everything about `spec` that does not need the volume or target:
// its call (ValidateRenderCall), parameterized starts within
// kMaxRegistrationStarts (not `matrix`, which a step would make
// non-orthonormal), a loss call with one intrinsics, the optimiser's values
// and the scales. INVALID_ARGUMENT names the field as the API spells
// it (`optimizer.lr_rotation`, `scales`, ...).
absl::Status ValidateRegistration(const RegistrationSpec& spec,
                                  const Limits& limits);

// The target averaged over factor×factor blocks (factor divides its sides).
Target DownsampleTarget(const Target& target, int factor);

// Runs validated registrations on an engine.
class Registrar {
 public:
  // Hears each iteration, on the engine's answer thread; must not block.
  using Progress = std::function<void(const RegistrationStep&)>;
  // Hears the end, once, on the engine's answer thread (or the calling
  // thread when the first call is refused at once).
  using Done = std::function<void(absl::StatusOr<RegistrationOutcome>)>;

  // Registers on `engine`, against targets of `targets` (both outlive every
  // registration).
  Registrar(RenderEngine* engine, const TargetStore* targets)
      : engine_(engine), targets_(targets) {}

  // Starts `spec` (which passed ValidateRegistration): each iteration is one
  // loss call on the engine, submitted when the previous one is answered.
  // The call's deadline and cancelled flag bound the whole registration: it
  // ends DEADLINE_EXCEEDED or CANCELLED. A target that does not match the
  // detector is INVALID_ARGUMENT; a step that leaves the meaningful ranges
  // ends it ABORTED, naming the pose and the iteration. A start whose loss
  // or gradient is not finite stays where it is (never the best).
  void Start(RegistrationSpec spec, Progress progress, Done done) const;

 private:
  RenderEngine* const engine_;
  const TargetStore* const targets_;
};

}  // namespace drr::server
