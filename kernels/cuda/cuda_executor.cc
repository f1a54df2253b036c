// The CUDA executor: device memory, copies and streams around the kernels
// (cuda_kernels.h). Each workspace has its own two streams (kernels, and
// copies of their results to the host), scratch buffers and 4 MiB of pinned
// host memory, so calls with different workspaces run concurrently; nothing
// here holds a lock while the GPU works.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/executor.h"
#include "kernels/pose_chunks.h"
#include "kernels/render_pixel.h"

namespace drr::kernels {
namespace {

// The device memory of a resident volume: μ in its storage type, labels, and
// the texture and the quads when they were asked for.
struct DeviceVolumeMemory {
  DeviceMemory voxels;
  DeviceMemory labels;
  VolumeTexture texture;
  DeviceMemory quads;
};

// A stream and the scratch memory of the calls issued on it, and a second
// stream that copies a batch's results to the host, through two pieces of
// pinned memory, while the first runs the batch's next launch.
class CudaWorkspace final : public Workspace {
 public:
  MemorySpace space() const override { return MemorySpace::kCuda; }

  // Issues this workspace's calls on `stream`, or on a new stream of its own
  // when that is nullptr; makes the copy stream, its events and its pinned
  // memory (2 × kStagingPieceBytes), so that no call allocates them.
  KernelStatus Start(cudaStream_t stream) {
    if (stream != nullptr) {
      stream_.Borrow(stream);
    } else {
      DRR_KERNEL_RETURN_IF_ERROR(stream_.Create());
    }
    DRR_KERNEL_RETURN_IF_ERROR(copies_.Create());
    DRR_KERNEL_RETURN_IF_ERROR(launched_.Create());
    for (CudaEvent& copied : slot_copied_)
      DRR_KERNEL_RETURN_IF_ERROR(copied.Create());
    for (CudaEvent& ended : launch_ended_)
      DRR_KERNEL_RETURN_IF_ERROR(ended.Create());
    for (StagedPiece& piece : staged_) {
      DRR_KERNEL_RETURN_IF_ERROR(piece.copied.Create());
      DRR_KERNEL_RETURN_IF_ERROR(piece.pinned.Allocate(
          kStagingPieceBytes, "cudaMallocHost (results)"));
    }
    return KernelStatus::Ok();
  }
  cudaStream_t stream() const { return stream_.get(); }

  // Copies `n_poses` poses to the device.
  KernelStatus UploadPoses(const PoseGeometry* poses, int n_poses) {
    const size_t bytes = sizeof(PoseGeometry) * n_poses;
    DRR_KERNEL_RETURN_IF_ERROR(
        poses_.Reserve(bytes, "cudaMallocAsync (poses)"));
    DRR_CUDA_RETURN_IF_ERROR("cudaMemcpyAsync (poses)",
                             cudaMemcpyAsync(poses_.data(), poses, bytes,
                                             cudaMemcpyHostToDevice, stream()));
    return KernelStatus::Ok();
  }
  const PoseGeometry* poses() const {
    return static_cast<const PoseGeometry*>(poses_.data());
  }

  // `status`, after waiting for both streams when it is an error: a failed
  // call may have queued work that reads buffers its caller frees next, and
  // its staged results are dropped.
  KernelStatus Settle(KernelStatus status) {
    if (status.ok()) return status;
    cudaStreamSynchronize(stream());
    cudaStreamSynchronize(copies_.get());
    for (StagedPiece& piece : staged_) piece.host = nullptr;
    return status;
  }

  // Copies `bytes` of results to the host and waits for this stream (only).
  KernelStatus CopyBack(void* host, const void* device, size_t bytes) {
    DRR_CUDA_RETURN_IF_ERROR(
        "cudaMemcpyAsync (results)",
        cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream()));
    DRR_CUDA_RETURN_IF_ERROR("cudaStreamSynchronize",
                             cudaStreamSynchronize(stream()));
    return KernelStatus::Ok();
  }

