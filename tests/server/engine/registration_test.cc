// Registration on the engine: it recovers a known pose of a phantom from a
// rendered target, coarse scale first, picks the best of several starts,
// stops on stop_at, on a plateau and when cancelled, and refuses bad
// settings naming the field.
#include "server/engine/registration.h"

#include <cmath>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/status_matchers.h"

namespace drr::server {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::StatusIs;
using ::testing::HasSubstr;

// A soft blob and five small bumps placed asymmetrically (fiducials): the
// NCC of its DRRs is smooth in the pose and peaks at one pose only.
HostVolume Phantom() {
  HostVolume v;
  v.header.voxel_type = VoxelType::kFloat32;
  v.header.value_kind = ValueKind::kAttenuation;
  v.header.width = 40;
  v.header.height = 36;
  v.header.depth = 32;
  v.header.affine = geometry::Mat4d::FromAffine(
      geometry::Mat3d{{{-2.0, 0, 0}, {0, -2.0, 0}, {0, 0, 2.5}}},
      {40, 36, -40});
  const double bumps[5][3] = {
      {12, 10, 8}, {27, 24, 11}, {16, 27, 22}, {26, 12, 24}, {20, 18, 16}};
  std::vector<float> mu(v.header.voxels());
  for (int k = 0; k < 32; ++k)
    for (int j = 0; j < 36; ++j)
      for (int i = 0; i < 40; ++i) {
        const double r2 = (i - 19.0) * (i - 19.0) / 2.0 +
                          (j - 18.0) * (j - 18.0) / 1.5 +
                          (k - 15.0) * (k - 15.0) * 1.3;
        double value = 0.01 * std::exp(-r2 / 80.0);
        for (const auto& b : bumps) {
          const double d2 = (i - b[0]) * (i - b[0]) + (j - b[1]) * (j - b[1]) +
                            (k - b[2]) * (k - b[2]);
          value += 0.05 * std::exp(-d2 / 6.0);
        }
        mu[(k * 36 + j) * 40 + i] = static_cast<float>(value);
      }
  v.voxels.assign(reinterpret_cast<const char*>(mu.data()), mu.size() * 4);
  return v;
}

// The pose the target was rendered from (so3_log, radians; mm).
const std::vector<double> kTrueRotation{0.05, -0.04, 0.03};
const geometry::Vec3d kTrueTranslation{4.0, 300.0, -3.0};

ParameterizedPoseSpec Pose(std::vector<double> rotation,
                           geometry::Vec3d translation) {
  ParameterizedPoseSpec pose;
  pose.parameterization = geometry::Parameterization::kSo3Log;
  pose.rotation = std::move(rotation);
  pose.translation = translation;
  return pose;
}

class RegistrationTest : public ::testing::Test {
 protected:
  RegistrationTest()
      : executor_(kernels::MakeCpuExecutor(2)),
        store_(executor_.get(), 2),
        targets_(Limits{}),
        engine_(executor_.get(), &store_, &targets_, Limits{}) {
    HostVolume phantom = Phantom();
    volume_id_ = ContentDigest(phantom.header, phantom.voxels);
    EXPECT_THAT(store_.Insert(volume_id_, std::move(phantom)), IsOk());
    RenderCall truth = Call({Pose(kTrueRotation, kTrueTranslation)});
    truth.kind = ImagesRequest{};
    absl::StatusOr<RenderResult> image = engine_.Render(truth);
    EXPECT_THAT(image, IsOk());
    auto target = targets_.Insert(24, 24, image->images);
    EXPECT_THAT(target, IsOk());
    target_id_ = (*target)->id;
  }

  // A loss call of `starts` against the target, 24×24 pixels of 3 mm.
  RenderCall Call(std::vector<ParameterizedPoseSpec> starts) const {
    RenderCall call;
    call.volume_id = volume_id_;
    for (auto& start : starts) call.poses.emplace_back(std::move(start));
    call.intrinsics[0].sdd = 600;
    call.intrinsics[0].delx = call.intrinsics[0].dely = 3.0;
    call.intrinsics[0].height = call.intrinsics[0].width = 24;
    call.n_samples = 200;
    LossRequest loss;
    loss.target_id = target_id_;
    call.kind = loss;
    return call;
  }

