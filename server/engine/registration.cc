#include "server/engine/registration.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "status/status_macros.h"

namespace drr::server {
namespace {

// Adam's moment decay rates and its ε (Kingma & Ba's defaults, PyTorch's).
constexpr double kBeta1 = 0.9;
constexpr double kBeta2 = 0.999;
constexpr double kAdamEps = 1e-8;
// Largest step size a registration takes.
constexpr double kMaxStepSize = 1e6;
// Most step reductions of one scale.
constexpr int kMaxReductions = 100;

absl::Status CheckStepSize(double value, const char* field) {
  if (!std::isfinite(value) || value <= 0 || value > kMaxStepSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " is ", value, "; it must be in (0, ", kMaxStepSize, "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckOptimizer(const OptimizerSpec& o, int scales, int starts) {
  DRR_RETURN_IF_ERROR(CheckStepSize(o.lr_rotation, "optimizer.lr_rotation"));
  DRR_RETURN_IF_ERROR(
      CheckStepSize(o.lr_translation, "optimizer.lr_translation"));
  const int most_iterations = kMaxRegistrationIterations / scales;
  if (o.iterations < 1 || o.iterations > most_iterations) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.iterations is ", o.iterations, "; with ", scales,
        " scale(s) it must be in [1, ", most_iterations, "] (at most ",
        kMaxRegistrationIterations, " iterations in all)"));
  }
  if (int64_t{o.iterations} * scales * starts > kMaxRegistrationLosses) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.iterations × scales × starts is ",
                     int64_t{o.iterations} * scales * starts, "; at most ",
                     kMaxRegistrationLosses, " losses are kept"));
  }
  if (o.stop_at && !std::isfinite(*o.stop_at)) {
    return absl::InvalidArgumentError("optimizer.stop_at is not finite");
  }
  if (o.patience < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.patience is ", o.patience, "; it must be at least 1"));
  }
  if (!(o.plateau_factor > 0 && o.plateau_factor < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.plateau_factor is ", o.plateau_factor,
                     "; it must be in (0, 1)"));
  }
  if (!(o.tolerance >= 0 && o.tolerance < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.tolerance is ", o.tolerance, "; it must be in [0, 1)"));
  }
  if (o.max_reductions < 0 || o.max_reductions > kMaxReductions) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.max_reductions is ", o.max_reductions,
                     "; it must be in [0, ", kMaxReductions, "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckScales(const std::vector<int>& scales, int height,
                         int width) {
  if (scales.empty()) return absl::InvalidArgumentError("scales is empty");
  for (size_t i = 0; i < scales.size(); ++i) {
    const int f = scales[i];
    if (f < 1 || f > kMaxRegistrationScale) {
      return absl::InvalidArgumentError(
          absl::StrCat("scales[", i, "] is ", f, "; it must be in [1, ",
                       kMaxRegistrationScale, "]"));
    }
    if (height % f != 0 || width % f != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("scales[", i, "] is ", f, ", which does not divide the ",
                       height, "×", width, " detector"));
    }
    if (i > 0 && f >= scales[i - 1]) {
      return absl::InvalidArgumentError(
          absl::StrCat("scales[", i, "] is ", f,
                       "; scales go from coarsest to finest (decreasing)"));
    }
  }
  return absl::OkStatus();
}

// The intrinsics of the detector downsampled by `factor`: the same extent
// and principal point, factor× larger pixels.
geometry::Intrinsics Downsampled(geometry::Intrinsics intrinsics, int factor) {
  intrinsics.height /= factor;
  intrinsics.width /= factor;
  intrinsics.delx *= factor;
  intrinsics.dely *= factor;
  return intrinsics;
}

// One start: its parameters, Adam's moments, and its best at this scale.
struct Start {
  std::vector<double> parameters;
  std::vector<double> m, v;
  std::optional<double> best_loss;
  std::vector<double> best_parameters;
};

