#include "server/engine/render_engine.h"

#include <cmath>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "io/phantom.h"
#include "kernels/pose_geometry.h"
#include "kernels/volume_view.h"
#include "tests/kernels/test_volumes.h"
#include "tests/status_matchers.h"
#include "tests/temp_dir.h"

namespace drr::server {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::ScopedTempDir;
using ::drr::testing::StatusIs;

// The phantom with labels: class = (i / 32), 4 classes.
HostVolume LabelledPhantom() {
  HostVolume phantom = MakeThoraxPhantom();
  phantom.header.label_type = VoxelType::kUInt8;
  phantom.labels.resize(phantom.header.voxels());
  for (size_t v = 0; v < phantom.labels.size(); ++v) {
    phantom.labels[v] = static_cast<char>((v % phantom.header.width) / 32);
  }
  return phantom;
}

class RenderEngineTest : public ::testing::Test {
 protected:
  RenderEngineTest()
      : executor_(kernels::MakeCpuExecutor(2)), store_(executor_.get(), 4) {
    HostVolume phantom = MakeThoraxPhantom();
    id_ = ContentDigest(phantom.header, phantom.voxels);
    header_ = phantom.header;
    mu_ = AttenuationVolume(phantom.header, phantom.voxels, {});
    EXPECT_THAT(store_.Insert(id_, std::move(phantom)), IsOk());
    HostVolume labelled = LabelledPhantom();
    labelled_id_ =
        ContentDigest(labelled.header, labelled.voxels, labelled.labels);
    EXPECT_THAT(store_.Insert(labelled_id_, std::move(labelled)), IsOk());
  }

  RenderCall ReferenceCall(int height, int width) const {
    RenderCall call;
    call.volume_id = id_;
    call.intrinsics[0].height = height;
    call.intrinsics[0].width = width;
    call.intrinsics[0].delx = call.intrinsics[0].dely = 2.0 * 200 / width;
    ParameterizedPoseSpec pose;
    pose.translation = {0, 850, 0};
    call.poses.push_back(pose);
    pose.rotation = {90, 0, 0};
    call.poses.push_back(pose);
    return call;
  }

  absl::StatusOr<RenderResult> Render(const RenderCall& call) {
    RenderEngine engine(executor_.get(), &store_, nullptr, Limits{});
    return engine.Render(call);
  }

