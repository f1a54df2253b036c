#include "server/engine/render_engine.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "kernels/pose_geometry.h"
#include "server/engine/status_from_kernel.h"
#include "status/status_macros.h"

namespace drr::server {
namespace {

double SecondsBetween(std::chrono::steady_clock::time_point from,
                      std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// True when no caller of `batch` still wants it.
bool NobodyWants(const std::vector<QueuedCall>& batch) {
  return std::none_of(batch.begin(), batch.end(), [](const QueuedCall& q) {
    return StillWanted(q.call, "").ok();
  });
}

int TotalPoses(const std::vector<QueuedCall>& batch) {
  int poses = 0;
  for (const QueuedCall& q : batch) poses += q.poses();
  return poses;
}

}  // namespace

absl::Status RenderEngine::WhyStopped(const RenderCall& call,
                                      absl::Status status) const {
  if (status.code() != absl::StatusCode::kCancelled) return status;
  if (shutting_down_.load()) {
    return absl::UnavailableError(
        "the server shut down while the request rendered");
  }
  absl::Status why = StillWanted(call, "while it rendered; it was stopped");
  return why.ok() ? status : why;
}

RenderEngine::RenderEngine(kernels::Executor* executor,
                           const VolumeStore* store, const TargetStore* targets,
                           const Limits& limits, const EngineOptions& options)
    : executor_(executor),
      store_(store),
      targets_(targets),
      limits_(limits),
      options_(options),
      queue_(limits.max_queued_requests) {
  // Workspaces are made here, before any work arrives, so that a missing
  // one (a CUDA stream that cannot be created) fails the server's start.
  const int workers =
      options.workers > 0
          ? options.workers
          : (executor_->space() == kernels::MemorySpace::kCuda ? 2 : 1);
  for (int i = 0; i < workers; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->status =
        FromKernelStatus(executor_->MakeWorkspace(nullptr, &worker->workspace));
    if (status_.ok()) status_ = worker->status;
    workers_.emplace_back(
        [this, worker = std::move(worker)] { WorkerLoop(*worker); });
  }
}

RenderEngine::~RenderEngine() {
  std::vector<QueuedCall> abandoned;
  std::deque<PostedWork> posted;
  shutting_down_.store(true);
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    abandoned = queue_.TakeAll();
    posted.swap(posted_);
  }
  for (QueuedCall& q : abandoned) {
    q.done(absl::UnavailableError("the server is shutting down"));
  }
  for (PostedWork& work : posted) work.abandon();
  for (std::thread& t : workers_) t.join();
}

absl::StatusOr<QueuedCall> RenderEngine::Prepare(RenderCall call) const {
  DRR_RETURN_IF_ERROR(ValidateRenderCall(call, limits_));
  DRR_ASSIGN_OR_RETURN(std::shared_ptr<const StoredVolume> volume,
                       store_->Get(call.volume_id));
  if (volume->executor() != executor_) {
    return absl::InternalError(
        absl::StrCat("volume ", call.volume_id,
                     " is resident on another device than this engine's"));
  }
  for (size_t i = 0; i < call.channels.classes.size(); ++i) {
    if (call.channels.classes[i] >= volume->classes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("options.channels.classes[", i, "] is ",
                       call.channels.classes[i], ", but volume ",
                       call.volume_id, " has ", volume->classes(), " classes"));
    }
  }
  QueuedCall queued;
  LaunchKey& key = queued.launch;
  key.volume_id = call.volume_id;
  key.attenuation = call.attenuation;
  key.residency.storage = call.volume_storage;
  key.residency.texture = call.sampler == kernels::Sampler::kTexture &&
                          call.projector == kernels::Projector::kTrilinear &&
                          executor_->space() == kernels::MemorySpace::kCuda;
  kernels::RenderSettings& settings = key.settings;
  settings.rays = {call.intrinsics[0].height, call.intrinsics[0].width,
                   call.n_samples, call.sampling};
  settings.projector = call.projector;
  settings.sampler = call.sampler;
  settings.reduce = call.output == OutputKind::kMip ? kernels::Reduce::kMax
                                                    : kernels::Reduce::kSum;
  // Losses compare one image per pose: every class summed.
  settings.channels = volume->has_labels() && !call.channels.sum && !call.loss()
                          ? volume->classes()
                          : 1;
  // One summed channel is the same image either way (as in nanodrr), and
  // keeps the cheaper interpolated sample.
  settings.rays.soft_labels = call.soft_labels && settings.channels > 1;
  if (options_.budget != nullptr) {
    // The images in the launch's buffer, as the call's own and as encoded,
    // the upstream gradient, and the Jacobian as the kernels write it and as
    // it is returned.
    const int64_t values = int64_t{settings.channels} * settings.rays.height *
                           settings.rays.width *
                           static_cast<int64_t>(call.poses.size());
    int64_t bytes = 3 * values * int64_t{sizeof(float)};
    if (const GradientRequest* gradient = call.gradient()) {
      bytes += static_cast<int64_t>(gradient->upstream.size() * sizeof(float));
    }
    if (call.jacobian()) {
      bytes +=
          values * (kernels::kPoseMapEntries + 16) * int64_t{sizeof(float)};
    }
    DRR_ASSIGN_OR_RETURN(queued.held,
                         options_.budget->Reserve(MemoryUse::kRequests, bytes,
                                                  "this render request"));
  }
  queued.volume = std::move(volume);
  queued.call = std::move(call);
  return queued;
}

