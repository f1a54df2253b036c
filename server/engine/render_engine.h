// The render engine: validates render calls, queues them fairly, gathers
// compatible calls into batched executor launches and runs them from its own
// worker threads, so gRPC's callback threads never render; answers go out
// on a thread of their own. Knows nothing of gRPC.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kernels/executor.h"
#include "server/engine/call_queue.h"
#include "server/engine/callback_thread.h"
#include "server/engine/limits.h"
#include "server/engine/memory_budget.h"
#include "server/engine/render_call.h"
#include "server/engine/target_store.h"
#include "server/engine/volume_store.h"

namespace drr::server {

// Hears what the engine does, for metrics. Called from engine threads; must
// not block.
class EngineListener {
 public:
  virtual ~EngineListener() = default;
  // One executor launch of `poses` poses gathered from `calls` calls.
  virtual void OnLaunch(int calls, int poses) = 0;
  // A call answered unrendered, or stopped while it rendered, with `code`:
  // ABORTED (superseded), DEADLINE_EXCEEDED or CANCELLED.
  virtual void OnDropped(absl::StatusCode code) = 0;
};

// How the engine runs.
struct EngineOptions {
  // Worker threads, each with a workspace of its own (on CUDA, a stream, so
  // that one worker's copies overlap another's kernels); 0 = two on CUDA,
  // one on the CPU (whose one launch already uses every core).
  int workers = 0;
  // Most poses gathered into one launch (a larger call runs alone).
  int max_batch_poses = 64;
  // How long a launch that is not full waits for more compatible calls,
  // from the arrival of its first call.
  std::chrono::microseconds batch_delay{0};
  // Hears launches and dropped calls; may be nullptr.
  EngineListener* listener = nullptr;
  // Holds each accepted call's images and gradients until it is answered;
  // a call that does not fit is refused. May be nullptr (no budget).
  MemoryBudget* budget = nullptr;
};

// Runs render calls on one executor, a bounded fair queue in front of it.
class RenderEngine {
 public:
  // Receives the outcome of a submitted call, on the engine's answer thread
  // (or on the submitting thread when the call is refused at once).
  using Callback = std::function<void(absl::StatusOr<RenderResult>)>;

  // Renders volumes of `store` on `executor`, losses against `targets` (all
  // outlive the engine).
  RenderEngine(kernels::Executor* executor, const VolumeStore* store,
               const TargetStore* targets, const Limits& limits,
               const EngineOptions& options = {});
  // Fails queued calls with UNAVAILABLE, joins the workers, then sends the
  // answers still waiting.
  ~RenderEngine();
  RenderEngine(const RenderEngine&) = delete;
  RenderEngine& operator=(const RenderEngine&) = delete;

  // Checks `call` and queues it; `done` runs exactly once with the result.
  // A call for a volume only on disk waits for a worker to load it first.
  // A malformed call, an unknown volume or a full queue is answered at once;
  // a call whose deadline passes or whose caller gives up is answered
  // DEADLINE_EXCEEDED or CANCELLED, unrendered if it still waits, stopped
  // early if it runs; a LATEST-stream call superseded while it waits is
  // answered ABORTED.
  void Submit(RenderCall call, Callback done);

  // Queues other engine work (storing an uploaded volume, say) ahead of the
  // renders, outside the render queue's bound: `work` runs on a worker, or
  // `abandon` runs instead when the engine shuts down first.
  void Post(std::function<void()> work, std::function<void()> abandon);

  // Renders `call` on the calling thread, in a workspace of its own.
  absl::StatusOr<RenderResult> Render(const RenderCall& call) const;

  // Renders `call` on the calling thread in `workspace` (one of the
  // executor's, not used by any other call meanwhile).
  absl::StatusOr<RenderResult> Render(const RenderCall& call,
                                      kernels::Workspace& workspace) const;

  // Calls waiting in the queue.
  int queue_depth() const;

  // OK when every worker has its workspace (on CUDA, its stream); else why
  // not. A server must not start on an engine that is not OK.
  const absl::Status& status() const { return status_; }

 private:
  // What a worker thread owns: the workspace of its launches (or why it has
  // none) and the host buffer of their images, reused from launch to launch.
  struct Worker {
    std::unique_ptr<kernels::Workspace> workspace;
    absl::Status status;
    std::vector<float> images;
  };

  // Work posted with Post.
  struct PostedWork {
    std::function<void()> run;
    std::function<void()> abandon;
  };