  std::unique_ptr<kernels::Executor> executor_;
  VolumeStore store_;
  std::string id_, labelled_id_;
  VolumeHeader header_;
  std::vector<float> mu_;
};

TEST_F(RenderEngineTest, RendersEachPoseAsTheKernelsDo) {
  const RenderCall call = ReferenceCall(40, 50);
  absl::StatusOr<RenderResult> result = Render(call);
  ASSERT_THAT(result, IsOk());
  ASSERT_EQ(result->images.size(), 2u * 40 * 50);
  const kernels::VolumeView<float> view{mu_.data(), 128, 128, 96};
  const geometry::Mat4d world_to_voxel =
      *geometry::InvertAffine(header_.affine);
  const kernels::RaySettings s{40, 50, 500};
  for (int p = 0; p < 2; ++p) {
    const kernels::PoseGeometry g = kernels::MakePoseGeometry(
        world_to_voxel, ResolvePose(call.poses[p], VolumeCenter(header_)),
        call.intrinsics[0]);
    for (int v = 0; v < 40; v += 7) {
      for (int u = 0; u < 50; u += 7) {
        EXPECT_EQ(result->images[(p * 40 + v) * 50 + u],
                  kernels::testing::LineIntegral(view, g, s, v, u));
      }
    }
  }
  // The body attenuates: the centre of the AP view is far from zero.
  EXPECT_GT(result->images[20 * 50 + 25], 1.0f);
}

TEST_F(RenderEngineTest, PerPoseIntrinsicsRenderEachPoseWithItsOwnCamera) {
  RenderCall biplane = ReferenceCall(32, 32);
  geometry::Intrinsics second = biplane.intrinsics[0];
  second.sdd = 900;
  second.x0 = 20;
  biplane.intrinsics = {biplane.intrinsics[0], second};
  absl::StatusOr<RenderResult> both = Render(biplane);
  ASSERT_THAT(both, IsOk());
  RenderCall alone = ReferenceCall(32, 32);
  alone.poses.erase(alone.poses.begin());
  alone.intrinsics = {second};
  absl::StatusOr<RenderResult> single = Render(alone);
  ASSERT_THAT(single, IsOk());
  EXPECT_TRUE(std::equal(single->images.begin(), single->images.end(),
                         both->images.begin() + 32 * 32));
}

TEST_F(RenderEngineTest, EveryAcceptedExtremeRendersFinitePixels) {
  std::vector<RenderCall> extremes;
  RenderCall call = ReferenceCall(8, 8);
  call.intrinsics[0].sdd = kMaxMillimetres;
  call.intrinsics[0].delx = call.intrinsics[0].dely = kMaxMillimetres;
  std::get<ParameterizedPoseSpec>(call.poses[0]).translation = {
      kMaxMillimetres, -kMaxMillimetres, kMaxMillimetres};
  extremes.push_back(call);
  call = ReferenceCall(8, 8);
  call.intrinsics[0].sdd = kMinSpacingMillimetres;
  call.intrinsics[0].delx = call.intrinsics[0].dely = kMinSpacingMillimetres;
  call.intrinsics[0].x0 = kMaxMillimetres;
  call.intrinsics[0].y0 = -kMaxMillimetres;
  extremes.push_back(call);
  call = ReferenceCall(8, 8);
  call.attenuation = {kMaxAttenuationPerMm, kMaxAttenuationPerMm, 1.0};
  extremes.push_back(call);
  // μ of a 1000 HU voxel ≈ 1e6 per mm: beyond float16's range.
  call.attenuation = {0.0f, kMaxAttenuationPerMm, 1.0};
  extremes.push_back(call);
  call = ReferenceCall(8, 8);
  geometry::Mat4d stretched = geometry::Mat4d::Identity();
  for (int i = 0; i < 3; ++i) stretched.m[i][i] = kMaxMillimetres;
  stretched.m[1][3] = -kMaxMillimetres;
  call.poses[0] = stretched;
  extremes.push_back(call);
  for (size_t e = 0; e < extremes.size(); ++e) {
    for (auto projector :
         {kernels::Projector::kTrilinear, kernels::Projector::kSiddon}) {
      for (auto output : {OutputKind::kLineIntegral, OutputKind::kMip}) {
        for (auto storage :
             {kernels::StorageType::kFloat32, kernels::StorageType::kFloat16,
              kernels::StorageType::kBFloat16}) {
          RenderCall c = extremes[e];
          c.projector = projector;
          c.output = output;
          c.volume_storage = storage;
          ASSERT_THAT(ValidateRenderCall(c, Limits{}), IsOk()) << e;
          absl::StatusOr<RenderResult> r = Render(c);
          ASSERT_THAT(r, IsOk()) << e;
          EXPECT_TRUE(std::all_of(r->images.begin(), r->images.end(),
                                  [](float v) { return std::isfinite(v); }))
              << "extreme " << e << ", projector " << int(projector)
              << ", output " << int(output) << ", storage " << int(storage);
        }
      }
    }
  }
}

TEST_F(RenderEngineTest, AttenuationParametersApplyWithoutReupload) {
  RenderCall call = ReferenceCall(16, 16);
  absl::StatusOr<RenderResult> defaults = Render(call);
  // Doubling μ_water and μ_bone doubles every μ, so every line integral.
  call.attenuation.mu_water *= 2;
  call.attenuation.mu_bone *= 2;
  absl::StatusOr<RenderResult> doubled = Render(call);
  ASSERT_THAT(defaults, IsOk());
  ASSERT_THAT(doubled, IsOk());
  for (size_t i = 0; i < defaults->images.size(); ++i) {
    EXPECT_NEAR(doubled->images[i], 2 * defaults->images[i],
                1e-5f * defaults->images[i] + 1e-7f);
  }
}

TEST_F(RenderEngineTest, LabelsGiveAChannelPerClassThatSumsToTheTotal) {
  RenderCall call = ReferenceCall(16, 16);
  call.volume_id = labelled_id_;
  absl::StatusOr<RenderResult> per_class = Render(call);
  ASSERT_THAT(per_class, IsOk());
  EXPECT_EQ(per_class->channels, 4);
  call.channels.sum = true;
  absl::StatusOr<RenderResult> summed = Render(call);
  ASSERT_THAT(summed, IsOk());
  EXPECT_EQ(summed->channels, 1);
  const int plane = 16 * 16;
  for (int b = 0; b < 2; ++b) {
    for (int px = 0; px < plane; ++px) {
      float total = 0;
      for (int c = 0; c < 4; ++c)
        total += per_class->images[(b * 4 + c) * plane + px];
      const float expected = summed->images[b * plane + px];
      EXPECT_NEAR(total, expected, 1e-5f * expected + 1e-6f);
    }
  }
  call.channels = {false, {3, 1}};
  absl::StatusOr<RenderResult> selected = Render(call);
  ASSERT_THAT(selected, IsOk());
  ASSERT_EQ(selected->channels, 2);
  for (int px = 0; px < plane; ++px) {
    EXPECT_EQ(selected->images[px], per_class->images[3 * plane + px]);
    EXPECT_EQ(selected->images[plane + px], per_class->images[1 * plane + px]);
  }
  call.channels = {false, {4}};
  EXPECT_THAT(Render(call), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RenderEngineTest, OutputTransformsAndDtypes) {
  RenderCall call = ReferenceCall(16, 16);
  absl::StatusOr<RenderResult> line = Render(call);
  call.output = OutputKind::kExp;
  call.image_dtype = kernels::StorageType::kFloat16;
  absl::StatusOr<RenderResult> intensity = Render(call);
  ASSERT_THAT(line, IsOk());
  ASSERT_THAT(intensity, IsOk());
  EXPECT_EQ(intensity->dtype, kernels::StorageType::kFloat16);
  for (size_t i = 0; i < line->images.size(); ++i) {
    EXPECT_NEAR(intensity->images[i], std::exp(-line->images[i]), 1e-6f);
  }
  call.output = OutputKind::kMip;
  absl::StatusOr<RenderResult> mip = Render(call);
  ASSERT_THAT(mip, IsOk());
  for (float v : mip->images) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LE(v, 0.0192f + (0.0573f - 0.0192f) * 0.7f +
                     1e-6f);  // densest tissue: 700 HU
  }
}

TEST_F(RenderEngineTest, SubmitAnswersOnAWorkerAndUnknownVolumesAreNotFound) {
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{});
  std::promise<absl::StatusOr<RenderResult>> ok, missing;
  engine.Submit(ReferenceCall(8, 8),
                [&](absl::StatusOr<RenderResult> r) { ok.set_value(r); });
  RenderCall unknown = ReferenceCall(8, 8);
  unknown.volume_id = "feedbeef";
  engine.Submit(unknown,
                [&](absl::StatusOr<RenderResult> r) { missing.set_value(r); });
  EXPECT_THAT(ok.get_future().get(), IsOk());
  const absl::Status s = missing.get_future().get().status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_NE(s.message().find("feedbeef"), absl::string_view::npos);
}