void RenderEngine::Submit(RenderCall call, Callback done) {
  call.scheduling.arrival = ++submitted_;
  // A volume only on disk is loaded on a worker: reading and checking it
  // takes a while, and the caller's thread (gRPC's) must not wait for it.
  // A malformed call is refused first, and calls waiting for loads count
  // against the queue's bound.
  if (store_->OnDiskOnly(call.volume_id)) {
    if (absl::Status valid = ValidateRenderCall(call, limits_); !valid.ok()) {
      done(valid);
      return;
    }
    if (loads_waiting_.fetch_add(1) >= limits_.max_queued_requests &&
        !call.scheduling.continuation) {
      loads_waiting_.fetch_sub(1);
      done(QueueFull());
      return;
    }
    auto waiting = std::make_shared<std::pair<RenderCall, Callback>>(
        std::move(call), std::move(done));
    Post(
        [this, waiting] {
          loads_waiting_.fetch_sub(1);
          Enqueue(std::move(waiting->first), std::move(waiting->second));
        },
        [this, waiting] {
          loads_waiting_.fetch_sub(1);
          waiting->second(
              absl::UnavailableError("the server is shutting down"));
        });
    return;
  }
  Enqueue(std::move(call), std::move(done));
}

absl::Status RenderEngine::QueueFull() const {
  return absl::ResourceExhaustedError(absl::StrCat("the render queue is full (",
                                                   limits_.max_queued_requests,
                                                   " requests); retry later"));
}

void RenderEngine::Enqueue(RenderCall call, Callback done) {
  absl::StatusOr<QueuedCall> prepared = Prepare(std::move(call));
  if (!prepared.ok()) {
    done(prepared.status());
    return;
  }
  prepared->done = std::move(done);
  prepared->enqueued = std::chrono::steady_clock::now();
  std::vector<DroppedCall> dropped;
  bool queued = false;
  bool stopping;
  {
    absl::MutexLock lock(&mutex_);
    stopping = stopping_;
    if (!stopping) queued = queue_.Push(&*prepared, &dropped);
    if (queued) ++arrivals_;
  }
  AnswerDropped(std::move(dropped));
  if (queued) return;
  prepared->done(stopping
                     ? absl::UnavailableError("the server is shutting down")
                     : QueueFull());
}

void RenderEngine::Post(std::function<void()> work,
                        std::function<void()> abandon) {
  {
    absl::MutexLock lock(&mutex_);
    if (!stopping_) {
      posted_.push_back({std::move(work), std::move(abandon)});
      return;
    }
  }
  abandon();
}

int RenderEngine::queue_depth() const {
  absl::MutexLock lock(&mutex_);
  return queue_.size();
}

void RenderEngine::AnswerDropped(std::vector<DroppedCall> dropped) {
  for (DroppedCall& d : dropped) {
    if (options_.listener != nullptr)
      options_.listener->OnDropped(d.why.code());
    // Shared: std::function needs a copyable callable, a hold is move-only.
    auto shared = std::make_shared<DroppedCall>(std::move(d));
    answers_.Post([shared] { shared->queued.done(std::move(shared->why)); });
  }
}

LaunchEstimate RenderEngine::Estimate() const {
  return {seconds_per_ray_sample_.load(std::memory_order_relaxed),
          std::chrono::steady_clock::now()};
}