  // Calls `launch(first, count, results)` for each launch of the batch's
  // poses (ChunkPoses), which queues the work that writes the results of
  // poses [first, first + count) at `results` on this stream: one of two
  // device slots of a launch's results each, in turn. Each launch's results
  // are copied from its slot to `host` while the next launch runs, and a
  // launch waits for the copies out of its slot before it writes there;
  // returns once all of them are in `host`, or kCancelled when the stop
  // check, asked before each launch but the first, says so. A pose has
  // `floats_per_pose` results and costs a launch `cost`.
  template <typename LaunchPoses>
  KernelStatus LaunchCopyingBack(int n_poses, size_t floats_per_pose,
                                 const LaunchCost& cost, float* host,
                                 const LaunchPoses& launch) {
    const PoseChunks chunks = ChunkPoses(n_poses, cost);
    const size_t slot_floats = chunks.size * floats_per_pose;
    DRR_KERNEL_RETURN_IF_ERROR(results_.Reserve(
        sizeof(float) * slot_floats * std::min(chunks.count, 2),
        "cudaMallocAsync (results)"));
    auto slot = [&](int chunk) {
      return static_cast<float*>(results_.data()) + (chunk % 2) * slot_floats;
    };
    auto launch_chunk = [&](int chunk) -> KernelStatus {
      if (chunk >= 2) {
        DRR_CUDA_RETURN_IF_ERROR(
            "cudaStreamWaitEvent (results)",
            cudaStreamWaitEvent(stream(), slot_copied_[chunk % 2].get(), 0));
      }
      return launch(chunks.first(chunk), chunks.poses(chunk), slot(chunk));
    };
    if (chunks.count > 0) DRR_KERNEL_RETURN_IF_ERROR(launch_chunk(0));
    for (int chunk = 0; chunk < chunks.count; ++chunk) {
      float* to = host + chunks.first(chunk) * floats_per_pose;
      const size_t count = chunks.poses(chunk) * floats_per_pose;
      if (chunk + 1 == chunks.count) {
        // Nothing left to overlap: copied on this stream, after the launch.
        DRR_KERNEL_RETURN_IF_ERROR(
            StageToHost(slot(chunk), to, count, stream()));
        break;
      }
      // The copy stream waits for this launch (and for nothing queued
      // after it) before it copies its results.
      DRR_CUDA_RETURN_IF_ERROR("cudaEventRecord (launch)",
                               cudaEventRecord(launched_.get(), stream()));
      DRR_CUDA_RETURN_IF_ERROR(
          "cudaStreamWaitEvent (launch)",
          cudaStreamWaitEvent(copies_.get(), launched_.get(), 0));
      if (ShouldStop()) {
        return KernelStatus::Error(KernelCode::kCancelled,
                                   "stopped between launches");
      }
      DRR_KERNEL_RETURN_IF_ERROR(launch_chunk(chunk + 1));
      DRR_KERNEL_RETURN_IF_ERROR(
          StageToHost(slot(chunk), to, count, copies_.get()));
      DRR_CUDA_RETURN_IF_ERROR(
          "cudaEventRecord (results)",
          cudaEventRecord(slot_copied_[chunk % 2].get(), copies_.get()));
    }
    // The older of the two pieces in flight first.
    DRR_KERNEL_RETURN_IF_ERROR(Unstage(staged_[next_piece_]));
    return Unstage(staged_[next_piece_ ^ 1]);
  }