// The outcome of one Engine::Submit, to wait for.
class Answer {
 public:
  // The callback to Submit with.
  RenderEngine::Callback Callback() {
    return [this](absl::StatusOr<RenderResult> result) {
      status_ = result.status();
      done_.Notify();
    };
  }
  // The status the engine answered with, once it has.
  const absl::Status& Wait() {
    done_.WaitForNotification();
    return status_;
  }

 private:
  absl::Notification done_;
  absl::Status status_;
};

// Records the threads that loaded volumes from disk.
class LoadThreads : public CacheListener {
 public:
  void OnCacheEvent(CacheEvent event, int) override {
    if (event != CacheEvent::kLoad) return;
    absl::MutexLock lock(&mutex_);
    threads_.push_back(std::this_thread::get_id());
  }
  std::vector<std::thread::id> threads() const {
    absl::MutexLock lock(&mutex_);
    return threads_;
  }

 private:
  mutable absl::Mutex mutex_;
  std::vector<std::thread::id> threads_;
};

TEST_F(RenderEngineTest, AVolumeOnlyOnDiskIsLoadedOnAWorkerNotTheCaller) {
  ScopedTempDir dir;
  absl::StatusOr<std::unique_ptr<DiskArchive>> archive =
      DiskArchive::Open(dir.path());
  ASSERT_THAT(archive, IsOk());
  HostVolume phantom = MakeThoraxPhantom();
  ASSERT_THAT((*archive)->PutVolume(id_, phantom), IsOk());
  LoadThreads loads;
  VolumeStore restarted(executor_.get(), 4, 256, archive->get(), nullptr,
                        &loads);
  ASSERT_TRUE(restarted.OnDiskOnly(id_));
  RenderEngine engine(executor_.get(), &restarted, nullptr, Limits{});
  Answer answer;
  engine.Submit(ReferenceCall(8, 8), answer.Callback());
  EXPECT_THAT(answer.Wait(), IsOk());
  EXPECT_FALSE(restarted.OnDiskOnly(id_));
  ASSERT_EQ(loads.threads().size(), 1u);
  EXPECT_NE(loads.threads()[0], std::this_thread::get_id());
}

