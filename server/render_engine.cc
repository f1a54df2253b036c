#include "server/render_engine.h"

#include <new>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/pose_geometry.h"
#include "server/kernel_status.h"

namespace drr::server {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

RenderEngine::RenderEngine(kernels::Executor* executor,
                           const VolumeStore* store, const Limits& limits,
                           int workers)
    : executor_(executor), store_(store), limits_(limits) {
  for (int i = 0; i < std::max(1, workers); ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

RenderEngine::~RenderEngine() {
  std::deque<Pending> abandoned;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    abandoned.swap(queue_);
  }
  for (Pending& p : abandoned) {
    p.done(absl::UnavailableError("the server is shutting down"));
  }
  for (std::thread& t : workers_) t.join();
}

void RenderEngine::Submit(RenderCall call, Callback done) {
  {
    absl::MutexLock lock(&mutex_);
    if (!stopping_ &&
        static_cast<int>(queue_.size()) < limits_.max_queued_requests) {
      queue_.push_back(
          {std::move(call), std::move(done), std::chrono::steady_clock::now()});
      return;
    }
  }
  done(absl::ResourceExhaustedError(absl::StrCat("the render queue is full (",
                                                 limits_.max_queued_requests,
                                                 " requests); retry later")));
}

int RenderEngine::queue_depth() const {
  absl::MutexLock lock(&mutex_);
  return static_cast<int>(queue_.size());
}

void RenderEngine::WorkerLoop() {
  while (true) {
    Pending next;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](RenderEngine* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mutex_) {
            return e->stopping_ || !e->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    const double queued = SecondsSince(next.enqueued);
    absl::StatusOr<RenderResult> result = Render(next.call);
    if (result.ok()) result->queue_seconds = queued;
    next.done(std::move(result));
  }
}

absl::StatusOr<RenderResult> RenderEngine::Render(
    const RenderCall& call) const {
  const auto start = std::chrono::steady_clock::now();
  DRR_RETURN_IF_ERROR(ValidateRenderCall(call, limits_));
  DRR_ASSIGN_OR_RETURN(std::shared_ptr<const StoredVolume> volume,
                       store_->Get(call.volume_id));
  std::vector<kernels::PoseGeometry> geometry;
  geometry.reserve(call.poses.size());
  for (const PoseSpec& pose : call.poses) {
    geometry.push_back(kernels::MakePoseGeometry(
        volume->world_to_voxel, ResolvePose(pose, volume->isocenter),
        call.intrinsics));
  }
  RenderResult result;
  result.batch = static_cast<int>(call.poses.size());
  result.height = call.intrinsics.height;
  result.width = call.intrinsics.width;
  try {
    result.images.resize(static_cast<size_t>(result.batch) * result.height *
                         result.width);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of host memory for the images");
  }
  const kernels::RaySettings settings{result.height, result.width,
                                      call.n_samples};
  DRR_RETURN_IF_KERNEL_ERROR(executor_->Render(*volume->resident,
                                               geometry.data(), result.batch,
                                               settings, result.images.data()));
  result.render_seconds = SecondsSince(start);
  return result;
}

}  // namespace drr::server
