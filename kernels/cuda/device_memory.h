// Owners of CUDA resources: device memory, streams, stream-ordered scratch
// memory, pinned host memory, events, 3D arrays and texture objects, each
// released by its destructor on the device it was made on (whichever device
// the destroying thread uses).
// None of them can be copied or moved.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/cuda/cuda_check.h"

namespace drr::kernels {

// The calling thread's current device (0 when the runtime cannot say).
inline int CurrentCudaDevice() {
  int device = 0;
  return cudaGetDevice(&device) == cudaSuccess ? device : 0;
}

// Makes `device` the calling thread's current device while it lives, then
// restores the one before.
class ScopedCudaDevice {
 public:
  explicit ScopedCudaDevice(int device)
      : device_(device), previous_(CurrentCudaDevice()) {
    if (previous_ != device_) cudaSetDevice(device_);
  }
  ~ScopedCudaDevice() {
    if (previous_ != device_) cudaSetDevice(previous_);
  }
  ScopedCudaDevice(const ScopedCudaDevice&) = delete;
  ScopedCudaDevice& operator=(const ScopedCudaDevice&) = delete;

 private:
  const int device_;
  const int previous_;
};

// Memory allocated once by Allocation::Allocate and freed by
// Allocation::Free on the device it was made on.
template <class Allocation>
class MemoryOnce {
 public:
  MemoryOnce() = default;
  ~MemoryOnce() {
    if (data_ == nullptr) return;
    ScopedCudaDevice on(device_);
    Allocation::Free(data_);
  }
  MemoryOnce(const MemoryOnce&) = delete;
  MemoryOnce& operator=(const MemoryOnce&) = delete;