TEST_F(RenderEngineTest, ACallWhoseDeadlinePassedInTheQueueIsNotRendered) {
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{});
  // The one worker is busy with a large render while the second call's
  // deadline passes.
  RenderCall slow = ReferenceCall(256, 256);
  slow.n_samples = 4000;
  RenderCall hurried = ReferenceCall(8, 8);
  hurried.deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
  Answer slow_answer, hurried_answer;
  engine.Submit(std::move(slow), slow_answer.Callback());
  engine.Submit(std::move(hurried), hurried_answer.Callback());
  EXPECT_THAT(slow_answer.Wait(), IsOk());
  EXPECT_THAT(hurried_answer.Wait(),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       ::testing::HasSubstr("not rendered")));
  // A deadline still ahead renders as usual.
  RenderCall relaxed = ReferenceCall(8, 8);
  relaxed.deadline = std::chrono::steady_clock::now() + std::chrono::hours(1);
  Answer relaxed_answer;
  engine.Submit(std::move(relaxed), relaxed_answer.Callback());
  EXPECT_THAT(relaxed_answer.Wait(), IsOk());
}

TEST_F(RenderEngineTest, ACallItsCallerGaveUpOnIsNotRendered) {
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{});
  RenderCall call = ReferenceCall(8, 8);
  call.cancelled = std::make_shared<std::atomic<bool>>(true);
  Answer answer;
  engine.Submit(std::move(call), answer.Callback());
  EXPECT_THAT(answer.Wait(), StatusIs(absl::StatusCode::kCancelled,
                                      ::testing::HasSubstr("not rendered")));
}

TEST_F(RenderEngineTest, AFullQueueRefusesAtOnce) {
  Limits limits;
  limits.max_queued_requests = 0;
  RenderEngine engine(executor_.get(), &store_, nullptr, limits);
  absl::Status status;
  engine.Submit(ReferenceCall(8, 8),
                [&](absl::StatusOr<RenderResult> r) { status = r.status(); });
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted));
}

// Records what the engine tells its listener.
class RecordingListener final : public EngineListener {
 public:
  void OnLaunch(int calls, int poses) override {
    absl::MutexLock lock(&mutex_);
    launches_.push_back({calls, poses});
  }
  void OnDropped(absl::StatusCode code) override {
    absl::MutexLock lock(&mutex_);
    dropped_.push_back(code);
  }
  std::vector<std::pair<int, int>> launches() const {
    absl::MutexLock lock(&mutex_);
    return launches_;
  }
  std::vector<absl::StatusCode> dropped() const {
    absl::MutexLock lock(&mutex_);
    return dropped_;
  }