  // Runs `spec` to its end; `steps` gets every progress step.
  absl::StatusOr<RegistrationOutcome> Run(
      RegistrationSpec spec, std::vector<RegistrationStep>* steps = nullptr) {
    EXPECT_THAT(ValidateRegistration(spec, Limits{}), IsOk());
    absl::Notification finished;
    absl::StatusOr<RegistrationOutcome> outcome;
    Registrar(&engine_, &targets_)
        .Start(
            std::move(spec),
            [steps](const RegistrationStep& step) {
              if (steps != nullptr) steps->push_back(step);
            },
            [&](absl::StatusOr<RegistrationOutcome> result) {
              outcome = std::move(result);
              finished.Notify();
            });
    finished.WaitForNotification();
    return outcome;
  }

  std::unique_ptr<kernels::Executor> executor_;
  VolumeStore store_;
  TargetStore targets_;
  RenderEngine engine_;
  std::string volume_id_;
  std::string target_id_;
};

// Distance of `parameters` (rotation vector, translation) from the truth:
// radians and mm.
std::pair<double, double> Error(const std::vector<double>& parameters) {
  double rotation = 0, translation = 0;
  for (int i = 0; i < 3; ++i) {
    rotation += std::pow(parameters[i] - kTrueRotation[i], 2);
    translation += std::pow(parameters[3 + i] - kTrueTranslation[i], 2);
  }
  return {std::sqrt(rotation), std::sqrt(translation)};
}

TEST_F(RegistrationTest, RecoversTheTruePoseCoarseScaleFirst) {
  RegistrationSpec spec;
  spec.call = Call({Pose({0.15, -0.12, 0.1}, {16, 300, 12})});
  spec.scales = {2, 1};
  spec.optimizer.lr_rotation = 0.02;
  spec.optimizer.lr_translation = 2;
  spec.optimizer.iterations = 80;
  std::vector<RegistrationStep> steps;
  absl::StatusOr<RegistrationOutcome> outcome = Run(spec, &steps);
  ASSERT_THAT(outcome, IsOk());
  const auto [rotation, translation] = Error(outcome->parameters);
  EXPECT_GT(outcome->loss, 0.999);
  EXPECT_LT(rotation, 0.015);
  EXPECT_LT(translation, 2.0);
  // Every iteration was heard, in order, the coarse scale first.
  ASSERT_EQ(static_cast<int>(steps.size()), outcome->iterations);
  ASSERT_EQ(outcome->trajectory.size(), steps.size());
  EXPECT_EQ(steps.front().scale, 2);
  EXPECT_EQ(steps.back().scale, 1);
  EXPECT_LT(steps.front().losses[0], 0.99);
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(steps[i].iteration, static_cast<int>(i));
    EXPECT_EQ(outcome->trajectory[i].best_loss, steps[i].best_loss);
  }
}

TEST_F(RegistrationTest, RecoversTheTruePoseWithSiddon) {
  // Siddon's gradient (its path lengths') against a Siddon target: from
  // 0.17 rad and 21 mm off to 0.004 rad and 0.16 mm in 216 iterations.
  RenderCall truth = Call({Pose(kTrueRotation, kTrueTranslation)});
  truth.kind = ImagesRequest{};
  truth.projector = kernels::Projector::kSiddon;
  absl::StatusOr<RenderResult> image = engine_.Render(truth);
  ASSERT_THAT(image, IsOk());
  auto target = targets_.Insert(24, 24, image->images);
  ASSERT_THAT(target, IsOk());
  RegistrationSpec spec;
  spec.call = Call({Pose({0.15, -0.12, 0.1}, {16, 300, 12})});
  spec.call.projector = kernels::Projector::kSiddon;
  std::get<LossRequest>(spec.call.kind).target_id = (*target)->id;
  spec.scales = {2, 1};
  spec.optimizer.lr_rotation = 0.02;
  spec.optimizer.lr_translation = 2;
  spec.optimizer.iterations = 200;
  absl::StatusOr<RegistrationOutcome> outcome = Run(spec);
  ASSERT_THAT(outcome, IsOk());
  const auto [rotation, translation] = Error(outcome->parameters);
  EXPECT_GT(outcome->loss, 0.999);
  EXPECT_LT(rotation, 0.015);
  EXPECT_LT(translation, 2.0);
}

