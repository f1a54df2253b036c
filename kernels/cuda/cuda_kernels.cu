// The CUDA kernels: the shared per-ray bodies, eight threads per ray, every
// pose of a launch in one grid (the executor splits a batch into launches).
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/ordered_sum.h"
#include "kernels/pose_gradient.h"
#include "kernels/render_pixel.h"
#include "kernels/volume_dispatch.h"

namespace drr::kernels {
namespace {

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
// times the threads of one a pixel, so that one pose fills the GPU.
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
template <class Tile>
struct BlockWork {
  int pose, row, col, lane, pixel;

  // This thread's pose, pixel and lane; stages the pose's geometry in
  // `geometry` (shared memory) once per block. Every thread of the block
  // must call it.
  __device__ static BlockWork Of(const PoseGeometry* poses, int n_poses,
                                 int tiles_x, PoseGeometry* geometry) {
    const int pose = blockIdx.x % n_poses;
    const int tile = blockIdx.x / n_poses;
    if (threadIdx.x == 0) *geometry = poses[pose];
    __syncthreads();
    const int pixel = threadIdx.x % Tile::pixels;
    return {pose, (tile / tiles_x) * Tile::height + pixel / Tile::width,
            (tile % tiles_x) * Tile::width + pixel % Tile::width,
            static_cast<int>(threadIdx.x / Tile::pixels), pixel};
  }

  __device__ bool inside(const RenderSettings& s) const {
    return col < s.rays.width && row < s.rays.height;
  }
};

// Blocks of a render that each multiprocessor must hold at once: five for
// the trilinear renderer without labels (its 256 threads then get 48
// registers each, 62.5 % occupancy, 1.04-1.16x faster on an H200 than the
// 54 it takes unbounded); a labelled pass's eight accumulators, and
// Siddon's walk, would spill under that (ptxas, sm_90).
template <Projector kProjector, class Labels>
constexpr int MinRenderBlocks() {
  if (kProjector == Projector::kTrilinear && std::is_same_v<Labels, NoLabels>)
    return 5;
  return 1;
}

// Renders each pixel of a tile with RayLanesTile's lanes: every channel of
// it, written by lane 0.
template <Projector kProjector, Reduce R, class Volume, class Labels>
__global__ void __launch_bounds__(RayLanesTile::threads,
                                  MinRenderBlocks<kProjector, Labels>())
    RenderKernel(Volume volume, Labels labels, const PoseGeometry* poses,
                 RenderSettings settings, int n_poses, int tiles_x,
                 float* out) {
  using Tile = RayLanesTile;
  __shared__ PoseGeometry geometry;
  const auto w = BlockWork<Tile>::Of(poses, n_poses, tiles_x, &geometry);
  const long long plane =
      static_cast<long long>(settings.rays.height) * settings.rays.width;
  auto pixel = [&](int row, int col) {
    return out + w.pose * settings.channels * plane +
           row * settings.rays.width + col;
  };
  // Every thread combines: one outside the image marches the nearest pixel
  // inside and does not write.
  const int row = min(w.row, settings.rays.height - 1);
  const int col = min(w.col, settings.rays.width - 1);
  __shared__ float lane_values[Tile::threads];
  RenderPixelAs<kProjector, R>(
      volume, labels, geometry, settings, row, col, pixel(row, col), plane,
      BlockLanes<Tile>{w.lane, w.pixel, w.inside(settings), lane_values});
}

// Each thread computes its part of its ray's partial derivatives (the VJP
// of one lane's samples for the trilinear renderer, of the crossings in one
// lane's piece of the walk for Siddon: it is linear in them); the block
// sums them by a fixed tree in shared memory and writes one partial per
// (pose, tile), which SumPartialsKernel adds in order: no atomics, same bits
// every run.
template <Projector kProjector, class Volume, class Labels>
__global__ void PoseGradientKernel(Volume volume, Labels labels,
                                   const PoseGeometry* poses,
                                   RenderSettings settings, int n_poses,
                                   int tiles_x, int tiles,
                                   const float* upstream, float* partials) {
  using Tile = RayLanesTile;
  __shared__ PoseGeometry geometry;
  __shared__ float sums[kPoseMapEntries][Tile::threads];
  const auto w = BlockWork<Tile>::Of(poses, n_poses, tiles_x, &geometry);
  const int pose = w.pose, row = w.row, col = w.col;
  const int tile = blockIdx.x / n_poses;
  const int thread = threadIdx.x;
  float g[kPoseMapEntries] = {};
  if (w.inside(settings)) {
    const long long plane =
        static_cast<long long>(settings.rays.height) * settings.rays.width;
    const float* weights = upstream + pose * settings.channels * plane +
                           row * settings.rays.width + col;
    MarchPoseVjp<kProjector>(volume, labels, geometry, settings.rays, row, col,
                             weights, plane, settings.channels, g,
                             RayLane<Tile::lanes>{w.lane});
  }
#pragma unroll
  for (int k = 0; k < kPoseMapEntries; ++k) sums[k][thread] = g[k];
  __syncthreads();
  for (int stride = Tile::threads / 2; stride > 0; stride /= 2) {
    if (thread < stride) {
#pragma unroll
      for (int k = 0; k < kPoseMapEntries; ++k)
        sums[k][thread] += sums[k][thread + stride];
    }
    __syncthreads();
  }
  if (thread < kPoseMapEntries)
    partials[(static_cast<long long>(pose) * tiles + tile) * kPoseMapEntries +
             thread] = sums[thread][0];
}

// One thread per pose and entry adds the pose's `tiles` partials of that
// entry in order (SumEntryInOrder).
__global__ void SumPartialsKernel(const float* partials, int n_poses, int tiles,
                                  PoseMapGradient* grad) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= n_poses * kPoseMapEntries) return;
  const int pose = t / kPoseMapEntries, k = t % kPoseMapEntries;
  grad[pose].d[k] = SumEntryInOrder(
      partials + static_cast<long long>(pose) * tiles * kPoseMapEntries, tiles,
      k);
}