  // Calls `launch(first, count)` for each launch of `chunks`, which queues
  // the work of poses [first, first + count) on this stream, and returns
  // once all of it is queued, or kCancelled when the stop check, asked
  // before each launch but the first, says so. Before it asks, it waits for
  // the launch before last: at most two launches are queued at a time, so a
  // stop leaves at most one running.
  template <typename LaunchPoses>
  KernelStatus LaunchInTurn(const PoseChunks& chunks,
                            const LaunchPoses& launch) {
    for (int chunk = 0; chunk < chunks.count; ++chunk) {
      if (chunk >= 2) {
        DRR_CUDA_RETURN_IF_ERROR(
            "cudaEventSynchronize (launch)",
            cudaEventSynchronize(launch_ended_[chunk % 2].get()));
      }
      if (chunk > 0 && ShouldStop()) {
        return KernelStatus::Error(KernelCode::kCancelled,
                                   "stopped between launches");
      }
      DRR_KERNEL_RETURN_IF_ERROR(
          launch(chunks.first(chunk), chunks.poses(chunk)));
      DRR_CUDA_RETURN_IF_ERROR(
          "cudaEventRecord (launch)",
          cudaEventRecord(launch_ended_[chunk % 2].get(), stream()));
    }
    return KernelStatus::Ok();
  }

  // Upstream gradients.
  StreamScratch& upstream() { return upstream_; }
  // Per-tile gradient partials on the device, and the poses' gradients.
  StreamScratch& partials() { return partials_; }
  StreamScratch& gradients() { return gradients_; }

 private:
  // Pinned memory a piece of results is copied into, the event that marks
  // the end of that copy, and where on the host the piece goes (nullptr when
  // nothing is in flight).
  struct StagedPiece {
    PinnedHostMemory pinned;
    CudaEvent copied;
    float* host = nullptr;
    size_t count = 0;
  };

  // Queues the copy of `count` floats from `device` to `host` on `on`, in
  // pieces of at most kStagingPieceBytes through the two pinned pieces in
  // turn; before it reuses one, moves what it held to the host.
  KernelStatus StageToHost(const float* device, float* host, size_t count,
                           cudaStream_t on) {
    constexpr size_t kPieceFloats = kStagingPieceBytes / sizeof(float);
    for (size_t done = 0; done < count; done += kPieceFloats) {
      StagedPiece& piece = staged_[next_piece_];
      next_piece_ ^= 1;
      DRR_KERNEL_RETURN_IF_ERROR(Unstage(piece));
      piece.count = std::min(kPieceFloats, count - done);
      DRR_CUDA_RETURN_IF_ERROR(
          "cudaMemcpyAsync (results)",
          cudaMemcpyAsync(piece.pinned.data(), device + done,
                          piece.count * sizeof(float), cudaMemcpyDeviceToHost,
                          on));
      DRR_CUDA_RETURN_IF_ERROR("cudaEventRecord (results)",
                               cudaEventRecord(piece.copied.get(), on));
      piece.host = host + done;
    }
    return KernelStatus::Ok();
  }

  // Waits for the copy into `piece`, if one is in flight, and moves the
  // piece to its place on the host.
  static KernelStatus Unstage(StagedPiece& piece) {
    if (piece.host == nullptr) return KernelStatus::Ok();
    DRR_CUDA_RETURN_IF_ERROR("cudaEventSynchronize (results)",
                             cudaEventSynchronize(piece.copied.get()));
    std::memcpy(piece.host, piece.pinned.data(), piece.count * sizeof(float));
    piece.host = nullptr;
    return KernelStatus::Ok();
  }