TEST_F(RegistrationTest, ReportsTheBestOfSeveralStarts) {
  RegistrationSpec spec;
  spec.call = Call({Pose({0.6, -0.5, 0.5}, {60, 300, -60}),
                    Pose({0.08, -0.06, 0.05}, {8, 300, 0}),
                    Pose({-0.5, 0.4, -0.6}, {-50, 300, 50})});
  spec.optimizer.lr_rotation = 0.01;
  spec.optimizer.lr_translation = 1;
  spec.optimizer.iterations = 30;
  std::vector<RegistrationStep> steps;
  absl::StatusOr<RegistrationOutcome> outcome = Run(spec, &steps);
  ASSERT_THAT(outcome, IsOk());
  EXPECT_EQ(outcome->start, 1);
  for (const RegistrationStep& step : steps) {
    ASSERT_EQ(step.losses.size(), 3u);  // one batch of every start
    EXPECT_GE(step.best_loss, step.losses[1] - 1e-12);
  }
  EXPECT_GT(outcome->loss, steps.front().losses[1]);
}

TEST_F(RegistrationTest, StopsOnceTheSimilarityReachesStopAt) {
  RegistrationSpec spec;
  spec.call = Call({Pose({0.08, -0.06, 0.05}, {8, 300, 0})});
  spec.optimizer.lr_rotation = 0.01;
  spec.optimizer.lr_translation = 1;
  spec.optimizer.iterations = 200;
  spec.optimizer.stop_at = 0.99;
  absl::StatusOr<RegistrationOutcome> outcome = Run(spec);
  ASSERT_THAT(outcome, IsOk());
  EXPECT_EQ(outcome->stopped_by, RegistrationStop::kReachedStopAt);
  EXPECT_GE(outcome->loss, 0.99);
  EXPECT_LT(outcome->iterations, 200);
  // Only the last iteration reached it.
  EXPECT_LT(outcome->trajectory[outcome->iterations - 2].best_loss, 0.99);
}

TEST_F(RegistrationTest, ShrinksItsStepsOnAPlateauThenStops) {
  RegistrationSpec spec;
  spec.call = Call({Pose({0.08, -0.06, 0.05}, {8, 300, 0})});
  // Steps too small to improve the loss by the tolerance.
  spec.optimizer.lr_rotation = 1e-9;
  spec.optimizer.lr_translation = 1e-9;
  spec.optimizer.iterations = 500;
  spec.optimizer.patience = 3;
  spec.optimizer.max_reductions = 2;
  absl::StatusOr<RegistrationOutcome> outcome = Run(spec);
  ASSERT_THAT(outcome, IsOk());
  EXPECT_EQ(outcome->stopped_by, RegistrationStop::kPlateau);
  // The first iteration sets the best; 3 × (2 + 1) without improvement.
  EXPECT_EQ(outcome->iterations, 1 + 3 * 3);
}

TEST_F(RegistrationTest, RunsItsIterationsAndNoMore) {
  RegistrationSpec spec;
  spec.call = Call({Pose({0.3, 0, 0}, {0, 300, 0})});
  spec.scales = {4, 2, 1};
  spec.optimizer.iterations = 5;
  spec.optimizer.patience = 100;
  absl::StatusOr<RegistrationOutcome> outcome = Run(spec);
  ASSERT_THAT(outcome, IsOk());
  EXPECT_EQ(outcome->stopped_by, RegistrationStop::kIterations);
  EXPECT_EQ(outcome->iterations, 15);
}

TEST_F(RegistrationTest, MinimisesMse) {
  RegistrationSpec spec;
  spec.call = Call({Pose({0.08, -0.06, 0.05}, {8, 300, 0})});
  std::get<LossRequest>(spec.call.kind).spec.kind = LossSpec::Kind::kMse;
  spec.optimizer.lr_rotation = 0.01;
  spec.optimizer.lr_translation = 1;
  spec.optimizer.iterations = 40;
  std::vector<RegistrationStep> steps;
  absl::StatusOr<RegistrationOutcome> outcome = Run(spec, &steps);
  ASSERT_THAT(outcome, IsOk());
  EXPECT_LT(outcome->loss, 0.2 * steps.front().losses[0]);
}

