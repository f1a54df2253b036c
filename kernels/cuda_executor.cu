// The CUDA executor: the same per-ray bodies as the CPU executor, one thread
// per pixel, all poses of a batch in one launch.
#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/executor.h"
#include "kernels/pose_gradient.h"
#include "kernels/render_pixel.h"
#include "kernels/volume_view.h"

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

// The volume read through the texture units: hardware trilinear filtering
// with zero borders, at voxel centres + 0.5 (unnormalised coordinates).
struct TextureVolume {
  cudaTextureObject_t texture;
  int nx, ny, nz;

  __device__ float operator()(Vec3 p) const {
    return tex3D<float>(texture, p.x + 0.5f, p.y + 0.5f, p.z + 0.5f);
  }
  __device__ float Voxel(int i, int j, int k) const {
    return tex3D<float>(texture, i + 0.5f, j + 0.5f, k + 0.5f);
  }
};

// Where a thread works: block b renders tile b / n_poses of pose b % n_poses,
// so consecutive blocks march the same region of the volume for every pose of
// the batch and share its cache lines (the co-scheduling of views TIGRE and
// ASTRA use).
struct BlockWork {
  int pose, row, col;

  // This thread's pose and pixel; stages the pose's geometry in `geometry`
  // (shared memory) once per block. Every thread of the block must call it.
  __device__ static BlockWork Of(const PoseGeometry* poses, int n_poses,
                                 int tiles_x, PoseGeometry* geometry) {
    const int pose = blockIdx.x % n_poses;
    const int tile = blockIdx.x / n_poses;
    if (threadIdx.x == 0 && threadIdx.y == 0) *geometry = poses[pose];
    __syncthreads();
    return {pose,
            static_cast<int>((tile / tiles_x) * kTileHeight + threadIdx.y),
            static_cast<int>((tile % tiles_x) * kTileWidth + threadIdx.x)};
  }

  __device__ bool inside(const RenderSettings& s) const {
    return col < s.rays.width && row < s.rays.height;
  }
};

// One thread per pixel writes every channel of it.
template <class Volume, class Labels>
__global__ void RenderKernel(Volume volume, Labels labels,
                             const PoseGeometry* poses, RenderSettings settings,
                             int n_poses, int tiles_x, float* out) {
  __shared__ PoseGeometry geometry;
  const BlockWork w = BlockWork::Of(poses, n_poses, tiles_x, &geometry);
  if (!w.inside(settings)) return;
  const int pose = w.pose, row = w.row, col = w.col;
  const long long plane =
      static_cast<long long>(settings.rays.height) * settings.rays.width;
  float* pixel =
      out + pose * settings.channels * plane + row * settings.rays.width + col;
  RenderPixel(volume, labels, geometry, settings, row, col, pixel, plane);
}

// One thread per pixel computes its ray's 12 partial derivatives; the block
// sums them by a fixed tree in shared memory and writes one partial per
// (pose, tile), which the host sums in order: no atomics, same bits every run.
template <class Volume, class Labels>
__global__ void PoseGradientKernel(Volume volume, Labels labels,
                                   const PoseGeometry* poses,
                                   RenderSettings settings, int n_poses,
                                   int tiles_x, int tiles,
                                   const float* upstream, float* partials) {
  constexpr int kThreads = kTileWidth * kTileHeight;
  __shared__ PoseGeometry geometry;
  __shared__ float sums[12][kThreads];
  const BlockWork w = BlockWork::Of(poses, n_poses, tiles_x, &geometry);
  const int pose = w.pose, row = w.row, col = w.col;
  const int tile = blockIdx.x / n_poses;
  const int thread = threadIdx.y * kTileWidth + threadIdx.x;
  float g[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  if (w.inside(settings)) {
    const long long plane =
        static_cast<long long>(settings.rays.height) * settings.rays.width;
    const float* weights = upstream + pose * settings.channels * plane +
                           row * settings.rays.width + col;
    MarchTrilinearVjp(volume, labels, geometry, settings.rays, row, col,
                      weights, plane, settings.channels, g);
  }
#pragma unroll
  for (int k = 0; k < 12; ++k) sums[k][thread] = g[k];
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (thread < stride) {
#pragma unroll
      for (int k = 0; k < 12; ++k) sums[k][thread] += sums[k][thread + stride];
    }
    __syncthreads();
  }
  if (thread < 12)
    partials[(static_cast<long long>(pose) * tiles + tile) * 12 + thread] =
        sums[thread][0];
}

