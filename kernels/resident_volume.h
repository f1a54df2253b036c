// A μ volume (and optional label volume) resident where an executor renders:
// host memory for the CPU executor, device memory for CUDA. The kernels read
// it through plain pointers (VolumeBuffers); the handle owns the memory.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include "kernels/storage.h"

namespace drr::kernels {

// Where an executor keeps its volumes and scratch memory.
enum class MemorySpace { kHost, kCuda };

// The most voxels a volume may have: the kernels index voxels with 32-bit
// integers.
inline constexpr long long kMaxVolumeVoxels = (1LL << 31) - 1;

// The size of a volume in voxels, x (i) fastest.
struct VolumeShape {
  int nx = 0;
  int ny = 0;
  int nz = 0;

  long long voxels() const { return 1LL * nx * ny * nz; }
};

// How a volume is to be made resident.
struct Residency {
  // The element type μ is stored in.
  StorageType storage = StorageType::kFloat32;
  // Also a texture for Sampler::kTexture (CUDA only; float32 or float16).
  bool texture = false;
  // Also the voxels in quads for Sampler::kQuads (Quad: four times the
  // voxels' bytes).
  bool quads = false;
};

// What the kernels read: pointers into the memory of the executor that made
// the volume resident. Not owning.
struct VolumeBuffers {
  MemorySpace space = MemorySpace::kHost;
  VolumeShape shape;
  StorageType storage = StorageType::kFloat32;
  // shape.voxels() elements of `storage`, x fastest.
  const void* voxels = nullptr;
  // shape.voxels() class indices, or nullptr without labels.
  const uint16_t* labels = nullptr;
  // A cudaTextureObject_t of the voxels, or 0 without a texture.
  unsigned long long texture = 0;
  // shape.voxels() Quad<T> of the storage type T (QuadAt of each voxel, in
  // the voxels' order), or nullptr without quads.
  const void* quads = nullptr;
};

// A resident volume. Immutable; its memory is freed when the last reference
// to it goes.
class ResidentVolume {
 public:
  // Wraps `buffers`, which stay valid while `memory` (their owner, of any
  // type) lives; `bytes` is what they hold in their memory space.
  ResidentVolume(VolumeBuffers buffers, long long bytes,
                 std::shared_ptr<const void> memory)
      : buffers_(buffers), bytes_(bytes), memory_(std::move(memory)) {}

  // The pointers the kernels read.
  const VolumeBuffers& buffers() const { return buffers_; }
  // The volume's size in voxels.
  VolumeShape shape() const { return buffers_.shape; }
  // The element type μ is stored in.
  StorageType storage() const { return buffers_.storage; }
  // Whether a label volume came with it.
  bool has_labels() const { return buffers_.labels != nullptr; }
  // Whether the texture sampler can read it.
  bool has_texture() const { return buffers_.texture != 0; }
  // Whether the quads sampler can read it.
  bool has_quads() const { return buffers_.quads != nullptr; }
  // Bytes this volume holds in its executor's memory.
  long long resident_bytes() const { return bytes_; }

 private:
  VolumeBuffers buffers_;
  long long bytes_;
  std::shared_ptr<const void> memory_;
};

}  // namespace drr::kernels