TEST_F(RegistrationTest, MaximisesMutualInformationAgainstAnotherContrast) {
  // The target with its contrast inverted (as another modality might be):
  // NCC would push away from the truth, mutual information does not care.
  const std::shared_ptr<const Target> truth = *targets_.Get(target_id_);
  std::vector<float> inverted(truth->pixels.size());
  for (size_t i = 0; i < inverted.size(); ++i) {
    inverted[i] = 2.0f - 3.0f * truth->pixels[i];
  }
  auto target = targets_.Insert(24, 24, inverted);
  ASSERT_THAT(target, IsOk());
  RegistrationSpec spec;
  spec.call = Call({Pose({0.1, -0.08, 0.06}, {10, 300, -6})});
  auto& loss = std::get<LossRequest>(spec.call.kind);
  loss.target_id = (*target)->id;
  loss.spec.kind = LossSpec::Kind::kMutualInformation;
  loss.spec.bins = 16;
  spec.scales = {2, 1};
  spec.optimizer.lr_rotation = 0.01;
  spec.optimizer.lr_translation = 1;
  spec.optimizer.iterations = 60;
  std::vector<RegistrationStep> steps;
  absl::StatusOr<RegistrationOutcome> outcome = Run(spec, &steps);
  ASSERT_THAT(outcome, IsOk());
  const auto [rotation, translation] = Error(outcome->parameters);
  const auto [start_rotation, start_translation] =
      Error({0.1, -0.08, 0.06, 10, 300, -6});
  EXPECT_LT(rotation, 0.5 * start_rotation);
  EXPECT_LT(translation, 0.5 * start_translation);
  EXPECT_GT(outcome->loss, steps.back().losses[0] - 1e-12);
}

TEST_F(RegistrationTest, EndsCancelledOrPastItsDeadline) {
  RegistrationSpec spec;
  spec.call = Call({Pose({0.08, -0.06, 0.05}, {8, 300, 0})});
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  spec.call.cancelled = cancelled;
  spec.optimizer.iterations = 1000;
  spec.optimizer.patience = 1000;
  int heard = 0;
  absl::Notification finished;
  absl::StatusOr<RegistrationOutcome> outcome;
  Registrar(&engine_, &targets_)
      .Start(
          spec,
          [&](const RegistrationStep&) {
            if (++heard == 3) cancelled->store(true);
          },
          [&](absl::StatusOr<RegistrationOutcome> result) {
            outcome = std::move(result);
            finished.Notify();
          });
  finished.WaitForNotification();
  EXPECT_THAT(outcome, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(heard, 3);

  spec.call.cancelled = nullptr;
  spec.call.deadline = std::chrono::steady_clock::now();
  EXPECT_THAT(Run(spec), StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST_F(RegistrationTest, GoesOnThroughAFullQueueOnceStarted) {
  Limits limits;
  limits.max_queued_requests = 1;
  RenderEngine engine(executor_.get(), &store_, &targets_, limits);
  RegistrationSpec spec;
  spec.call = Call({Pose({0.08, -0.06, 0.05}, {8, 300, 0})});
  spec.optimizer.iterations = 3;
  spec.optimizer.patience = 100;
  RenderCall images = Call({Pose({0, 0, 0}, {0, 300, 0})});
  images.kind = ImagesRequest{};
  absl::Notification gate, other_done, finished;
  absl::StatusOr<RenderResult> other;
  absl::StatusOr<RegistrationOutcome> outcome;
  Registrar(&engine, &targets_)
      .Start(
          spec,
          [&](const RegistrationStep& step) {
            if (step.iteration != 0) return;
            // Before the next iteration is submitted: hold the worker and
            // fill the queue with someone else's call.
            engine.Post([&] { gate.WaitForNotification(); }, [] {});
            engine.Submit(images, [&](absl::StatusOr<RenderResult> result) {
              other = std::move(result);
              other_done.Notify();
            });
          },
          [&](absl::StatusOr<RegistrationOutcome> result) {
            outcome = std::move(result);
            finished.Notify();
          });
  // The next iteration waits beside the other call, past the bound.
  while (engine.queue_depth() < 2 && !finished.HasBeenNotified())
    absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(engine.queue_depth(), 2);
  // A call that is not a continuation is still refused.
  absl::Status refused;
  engine.Submit(images, [&](const absl::StatusOr<RenderResult>& result) {
    refused = result.status();
  });
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted));
  gate.Notify();
  finished.WaitForNotification();
  other_done.WaitForNotification();
  ASSERT_THAT(outcome, IsOk());
  EXPECT_EQ(outcome->iterations, 3);
  EXPECT_THAT(other, IsOk());
}

TEST_F(RegistrationTest, EndsAbortedWhenAStepLeavesTheMeaningfulRanges) {
  RegistrationSpec spec;
  spec.call = Call({Pose({0.08, -0.06, 0.05}, {8, 300, 0})});
  spec.optimizer.lr_translation = 1e6;
  spec.optimizer.patience = 100;
  EXPECT_THAT(Run(spec),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("stepped out of range: poses[0].parameterized."
                                 "translation")));
}

