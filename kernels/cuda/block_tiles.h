// What every CUDA kernel of cuda_*_kernels.cu shares: a block's tile of
// pixels and the threads of each ray (eight a ray), where in the launch a
// thread works, the launch's shape, and clearing the last error before a
// launch. Device code: included by the .cu files only.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/executor.h"
#include "kernels/ray_march.h"

// In a namespace of its own: the kernel files share these definitions, and
// no other part of drr::kernels should meet their names.
namespace drr::kernels::block_tiles {

// The pixels of one block, a tile of kWidth × kHeight of one pose's image,
// and the kLanes threads that share each pixel's ray; one-dimensional
// blocks, lane-major: thread t is lane t / pixels of pixel t % pixels, pixels
// row by row, so that a warp holds one lane of 32 neighbouring rays.
template <int kLanes, int kWidth, int kHeight>
struct TileShape {
  static constexpr int lanes = kLanes, width = kWidth, height = kHeight;
  static constexpr int pixels = kWidth * kHeight, threads = kLanes * pixels;
};

// A ray's work dealt to 8 threads, 8 × 4 pixels, for every kernel: eight
// times the threads of one thread a pixel, so that one pose fills the GPU.
// The trilinear renderer deals its samples (a warp's 32 threads take the
// same samples of 32 neighbouring rays, which read nearby voxels, and the
// block's 8 warps neighbouring samples of them); Siddon's walk, eighths of
// its length (WalkSiddon).
using RayLanesTile = TileShape<8, 8, 4>;

// The Tile::lanes threads of one ray in a block (RayLanesTile): lane l takes
// the ray's samples first + l, first + l + lanes, ... (first: the first that
// meets the volume), or the l-th piece of its Siddon walk (WalkSiddon), and
// Combine folds the lanes' values in lane order through shared memory, so
// every lane gets the same bits, every run. Every thread of the block must
// call Combine as often as the others (a thread whose pixel is outside the
// image marches a pixel inside and does not write).
template <class Tile>
struct BlockLanes {
  static constexpr int kCount = Tile::lanes;
  int lane, pixel;
  bool inside;
  // Tile::threads floats of shared memory.
  float* values;

  __device__ int index() const { return lane; }
  __device__ bool writes() const { return inside && lane == 0; }
  template <Reduce R>
  __device__ float Combine(float v) const {
    values[lane * Tile::pixels + pixel] = v;
    __syncthreads();
    float combined = values[pixel];
#pragma unroll
    for (int l = 1; l < Tile::lanes; ++l) {
      const float other = values[l * Tile::pixels + pixel];
      combined = R == Reduce::kSum ? combined + other : fmaxf(combined, other);
    }
    __syncthreads();  // before the next Combine writes `values` again
    return combined;
  }
};

// Where a thread works: block b renders tile b / n_poses of pose b % n_poses,
// so consecutive blocks march the same region of the volume for every pose of
// the batch and share its cache lines (the co-scheduling of views TIGRE and
// ASTRA use).
template <class Tile>
struct BlockWork {
  // The block's tile, and the image row and column of its top-left pixel.
  int pose, tile, top, left;
  // This thread's pixel (row, column, and index in the tile) and lane.
  int row, col, pixel, lane;

  // This thread's pose, tile, pixel and lane; stages the pose's geometry in
  // `geometry` (shared memory) once per block. Every thread of the block
  // must call it.
  __device__ static BlockWork Of(const PoseGeometry* poses, int n_poses,
                                 int tiles_x, PoseGeometry* geometry) {
    const int pose = blockIdx.x % n_poses;
    const int tile = blockIdx.x / n_poses;
    if (threadIdx.x == 0) *geometry = poses[pose];
    __syncthreads();
    const int top = (tile / tiles_x) * Tile::height;
    const int left = (tile % tiles_x) * Tile::width;
    const int pixel = threadIdx.x % Tile::pixels;
    return {pose,
            tile,
            top,
            left,
            top + pixel / Tile::width,
            left + pixel % Tile::width,
            pixel,
            static_cast<int>(threadIdx.x / Tile::pixels)};
  }

  __device__ bool inside(const RenderSettings& s) const {
    return col < s.rays.width && row < s.rays.height;
  }
};

// Clears the thread's last CUDA error, so that the cudaGetLastError after a
// launch reports that launch and not an earlier, handled failure (an
// allocation that ran out of memory, say). Sticky errors stay.
inline void ClearLastError() { static_cast<void>(cudaGetLastError()); }

// The tiles of Tile that cover an image of `settings`.
template <class Tile>
TileGrid TilesOfShape(const RenderSettings& settings) {
  TileGrid grid;
  grid.tiles_x = (settings.rays.width + Tile::width - 1) / Tile::width;
  grid.tiles =
      grid.tiles_x * ((settings.rays.height + Tile::height - 1) / Tile::height);
  return grid;
}

// The launch shape of `n_poses` images of `settings` in tiles of Tile.
template <class Tile>
struct Launch {
  Launch(const RenderSettings& settings, int n_poses)
      : grid(TilesOfShape<Tile>(settings)),
        blocks(static_cast<unsigned>(grid.tiles) * n_poses) {}
  TileGrid grid;
  unsigned blocks;
};

}  // namespace drr::kernels::block_tiles