  // Checks `call` (loading its volume, if it is only on disk) and queues
  // it, as Submit says.
  void Enqueue(RenderCall call, Callback done);

  // The refusal of a call when the queue is full.
  absl::Status QueueFull() const;

  // `call` checked against the limits and its volume, ready to queue.
  absl::StatusOr<QueuedCall> Prepare(RenderCall call) const;

  void WorkerLoop(Worker& worker);

  // What a launch starting now is expected to take per ray sample.
  LaunchEstimate Estimate() const;
  // Updates the estimate with a launch of `ray_samples` that took `seconds`.
  void LearnLaunchTime(double seconds, int64_t ray_samples) const;

  // Adds compatible calls to `batch` as they arrive, until it is full or its
  // first call has waited batch_delay.
  // Superseded calls go to `dropped`.
  void FillBatch(std::vector<QueuedCall>* batch,
                 std::vector<DroppedCall>* dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // What a call of a launch that stopped with `status` is answered: why its
  // caller no longer wants it, UNAVAILABLE when the engine shuts down; other
  // failures stand as they are.
  absl::Status WhyStopped(const RenderCall& call, absl::Status status) const;

  // Answers `dropped` calls on the answer thread.
  void AnswerDropped(std::vector<DroppedCall> dropped);

  // Renders `batch` (calls of one launch key) in one launch, in `workspace`
  // with `images` as its output buffer, then finishes each call: the outcome
  // of each, in order. `taken` is when the batch left the queue.
  std::vector<absl::StatusOr<RenderResult>> RunBatch(
      const std::vector<QueuedCall>& batch, kernels::Workspace& workspace,
      std::vector<float>& images,
      std::chrono::steady_clock::time_point taken) const;

  // One call's result from its images of the launch (`rendered`, in the
  // launch's channels): channel selection, exp, then its gradients, loss
  // or Jacobian from `geometry` (its poses).
  absl::StatusOr<RenderResult> FinishCall(
      const QueuedCall& queued, const float* rendered,
      const kernels::ResidentVolume& resident,
      const kernels::PoseGeometry* geometry,
      kernels::Workspace& workspace) const;

  // dL/dθ and dL/d rt_inv of every pose of `call` for dL/d(images) =
  // `upstream`, where the images are `result` (rendered from `resident` with
  // `geometry` and `settings`).
  absl::StatusOr<std::vector<PoseGradient>> PoseGradients(
      const RenderCall& call, const StoredVolume& volume,
      const kernels::ResidentVolume& resident,
      const kernels::PoseGeometry* geometry,
      const kernels::RenderSettings& settings, const RenderResult& result,
      const std::vector<float>& upstream, kernels::Workspace& workspace) const;

  // Adds dI/dθ of every pixel of every image of `result` to its gradients.
  absl::Status Jacobians(const RenderCall& call, const StoredVolume& volume,
                         const kernels::ResidentVolume& resident,
                         const kernels::PoseGeometry* geometry,
                         const kernels::RenderSettings& settings,
                         kernels::Workspace& workspace,
                         RenderResult* result) const;

  // The loss of each image of `result` against the call's target, and its
  // gradient with respect to the images (as an upstream for PoseGradients).
  absl::Status Losses(const RenderCall& call, RenderResult* result,
                      std::vector<float>* upstream) const;

  kernels::Executor* const executor_;
  const VolumeStore* const store_;
  const TargetStore* const targets_;
  const Limits limits_;
  const EngineOptions options_;
  absl::Status status_;
  // Calls submitted so far: each call's arrival number.
  std::atomic<uint64_t> submitted_{0};
  // Calls waiting for a worker to load their volume from disk.
  std::atomic<int> loads_waiting_{0};
  // Seconds per ray sample of recent launches (0 before the first).
  mutable std::atomic<double> seconds_per_ray_sample_{0};
  // Set first thing on destruction: running launches stop.
  std::atomic<bool> shutting_down_{false};
  mutable absl::Mutex mutex_;
  CallQueue queue_ ABSL_GUARDED_BY(mutex_);
  std::deque<PostedWork> posted_ ABSL_GUARDED_BY(mutex_);
  // Calls queued so far, to wake a worker filling a batch.
  int64_t arrivals_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> workers_;
  // Declared last, so destroyed first: the answers still waiting once the
  // workers have joined go out while the queue and its lock still exist.
  CallbackThread answers_;
};

}  // namespace drr::server
