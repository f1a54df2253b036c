#include "server/engine/render_engine.h"

#include <algorithm>
#include <cmath>
#include <new>

#include "absl/strings/str_cat.h"
#include "kernels/pose_geometry.h"
#include "server/engine/status_from_kernel.h"
#include "status/status_macros.h"

namespace drr::server {
namespace {

// OK while `call`'s caller still wants it after `queued` seconds in the
// queue; DEADLINE_EXCEEDED or CANCELLED once its deadline has passed or its
// caller has given up.
absl::Status StillWanted(const RenderCall& call, double queued) {
  if (call.deadline && std::chrono::steady_clock::now() >= *call.deadline) {
    return absl::DeadlineExceededError(
        absl::StrCat("the request's deadline passed after ", queued,
                     " s in the render queue; it was not rendered"));
  }
  if (call.cancelled && call.cancelled->load()) {
    return absl::CancelledError(
        absl::StrCat("the client cancelled the request after ", queued,
                     " s in the render queue; it was not rendered"));
  }
  return absl::OkStatus();
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

RenderEngine::RenderEngine(kernels::Executor* executor,
                           const VolumeStore* store, const TargetStore* targets,
                           const Limits& limits, int workers)
    : executor_(executor), store_(store), targets_(targets), limits_(limits) {
  // Workspaces are made here, before any work arrives, so that a missing
  // one (a CUDA stream that cannot be created) fails the server's start.
  for (int i = 0; i < std::max(1, workers); ++i) {
    auto worker = std::make_unique<Worker>();
    worker->status =
        FromKernelStatus(executor_->MakeWorkspace(nullptr, &worker->workspace));
    if (status_.ok()) status_ = worker->status;
    workers_.emplace_back(
        [this, worker = std::move(worker)] { WorkerLoop(*worker); });
  }
}

RenderEngine::~RenderEngine() {
  std::deque<Task> abandoned;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    abandoned.swap(queue_);
  }
  for (Task& task : abandoned) task.abandon();
  for (std::thread& t : workers_) t.join();
}

void RenderEngine::Submit(RenderCall call, Callback done) {
  auto shared_done = std::make_shared<Callback>(std::move(done));
  Task task{
      [this, call = std::move(call), shared_done](double queued,
                                                  Worker& worker) {
        if (absl::Status wanted = StillWanted(call, queued); !wanted.ok()) {
          (*shared_done)(std::move(wanted));
          return;
        }
        absl::StatusOr<RenderResult> result =
            worker.workspace ? Render(call, *worker.workspace)
                             : absl::StatusOr<RenderResult>(worker.status);
        if (result.ok()) result->queue_seconds = queued;
        (*shared_done)(std::move(result));
      },
      [shared_done] {
        (*shared_done)(absl::UnavailableError("the server is shutting down"));
      },
      std::chrono::steady_clock::now()};
  {
    absl::MutexLock lock(&mutex_);
    if (!stopping_ &&
        static_cast<int>(queue_.size()) < limits_.max_queued_requests) {
      queue_.push_back(std::move(task));
      return;
    }
  }
  (*shared_done)(absl::ResourceExhaustedError(
      absl::StrCat("the render queue is full (", limits_.max_queued_requests,
                   " requests); retry later")));
}

void RenderEngine::Post(std::function<void()> work,
                        std::function<void()> abandon) {
  {
    absl::MutexLock lock(&mutex_);
    if (!stopping_) {
      queue_.push_back({[work = std::move(work)](double, Worker&) { work(); },
                        std::move(abandon), std::chrono::steady_clock::now()});
      return;
    }
  }
  abandon();
}

int RenderEngine::queue_depth() const {
  absl::MutexLock lock(&mutex_);
  return static_cast<int>(queue_.size());
}

void RenderEngine::WorkerLoop(Worker& worker) {
  while (true) {
    Task next;
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
    next.run(SecondsSince(next.enqueued), worker);
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
  const auto start = std::chrono::steady_clock::now();
  DRR_RETURN_IF_ERROR(ValidateRenderCall(call, limits_));
  DRR_ASSIGN_OR_RETURN(std::shared_ptr<const StoredVolume> volume,
                       store_->Get(call.volume_id));
  for (size_t i = 0; i < call.channels.classes.size(); ++i) {
    if (call.channels.classes[i] >= volume->classes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("options.channels.classes[", i, "] is ",
                       call.channels.classes[i], ", but volume ",
                       call.volume_id, " has ", volume->classes(), " classes"));
    }
  }
  kernels::Residency residency;
  residency.storage = call.volume_storage;
  residency.texture = call.sampler == kernels::Sampler::kTexture &&
                      call.projector == kernels::Projector::kTrilinear &&
                      executor_->space() == kernels::MemorySpace::kCuda;
  DRR_ASSIGN_OR_RETURN(std::shared_ptr<const kernels::ResidentVolume> resident,
                       volume->Resident(call.attenuation, residency));
  const int batch = static_cast<int>(call.poses.size());
  std::vector<kernels::PoseGeometry> geometry;
  geometry.reserve(batch);
  for (int i = 0; i < batch; ++i) {
    geometry.push_back(kernels::MakePoseGeometry(
        volume->world_to_voxel(),
        ResolvePose(call.poses[i], volume->isocenter()),
        call.intrinsics_of(i)));
  }
  kernels::RenderSettings settings;
  settings.rays = {call.intrinsics[0].height, call.intrinsics[0].width,
                   call.n_samples};
  settings.projector = call.projector;
  settings.sampler = call.sampler;
  settings.reduce = call.output == OutputKind::kMip ? kernels::Reduce::kMax
                                                    : kernels::Reduce::kSum;
  // Losses compare one image per pose: every class summed.
  settings.channels = volume->has_labels() && !call.channels.sum && !call.loss
                          ? volume->classes()
                          : 1;

  std::vector<float> rendered;
  const size_t plane =
      static_cast<size_t>(settings.rays.height) * settings.rays.width;
  try {
    rendered.resize(plane * batch * settings.channels);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of host memory for the images");
  }
  DRR_RETURN_IF_KERNEL_ERROR(executor_->Render(
      *resident, geometry.data(), batch, settings, workspace, rendered.data()));

  RenderResult result;
  result.batch = batch;
  result.height = settings.rays.height;
  result.width = settings.rays.width;
  result.dtype = call.image_dtype;
  if (call.channels.classes.empty()) {
    result.channels = settings.channels;
    result.images = std::move(rendered);
  } else {
    result.channels = static_cast<int>(call.channels.classes.size());
    result.images.resize(plane * batch * result.channels);
    for (int b = 0; b < batch; ++b) {
      for (int c = 0; c < result.channels; ++c) {
        const float* from =
            rendered.data() + (static_cast<size_t>(b) * settings.channels +
                               call.channels.classes[c]) *
                                  plane;
        std::copy(from, from + plane,
                  result.images.data() +
                      (static_cast<size_t>(b) * result.channels + c) * plane);
      }
    }
  }
  if (call.output == OutputKind::kExp) {
    for (float& v : result.images) v = std::exp(-v);
  }
  if (call.gradient) {
    DRR_ASSIGN_OR_RETURN(
        result.gradients,
        PoseGradients(call, *volume, *resident, geometry, settings, result,
                      call.gradient->upstream, workspace));
  }
  if (call.loss) {
    std::vector<float> upstream;
    DRR_RETURN_IF_ERROR(Losses(call, &result, &upstream));
    DRR_ASSIGN_OR_RETURN(result.gradients,
                         PoseGradients(call, *volume, *resident, geometry,
                                       settings, result, upstream, workspace));
  }
  if (call.jacobian) {
    DRR_RETURN_IF_ERROR(Jacobians(call, *volume, *resident, geometry, settings,
                                  workspace, &result));
  }
  if (call.loss && !call.loss->return_images) result.images.clear();
  result.render_seconds = SecondsSince(start);
  return result;
}

absl::StatusOr<std::vector<PoseGradient>> RenderEngine::PoseGradients(
    const RenderCall& call, const StoredVolume& volume,
    const kernels::ResidentVolume& resident,
    const std::vector<kernels::PoseGeometry>& geometry,
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
      resident, geometry.data(), result.batch, settings, weights.data(),
      workspace, d_camera_to_voxel.data()));
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

absl::Status RenderEngine::Jacobians(
    const RenderCall& call, const StoredVolume& volume,
    const kernels::ResidentVolume& resident,
    const std::vector<kernels::PoseGeometry>& geometry,
    const kernels::RenderSettings& settings, kernels::Workspace& workspace,
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
      executor_->PoseJacobian(resident, geometry.data(), result->batch,
                              settings, workspace, d_camera_to_voxel.data()));
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
  if (targets_ == nullptr)
    return absl::FailedPreconditionError("this engine has no targets");
  DRR_ASSIGN_OR_RETURN(std::shared_ptr<const Target> target,
                       targets_->Get(call.loss->target_id));
  if (target->height != result->height || target->width != result->width) {
    return absl::InvalidArgumentError(
        absl::StrCat("loss.target_id: target ", target->id, " is ",
                     target->height, "×", target->width, ", the images are ",
                     result->height, "×", result->width));
  }
  DRR_RETURN_IF_ERROR(
      CheckLoss(call.loss->spec, result->height, result->width));
  const size_t plane = static_cast<size_t>(result->height) * result->width;
  upstream->resize(result->images.size());
  result->losses.resize(result->batch);
  std::vector<double> gradient;
  for (int b = 0; b < result->batch; ++b) {
    const float* image = result->images.data() + b * plane;
    result->losses[b] =
        LossAndGradient(call.loss->spec, image, target->pixels.data(),
                        result->height, result->width, &gradient);
    std::copy(gradient.begin(), gradient.end(), upstream->begin() + b * plane);
  }
  return absl::OkStatus();
}

}  // namespace drr::server