void RenderEngine::LearnLaunchTime(double seconds, int64_t ray_samples) const {
  if (ray_samples <= 0) return;
  const double latest = seconds / static_cast<double>(ray_samples);
  const double before = seconds_per_ray_sample_.load(std::memory_order_relaxed);
  // A moving average over the last few launches; workers racing here only
  // lose one launch's say.
  seconds_per_ray_sample_.store(
      before == 0 ? latest : 0.8 * before + 0.2 * latest,
      std::memory_order_relaxed);
}

void RenderEngine::FillBatch(std::vector<QueuedCall>* batch,
                             std::vector<DroppedCall>* dropped) {
  const auto until = batch->front().enqueued + options_.batch_delay;
  while (!stopping_ && TotalPoses(*batch) < options_.max_batch_poses) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return;
    const int64_t seen = arrivals_;
    auto arrived = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return stopping_ || arrivals_ != seen;
    };
    mutex_.AwaitWithTimeout(absl::Condition(&arrived),
                            absl::FromChrono(until - now));
    queue_.AddCompatible(options_.max_batch_poses, Estimate(), batch, dropped);
  }
}

void RenderEngine::WorkerLoop(Worker& worker) {
  while (true) {
    PostedWork posted;
    std::vector<QueuedCall> batch;
    std::vector<DroppedCall> dropped;
    std::chrono::steady_clock::time_point taken;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](RenderEngine* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mutex_) {
            return e->stopping_ || !e->posted_.empty() || !e->queue_.empty();
          },
          this));
      if (!posted_.empty()) {
        posted = std::move(posted_.front());
        posted_.pop_front();
      } else if (!queue_.empty()) {
        queue_.DropUnwanted(&dropped);
        batch =
            queue_.TakeBatch(options_.max_batch_poses, Estimate(), &dropped);
        taken = std::chrono::steady_clock::now();
        if (!batch.empty() && options_.batch_delay.count() > 0) {
          FillBatch(&batch, &dropped);
        }
      } else {
        return;  // stopping, nothing left
      }
    }
    AnswerDropped(std::move(dropped));
    if (posted.run) {
      posted.run();
      continue;
    }
    if (batch.empty()) continue;
    std::vector<absl::StatusOr<RenderResult>> results =
        worker.workspace
            ? RunBatch(batch, *worker.workspace, worker.images, taken)
            : std::vector<absl::StatusOr<RenderResult>>(batch.size(),
                                                        worker.status);
    for (size_t i = 0; i < batch.size(); ++i) {
      const absl::StatusCode code = results[i].status().code();
      if (options_.listener != nullptr &&
          (code == absl::StatusCode::kCancelled ||
           code == absl::StatusCode::kDeadlineExceeded)) {
        options_.listener->OnDropped(code);
      }
      // The call's budget is given back once it is answered.
      auto held = std::make_shared<MemoryHold>(std::move(batch[i].held));
      answers_.Post([done = std::move(batch[i].done), held,
                     result = std::move(results[i])]() mutable {
        done(std::move(result));
        held->Release();
      });
    }
  }
}

absl::StatusOr<RenderResult> RenderEngine::Render(
    const RenderCall& call) const {
  std::unique_ptr<kernels::Workspace> workspace;
  DRR_RETURN_IF_KERNEL_ERROR(executor_->MakeWorkspace(nullptr, &workspace));
  return Render(call, *workspace);
}

absl::StatusOr<RenderResult> RenderEngine::Render(
    const RenderCall& call, kernels::Workspace& workspace) const {
  DRR_ASSIGN_OR_RETURN(QueuedCall queued, Prepare(call));
  queued.enqueued = std::chrono::steady_clock::now();
  std::vector<QueuedCall> batch;
  batch.push_back(std::move(queued));
  std::vector<float> images;
  return std::move(
      RunBatch(batch, workspace, images, batch.front().enqueued).front());
}