  // Declared first: the scratch below is freed on it, so it must go last.
  // Both streams are idle between calls (each call waits for its copies, or
  // Settle for both streams), so the pinned pieces may go before them.
  CudaStream stream_;
  CudaStream copies_;
  StreamScratch poses_{stream_};
  // Two slots of a launch's results (LaunchCopyingBack).
  StreamScratch results_{stream_};
  StreamScratch upstream_{stream_};
  StreamScratch partials_{stream_};
  StreamScratch gradients_{stream_};
  // The end of the launch whose results the copy stream copies next, and the
  // end of the copies out of each slot of results.
  CudaEvent launched_;
  CudaEvent slot_copied_[2];
  // The end of each of the last two launches queued by LaunchInTurn.
  CudaEvent launch_ended_[2];
  StagedPiece staged_[2];
  // The piece the next copy goes into: the older of the two.
  int next_piece_ = 0;
};

// Copies host float32 μ to `device` in `storage` on `stream`, converting on
// the host in slabs through one staging buffer. (A copy from pageable host
// memory returns once the source has been staged, so the staging buffer may
// be refilled at once.)
KernelStatus UploadConverted(const float* mu, size_t count, StorageType storage,
                             void* device, cudaStream_t stream) {
  if (storage == StorageType::kFloat32) {
    DRR_CUDA_RETURN_IF_ERROR("cudaMemcpyAsync (volume)",
                             cudaMemcpyAsync(device, mu, count * sizeof(float),
                                             cudaMemcpyHostToDevice, stream));
    return KernelStatus::Ok();
  }
  constexpr size_t kSlab = size_t{1} << 22;
  std::vector<uint16_t> staging(std::min(count, kSlab));
  for (size_t start = 0; start < count; start += kSlab) {
    const size_t n = std::min(kSlab, count - start);
    for (size_t i = 0; i < n; ++i) {
      staging[i] = storage == StorageType::kFloat16
                       ? ToHalfSaturating(mu[start + i]).bits
                       : ToBFloat16(mu[start + i]).bits;
    }
    DRR_CUDA_RETURN_IF_ERROR(
        "cudaMemcpyAsync (volume)",
        cudaMemcpyAsync(static_cast<uint16_t*>(device) + start, staging.data(),
                        n * sizeof(uint16_t), cudaMemcpyHostToDevice, stream));
  }
  return KernelStatus::Ok();
}

size_t Pixels(int n_poses, const RenderSettings& settings) {
  return static_cast<size_t>(n_poses) * settings.channels *
         settings.rays.height * settings.rays.width;
}

// What one pose of `settings` costs a launch whose threads (ThreadsPerPixel
// a pixel) march each ray `marches` times and whose device memory is
// `floats_per_pose` floats, on a GPU that runs `wave_threads` at once.
LaunchCost CostOf(const ResidentVolume& volume, const RenderSettings& settings,
                  int marches, size_t floats_per_pose, int64_t wave_threads) {
  const VolumeShape& shape = volume.buffers().shape;
  const int64_t per_ray = settings.projector == Projector::kSiddon
                              ? int64_t{shape.nx} + shape.ny + shape.nz
                              : settings.rays.n_samples;
  const int64_t pixels = int64_t{settings.rays.height} * settings.rays.width;
  return LaunchCost{pixels * per_ray * marches, pixels * ThreadsPerPixel(),
                    wave_threads,
                    static_cast<int64_t>(sizeof(float) * floats_per_pose)};
}

class CudaExecutor final : public Executor {
 public:
  // An executor on `device`, which runs `wave_threads` threads at once.
  CudaExecutor(int device, int64_t wave_threads)
      : device_(device), wave_threads_(wave_threads) {}

  std::string name() const override { return "cuda"; }
  MemorySpace space() const override { return MemorySpace::kCuda; }