// A registration in progress; it owns itself through the engine's
// callbacks (one loss call in flight at a time, so no lock).
class Job : public std::enable_shared_from_this<Job> {
 public:
  Job(RenderEngine* engine, RegistrationSpec spec,
      std::vector<std::shared_ptr<const Target>> targets,
      Registrar::Progress progress, Registrar::Done done)
      : engine_(engine),
        spec_(std::move(spec)),
        targets_(std::move(targets)),
        progress_(std::move(progress)),
        done_(std::move(done)),
        maximise_(spec_.call.loss()->spec.kind != LossSpec::Kind::kMse) {
    for (const PoseSpec& pose : spec_.call.poses) {
      const auto& p = std::get<ParameterizedPoseSpec>(pose);
      Start start;
      start.parameters = p.rotation;
      start.parameters.insert(start.parameters.end(), p.translation.begin(),
                              p.translation.end());
      starts_.push_back(std::move(start));
    }
    rotation_values_ = static_cast<int>(
        std::get<ParameterizedPoseSpec>(spec_.call.poses[0]).rotation.size());
  }

  // Renders the first iteration of the coarsest scale.
  void Begin() {
    BeginScale(0);
    Submit();
  }

 private:
  // A finite loss betters any that is not.
  bool Better(double a, double b) const {
    if (!std::isfinite(a)) return false;
    if (!std::isfinite(b)) return true;
    return maximise_ ? a > b : a < b;
  }

  // Whether `loss` betters `best` by the tolerance, relative to the larger of
  // |best| and 1 (NCC lives in [−1, 1]).
  bool Improves(double loss, double best) const {
    const double margin =
        spec_.optimizer.tolerance * std::max(std::abs(best), 1.0);
    return maximise_ ? loss > best + margin : loss < best - margin;
  }

  bool Reached(double loss) const {
    const std::optional<double>& stop_at = spec_.optimizer.stop_at;
    return stop_at && (maximise_ ? loss >= *stop_at : loss <= *stop_at);
  }

  // Every start goes on from its best parameters of the previous scale, with
  // fresh moments and full steps.
  void BeginScale(size_t index) {
    scale_ = index;
    scale_iterations_ = 0;
    since_improvement_ = 0;
    reductions_ = 0;
    step_scale_ = 1;
    scale_best_.reset();
    for (Start& start : starts_) {
      if (start.best_loss) start.parameters = start.best_parameters;
      start.best_loss.reset();
      start.m.assign(start.parameters.size(), 0.0);
      start.v.assign(start.parameters.size(), 0.0);
    }
  }

  // The loss call of every start's current parameters at the current scale.
  RenderCall CallOfThisIteration() const {
    RenderCall call = spec_.call;
    call.intrinsics[0] =
        Downsampled(spec_.call.intrinsics[0], spec_.scales[scale_]);
    std::get<LossRequest>(call.kind).target = targets_[scale_];
    for (size_t b = 0; b < starts_.size(); ++b) {
      auto& pose = std::get<ParameterizedPoseSpec>(call.poses[b]);
      const std::vector<double>& p = starts_[b].parameters;
      pose.rotation.assign(p.begin(), p.begin() + rotation_values_);
      pose.translation = {p[rotation_values_], p[rotation_values_ + 1],
                          p[rotation_values_ + 2]};
    }
    return call;
  }

  // Submits the current iteration's call. The first one is admitted like
  // any other call; the later ones continue admitted work and queue even
  // when the queue is full.
  void Submit() {
    RenderCall call = CallOfThisIteration();
    call.scheduling.continuation = iteration_ > 0;
    if (absl::Status wanted = StillWanted(call, "between two iterations");
        !wanted.ok()) {
      done_(wanted);
      return;
    }
    engine_->Submit(std::move(call), [self = shared_from_this()](
                                         absl::StatusOr<RenderResult> result) {
      self->OnAnswer(std::move(result));
    });
  }