std::vector<absl::StatusOr<RenderResult>> RenderEngine::RunBatch(
    const std::vector<QueuedCall>& batch, kernels::Workspace& workspace,
    std::vector<float>& images,
    std::chrono::steady_clock::time_point taken) const {
  const auto started = std::chrono::steady_clock::now();
  const LaunchKey& key = batch.front().launch;
  const kernels::RenderSettings& settings = key.settings;
  const int poses = TotalPoses(batch);
  std::vector<absl::StatusOr<RenderResult>> results;
  auto fail_all = [&](const absl::Status& status) {
    results.clear();
    for (const QueuedCall& q : batch) {
      results.emplace_back(WhyStopped(q.call, status));
    }
    return results;
  };
  // A launch stops early once nobody wants it or the engine shuts down.
  auto stop = [this, &batch] {
    return shutting_down_.load(std::memory_order_relaxed) || NobodyWants(batch);
  };
  absl::StatusOr<std::shared_ptr<const kernels::ResidentVolume>> resident =
      batch.front().volume->Resident(key.attenuation, key.residency);
  if (!resident.ok()) return fail_all(resident.status());

  std::vector<kernels::PoseGeometry> geometry;
  geometry.reserve(poses);
  for (const QueuedCall& q : batch) {
    for (int i = 0; i < q.poses(); ++i) {
      geometry.push_back(kernels::MakePoseGeometry(
          q.volume->world_to_voxel(),
          ResolvePose(q.call.poses[i], q.volume->isocenter()),
          q.call.intrinsics_of(i)));
    }
  }
  const int64_t image_values =
      int64_t{settings.rays.height} * settings.rays.width * settings.channels;
  try {
    // Reused from launch to launch, but not kept far larger than needed:
    // the budget counts a launch's buffer only while its calls are in
    // flight.
    const size_t needed = static_cast<size_t>(image_values * poses);
    if (images.size() < needed || images.size() > 4 * needed) {
      images = std::vector<float>(needed);
    }
  } catch (const std::bad_alloc&) {
    return fail_all(
        absl::ResourceExhaustedError("out of host memory for the images"));
  }
  if (options_.listener != nullptr) {
    options_.listener->OnLaunch(static_cast<int>(batch.size()), poses);
  }
  // A batch nobody wants any more stops: on the CPU within a few pixels per
  // thread, on CUDA between the bounded launches the executor splits it into.
  workspace.set_stop_check(stop);
  const auto launch_start = std::chrono::steady_clock::now();
  const absl::Status launched = FromKernelStatus(executor_->Render(
      **resident, geometry.data(), poses, settings, workspace, images.data()));
  workspace.set_stop_check(nullptr);
  if (!launched.ok()) return fail_all(launched);
  const auto launch_end = std::chrono::steady_clock::now();
  const double render_seconds = SecondsBetween(started, launch_end);
  int64_t ray_samples = 0;
  for (const QueuedCall& q : batch) ray_samples += q.ray_samples();
  // The launches alone: deriving a resident copy is not per ray sample.
  LearnLaunchTime(SecondsBetween(launch_start, launch_end), ray_samples);

  int first = 0;
  for (const QueuedCall& q : batch) {
    const auto post_start = std::chrono::steady_clock::now();
    const int offset = first;
    first += q.poses();
    // A caller who gave up while the launch ran gets no images.
    if (absl::Status wanted =
            StillWanted(q.call, "while it rendered; its images were dropped");
        !wanted.ok()) {
      results.emplace_back(std::move(wanted));
      continue;
    }
    workspace.set_stop_check([this, &q] {
      return shutting_down_.load(std::memory_order_relaxed) ||
             !StillWanted(q.call, "").ok();
    });
    absl::StatusOr<RenderResult> result =
        FinishCall(q, images.data() + offset * image_values, **resident,
                   geometry.data() + offset, workspace);
    workspace.set_stop_check(nullptr);
    if (!result.ok()) {
      results.emplace_back(WhyStopped(q.call, result.status()));
      continue;
    }
    // No call is answered OK after its deadline.
    if (absl::Status wanted = StillWanted(
            q.call, "while it was finished; its result was dropped");
        !wanted.ok()) {
      results.emplace_back(std::move(wanted));
      continue;
    }
    result->queue_seconds = SecondsBetween(q.enqueued, taken);
    result->batch_wait_seconds = SecondsBetween(taken, started);
    result->render_seconds = render_seconds;
    result->post_seconds =
        SecondsBetween(post_start, std::chrono::steady_clock::now());
    result->launch_poses = poses;
    results.push_back(std::move(result));
  }
  return results;
}