 private:
  mutable absl::Mutex mutex_;
  std::vector<std::pair<int, int>> launches_;
  std::vector<absl::StatusCode> dropped_;
};

// Holds an engine's one worker until released, so that calls queue up.
class WorkerGate {
 public:
  explicit WorkerGate(RenderEngine& engine) {
    engine.Post([this] { open_.WaitForNotification(); }, [] {});
  }
  ~WorkerGate() { Open(); }
  void Open() {
    if (!open_.HasBeenNotified()) open_.Notify();
  }

 private:
  absl::Notification open_;
};

// The full outcome of one Engine::Submit, to wait for.
class Outcome {
 public:
  RenderEngine::Callback Callback() {
    return [this](absl::StatusOr<RenderResult> result) {
      result_ = std::move(result);
      done_.Notify();
    };
  }
  const absl::StatusOr<RenderResult>& Wait() {
    done_.WaitForNotification();
    return result_;
  }

 private:
  absl::Notification done_;
  absl::StatusOr<RenderResult> result_;
};

TEST_F(RenderEngineTest, CompatibleCallsOfSeveralClientsShareOneLaunch) {
  RecordingListener listener;
  EngineOptions options;
  options.listener = &listener;
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{}, options);
  std::vector<RenderCall> calls;
  for (int i = 0; i < 4; ++i) {
    RenderCall call = ReferenceCall(24, 20);
    call.scheduling.client = "client " + std::to_string(i);
    std::get<ParameterizedPoseSpec>(call.poses[1]).rotation = {10.0 * i, 0, 0};
    if (i == 1) call.output = OutputKind::kExp;  // finished per call
    calls.push_back(call);
  }
  std::vector<Outcome> outcomes(calls.size());
  {
    WorkerGate gate(engine);
    for (size_t i = 0; i < calls.size(); ++i) {
      engine.Submit(calls[i], outcomes[i].Callback());
    }
  }
  for (Outcome& outcome : outcomes) ASSERT_THAT(outcome.Wait(), IsOk());
  EXPECT_EQ(listener.launches(), (std::vector<std::pair<int, int>>{{4, 8}}));
  for (size_t i = 0; i < calls.size(); ++i) {
    const absl::StatusOr<RenderResult>& batched = outcomes[i].Wait();
    EXPECT_EQ(batched->launch_poses, 8);
    absl::StatusOr<RenderResult> alone = engine.Render(calls[i]);
    ASSERT_THAT(alone, IsOk());
    EXPECT_EQ(batched->images, alone->images) << i;
  }
}

TEST_F(RenderEngineTest, SeveralWorkersRenderWhatOneWouldRender) {
  EngineOptions options;
  options.workers = 3;
  options.max_batch_poses = 2;  // one call per launch: every worker busy
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{}, options);
  ASSERT_THAT(engine.status(), IsOk());
  std::vector<RenderCall> calls;
  for (int i = 0; i < 9; ++i) {
    RenderCall call = ReferenceCall(16, 12);
    std::get<ParameterizedPoseSpec>(call.poses[0]).rotation = {7.0 * i, 0, 0};
    call.scheduling.client = "client " + std::to_string(i % 3);
    calls.push_back(call);
  }
  std::vector<Outcome> outcomes(calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    engine.Submit(calls[i], outcomes[i].Callback());
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    const absl::StatusOr<RenderResult>& result = outcomes[i].Wait();
    ASSERT_THAT(result, IsOk());
    EXPECT_EQ(result->images, engine.Render(calls[i])->images) << i;
  }
}

TEST_F(RenderEngineTest, ABatchWaitsForMoreCallsUntilItIsFull) {
  RecordingListener listener;
  EngineOptions options;
  options.listener = &listener;
  options.max_batch_poses = 4;
  // Far longer than the test: the batch leaves because it is full.
  options.batch_delay = std::chrono::seconds(60);
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{}, options);
  Outcome first, second;
  engine.Submit(ReferenceCall(8, 8), first.Callback());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  engine.Submit(ReferenceCall(8, 8), second.Callback());
  ASSERT_THAT(first.Wait(), IsOk());
  ASSERT_THAT(second.Wait(), IsOk());
  EXPECT_EQ(first.Wait()->launch_poses, 4);
  EXPECT_EQ(listener.launches(), (std::vector<std::pair<int, int>>{{2, 4}}));
}