TEST_F(RegistrationTest, RefusesATargetOfAnotherSize) {
  RegistrationSpec spec;
  spec.call = Call({Pose({0, 0, 0}, {0, 300, 0})});
  spec.call.intrinsics[0].height = 12;
  spec.call.intrinsics[0].width = 12;
  EXPECT_THAT(Run(spec), StatusIs(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("the detector is 12×12")));
  std::get<LossRequest>(spec.call.kind).target_id = std::string(64, 'a');
  EXPECT_THAT(Run(spec), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(RegistrationTest, RefusesBadSettingsNamingTheField) {
  const RegistrationSpec good{Call({Pose({0, 0, 0}, {0, 300, 0})}), {}, {1}};
  ASSERT_THAT(ValidateRegistration(good, Limits{}), IsOk());
  struct Case {
    const char* field;
    std::function<void(RegistrationSpec&)> spoil;
  };
  const std::vector<Case> cases{
      {"loss", [](auto& s) { s.call.kind = ImagesRequest{}; }},
      {"starts has 0", [](auto& s) { s.call.poses.clear(); }},
      {"starts has 65",
       [](auto& s) { s.call.poses.resize(65, s.call.poses[0]); }},
      {"starts[0] is not parameterized",
       [](auto& s) { s.call.poses[0] = geometry::Mat4d::Identity(); }},
      {"starts[0] is a rotation matrix",
       [](auto& s) {
         ParameterizedPoseSpec matrix;
         matrix.parameterization = geometry::Parameterization::kMatrix;
         matrix.rotation = {1, 0, 0, 0, 1, 0, 0, 0, 1};
         s.call.poses[0] = matrix;
       }},
      {"optimizer.iterations × scales × starts is 201000",
       [](auto& s) {
         s.call.poses.resize(67, s.call.poses[0]);
         s.call.poses.resize(60);
         s.optimizer.iterations = 3350;
       }},
      {"starts[1] has another parameterization",
       [](auto& s) {
         ParameterizedPoseSpec euler;
         s.call.poses.push_back(euler);
       }},
      {"one intrinsics",
       [](auto& s) { s.call.intrinsics.resize(2, s.call.intrinsics[0]); }},
      {"scales is empty", [](auto& s) { s.scales.clear(); }},
      {"scales[0] is 0", [](auto& s) { s.scales = {0}; }},
      {"scales[0] is 5", [](auto& s) { s.scales = {5}; }},
      {"scales[1] is 2",
       [](auto& s) {
         s.scales = {2, 2};
       }},
      {"optimizer.lr_rotation", [](auto& s) { s.optimizer.lr_rotation = 0; }},
      {"optimizer.lr_translation",
       [](auto& s) { s.optimizer.lr_translation = NAN; }},
      {"optimizer.iterations is 0",
       [](auto& s) { s.optimizer.iterations = 0; }},
      {"optimizer.iterations is 5001",
       [](auto& s) {
         s.scales = {2, 1};
         s.optimizer.iterations = 5001;
       }},
      {"optimizer.stop_at", [](auto& s) { s.optimizer.stop_at = INFINITY; }},
      {"optimizer.patience", [](auto& s) { s.optimizer.patience = 0; }},
      {"optimizer.plateau_factor",
       [](auto& s) { s.optimizer.plateau_factor = 1; }},
      {"optimizer.tolerance", [](auto& s) { s.optimizer.tolerance = -1; }},
      {"optimizer.max_reductions",
       [](auto& s) { s.optimizer.max_reductions = 101; }},
      {"options.n_samples", [](auto& s) { s.call.n_samples = 1; }},
  };
  for (const Case& c : cases) {
    RegistrationSpec spec = good;
    c.spoil(spec);
    EXPECT_THAT(
        ValidateRegistration(spec, Limits{}),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field)))
        << c.field;
  }
}

TEST(DownsampleTargetTest, AveragesEachBlock) {
  Target target;
  target.id = "t";
  target.height = 2;
  target.width = 4;
  target.pixels = {1, 2, 3, 4, 5, 6, 7, 8};
  const Target small = DownsampleTarget(target, 2);
  EXPECT_EQ(small.height, 1);
  EXPECT_EQ(small.width, 2);
  EXPECT_EQ(small.pixels, (std::vector<float>{3.5f, 5.5f}));
}

}  // namespace
}  // namespace drr::server