absl::StatusOr<RenderResult> RenderEngine::FinishCall(
    const QueuedCall& queued, const float* rendered,
    const kernels::ResidentVolume& resident,
    const kernels::PoseGeometry* geometry,
    kernels::Workspace& workspace) const {
  const RenderCall& call = queued.call;
  const kernels::RenderSettings& settings = queued.launch.settings;
  RenderResult result;
  result.batch = queued.poses();
  result.height = settings.rays.height;
  result.width = settings.rays.width;
  result.dtype = call.image_dtype;
  const size_t plane =
      static_cast<size_t>(settings.rays.height) * settings.rays.width;
  try {
    if (call.channels.classes.empty()) {
      result.channels = settings.channels;
      result.images.assign(rendered,
                           rendered + plane * result.batch * result.channels);
    } else {
      result.channels = static_cast<int>(call.channels.classes.size());
      result.images.resize(plane * result.batch * result.channels);
      for (int b = 0; b < result.batch; ++b) {
        for (int c = 0; c < result.channels; ++c) {
          const float* from =
              rendered + (static_cast<size_t>(b) * settings.channels +
                          call.channels.classes[c]) *
                             plane;
          std::copy(from, from + plane,
                    result.images.data() +
                        (static_cast<size_t>(b) * result.channels + c) * plane);
        }
      }
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of host memory for the images");
  }
  if (call.output == OutputKind::kExp) {
    for (float& v : result.images) v = std::exp(-v);
  }
  const StoredVolume& volume = *queued.volume;
  if (const GradientRequest* gradient = call.gradient()) {
    DRR_ASSIGN_OR_RETURN(
        result.gradients,
        PoseGradients(call, volume, resident, geometry, settings, result,
                      gradient->upstream, workspace));
  }
  if (call.loss()) {
    std::vector<float> upstream;
    DRR_RETURN_IF_ERROR(Losses(call, &result, &upstream));
    DRR_ASSIGN_OR_RETURN(result.gradients,
                         PoseGradients(call, volume, resident, geometry,
                                       settings, result, upstream, workspace));
  }
  if (call.jacobian()) {
    DRR_RETURN_IF_ERROR(Jacobians(call, volume, resident, geometry, settings,
                                  workspace, &result));
  }
  if (call.loss() && !call.loss()->return_images) result.images.clear();
  return result;
}

absl::StatusOr<std::vector<PoseGradient>> RenderEngine::PoseGradients(
    const RenderCall& call, const StoredVolume& volume,
    const kernels::ResidentVolume& resident,
    const kernels::PoseGeometry* geometry,
    const kernels::RenderSettings& settings, const RenderResult& result,
    const std::vector<float>& upstream, kernels::Workspace& workspace) const {
  if (upstream.size() != result.images.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gradient.upstream has ", upstream.size(), " values, the images [",
        result.batch, ", ", result.channels, ", ", result.height, ", ",
        result.width, "] have ", result.images.size()));
  }
  // dL/dI of the line integrals the executor differentiates, in its channels.
  const size_t plane = static_cast<size_t>(result.height) * result.width;
  std::vector<float> weights(plane * result.batch * settings.channels, 0.0f);
  for (int b = 0; b < result.batch; ++b) {
    for (int c = 0; c < result.channels; ++c) {
      const int channel =
          call.channels.classes.empty() ? c : call.channels.classes[c];
      const size_t from =
          (static_cast<size_t>(b) * result.channels + c) * plane;
      float* to =
          weights.data() +
          (static_cast<size_t>(b) * settings.channels + channel) * plane;
      for (size_t px = 0; px < plane; ++px) {
        // d exp(−I)/dI = −exp(−I).
        const float w = upstream[from + px];
        to[px] +=
            call.output == OutputKind::kExp ? -w * result.images[from + px] : w;
      }
    }
  }
  std::vector<kernels::PoseMapGradient> d_camera_to_voxel(result.batch);
  DRR_RETURN_IF_KERNEL_ERROR(executor_->PoseGradient(
      resident, geometry, result.batch, settings, weights.data(), workspace,
      d_camera_to_voxel.data()));
  std::vector<PoseGradient> gradients(result.batch);
  const geometry::Mat4d& w2v = volume.world_to_voxel();
  for (int b = 0; b < result.batch; ++b) {
    // camera_to_voxel = (world_to_voxel · rt_inv)[:3, :], so
    // dL/d rt_inv = world_to_voxel[:3, :]ᵀ · dL/d camera_to_voxel.
    const double* g = d_camera_to_voxel[b].d;
    PoseGradient& out = gradients[b];
    for (int r = 0; r < 4; ++r) {
      for (int c = 0; c < 4; ++c) {
        double sum = 0;
        for (int k = 0; k < 3; ++k) sum += w2v.m[k][r] * g[4 * k + c];
        out.rt_inv.m[r][c] = sum;
      }
    }
    const std::vector<double> jacobian =
        PoseParameterJacobian(call.poses[b], volume.isocenter());
    const size_t k = jacobian.size() / 16;
    out.parameters.assign(k, 0.0);
    for (int e = 0; e < 16; ++e) {
      for (size_t j = 0; j < k; ++j)
        out.parameters[j] += out.rt_inv.m[e / 4][e % 4] * jacobian[e * k + j];
    }
  }
  return gradients;
}