  // Every copy runs on one stream of its own, which is drained before the
  // volume is handed out: renders on other streams then see it whole.
  KernelStatus MakeResident(
      const float* mu, const uint16_t* labels, VolumeShape shape,
      const Residency& residency,
      std::shared_ptr<const ResidentVolume>* out) override {
    DRR_KERNEL_RETURN_IF_ERROR(UseDevice());
    if (residency.texture && residency.storage == StorageType::kBFloat16) {
      return KernelStatus::Error(
          KernelCode::kInvalidArgument,
          "the texture sampler needs float32 or float16 storage");
    }
    const size_t count = static_cast<size_t>(shape.voxels());
    const size_t voxel_bytes = count * StorageBytes(residency.storage);
    // Declared after the memory, the stream goes first: its destructor waits
    // for the copies, so that an early return frees nothing they write.
    auto memory = std::make_shared<DeviceVolumeMemory>();
    CudaStream stream;
    DRR_KERNEL_RETURN_IF_ERROR(stream.Create());
    DRR_KERNEL_RETURN_IF_ERROR(
        memory->voxels.Allocate(voxel_bytes, "cudaMalloc (volume)"));
    DRR_KERNEL_RETURN_IF_ERROR(UploadConverted(
        mu, count, residency.storage, memory->voxels.data(), stream.get()));
    long long bytes = static_cast<long long>(voxel_bytes);
    if (labels != nullptr) {
      const size_t label_bytes = count * sizeof(uint16_t);
      DRR_KERNEL_RETURN_IF_ERROR(
          memory->labels.Allocate(label_bytes, "cudaMalloc (labels)"));
      DRR_CUDA_RETURN_IF_ERROR(
          "cudaMemcpyAsync (labels)",
          cudaMemcpyAsync(memory->labels.data(), labels, label_bytes,
                          cudaMemcpyHostToDevice, stream.get()));
      bytes += static_cast<long long>(label_bytes);
    }
    if (residency.texture) {
      const cudaChannelFormatDesc format =
          residency.storage == StorageType::kFloat32
              ? cudaCreateChannelDesc<float>()
              : cudaCreateChannelDescHalf();
      DRR_KERNEL_RETURN_IF_ERROR(memory->texture.Create(
          memory->voxels.data(), shape.nx, shape.ny, shape.nz,
          StorageBytes(residency.storage), format, stream.get()));
      bytes += static_cast<long long>(voxel_bytes);
    }
    VolumeBuffers buffers{MemorySpace::kCuda,
                          shape,
                          residency.storage,
                          memory->voxels.data(),
                          static_cast<const uint16_t*>(memory->labels.data()),
                          memory->texture.get(),
                          /*quads=*/nullptr};
    if (residency.quads) {
      const size_t quad_bytes = 4 * voxel_bytes;
      DRR_KERNEL_RETURN_IF_ERROR(
          memory->quads.Allocate(quad_bytes, "cudaMalloc (quads)"));
      DRR_KERNEL_RETURN_IF_ERROR(
          LaunchBuildQuads(buffers, stream.get(), memory->quads.data()));
      buffers.quads = memory->quads.data();
      bytes += static_cast<long long>(quad_bytes);
    }
    DRR_CUDA_RETURN_IF_ERROR("cudaStreamSynchronize (volume)",
                             cudaStreamSynchronize(stream.get()));
    *out = std::make_shared<const ResidentVolume>(buffers, bytes,
                                                  std::move(memory));
    return KernelStatus::Ok();
  }

  KernelStatus MakeWorkspace(void* cuda_stream,
                             std::unique_ptr<Workspace>* out) override {
    DRR_KERNEL_RETURN_IF_ERROR(UseDevice());
    auto workspace = std::make_unique<CudaWorkspace>();
    DRR_KERNEL_RETURN_IF_ERROR(
        workspace->Start(static_cast<cudaStream_t>(cuda_stream)));
    *out = std::move(workspace);
    return KernelStatus::Ok();
  }

  KernelStatus Render(const ResidentVolume& volume, const PoseGeometry* poses,
                      int n_poses, const RenderSettings& settings,
                      Workspace& workspace, float* out) override {
    DRR_KERNEL_RETURN_IF_ERROR(
        CheckLaunch(space(), volume, settings, workspace));
    DRR_KERNEL_RETURN_IF_ERROR(UseDevice());
    auto& scratch = static_cast<CudaWorkspace&>(workspace);
    return scratch.Settle(
        RenderOn(scratch, volume, poses, n_poses, settings, out));
  }

  KernelStatus PoseGradient(const ResidentVolume& volume,
                            const PoseGeometry* poses, int n_poses,
                            const RenderSettings& settings,
                            const float* upstream, Workspace& workspace,
                            PoseMapGradient* grad) override {
    DRR_KERNEL_RETURN_IF_ERROR(
        CheckGradientLaunch(space(), volume, settings, workspace));
    DRR_KERNEL_RETURN_IF_ERROR(UseDevice());
    auto& scratch = static_cast<CudaWorkspace&>(workspace);
    return scratch.Settle(PoseGradientOn(scratch, volume, poses, n_poses,
                                         settings, upstream, grad));
  }