  // Allocates `bytes`; `what` names the buffer in errors. Call once.
  KernelStatus Allocate(size_t bytes, const char* what) {
    void* data = nullptr;
    DRR_CUDA_RETURN_IF_ERROR(what, Allocation::Allocate(&data, bytes));
    data_ = data;
    device_ = CurrentCudaDevice();
    return KernelStatus::Ok();
  }
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  int device_ = 0;
};

// Device memory (volumes): cudaMalloc, freed by cudaFree.
struct DeviceAllocation {
  static cudaError_t Allocate(void** data, size_t bytes) {
    return cudaMalloc(data, bytes);
  }
  static cudaError_t Free(void* data) { return cudaFree(data); }
};
using DeviceMemory = MemoryOnce<DeviceAllocation>;

// Page-locked host memory (cudaMallocHost), which the device's copy engines
// read and write at full speed while kernels run. Its owner must not free it
// while a copy into or out of it is queued.
struct PinnedHostAllocation {
  static cudaError_t Allocate(void** data, size_t bytes) {
    return cudaMallocHost(data, bytes);
  }
  static cudaError_t Free(void* data) { return cudaFreeHost(data); }
};
using PinnedHostMemory = MemoryOnce<PinnedHostAllocation>;

// A CUDA stream: one the object created (and, after waiting for what was
// queued on it, destroys), or one a caller lends (and keeps).
class CudaStream {
 public:
  CudaStream() = default;
  ~CudaStream() {
    if (!owned_) return;
    ScopedCudaDevice on(device_);
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;

  // Creates a non-blocking stream of its own.
  KernelStatus Create() {
    DRR_CUDA_RETURN_IF_ERROR(
        "cudaStreamCreateWithFlags",
        cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    owned_ = true;
    device_ = CurrentCudaDevice();
    return KernelStatus::Ok();
  }
  // Uses `stream`, which the caller keeps alive and destroys.
  void Borrow(cudaStream_t stream) { stream_ = stream; }

  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
  bool owned_ = false;
  // The device it was created on.
  int device_ = 0;
};

// Scratch device memory used on one stream. It grows with stream-ordered
// allocation (cudaFreeAsync / cudaMallocAsync on that stream), so growing
// neither synchronises the device nor waits for other streams; once it is
// as large as the largest call, calls allocate nothing.
class StreamScratch {
 public:
  // Scratch for work on `stream`, which must outlive it.
  explicit StreamScratch(const CudaStream& stream) : stream_(stream) {}
  ~StreamScratch() {
    if (data_ == nullptr) return;
    ScopedCudaDevice on(device_);
    cudaFreeAsync(data_, stream_.get());
  }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;

  // Makes room for `bytes`; what it held is not kept when it grows. `what`
  // names the buffer in errors.
  KernelStatus Reserve(size_t bytes, const char* what) {
    if (bytes <= capacity_) return KernelStatus::Ok();
    if (data_ != nullptr) {
      DRR_CUDA_RETURN_IF_ERROR(what, cudaFreeAsync(data_, stream_.get()));
    }
    data_ = nullptr;
    capacity_ = 0;
    void* data = nullptr;
    DRR_CUDA_RETURN_IF_ERROR(what,
                             cudaMallocAsync(&data, bytes, stream_.get()));
    data_ = data;
    capacity_ = bytes;
    device_ = CurrentCudaDevice();
    return KernelStatus::Ok();
  }
  void* data() const { return data_; }

 private:
  const CudaStream& stream_;
  void* data_ = nullptr;
  size_t capacity_ = 0;
  int device_ = 0;
};

// An event that marks a point of a stream, for other streams or the host to
// wait for (no timing).
class CudaEvent {
 public:
  CudaEvent() = default;
  ~CudaEvent() {
    if (event_ == nullptr) return;
    ScopedCudaDevice on(device_);
    cudaEventDestroy(event_);
  }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;

  // Creates the event on the current device.
  KernelStatus Create() {
    DRR_CUDA_RETURN_IF_ERROR(
        "cudaEventCreateWithFlags",
        cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
    device_ = CurrentCudaDevice();
    return KernelStatus::Ok();
  }
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
  int device_ = 0;
};

// A 3D CUDA array and a texture object reading it with hardware trilinear
// filtering, zero borders and unnormalised coordinates.
class VolumeTexture {
 public:
  VolumeTexture() = default;
  ~VolumeTexture() {
    if (array_ == nullptr) return;
    ScopedCudaDevice on(device_);
    if (texture_ != 0) cudaDestroyTextureObject(texture_);
    cudaFreeArray(array_);
  }
  VolumeTexture(const VolumeTexture&) = delete;
  VolumeTexture& operator=(const VolumeTexture&) = delete;

  // Copies `voxels` (device memory, nx·ny·nz elements of `format`, each
  // `element_bytes` wide) into a new array on `stream` and makes the
  // texture. The copy is ordered on `stream` only.
  KernelStatus Create(const void* voxels, int nx, int ny, int nz,
                      size_t element_bytes, const cudaChannelFormatDesc& format,
                      cudaStream_t stream) {
    const cudaExtent extent = make_cudaExtent(nx, ny, nz);
    device_ = CurrentCudaDevice();
    DRR_CUDA_RETURN_IF_ERROR("cudaMalloc3DArray",
                             cudaMalloc3DArray(&array_, &format, extent));
    cudaMemcpy3DParms copy{};
    // make_cudaPitchedPtr takes void*; the copy only reads the source.
    copy.srcPtr = make_cudaPitchedPtr(const_cast<void*>(voxels),
                                      nx * element_bytes, nx, ny);
    copy.dstArray = array_;
    copy.extent = extent;
    copy.kind = cudaMemcpyDeviceToDevice;
    DRR_CUDA_RETURN_IF_ERROR("cudaMemcpy3DAsync (texture)",
                             cudaMemcpy3DAsync(&copy, stream));
    cudaResourceDesc resource{};
    resource.resType = cudaResourceTypeArray;
    resource.res.array.array = array_;
    cudaTextureDesc description{};
    for (int axis = 0; axis < 3; ++axis)
      description.addressMode[axis] = cudaAddressModeBorder;
    description.filterMode = cudaFilterModeLinear;
    description.readMode = cudaReadModeElementType;
    description.normalizedCoords = 0;
    DRR_CUDA_RETURN_IF_ERROR(
        "cudaCreateTextureObject",
        cudaCreateTextureObject(&texture_, &resource, &description, nullptr));
    return KernelStatus::Ok();
  }

  cudaTextureObject_t get() const { return texture_; }

 private:
  cudaArray_t array_ = nullptr;
  cudaTextureObject_t texture_ = 0;
  int device_ = 0;
};

}  // namespace drr::kernels
