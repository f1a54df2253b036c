// The executor interface: where volumes live and where rays are marched.
// Two implementations run the same per-ray bodies (ray_march.h): the CPU
// executor (always built; the reference and the fallback) and the CUDA
// executor. As in CUB, the caller owns everything a call uses: the resident
// volume, the poses, the output buffer, and a Workspace (the scratch memory
// and, on CUDA, the stream). Calls with different workspaces may run at the
// same time: CUDA issues each on its workspace's stream with no lock held;
// the CPU executor's thread pool, which every call shares, runs one call's
// rows at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernel_status.h"
#include "kernels/pose_map.h"
#include "kernels/ray_march.h"
#include "kernels/resident_volume.h"

namespace drr::kernels {

// How the trilinear projector reads the volume: exact software interpolation
// (the reference, on every executor); the GPU's texture units (CUDA only;
// 8-bit interpolation weights, float32 and float16 storage; the volume must
// have been made resident with a texture); or the exact interpolation read
// from a copy of the volume in quads (QuadView: the same bits as kExact, in
// renders, pose gradients and Jacobians, two loads per sample where it issues
// eight, four times the voxels' memory; the volume must have been made
// resident with quads; the CPU executor runs it on its per-ray bodies).
// Siddon reads voxels the exact way under every sampler.
enum class Sampler { kExact, kTexture, kQuads };

// What one launch computes for every pixel of every pose.
struct RenderSettings {
  RaySettings rays;
  Projector projector = Projector::kTrilinear;
  Reduce reduce = Reduce::kSum;
  Sampler sampler = Sampler::kExact;
  // Output channels: 1 sums every class; with labels, channel c holds the
  // samples whose class is c (classes ≥ channels are dropped).
  int channels = 1;
};

// Whether a launch of `settings` reads the volume's quads: the trilinear
// renderer under Sampler::kQuads, but for soft labels, which read a sample's
// corners one by one, each with its class, and so read the voxels (a quad
// would bring one useful value of four into the cache).
inline bool ReadsQuads(const RenderSettings& settings) {
  return settings.sampler == Sampler::kQuads &&
         settings.projector == Projector::kTrilinear &&
         !settings.rays.soft_labels;
}

// The scratch memory of one caller's calls and, on CUDA, the stream they are
// issued on. Made by the executor that uses it (Executor::MakeWorkspace),
// owned by the caller. It grows to the largest call it has served and then
// allocates nothing. One workspace serves one call at a time.
class Workspace {
 public:
  virtual ~Workspace() = default;
  // The memory space of the executor that made it.
  virtual MemorySpace space() const = 0;

  // Lets the caller stop its calls early: the CPU executor asks `check`
  // every few pixels (from several threads at once, so it must be
  // thread-safe and cheap), and once it returns true the call stops within
  // a few pixels per thread and fails with kCancelled. The CUDA executor
  // asks it between the launches it splits a call into
  // (kernels/pose_chunks.h), not inside one. An empty check never stops.
  void set_stop_check(std::function<bool()> check) {
    stop_check_ = std::move(check);
  }
  // Whether the caller's stop check asks the current call to stop.
  bool ShouldStop() const { return stop_check_ && stop_check_(); }

 private:
  std::function<bool()> stop_check_;
};

// Renders batches of poses of volumes resident in its memory space.
class Executor {
 public:
  virtual ~Executor() = default;

  // A short name for logs and metrics ("cpu", "cuda").
  virtual std::string name() const = 0;
  // Where its volumes and workspaces live.
  virtual MemorySpace space() const = 0;

  // Copies the float32 μ volume `mu` (shape.voxels() values, x fastest),
  // converted to residency.storage, and the label volume `labels` (the same
  // shape, or nullptr) to where this executor renders. Fails with
  // kResourceExhausted when memory runs out.
  virtual KernelStatus MakeResident(
      const float* mu, const uint16_t* labels, VolumeShape shape,
      const Residency& residency,
      std::shared_ptr<const ResidentVolume>* out) = 0;