  void OnAnswer(absl::StatusOr<RenderResult> result) {
    if (!result.ok()) {
      // The first call was checked before it started; a later one fails
      // validation only when a step left the meaningful ranges.
      if (iteration_ > 0 && absl::IsInvalidArgument(result.status())) {
        done_(absl::AbortedError(absl::StrCat(
            "iteration ", iteration_,
            " stepped out of range: ", result.status().message())));
        return;
      }
      done_(result.status());
      return;
    }
    RegistrationStep step;
    step.iteration = iteration_++;
    step.scale = spec_.scales[scale_];
    step.losses = result->losses;
    ++scale_iterations_;
    for (size_t b = 0; b < starts_.size(); ++b) {
      Start& start = starts_[b];
      if (!start.best_loss || Better(step.losses[b], *start.best_loss)) {
        start.best_loss = step.losses[b];
        start.best_parameters = start.parameters;
      }
      if (Better(*start.best_loss, *starts_[step.best_start].best_loss)) {
        step.best_start = static_cast<int>(b);
      }
    }
    const Start& best = starts_[step.best_start];
    step.best_loss = *best.best_loss;
    step.best_parameters = best.best_parameters;
    if (!scale_best_ || (Better(step.best_loss, *scale_best_) &&
                         (!std::isfinite(*scale_best_) ||
                          Improves(step.best_loss, *scale_best_)))) {
      scale_best_ = step.best_loss;
      since_improvement_ = 0;
    } else {
      ++since_improvement_;
    }
    progress_(step);
    trajectory_.push_back(std::move(step));

    if (Reached(trajectory_.back().best_loss)) {
      EndScale(RegistrationStop::kReachedStopAt);
      return;
    }
    if (since_improvement_ >= spec_.optimizer.patience) {
      if (++reductions_ > spec_.optimizer.max_reductions) {
        EndScale(RegistrationStop::kPlateau);
        return;
      }
      step_scale_ *= spec_.optimizer.plateau_factor;
      since_improvement_ = 0;
    }
    if (scale_iterations_ == spec_.optimizer.iterations) {
      EndScale(RegistrationStop::kIterations);
      return;
    }
    for (size_t b = 0; b < starts_.size(); ++b) {
      Step(starts_[b], result->gradients[b].parameters);
    }
    Submit();
  }

  // One Adam step of `start` down the loss (up a similarity); none when the
  // gradient is not finite.
  void Step(Start& start, const std::vector<double>& gradient) const {
    for (double g : gradient) {
      if (!std::isfinite(g)) return;
    }
    const int t = scale_iterations_;
    const double sign = maximise_ ? -1.0 : 1.0;
    for (size_t i = 0; i < start.parameters.size(); ++i) {
      const double g = sign * gradient[i];
      start.m[i] = kBeta1 * start.m[i] + (1 - kBeta1) * g;
      start.v[i] = kBeta2 * start.v[i] + (1 - kBeta2) * g * g;
      const double m_hat = start.m[i] / (1 - std::pow(kBeta1, t));
      const double v_hat = start.v[i] / (1 - std::pow(kBeta2, t));
      const double lr = static_cast<int>(i) < rotation_values_
                            ? spec_.optimizer.lr_rotation
                            : spec_.optimizer.lr_translation;
      start.parameters[i] -=
          lr * step_scale_ * m_hat / (std::sqrt(v_hat) + kAdamEps);
    }
  }

  void EndScale(RegistrationStop why) {
    if (scale_ + 1 < spec_.scales.size()) {
      BeginScale(scale_ + 1);
      Submit();
      return;
    }
    const RegistrationStep& last = trajectory_.back();
    RegistrationOutcome outcome;
    outcome.start = last.best_start;
    outcome.loss = last.best_loss;
    outcome.parameters = last.best_parameters;
    outcome.iterations = iteration_;
    outcome.stopped_by = why;
    outcome.trajectory = std::move(trajectory_);
    done_(std::move(outcome));
  }

  RenderEngine* const engine_;
  const RegistrationSpec spec_;
  // The target at each scale.
  const std::vector<std::shared_ptr<const Target>> targets_;
  const Registrar::Progress progress_;
  const Registrar::Done done_;
  const bool maximise_;
  int rotation_values_ = 0;
  std::vector<Start> starts_;
  size_t scale_ = 0;
  int iteration_ = 0;
  int scale_iterations_ = 0;
  int since_improvement_ = 0;
  int reductions_ = 0;
  // The step sizes' factor after the reductions so far.
  double step_scale_ = 1;
  // The best loss of any start at this scale.
  std::optional<double> scale_best_;
  std::vector<RegistrationStep> trajectory_;
};

}  // namespace

