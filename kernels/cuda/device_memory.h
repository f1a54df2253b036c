// Owners of CUDA resources: device memory, streams, 3D arrays and texture
// objects, each released by its destructor. Move-only.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "kernels/cuda/cuda_check.h"

namespace drr::kernels {

// Device memory of some bytes; Reserve grows it, so that a buffer reused
// for the same or smaller calls allocates nothing.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Makes room for `bytes` (contents are not kept when it grows); `what`
  // names the buffer in errors.
  KernelStatus Reserve(size_t bytes, const char* what) {
    if (bytes <= capacity_) return KernelStatus::Ok();
    cudaFree(data_);
    data_ = nullptr;
    capacity_ = 0;
    DRR_CUDA_RETURN_IF_ERROR(what, cudaMalloc(&data_, bytes));
    capacity_ = bytes;
    return KernelStatus::Ok();
  }

  void* data() const { return data_; }
  // Bytes held.
  size_t capacity() const { return capacity_; }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

// A non-blocking CUDA stream.
class CudaStream {
 public:
  CudaStream() = default;
  ~CudaStream() {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;

  // Creates the stream.
  KernelStatus Create() {
    DRR_CUDA_RETURN_IF_ERROR(
        "cudaStreamCreateWithFlags",
        cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    return KernelStatus::Ok();
  }
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// A 3D CUDA array and a texture object reading it with hardware trilinear
// filtering, zero borders and unnormalised coordinates.
class VolumeTexture {
 public:
  VolumeTexture() = default;
  ~VolumeTexture() {
    if (texture_ != 0) cudaDestroyTextureObject(texture_);
    if (array_ != nullptr) cudaFreeArray(array_);
  }
  VolumeTexture(const VolumeTexture&) = delete;
  VolumeTexture& operator=(const VolumeTexture&) = delete;

  // Copies `voxels` (device memory, nx·ny·nz elements of `format`, each
  // `element_bytes` wide) into a new array on `stream` and makes the texture;
  // waits for the copy.
  KernelStatus Create(const void* voxels, int nx, int ny, int nz,
                      size_t element_bytes, const cudaChannelFormatDesc& format,
                      cudaStream_t stream) {
    const cudaExtent extent = make_cudaExtent(nx, ny, nz);
    DRR_CUDA_RETURN_IF_ERROR("cudaMalloc3DArray",
                             cudaMalloc3DArray(&array_, &format, extent));
    cudaMemcpy3DParms copy{};
    copy.srcPtr = make_cudaPitchedPtr(const_cast<void*>(voxels),
                                      nx * element_bytes, nx, ny);
    copy.dstArray = array_;
    copy.extent = extent;
    copy.kind = cudaMemcpyDeviceToDevice;
    DRR_CUDA_RETURN_IF_ERROR("cudaMemcpy3DAsync (texture)",
                             cudaMemcpy3DAsync(&copy, stream));
    DRR_CUDA_RETURN_IF_ERROR("cudaStreamSynchronize (texture)",
                             cudaStreamSynchronize(stream));
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
};

}  // namespace drr::kernels