// Writes dI/dM of every pixel of a tile and channel with RayLanesTile's
// lanes: each lane computes its part of its ray's derivatives (as in the
// pose gradient), the parts are added in lane order through shared memory
// (same bits every run), and the block's threads then write the tile's
// derivatives together, each tile row's pixels being contiguous in `out`.
template <Projector kProjector, class Volume, class Labels>
__global__ void PoseJacobianKernel(Volume volume, Labels labels,
                                   const PoseGeometry* poses,
                                   RenderSettings settings, int n_poses,
                                   int tiles_x, float* out) {
  using Tile = RayLanesTile;
  constexpr int kRowValues = Tile::width * kPoseMapEntries;
  constexpr int kTileValues = Tile::height * kRowValues;
  __shared__ PoseGeometry geometry;
  __shared__ float parts[Tile::threads][kPoseMapEntries];
  const auto w = BlockWork<Tile>::Of(poses, n_poses, tiles_x, &geometry);
  const int tile = blockIdx.x / n_poses;
  const int top = (tile / tiles_x) * Tile::height;
  const int left = (tile % tiles_x) * Tile::width;
  const float one = 1.0f;
  for (int c = 0; c < settings.channels; ++c) {
    float d[kPoseMapEntries] = {};
    if (w.inside(settings)) {
      MarchPoseVjp<kProjector>(volume, SingleClass<Labels>{labels, c}, geometry,
                               settings.rays, w.row, w.col, &one, 0, 1, d,
                               RayLane<Tile::lanes>{w.lane});
    }
#pragma unroll
    for (int k = 0; k < kPoseMapEntries; ++k) parts[threadIdx.x][k] = d[k];
    __syncthreads();
    const long long channel =
        static_cast<long long>(w.pose) * settings.channels + c;
    for (int v = threadIdx.x; v < kTileValues; v += Tile::threads) {
      const int y = v / kRowValues;
      const int x = v % kRowValues / kPoseMapEntries;
      const int k = v % kPoseMapEntries;
      const int row = top + y, col = left + x;
      if (row >= settings.rays.height || col >= settings.rays.width) continue;
      const int pixel = y * Tile::width + x;
      float sum = parts[pixel][k];
#pragma unroll
      for (int l = 1; l < Tile::lanes; ++l)
        sum += parts[l * Tile::pixels + pixel][k];
      out[((channel * settings.rays.height + row) * settings.rays.width + col) *
              kPoseMapEntries +
          k] = sum;
    }
    __syncthreads();  // before the next channel writes `parts` again
  }
}

