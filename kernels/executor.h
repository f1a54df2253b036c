// The executor interface: where volumes live and where rays are marched.
// Two implementations run the same per-ray bodies (ray_march.h): the CPU
// executor (always built; the reference and the fallback) and the CUDA
// executor.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/kernel_status.h"
#include "kernels/ray_march.h"
#include "kernels/storage.h"

namespace drr::kernels {

// The size of a volume in voxels, x (i) fastest.
struct VolumeShape {
  int nx = 0;
  int ny = 0;
  int nz = 0;

  long long voxels() const { return 1LL * nx * ny * nz; }
};

// Which ray integral to compute.
enum class Renderer { kTrilinear, kSiddon };

// How the trilinear renderer reads the volume: exact software interpolation
// (the reference, on every executor), or the GPU's texture units (CUDA only;
// 8-bit interpolation weights, float32 and float16 storage).
enum class Sampler { kExact, kTexture };

// What one launch computes for every pixel of every pose.
struct RenderSettings {
  RaySettings rays;
  Renderer renderer = Renderer::kTrilinear;
  Reduce reduce = Reduce::kSum;
  Sampler sampler = Sampler::kExact;
  // Output channels: 1 sums every class; with labels, channel c holds the
  // samples whose class is c (classes ≥ channels are dropped).
  int channels = 1;
};

// A μ volume (and optional label volume) made resident by one executor:
// host memory for the CPU executor, device memory for CUDA. Freed when the
// last reference goes.
class ResidentVolume {
 public:
  virtual ~ResidentVolume() = default;
  // The volume's size in voxels.
  virtual VolumeShape shape() const = 0;
  // The element type μ is stored in.
  virtual StorageType storage() const = 0;
  // Whether a label volume came with it.
  virtual bool has_labels() const = 0;
  // Bytes this volume holds in its executor's memory.
  virtual long long resident_bytes() const = 0;
};

// Renders batches of poses of one resident volume.
class Executor {
 public:
  virtual ~Executor() = default;

  // A short name for logs and metrics ("cpu", "cuda").
  virtual std::string name() const = 0;

  // Copies the float32 μ volume `mu` (shape.voxels() values, x fastest),
  // converted to `storage`, and the label volume `labels` (the same shape, or
  // nullptr) to where this executor renders. Fails with kResourceExhausted
  // when memory runs out.
  virtual KernelStatus MakeResident(const float* mu, const uint16_t* labels,
                                    VolumeShape shape, StorageType storage,
                                    std::shared_ptr<ResidentVolume>* out) = 0;

  // Renders `n_poses` images of settings.channels × height × width into `out`
  // (float32, [pose][channel][row][column], rows top to bottom). `volume`
  // must come from this executor's MakeResident.
  virtual KernelStatus Render(const ResidentVolume& volume,
                              const PoseGeometry* poses, int n_poses,
                              const RenderSettings& settings, float* out) = 0;

  // The gradient of Σ upstream·image over every pixel and channel of the
  // images Render would give with `settings` (trilinear line integrals only)
  // with respect to each pose's camera→voxel map: n_poses × 12 values (3×4,
  // row-major) into `grad`. `upstream` has the layout of Render's output.
  // Per-ray sums are reduced in a fixed order (no atomics): the same call
  // gives the same bits on the same executor.
  virtual KernelStatus PoseGradient(const ResidentVolume& volume,
                                    const PoseGeometry* poses, int n_poses,
                                    const RenderSettings& settings,
                                    const float* upstream, double* grad) = 0;

  // The full Jacobian of the images Render would give with `settings` with
  // respect to each pose's camera→voxel map: for every pose, channel, row
  // and column the 12 derivatives dI/dM (3×4, row-major), into `out`
  // (n_poses·channels·H·W·12 floats).
  virtual KernelStatus PoseJacobian(const ResidentVolume& volume,
                                    const PoseGeometry* poses, int n_poses,
                                    const RenderSettings& settings,
                                    float* out) = 0;
};

// kOk when `settings` describe a differentiable render (trilinear line
// integrals), else kInvalidArgument saying why.
KernelStatus CheckDifferentiable(const RenderSettings& settings);

// The CPU executor over `threads` worker threads (0 = one per hardware thread).
std::unique_ptr<Executor> MakeCpuExecutor(int threads);

// Why CUDA can or cannot be used here: the number of usable devices, the name
// of the first, and, when none, the reason.
struct CudaProbe {
  int device_count = 0;
  std::string device_name;
  std::string reason;
};

// Looks for a usable CUDA device (never fails: a build without nvcc, a missing
// driver or no device all give device_count 0 and a reason).
CudaProbe ProbeCuda();

// The CUDA executor on device 0, or nullptr with `*why` set when there is none.
std::unique_ptr<Executor> MakeCudaExecutor(std::string* why);

}  // namespace drr::kernels