// One thread per pixel and channel writes its 12 derivatives dI/dM.
template <class Volume, class Labels>
__global__ void PoseJacobianKernel(Volume volume, Labels labels,
                                   const PoseGeometry* poses,
                                   RenderSettings settings, int n_poses,
                                   int tiles_x, float* out) {
  __shared__ PoseGeometry geometry;
  const BlockWork w = BlockWork::Of(poses, n_poses, tiles_x, &geometry);
  if (!w.inside(settings)) return;
  const int pose = w.pose, row = w.row, col = w.col;
  const float one = 1.0f;
  for (int c = 0; c < settings.channels; ++c) {
    float d[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    MarchTrilinearVjp(volume, SingleClass<Labels>{labels, c}, geometry,
                      settings.rays, row, col, &one, 0, 1, d);
    float* pixel =
        out + ((((static_cast<long long>(pose) * settings.channels + c) *
                     settings.rays.height +
                 row) *
                    settings.rays.width +
                col) *
               12);
#pragma unroll
    for (int k = 0; k < 12; ++k) pixel[k] = d[k];
  }
}

// A μ volume (and optional labels) in linear device memory, with a texture
// copy made on first use of the texture sampler.
class DeviceVolume final : public ResidentVolume {
 public:
  DeviceVolume(void* mu, uint16_t* labels, VolumeShape shape,
               StorageType storage)
      : mu_(mu), labels_(labels), shape_(shape), storage_(storage) {}
  ~DeviceVolume() override {
    if (texture_ != 0) cudaDestroyTextureObject(texture_);
    if (array_ != nullptr) cudaFreeArray(array_);
    cudaFree(labels_);
    cudaFree(mu_);
  }

  VolumeShape shape() const override { return shape_; }
  StorageType storage() const override { return storage_; }
  bool has_labels() const override { return labels_ != nullptr; }
  long long resident_bytes() const override {
    long long bytes = shape_.voxels() * StorageBytes(storage_);
    if (labels_ != nullptr) bytes += shape_.voxels() * 2;
    if (array_ != nullptr) bytes += shape_.voxels() * StorageBytes(storage_);
    return bytes;
  }

  template <typename T>
  VolumeView<T> view() const {
    return VolumeView<T>{static_cast<const T*>(mu_), shape_.nx, shape_.ny,
                         shape_.nz};
  }
  LabelView labels() const {
    return LabelView{labels_, shape_.nx, shape_.ny, shape_.nz};
  }

  // The texture of this volume, made (once) from the linear copy.
  KernelStatus Texture(cudaStream_t stream, TextureVolume* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (texture_ == 0) {
      if (storage_ == StorageType::kBFloat16) {
        return KernelStatus::Error(
            KernelCode::kInvalidArgument,
            "the texture sampler needs float32 or float16 storage");
      }
      const cudaChannelFormatDesc format = storage_ == StorageType::kFloat32
                                               ? cudaCreateChannelDesc<float>()
                                               : cudaCreateChannelDescHalf();
      const cudaExtent extent =
          make_cudaExtent(shape_.nx, shape_.ny, shape_.nz);
      cudaError_t e = cudaMalloc3DArray(&array_, &format, extent);
      if (e != cudaSuccess) return FromCuda("cudaMalloc3DArray", e);
      cudaMemcpy3DParms copy{};
      copy.srcPtr = make_cudaPitchedPtr(mu_, shape_.nx * StorageBytes(storage_),
                                        shape_.nx, shape_.ny);
      copy.dstArray = array_;
      copy.extent = extent;
      copy.kind = cudaMemcpyDeviceToDevice;
      e = cudaMemcpy3DAsync(&copy, stream);
      if (e != cudaSuccess) return FromCuda("cudaMemcpy3DAsync (texture)", e);
      cudaResourceDesc resource{};
      resource.resType = cudaResourceTypeArray;
      resource.res.array.array = array_;
      cudaTextureDesc description{};
      for (int axis = 0; axis < 3; ++axis)
        description.addressMode[axis] = cudaAddressModeBorder;
      description.filterMode = cudaFilterModeLinear;
      description.readMode = cudaReadModeElementType;
      description.normalizedCoords = 0;
      e = cudaCreateTextureObject(&texture_, &resource, &description, nullptr);
      if (e != cudaSuccess) return FromCuda("cudaCreateTextureObject", e);
    }
    *out = TextureVolume{texture_, shape_.nx, shape_.ny, shape_.nz};
    return KernelStatus::Ok();
  }

 private:
  void* mu_;
  uint16_t* labels_;
  VolumeShape shape_;
  StorageType storage_;
  std::mutex mutex_;
  cudaArray_t array_ = nullptr;
  cudaTextureObject_t texture_ = 0;
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

// Copies host float32 μ to the device in `storage`, converting on the host
// in slabs through one staging buffer.
KernelStatus UploadConverted(const float* mu, size_t count, StorageType storage,
                             void* device) {
  if (storage == StorageType::kFloat32) {
    return FromCuda(
        "cudaMemcpy (volume)",
        cudaMemcpy(device, mu, count * sizeof(float), cudaMemcpyHostToDevice));
  }
  constexpr size_t kSlab = size_t{1} << 22;
  std::unique_ptr<uint16_t[]> staging(new uint16_t[std::min(count, kSlab)]);
  for (size_t start = 0; start < count; start += kSlab) {
    const size_t n = std::min(kSlab, count - start);
    for (size_t i = 0; i < n; ++i) {
      staging[i] = storage == StorageType::kFloat16
                       ? ToHalf(mu[start + i]).bits
                       : ToBFloat16(mu[start + i]).bits;
    }
    const cudaError_t e =
        cudaMemcpy(static_cast<uint16_t*>(device) + start, staging.get(),
                   n * sizeof(uint16_t), cudaMemcpyHostToDevice);
    if (e != cudaSuccess) return FromCuda("cudaMemcpy (volume)", e);
  }
  return KernelStatus::Ok();
}

class CudaExecutor final : public Executor {
 public:
  explicit CudaExecutor(cudaStream_t stream) : stream_(stream) {}
  ~CudaExecutor() override { cudaStreamDestroy(stream_); }

  std::string name() const override { return "cuda"; }

  KernelStatus MakeResident(const float* mu, const uint16_t* labels,
                            VolumeShape shape, StorageType storage,
                            std::shared_ptr<ResidentVolume>* out) override {
    const size_t count = static_cast<size_t>(shape.voxels());
    void* device_mu = nullptr;
    uint16_t* device_labels = nullptr;
    cudaError_t e = cudaMalloc(&device_mu, count * StorageBytes(storage));
    if (e != cudaSuccess) return FromCuda("cudaMalloc (volume)", e);
    if (labels != nullptr) {
      e = cudaMalloc(&device_labels, count * sizeof(uint16_t));
      if (e != cudaSuccess) {
        cudaFree(device_mu);
        return FromCuda("cudaMalloc (labels)", e);
      }
    }
    // From here the volume owns (and on failure frees) both buffers.
    auto volume = std::make_shared<DeviceVolume>(device_mu, device_labels,
                                                 shape, storage);
    const KernelStatus status = UploadConverted(mu, count, storage, device_mu);
    if (!status.ok()) return status;
    if (labels != nullptr) {
      e = cudaMemcpy(device_labels, labels, count * sizeof(uint16_t),
                     cudaMemcpyHostToDevice);
      if (e != cudaSuccess) return FromCuda("cudaMemcpy (labels)", e);
    }
    *out = std::move(volume);
    return KernelStatus::Ok();
  }

  KernelStatus Render(const ResidentVolume& volume, const PoseGeometry* poses,
                      int n_poses, const RenderSettings& settings,
                      float* out) override {
    DeviceVolume* device;
    KernelStatus status = AsDevice(volume, &device);
    if (!status.ok()) return status;
    const size_t image_bytes = sizeof(float) * Pixels(n_poses, settings);
    std::lock_guard<std::mutex> lock(mutex_);
    status = images_.Reserve(image_bytes);
    if (status.ok()) status = UploadPoses(poses, n_poses);
    if (!status.ok()) return status;
    const Grid grid(settings, n_poses);
    auto launch = [&](const auto& view, const auto& labels) {
      RenderKernel<<<grid.blocks, grid.threads, 0, stream_>>>(
          view, labels, static_cast<const PoseGeometry*>(poses_.data()),
          settings, n_poses, grid.tiles_x, static_cast<float*>(images_.data()));
    };
    if (settings.sampler == Sampler::kTexture &&
        settings.renderer == Renderer::kTrilinear) {
      TextureVolume texture;
      status = device->Texture(stream_, &texture);
      if (!status.ok()) return status;
      WithLabels(texture, *device, settings, launch);
    } else {
      Visit(*device, settings, launch);
    }
    status = FromCuda("RenderKernel launch", cudaGetLastError());
    if (!status.ok()) return status;
    return CopyBack(out, images_.data(), image_bytes);
  }

  KernelStatus PoseGradient(const ResidentVolume& volume,
                            const PoseGeometry* poses, int n_poses,
                            const RenderSettings& settings,
                            const float* upstream, double* grad) override {
    DeviceVolume* device;
    KernelStatus status = AsDevice(volume, &device);
    if (status.ok()) status = CheckDifferentiable(settings);
    if (!status.ok()) return status;
    const Grid grid(settings, n_poses);
    const size_t upstream_bytes = sizeof(float) * Pixels(n_poses, settings);
    const size_t partial_count = static_cast<size_t>(n_poses) * grid.tiles * 12;
    std::lock_guard<std::mutex> lock(mutex_);
    status = images_.Reserve(upstream_bytes);
    if (status.ok()) status = partials_.Reserve(partial_count * sizeof(float));
    if (status.ok()) status = UploadPoses(poses, n_poses);
    if (!status.ok()) return status;
    status = FromCuda("cudaMemcpyAsync (upstream)",
                      cudaMemcpyAsync(images_.data(), upstream, upstream_bytes,
                                      cudaMemcpyHostToDevice, stream_));
    if (!status.ok()) return status;
    Visit(*device, settings, [&](const auto& view, const auto& labels) {
      PoseGradientKernel<<<grid.blocks, grid.threads, 0, stream_>>>(
          view, labels, static_cast<const PoseGeometry*>(poses_.data()),
          settings, n_poses, grid.tiles_x, grid.tiles,
          static_cast<const float*>(images_.data()),
          static_cast<float*>(partials_.data()));
    });
    status = FromCuda("PoseGradientKernel launch", cudaGetLastError());
    std::vector<float> partials(partial_count);
    if (status.ok())
      status = CopyBack(partials.data(), partials_.data(),
                        partial_count * sizeof(float));
    if (!status.ok()) return status;
    // The tiles' partials, summed in order.
    for (int pose = 0; pose < n_poses; ++pose) {
      double* out = grad + static_cast<size_t>(pose) * 12;
      for (int k = 0; k < 12; ++k) out[k] = 0.0;
      for (int tile = 0; tile < grid.tiles; ++tile) {
        const float* partial =
            partials.data() +
            (static_cast<size_t>(pose) * grid.tiles + tile) * 12;
        for (int k = 0; k < 12; ++k) out[k] += partial[k];
      }
    }
    return KernelStatus::Ok();
  }

  KernelStatus PoseJacobian(const ResidentVolume& volume,
                            const PoseGeometry* poses, int n_poses,
                            const RenderSettings& settings,
                            float* out) override {
    DeviceVolume* device;
    KernelStatus status = AsDevice(volume, &device);
    if (status.ok()) status = CheckDifferentiable(settings);
    if (!status.ok()) return status;
    const size_t out_bytes = sizeof(float) * 12 * Pixels(n_poses, settings);
    std::lock_guard<std::mutex> lock(mutex_);
    status = images_.Reserve(out_bytes);
    if (status.ok()) status = UploadPoses(poses, n_poses);
    if (!status.ok()) return status;
    const Grid grid(settings, n_poses);
    Visit(*device, settings, [&](const auto& view, const auto& labels) {
      PoseJacobianKernel<<<grid.blocks, grid.threads, 0, stream_>>>(
          view, labels, static_cast<const PoseGeometry*>(poses_.data()),
          settings, n_poses, grid.tiles_x, static_cast<float*>(images_.data()));
    });
    status = FromCuda("PoseJacobianKernel launch", cudaGetLastError());
    if (!status.ok()) return status;
    return CopyBack(out, images_.data(), out_bytes);
  }

 private:
  // One block per tile of 16×8 pixels of each pose, poses fastest.
  struct Grid {
    Grid(const RenderSettings& settings, int n_poses)
        : tiles_x((settings.rays.width + kTileWidth - 1) / kTileWidth),
          tiles(tiles_x *
                ((settings.rays.height + kTileHeight - 1) / kTileHeight)),
          blocks(static_cast<unsigned>(tiles) * n_poses, 1, 1),
          threads(kTileWidth, kTileHeight, 1) {}
    int tiles_x, tiles;
    dim3 blocks, threads;
  };

  static size_t Pixels(int n_poses, const RenderSettings& settings) {
    return static_cast<size_t>(n_poses) * settings.channels *
           settings.rays.height * settings.rays.width;
  }

  static KernelStatus AsDevice(const ResidentVolume& volume,
                               DeviceVolume** device) {
    *device =
        const_cast<DeviceVolume*>(dynamic_cast<const DeviceVolume*>(&volume));
    if (*device != nullptr) return KernelStatus::Ok();
    return KernelStatus::Error(KernelCode::kInternal,
                               "volume is not resident on the CUDA executor");
  }

  // Copies the poses to the device; the caller holds mutex_.
  KernelStatus UploadPoses(const PoseGeometry* poses, int n_poses) {
    const size_t bytes = sizeof(PoseGeometry) * n_poses;
    KernelStatus status = poses_.Reserve(bytes);
    if (!status.ok()) return status;
    return FromCuda("cudaMemcpyAsync (poses)",
                    cudaMemcpyAsync(poses_.data(), poses, bytes,
                                    cudaMemcpyHostToDevice, stream_));
  }

  // Copies results to the host and waits for the stream.
  KernelStatus CopyBack(void* host, const void* device, size_t bytes) {
    const cudaError_t e =
        cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream_);
    if (e != cudaSuccess) return FromCuda("cudaMemcpyAsync (results)", e);
    return FromCuda("cudaStreamSynchronize", cudaStreamSynchronize(stream_));
  }

  // Calls f(view, labels) with the label view, or NoLabels when one channel
  // sums every class.
  template <class Volume, class F>
  static void WithLabels(const Volume& view, const DeviceVolume& device,
                         const RenderSettings& settings, F&& f) {
    if (settings.channels > 1 && device.has_labels()) {
      f(view, device.labels());
    } else {
      f(view, NoLabels{});
    }
  }

  // Calls f(view, labels) with the view of the volume's storage type.
  template <class F>
  static void Visit(const DeviceVolume& device, const RenderSettings& settings,
                    F&& f) {
    switch (device.storage()) {
      case StorageType::kFloat32:
        return WithLabels(device.view<float>(), device, settings, f);
      case StorageType::kFloat16:
        return WithLabels(device.view<Half>(), device, settings, f);
      case StorageType::kBFloat16:
        return WithLabels(device.view<BFloat16>(), device, settings, f);
    }
  }

  std::mutex mutex_;  // guards the scratch buffers and the stream
  cudaStream_t stream_;
  GrowableDeviceBuffer poses_;
  GrowableDeviceBuffer images_;  // rendered images, or upstream gradients
  GrowableDeviceBuffer partials_;
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