TEST_F(RenderEngineTest, ALatestStreamFrameSupersedesTheOneWaiting) {
  RecordingListener listener;
  EngineOptions options;
  options.listener = &listener;
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{}, options);
  std::vector<Outcome> frames(3);
  {
    WorkerGate gate(engine);
    for (uint64_t f = 0; f < 3; ++f) {
      RenderCall call = ReferenceCall(8, 8);
      call.scheduling.latest_stream = 11;
      call.scheduling.frame_id = 40 + f;
      engine.Submit(std::move(call), frames[f].Callback());
    }
  }
  EXPECT_THAT(frames[0].Wait().status(),
              StatusIs(absl::StatusCode::kAborted, "superseded by frame 41"));
  EXPECT_THAT(frames[1].Wait().status(),
              StatusIs(absl::StatusCode::kAborted, "superseded by frame 42"));
  EXPECT_THAT(frames[2].Wait(), IsOk());
  EXPECT_EQ(listener.dropped(),
            (std::vector<absl::StatusCode>{absl::StatusCode::kAborted,
                                           absl::StatusCode::kAborted}));
}

// A render of about a second or more on this machine, so that it is still
// running when its caller gives up.
RenderCall LongRender(RenderCall call) {
  call.intrinsics[0].height = call.intrinsics[0].width = 512;
  call.intrinsics[0].delx = call.intrinsics[0].dely = 0.8;
  call.n_samples = 4000;
  return call;
}

TEST_F(RenderEngineTest, ARunningCallStopsWhenItsCallerGivesUp) {
  RecordingListener listener;
  EngineOptions options;
  options.listener = &listener;
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{}, options);
  RenderCall call = LongRender(ReferenceCall(8, 8));
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  call.cancelled = cancelled;
  Outcome outcome;
  engine.Submit(std::move(call), outcome.Callback());
  while (listener.launches().empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  cancelled->store(true);
  EXPECT_THAT(outcome.Wait().status(),
              StatusIs(absl::StatusCode::kCancelled,
                       ::testing::HasSubstr("while it rendered")));
  EXPECT_EQ(listener.dropped(),
            std::vector<absl::StatusCode>{absl::StatusCode::kCancelled});

  // Its deadline passing stops it the same way.
  RenderCall hurried = LongRender(ReferenceCall(8, 8));
  hurried.deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  Outcome late;
  engine.Submit(std::move(hurried), late.Callback());
  const absl::Status status = late.Wait().status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDeadlineExceeded));
  // (Unless a very busy machine kept the idle worker from starting it in
  // time, in which case it expired in the queue.)
  if (listener.launches().size() == 2) {
    EXPECT_THAT(status.message(), ::testing::HasSubstr("while it rendered"));
  }
}

TEST_F(RenderEngineTest, ACallWhoseDeadlinePassesInASharedLaunchGetsNoImages) {
  RecordingListener listener;
  EngineOptions options;
  options.listener = &listener;
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{}, options);
  Outcome hurried, patient;
  {
    // Both queue behind the gate, then share one launch of about a second.
    WorkerGate gate(engine);
    RenderCall call = LongRender(ReferenceCall(8, 8));
    call.deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(400);
    engine.Submit(std::move(call), hurried.Callback());
    engine.Submit(LongRender(ReferenceCall(8, 8)), patient.Callback());
  }
  const absl::Status status = hurried.Wait().status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(patient.Wait(), IsOk());
  // (Unless a very busy machine kept the worker from starting the launch
  // within 400 ms, in which case the hurried call expired in the queue.)
  if (listener.launches() == std::vector<std::pair<int, int>>{{2, 4}}) {
    EXPECT_THAT(status.message(),
                ::testing::HasSubstr("while it rendered; its images were "
                                     "dropped"));
  }
}

}  // namespace
}  // namespace drr::server
