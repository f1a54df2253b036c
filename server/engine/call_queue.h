// The render queue: calls waiting for the renderer, served by priority class
// and, within a class, client by client in turn, and taken out in batches of
// calls that can share one executor launch.
#pragma once

#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/attenuation.h"
#include "kernels/executor.h"
#include "server/engine/memory_budget.h"
#include "server/engine/render_call.h"
#include "server/engine/volume_store.h"

namespace drr::server {

// What calls batched into one launch must share: the volume, how it is made
// resident, and the settings of the launch. Calls may differ in poses,
// intrinsics (of the same size), output transform, channel selection and
// what they do with the images (gradients, losses).
struct LaunchKey {
  std::string volume_id;
  kernels::AttenuationParams attenuation;
  kernels::Residency residency;
  kernels::RenderSettings settings;
};

// True when calls with launch keys `a` and `b` can share one launch.
bool SameLaunch(const LaunchKey& a, const LaunchKey& b);

// A call the engine accepted, waiting for the renderer.
struct QueuedCall {
  RenderCall call;
  // The volume it renders, held while the call waits.
  std::shared_ptr<const StoredVolume> volume;
  LaunchKey launch;
  // Receives the outcome, exactly once.
  std::function<void(absl::StatusOr<RenderResult>)> done;
  std::chrono::steady_clock::time_point enqueued;
  // Its share of the memory budget, given back once it is answered.
  MemoryHold held;

  int poses() const { return static_cast<int>(call.poses.size()); }
  // The steps each of its rays takes: its samples, or for Siddon (whose walk
  // ignores the sample count) the most voxels a ray can cross, the volume's
  // width + height + depth.
  int64_t steps_per_ray() const;
  // Poses × pixels × steps per ray: the work of its launch share.
  int64_t ray_samples() const;
};

// How long a launch is expected to take, from the launches so far, so that a
// batch is not grown past what its calls' deadlines allow.
struct LaunchEstimate {
  // Seconds per ray sample; 0 while unknown (then nothing is held back).
  double seconds_per_ray_sample = 0;
  // When the launch would start.
  std::chrono::steady_clock::time_point start;

  // Whether a launch of `ray_samples` is expected to end by `deadline` (if
  // any).
  bool EndsBy(
      int64_t ray_samples,
      std::optional<std::chrono::steady_clock::time_point> deadline) const;
};

// A call taken out of the queue unrendered, and the status to answer it with.
struct DroppedCall {
  QueuedCall queued;
  absl::Status why;
};

// Calls waiting for the renderer, at most `max_calls` of them. Interactive
// calls are served before batch calls; within a class each client with
// waiting calls is served in turn, its own calls in order of arrival, so one
// client with many queued calls cannot starve another. Not thread-safe (the
// engine locks around it).
class CallQueue {
 public:
  explicit CallQueue(int max_calls) : max_calls_(max_calls) {}

  // Queues `*call` (moved from) and returns true, or returns false, leaving
  // `*call` as it was, when the queue is full even after dropping the calls
  // nobody wants any more (DropUnwanted) and `*call` is not a continuation
  // (Scheduling::continuation: queued beyond the bound). A waiting call of the
  // same LATEST stream, in any class, is superseded: taken out into `dropped`
  // with ABORTED; when the waiting one arrived later, `*call` itself goes to
  // `dropped` instead (and true is returned).
  bool Push(QueuedCall* call, std::vector<DroppedCall>* dropped);

  // Takes out into `dropped` every call whose deadline has passed or whose
  // caller has given up.
  void DropUnwanted(std::vector<DroppedCall>* dropped);

  // The next batch: the call of the client whose turn it is in the highest
  // class with waiting calls, then AddCompatible. Empty when nothing waits.
  std::vector<QueuedCall> TakeBatch(int max_poses,
                                    const LaunchEstimate& estimate,
                                    std::vector<DroppedCall>* dropped);

  // Adds to `batch` (not empty) waiting calls of its first call's class that
  // can share its launch, while the batch has fewer than `max_poses` poses:
  // each client's next call if it fits, one per client per round with
  // clients in turn; clients served move to the back of the turn. A call is
  // not added when, by `estimate`, the grown launch would end after its
  // deadline or the deadline of a call already in the batch: it waits for a
  // launch of its own rather than make the batch too late for anyone. A
  // newer frame of a LATEST stream replaces the batch's older one, which
  // goes to `dropped` with ABORTED.
  void AddCompatible(int max_poses, const LaunchEstimate& estimate,
                     std::vector<QueuedCall>* batch,
                     std::vector<DroppedCall>* dropped);

  // Takes every waiting call out (the engine is shutting down).
  std::vector<QueuedCall> TakeAll();

  int size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  // The waiting calls of one priority class.
  struct PriorityClass {
    // Each client's calls in order of arrival; no empty queues.
    std::map<std::string, std::deque<QueuedCall>> clients;
    // Clients with waiting calls, the next to serve first.
    std::list<std::string> turn;
  };

  PriorityClass& ClassOf(const RenderCall& call);
  // A waiting call of `call`'s LATEST stream that arrived after it, if any.
  const QueuedCall* LaterOfStream(const QueuedCall& call) const;
  // Takes out into `dropped` the waiting calls of `newer`'s LATEST stream.
  void Supersede(const QueuedCall& newer, std::vector<DroppedCall>* dropped);
  // Forgets `client` of `cls` once it has no waiting calls.
  void ForgetIfIdle(PriorityClass& cls, const std::string& client);

  const int max_calls_;
  int size_ = 0;
  std::array<PriorityClass, 2> classes_;  // by Priority
};

}  // namespace drr::server
