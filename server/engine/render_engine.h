// The render engine: validates render calls, resolves poses against the
// stored volume and runs them on the executor from its own worker threads,
// so gRPC's callback threads never render. Knows nothing of gRPC.
#pragma once

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
#include "server/engine/limits.h"
#include "server/engine/render_call.h"
#include "server/engine/target_store.h"
#include "server/engine/volume_store.h"

namespace drr::server {

// Runs render calls on one executor, a bounded queue in front of it.
class RenderEngine {
 public:
  // Receives the outcome of a submitted call, on an engine worker thread.
  using Callback = std::function<void(absl::StatusOr<RenderResult>)>;

  // Renders volumes of `store` on `executor`, losses against `targets` (all
  // outlive the engine) with `workers` threads taking calls from the queue.
  RenderEngine(kernels::Executor* executor, const VolumeStore* store,
               const TargetStore* targets, const Limits& limits, int workers);
  // Fails queued calls with UNAVAILABLE and joins the workers.
  ~RenderEngine();
  RenderEngine(const RenderEngine&) = delete;
  RenderEngine& operator=(const RenderEngine&) = delete;

  // Queues `call`; `done` runs exactly once with the result, with
  // RESOURCE_EXHAUSTED at once when the queue is full, or, unrendered, with
  // DEADLINE_EXCEEDED or CANCELLED when the call's deadline passes or its
  // caller gives up while it waits.
  void Submit(RenderCall call, Callback done);

  // Queues other engine work (storing an uploaded volume, say) behind the
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
  // What a worker thread owns: the workspace of its renders, or why it has
  // none.
  struct Worker {
    std::unique_ptr<kernels::Workspace> workspace;
    absl::Status status;
  };

  // Queued work: `run` gets how long the task waited and the worker running
  // it; `abandon` tells its submitter that it will not run.
  struct Task {
    std::function<void(double queued_seconds, Worker& worker)> run;
    std::function<void()> abandon;
    std::chrono::steady_clock::time_point enqueued;
  };

  void WorkerLoop(Worker& worker);

  // dL/dθ and dL/d rt_inv of every pose of `call` for dL/d(images) =
  // `upstream`, where the images are `result` (rendered from `resident` with
  // `geometry` and `settings`).
  absl::StatusOr<std::vector<PoseGradient>> PoseGradients(
      const RenderCall& call, const StoredVolume& volume,
      const kernels::ResidentVolume& resident,
      const std::vector<kernels::PoseGeometry>& geometry,
      const kernels::RenderSettings& settings, const RenderResult& result,
      const std::vector<float>& upstream, kernels::Workspace& workspace) const;

  // Adds dI/dθ of every pixel of every image of `result` to its gradients.
  absl::Status Jacobians(const RenderCall& call, const StoredVolume& volume,
                         const kernels::ResidentVolume& resident,
                         const std::vector<kernels::PoseGeometry>& geometry,
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
  absl::Status status_;
  mutable absl::Mutex mutex_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace drr::server