  // A new workspace. On CUDA its calls are issued on `cuda_stream`, or on a
  // stream of the workspace's own when that is nullptr; the CPU executor
  // ignores it. A lent stream must be a stream of the executor's device that
  // outlives the workspace (its scratch is freed on it), not
  // cudaStreamPerThread or the legacy default stream, and not being captured
  // into a CUDA graph (calls wait for it).
  virtual KernelStatus MakeWorkspace(void* cuda_stream,
                                     std::unique_ptr<Workspace>* out) = 0;

  // Renders `n_poses` images of settings.channels × height × width into `out`
  // (host memory, float32, [pose][channel][row][column], rows top to
  // bottom). `volume` and `workspace` must be of this executor's space.
  virtual KernelStatus Render(const ResidentVolume& volume,
                              const PoseGeometry* poses, int n_poses,
                              const RenderSettings& settings,
                              Workspace& workspace, float* out) = 0;

  // The gradient of Σ upstream·image over every pixel and channel of the
  // images Render would give with `settings` (line integrals only)
  // with respect to each pose's camera→voxel map, into grad[0, n_poses).
  // `upstream` has the layout of Render's output. Per-ray values are summed
  // in a fixed order (no atomics): the same call gives the same bits on the
  // same executor.
  virtual KernelStatus PoseGradient(const ResidentVolume& volume,
                                    const PoseGeometry* poses, int n_poses,
                                    const RenderSettings& settings,
                                    const float* upstream, Workspace& workspace,
                                    PoseMapGradient* grad) = 0;

  // The full Jacobian of the images Render would give with `settings` with
  // respect to each pose's camera→voxel map: for every pose, channel, row
  // and column the kPoseMapEntries derivatives dI/dM, into `out`
  // (n_poses·channels·H·W·kPoseMapEntries floats).
  virtual KernelStatus PoseJacobian(const ResidentVolume& volume,
                                    const PoseGeometry* poses, int n_poses,
                                    const RenderSettings& settings,
                                    Workspace& workspace, float* out) = 0;
};

// kOk when `settings` describe a differentiable render (line integrals,
// trilinear or Siddon, the exact sampler or its quads, not the texture),
// else kInvalidArgument saying why.
KernelStatus CheckDifferentiable(const RenderSettings& settings);

// kOk when `volume` and `workspace` belong to executors of `space` (else
// kInternal: a caller mixed executors) and `settings` can be rendered from
// `volume` (else kInvalidArgument: e.g. no texture for the texture sampler,
// soft labels on Siddon or MIP).
KernelStatus CheckLaunch(MemorySpace space, const ResidentVolume& volume,
                         const RenderSettings& settings,
                         const Workspace& workspace);

// CheckLaunch, then CheckDifferentiable: what a gradient call checks first.
KernelStatus CheckGradientLaunch(MemorySpace space,
                                 const ResidentVolume& volume,
                                 const RenderSettings& settings,
                                 const Workspace& workspace);

// The CPU executor over `threads` threads, the caller's included (0 = one
// per hardware thread). Summed one-channel renders, their pose gradients and
// their Jacobians take the vectorised path (kernels/cpu_simd.h) where this
// build has one; everything else runs the per-ray bodies.
std::unique_ptr<Executor> MakeCpuExecutor(int threads);

// The CPU executor with every ray through the per-ray bodies ("cpu_scalar"):
// the specification the vectorised path is tested and measured against.
std::unique_ptr<Executor> MakeScalarCpuExecutor(int threads);

// A CUDA device as the runtime reports it.
struct CudaDevice {
  std::string name;
  // Its global memory.
  int64_t memory_bytes = 0;
};

// Why CUDA can or cannot be used here: the usable devices, by ordinal, and,
// when none, the reason.
struct CudaProbe {
  int device_count = 0;
  std::vector<CudaDevice> devices;
  std::string reason;
};

// Looks for usable CUDA devices (never fails: a build without nvcc, a missing
// driver or no device all give device_count 0 and a reason).
CudaProbe ProbeCuda();

// The CUDA executor on device `device` (an ordinal of ProbeCuda's) into
// `out`; kUnavailable, with the reason, when there is no such device. Every
// call it takes makes its device the calling thread's current one.
KernelStatus MakeCudaExecutor(std::unique_ptr<Executor>* out, int device = 0);

}  // namespace drr::kernels