  KernelStatus PoseJacobian(const ResidentVolume& volume,
                            const PoseGeometry* poses, int n_poses,
                            const RenderSettings& settings,
                            Workspace& workspace, float* out) override {
    DRR_KERNEL_RETURN_IF_ERROR(
        CheckGradientLaunch(space(), volume, settings, workspace));
    DRR_KERNEL_RETURN_IF_ERROR(UseDevice());
    auto& scratch = static_cast<CudaWorkspace&>(workspace);
    return scratch.Settle(
        PoseJacobianOn(scratch, volume, poses, n_poses, settings, out));
  }

 private:
  // Makes this executor's device the calling thread's current one: its
  // streams, allocations and launches belong to it.
  KernelStatus UseDevice() const {
    DRR_CUDA_RETURN_IF_ERROR("cudaSetDevice", cudaSetDevice(device_));
    return KernelStatus::Ok();
  }

  const int device_;
  const int64_t wave_threads_;

  // The calls' work once checked, queued on the workspace's stream.
  KernelStatus RenderOn(CudaWorkspace& scratch, const ResidentVolume& volume,
                        const PoseGeometry* poses, int n_poses,
                        const RenderSettings& settings, float* out) {
    DRR_KERNEL_RETURN_IF_ERROR(scratch.UploadPoses(poses, n_poses));
    const size_t floats_per_pose = Pixels(1, settings);
    return scratch.LaunchCopyingBack(
        n_poses, floats_per_pose,
        CostOf(volume, settings, RenderPasses(volume.buffers(), settings),
               floats_per_pose, wave_threads_),
        out, [&](int first, int count, float* images) {
          return LaunchRender(volume.buffers(), scratch.poses() + first, count,
                              settings, scratch.stream(), images);
        });
  }

  // In launches of consecutive poses (ChunkPoses, LaunchInTurn), each of
  // which uploads its poses' upstream gradients, reduces their tiles'
  // partials and writes their gradients on the device, where they wait for
  // the last launch.
  KernelStatus PoseGradientOn(CudaWorkspace& scratch,
                              const ResidentVolume& volume,
                              const PoseGeometry* poses, int n_poses,
                              const RenderSettings& settings,
                              const float* upstream, PoseMapGradient* grad) {
    if (n_poses == 0) return KernelStatus::Ok();  // (a grid of no blocks fails)
    const size_t upstream_floats = Pixels(1, settings);
    const size_t partial_floats =
        static_cast<size_t>(TilesOf(settings).tiles) * kPoseMapEntries;
    const PoseChunks chunks = ChunkPoses(
        n_poses, CostOf(volume, settings, 1, upstream_floats + partial_floats,
                        wave_threads_));
    DRR_KERNEL_RETURN_IF_ERROR(scratch.upstream().Reserve(
        sizeof(float) * upstream_floats * chunks.size,
        "cudaMallocAsync (upstream)"));
    DRR_KERNEL_RETURN_IF_ERROR(
        scratch.partials().Reserve(sizeof(float) * partial_floats * chunks.size,
                                   "cudaMallocAsync (partials)"));
    const size_t gradient_bytes = sizeof(PoseMapGradient) * n_poses;
    DRR_KERNEL_RETURN_IF_ERROR(scratch.gradients().Reserve(
        gradient_bytes, "cudaMallocAsync (gradients)"));
    DRR_KERNEL_RETURN_IF_ERROR(scratch.UploadPoses(poses, n_poses));
    auto* gradients = static_cast<PoseMapGradient*>(scratch.gradients().data());
    auto* device_upstream = static_cast<float*>(scratch.upstream().data());
    // Stream-ordered: each upload waits for the last launch's reads.
    DRR_KERNEL_RETURN_IF_ERROR(
        scratch.LaunchInTurn(chunks, [&](int first, int count) -> KernelStatus {
          DRR_CUDA_RETURN_IF_ERROR(
              "cudaMemcpyAsync (upstream)",
              cudaMemcpyAsync(device_upstream,
                              upstream + first * upstream_floats,
                              sizeof(float) * upstream_floats * count,
                              cudaMemcpyHostToDevice, scratch.stream()));
          return LaunchPoseGradient(
              volume.buffers(), scratch.poses() + first, count, settings,
              device_upstream, scratch.stream(),
              static_cast<float*>(scratch.partials().data()),
              gradients + first);
        }));
    return scratch.CopyBack(grad, gradients, gradient_bytes);
  }