// Clears the thread's last CUDA error, so that the cudaGetLastError after a
// launch reports that launch and not an earlier, handled failure (an
// allocation that ran out of memory, say). Sticky errors stay.
void ClearLastError() { static_cast<void>(cudaGetLastError()); }

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

}  // namespace

KernelStatus CheckKernelImage() {
  cudaFuncAttributes attributes{};
  return CudaStatus(
      "cudaFuncGetAttributes (is there a kernel image for this GPU?)",
      cudaFuncGetAttributes(&attributes,
                            RenderKernel<Projector::kTrilinear, Reduce::kSum,
                                         VolumeView<float>, NoLabels>));
}

TileGrid TilesOf(const RenderSettings& settings) {
  return TilesOfShape<RayLanesTile>(settings);
}

int ThreadsPerPixel() { return RayLanesTile::lanes; }

KernelStatus LaunchRender(const VolumeBuffers& volume,
                          const PoseGeometry* poses, int n_poses,
                          const RenderSettings& settings, cudaStream_t stream,
                          float* images) {
  ClearLastError();
  auto render = [&](auto projector, const auto& view, const auto& labels) {
    constexpr Projector kProjector = decltype(projector)::value;
    const Launch<RayLanesTile> launch(settings, n_poses);
    WithReduce(settings, [&](auto reduce) {
      RenderKernel<kProjector, decltype(reduce)::value>
          <<<launch.blocks, RayLanesTile::threads, 0, stream>>>(
              view, labels, poses, settings, n_poses, launch.grid.tiles_x,
              images);
    });
  };
  if (settings.sampler == Sampler::kTexture &&
      settings.projector == Projector::kTrilinear) {
    const TextureVolume texture{volume.texture, volume.shape.nx,
                                volume.shape.ny, volume.shape.nz};
    WithLabels(
        texture, volume, settings, [&](const auto& view, const auto& labels) {
          render(std::integral_constant<Projector, Projector::kTrilinear>{},
                 view, labels);
        });
  } else {
    VisitVolume(volume, settings, [&](const auto& view, const auto& labels) {
      WithProjector(settings,
                    [&](auto projector) { render(projector, view, labels); });
    });
  }
  return CudaStatus("RenderKernel launch", cudaGetLastError());
}

KernelStatus LaunchPoseGradient(const VolumeBuffers& volume,
                                const PoseGeometry* poses, int n_poses,
                                const RenderSettings& settings,
                                const float* upstream, cudaStream_t stream,
                                float* partials, PoseMapGradient* grad) {
  ClearLastError();
  int tiles = 0;
  VisitVolume(volume, settings, [&](const auto& view, const auto& labels) {
    WithProjector(settings, [&](auto projector) {
      const Launch<RayLanesTile> launch(settings, n_poses);
      tiles = launch.grid.tiles;
      PoseGradientKernel<decltype(projector)::value>
          <<<launch.blocks, RayLanesTile::threads, 0, stream>>>(
              view, labels, poses, settings, n_poses, launch.grid.tiles_x,
              launch.grid.tiles, upstream, partials);
    });
  });
  DRR_KERNEL_RETURN_IF_ERROR(
      CudaStatus("PoseGradientKernel launch", cudaGetLastError()));
  constexpr int kThreads = 128;
  const int sums = n_poses * kPoseMapEntries;
  SumPartialsKernel<<<(sums + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
      partials, n_poses, tiles, grad);
  return CudaStatus("SumPartialsKernel launch", cudaGetLastError());
}

KernelStatus LaunchPoseJacobian(const VolumeBuffers& volume,
                                const PoseGeometry* poses, int n_poses,
                                const RenderSettings& settings,
                                cudaStream_t stream, float* jacobian) {
  const Launch<RayLanesTile> launch(settings, n_poses);
  ClearLastError();
  VisitVolume(volume, settings, [&](const auto& view, const auto& labels) {
    WithProjector(settings, [&](auto projector) {
      PoseJacobianKernel<decltype(projector)::value>
          <<<launch.blocks, RayLanesTile::threads, 0, stream>>>(
              view, labels, poses, settings, n_poses, launch.grid.tiles_x,
              jacobian);
    });
  });
  return CudaStatus("PoseJacobianKernel launch", cudaGetLastError());
}

}  // namespace drr::kernels