absl::Status RenderEngine::Jacobians(const RenderCall& call,
                                     const StoredVolume& volume,
                                     const kernels::ResidentVolume& resident,
                                     const kernels::PoseGeometry* geometry,
                                     const kernels::RenderSettings& settings,
                                     kernels::Workspace& workspace,
                                     RenderResult* result) const {
  const size_t plane = static_cast<size_t>(result->height) * result->width;
  std::vector<float> d_camera_to_voxel;
  try {
    d_camera_to_voxel.resize(plane * result->batch * settings.channels *
                             kernels::kPoseMapEntries);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of host memory for the Jacobian");
  }
  DRR_RETURN_IF_KERNEL_ERROR(
      executor_->PoseJacobian(resident, geometry, result->batch, settings,
                              workspace, d_camera_to_voxel.data()));
  result->gradients.resize(result->batch);
  const geometry::Mat4d& w2v = volume.world_to_voxel();
  for (int b = 0; b < result->batch; ++b) {
    // dM/dθ = world_to_voxel[:3, :] · d rt_inv/dθ, kPoseMapEntries × k.
    const std::vector<double> d_rt_inv =
        PoseParameterJacobian(call.poses[b], volume.isocenter());
    const size_t k = d_rt_inv.size() / 16;
    std::vector<double> d_m(kernels::kPoseMapEntries * k, 0.0);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c)
        for (size_t j = 0; j < k; ++j)
          for (int e = 0; e < 4; ++e)
            d_m[(4 * r + c) * k + j] +=
                w2v.m[r][e] * d_rt_inv[(4 * e + c) * k + j];
    std::vector<float>& out = result->gradients[b].jacobian;
    out.assign(static_cast<size_t>(result->channels) * plane * k, 0.0f);
    for (int c = 0; c < result->channels; ++c) {
      const int channel =
          call.channels.classes.empty() ? c : call.channels.classes[c];
      for (size_t px = 0; px < plane; ++px) {
        const float* d =
            d_camera_to_voxel.data() +
            ((static_cast<size_t>(b) * settings.channels + channel) * plane +
             px) *
                kernels::kPoseMapEntries;
        // d exp(−I)/dθ = −exp(−I)·dI/dθ.
        const double scale =
            call.output == OutputKind::kExp
                ? -double{result->images
                              [(static_cast<size_t>(b) * result->channels + c) *
                                   plane +
                               px]}
                : 1.0;
        for (size_t j = 0; j < k; ++j) {
          double sum = 0;
          for (int e = 0; e < kernels::kPoseMapEntries; ++e)
            sum += double{d[e]} * d_m[e * k + j];
          out[(c * plane + px) * k + j] = static_cast<float>(scale * sum);
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status RenderEngine::Losses(const RenderCall& call, RenderResult* result,
                                  std::vector<float>* upstream) const {
  std::shared_ptr<const Target> target = call.loss()->target;
  if (target == nullptr) {
    if (targets_ == nullptr)
      return absl::FailedPreconditionError("this engine has no targets");
    DRR_ASSIGN_OR_RETURN(target, targets_->Get(call.loss()->target_id));
  }
  if (target->height != result->height || target->width != result->width) {
    return absl::InvalidArgumentError(
        absl::StrCat("loss.target_id: target ", target->id, " is ",
                     target->height, "×", target->width, ", the images are ",
                     result->height, "×", result->width));
  }
  DRR_RETURN_IF_ERROR(
      CheckLoss(call.loss()->spec, result->height, result->width));
  const size_t plane = static_cast<size_t>(result->height) * result->width;
  upstream->resize(result->images.size());
  result->losses.resize(result->batch);
  std::vector<double> gradient;
  for (int b = 0; b < result->batch; ++b) {
    const float* image = result->images.data() + b * plane;
    result->losses[b] =
        LossAndGradient(call.loss()->spec, image, target->pixels.data(),
                        result->height, result->width, &gradient);
    std::copy(gradient.begin(), gradient.end(), upstream->begin() + b * plane);
  }
  return absl::OkStatus();
}

}  // namespace drr::server