  KernelStatus PoseJacobianOn(CudaWorkspace& scratch,
                              const ResidentVolume& volume,
                              const PoseGeometry* poses, int n_poses,
                              const RenderSettings& settings, float* out) {
    DRR_KERNEL_RETURN_IF_ERROR(scratch.UploadPoses(poses, n_poses));
    // Each ray is marched once per channel.
    const size_t floats_per_pose = kPoseMapEntries * Pixels(1, settings);
    return scratch.LaunchCopyingBack(
        n_poses, floats_per_pose,
        CostOf(volume, settings, settings.channels, floats_per_pose,
               wave_threads_),
        out, [&](int first, int count, float* jacobian) {
          return LaunchPoseJacobian(volume.buffers(), scratch.poses() + first,
                                    count, settings, scratch.stream(),
                                    jacobian);
        });
  }
};

}  // namespace

CudaProbe ProbeCuda() {
  CudaProbe probe;
  int count = 0;  // left unwritten by cudaGetDeviceCount on error
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    probe.reason = CudaErrorText("cudaGetDeviceCount", e);
    return probe;
  }
  if (count == 0) {
    probe.reason = "no CUDA device present";
    return probe;
  }
  for (int device = 0; device < count; ++device) {
    cudaDeviceProp prop{};
    CudaDevice found;
    if (cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
      found.name = prop.name;
      found.memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
    }
    probe.devices.push_back(found);
  }
  probe.device_count = count;
  return probe;
}

KernelStatus MakeCudaExecutor(std::unique_ptr<Executor>* out, int device) {
  const CudaProbe probe = ProbeCuda();
  if (probe.device_count == 0) {
    return KernelStatus::Error(KernelCode::kUnavailable, probe.reason);
  }
  if (device < 0 || device >= probe.device_count) {
    return KernelStatus::Error(
        KernelCode::kUnavailable,
        "there is no CUDA device " + std::to_string(device) + " (" +
            std::to_string(probe.device_count) + " present)");
  }
  const std::string& name = probe.devices[device].name;
  DRR_CUDA_RETURN_IF_ERROR("cudaSetDevice", cudaSetDevice(device));
  // What this executor needs of the device, checked now so that a server
  // falls back to the CPU instead of failing every render.
  int memory_pools = 0;
  DRR_CUDA_RETURN_IF_ERROR(
      "cudaDeviceGetAttribute",
      cudaDeviceGetAttribute(&memory_pools, cudaDevAttrMemoryPoolsSupported,
                             device));
  if (memory_pools == 0) {
    return KernelStatus::Error(
        KernelCode::kUnavailable,
        name +
            " has no stream-ordered memory pools "
            "(cudaMallocAsync), which the workspaces use");
  }
  const KernelStatus image = CheckKernelImage();
  if (!image.ok()) {
    return KernelStatus::Error(KernelCode::kUnavailable, image.message());
  }
  int multiprocessors = 0, threads_each = 0;
  DRR_CUDA_RETURN_IF_ERROR(
      "cudaDeviceGetAttribute",
      cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount,
                             device));
  DRR_CUDA_RETURN_IF_ERROR(
      "cudaDeviceGetAttribute",
      cudaDeviceGetAttribute(&threads_each,
                             cudaDevAttrMaxThreadsPerMultiProcessor, device));
  *out = std::make_unique<CudaExecutor>(
      device, int64_t{multiprocessors} * threads_each);
  return KernelStatus::Ok();
}

}  // namespace drr::kernels