absl::Status ValidateRegistration(const RegistrationSpec& spec,
                                  const Limits& limits) {
  const RenderCall& call = spec.call;
  if (call.loss() == nullptr) {
    return absl::InvalidArgumentError(
        "loss: a registration needs a loss and its target_id");
  }
  const int starts = static_cast<int>(call.poses.size());
  if (starts < 1 || starts > kMaxRegistrationStarts) {
    return absl::InvalidArgumentError(absl::StrCat("starts has ", starts,
                                                   " poses; it must have 1 to ",
                                                   kMaxRegistrationStarts));
  }
  for (int i = 0; i < starts; ++i) {
    if (!std::holds_alternative<ParameterizedPoseSpec>(call.poses[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("starts[", i,
                       "] is not parameterized: a registration optimises "
                       "rotation values and a translation"));
    }
    const geometry::Parameterization p =
        std::get<ParameterizedPoseSpec>(call.poses[i]).parameterization;
    if (p == geometry::Parameterization::kMatrix) {
      return absl::InvalidArgumentError(absl::StrCat(
          "starts[", i,
          "] is a rotation matrix, which a step would make non-orthonormal; "
          "use rotation_9d, so3_log or another parameterization"));
    }
    if (p != std::get<ParameterizedPoseSpec>(call.poses[0]).parameterization) {
      return absl::InvalidArgumentError(absl::StrCat(
          "starts[", i, "] has another parameterization than starts[0]"));
    }
  }
  if (call.intrinsics.size() != 1) {
    return absl::InvalidArgumentError(
        "a registration has one intrinsics for every start");
  }
  DRR_RETURN_IF_ERROR(ValidateRenderCall(call, limits));
  DRR_RETURN_IF_ERROR(CheckScales(spec.scales, call.intrinsics[0].height,
                                  call.intrinsics[0].width));
  DRR_RETURN_IF_ERROR(CheckOptimizer(
      spec.optimizer, static_cast<int>(spec.scales.size()), starts));
  for (int f : spec.scales) {
    DRR_RETURN_IF_ERROR(CheckLoss(call.loss()->spec,
                                  call.intrinsics[0].height / f,
                                  call.intrinsics[0].width / f));
  }
  return absl::OkStatus();
}

Target DownsampleTarget(const Target& target, int factor) {
  Target small;
  small.id = absl::StrCat(target.id, "/", factor);
  small.height = target.height / factor;
  small.width = target.width / factor;
  small.pixels.assign(static_cast<size_t>(small.height) * small.width, 0.0f);
  const double area = double{1} * factor * factor;
  for (int r = 0; r < small.height; ++r) {
    for (int c = 0; c < small.width; ++c) {
      double sum = 0;
      for (int i = 0; i < factor; ++i) {
        const float* row =
            target.pixels.data() +
            (static_cast<size_t>(r) * factor + i) * target.width + c * factor;
        for (int j = 0; j < factor; ++j) sum += row[j];
      }
      small.pixels[static_cast<size_t>(r) * small.width + c] =
          static_cast<float>(sum / area);
    }
  }
  return small;
}

void Registrar::Start(RegistrationSpec spec, Progress progress,
                      Done done) const {
  absl::StatusOr<std::shared_ptr<const Target>> target =
      targets_->Get(spec.call.loss()->target_id);
  if (!target.ok()) {
    done(target.status());
    return;
  }
  const geometry::Intrinsics& detector = spec.call.intrinsics[0];
  if ((*target)->height != detector.height ||
      (*target)->width != detector.width) {
    done(absl::InvalidArgumentError(absl::StrCat(
        "loss.target_id: target ", (*target)->id, " is ", (*target)->height,
        "×", (*target)->width, ", the detector is ", detector.height, "×",
        detector.width)));
    return;
  }
  std::vector<std::shared_ptr<const Target>> targets;
  for (int f : spec.scales) {
    targets.push_back(
        f == 1 ? *target
               : std::make_shared<const Target>(DownsampleTarget(**target, f)));
  }
  std::make_shared<Job>(engine_, std::move(spec), std::move(targets),
                        std::move(progress), std::move(done))
      ->Begin();
}

}  // namespace drr::server
