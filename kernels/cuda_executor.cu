// The CUDA executor: the same per-ray body as the CPU executor, launched with
// one thread per pixel and one grid layer per pose of the batch.
#include <cuda_runtime.h>

#include <memory>
#include <mutex>
#include <string>

#include "kernels/executor.h"
#include "kernels/trilinear_sampler.h"

namespace drr::kernels {
namespace {

constexpr int kTileWidth = 16;
constexpr int kTileHeight = 8;

std::string CudaErrorText(const char* what, cudaError_t e) {
  return std::string(what) + ": " + cudaGetErrorName(e) + " (" +
         cudaGetErrorString(e) + ")";
}

KernelStatus FromCuda(const char* what, cudaError_t e) {
  if (e == cudaSuccess) return KernelStatus::Ok();
  const KernelCode code = e == cudaErrorMemoryAllocation
                              ? KernelCode::kResourceExhausted
                              : KernelCode::kInternal;
  return KernelStatus::Error(code, CudaErrorText(what, e));
}

// One thread per pixel; blockIdx.z selects the pose. The pose's geometry is
// staged in shared memory once per block.
__global__ void RenderKernel(TrilinearSampler volume, const PoseGeometry* poses,
                             RaySettings settings, float* out) {
  __shared__ PoseGeometry geometry;
  const int pose = blockIdx.z;
  if (threadIdx.x == 0 && threadIdx.y == 0) geometry = poses[pose];
  __syncthreads();
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  const int row = blockIdx.y * blockDim.y + threadIdx.y;
  if (col >= settings.width || row >= settings.height) return;
  const long long pixel =
      (static_cast<long long>(pose) * settings.height + row) * settings.width +
      col;
  out[pixel] = MarchRay(volume, geometry, settings, row, col);
}

// A μ volume in linear device memory.
class DeviceVolume final : public ResidentVolume {
 public:
  DeviceVolume(float* data, VolumeShape shape) : data_(data), shape_(shape) {}
  ~DeviceVolume() override { cudaFree(data_); }

  VolumeShape shape() const override { return shape_; }
  long long resident_bytes() const override {
    return shape_.voxels() * static_cast<long long>(sizeof(float));
  }
  TrilinearSampler sampler() const {
    return TrilinearSampler{data_, shape_.nx, shape_.ny, shape_.nz};
  }

 private:
  float* data_;
  VolumeShape shape_;
};

// A device buffer that only grows, so steady-state renders allocate nothing.
class GrowableDeviceBuffer {
 public:
  ~GrowableDeviceBuffer() { cudaFree(data_); }

  KernelStatus Reserve(size_t bytes) {
    if (bytes <= capacity_) return KernelStatus::Ok();
    cudaFree(data_);
    data_ = nullptr;
    capacity_ = 0;
    const cudaError_t e = cudaMalloc(&data_, bytes);
    if (e != cudaSuccess) return FromCuda("cudaMalloc (render scratch)", e);
    capacity_ = bytes;
    return KernelStatus::Ok();
  }
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

class CudaExecutor final : public Executor {
 public:
  explicit CudaExecutor(cudaStream_t stream) : stream_(stream) {}
  ~CudaExecutor() override { cudaStreamDestroy(stream_); }

  std::string name() const override { return "cuda"; }

  KernelStatus MakeResident(const float* mu, VolumeShape shape,
                            std::shared_ptr<ResidentVolume>* out) override {
    const size_t bytes = static_cast<size_t>(shape.voxels()) * sizeof(float);
    float* data = nullptr;
    cudaError_t e = cudaMalloc(&data, bytes);
    if (e != cudaSuccess) return FromCuda("cudaMalloc (volume)", e);
    e = cudaMemcpy(data, mu, bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
      cudaFree(data);
      return FromCuda("cudaMemcpy (volume)", e);
    }
    *out = std::make_shared<DeviceVolume>(data, shape);
    return KernelStatus::Ok();
  }

  KernelStatus Render(const ResidentVolume& volume, const PoseGeometry* poses,
                      int n_poses, const RaySettings& settings,
                      float* out) override {
    const auto* device = dynamic_cast<const DeviceVolume*>(&volume);
    if (device == nullptr) {
      return KernelStatus::Error(KernelCode::kInternal,
                                 "volume is not resident on the CUDA executor");
    }
    const size_t pose_bytes = sizeof(PoseGeometry) * n_poses;
    const size_t image_bytes = sizeof(float) * static_cast<size_t>(n_poses) *
                               settings.height * settings.width;
    std::lock_guard<std::mutex> lock(mutex_);
    KernelStatus status = poses_.Reserve(pose_bytes);
    if (!status.ok()) return status;
    status = images_.Reserve(image_bytes);
    if (!status.ok()) return status;
    cudaError_t e = cudaMemcpyAsync(poses_.data(), poses, pose_bytes,
                                    cudaMemcpyHostToDevice, stream_);
    if (e != cudaSuccess) return FromCuda("cudaMemcpyAsync (poses)", e);
    const dim3 block(kTileWidth, kTileHeight, 1);
    const dim3 grid((settings.width + kTileWidth - 1) / kTileWidth,
                    (settings.height + kTileHeight - 1) / kTileHeight, n_poses);
    RenderKernel<<<grid, block, 0, stream_>>>(
        device->sampler(), static_cast<const PoseGeometry*>(poses_.data()),
        settings, static_cast<float*>(images_.data()));
    e = cudaGetLastError();
    if (e != cudaSuccess) return FromCuda("RenderKernel launch", e);
    e = cudaMemcpyAsync(out, images_.data(), image_bytes,
                        cudaMemcpyDeviceToHost, stream_);
    if (e != cudaSuccess) return FromCuda("cudaMemcpyAsync (images)", e);
    return FromCuda("cudaStreamSynchronize", cudaStreamSynchronize(stream_));
  }

 private:
  std::mutex mutex_;  // guards the scratch buffers and the stream
  cudaStream_t stream_;
  GrowableDeviceBuffer poses_;
  GrowableDeviceBuffer images_;
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
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    probe.device_name = prop.name;
  probe.device_count = count;
  return probe;
}

std::unique_ptr<Executor> MakeCudaExecutor(std::string* why) {
  const CudaProbe probe = ProbeCuda();
  if (probe.device_count == 0) {
    *why = probe.reason;
    return nullptr;
  }
  cudaError_t e = cudaSetDevice(0);
  cudaStream_t stream = nullptr;
  if (e == cudaSuccess)
    e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    *why = CudaErrorText("CUDA initialisation", e);
    return nullptr;
  }
  return std::make_unique<CudaExecutor>(stream);
}

}  // namespace drr::kernels
