// The pose gradient's and the Jacobian's kernels: the per-ray VJP bodies,
// eight threads a ray, every pose of a launch in one grid.
#include "kernels/cuda/block_tiles.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/ordered_sum.h"
#include "kernels/pose_gradient.h"
#include "kernels/volume_dispatch.h"

namespace drr::kernels {
namespace {

using block_tiles::BlockWork;
using block_tiles::ClearLastError;
using block_tiles::Launch;
using block_tiles::RayLanesTile;
using block_tiles::TilesOfShape;

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
    partials[(static_cast<long long>(pose) * tiles + w.tile) * kPoseMapEntries +
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
      const int row = w.top + y, col = w.left + x;
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

}  // namespace

TileGrid TilesOf(const RenderSettings& settings) {
  return TilesOfShape<RayLanesTile>(settings);
}

KernelStatus LaunchPoseGradient(const VolumeBuffers& volume,
                                const PoseGeometry* poses, int n_poses,
                                const RenderSettings& settings,
                                const float* upstream, cudaStream_t stream,
                                float* partials, PoseMapGradient* grad) {
  ClearLastError();
  int tiles = 0;
  VisitRender(volume, settings,
              [&](const auto& view, const auto& labels, auto projector) {
                const Launch<RayLanesTile> launch(settings, n_poses);
                tiles = launch.grid.tiles;
                PoseGradientKernel<decltype(projector)::value>
                    <<<launch.blocks, RayLanesTile::threads, 0, stream>>>(
                        view, labels, poses, settings, n_poses,
                        launch.grid.tiles_x, launch.grid.tiles, upstream,
                        partials);
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
  VisitRender(volume, settings,
              [&](const auto& view, const auto& labels, auto projector) {
                PoseJacobianKernel<decltype(projector)::value>
                    <<<launch.blocks, RayLanesTile::threads, 0, stream>>>(
                        view, labels, poses, settings, n_poses,
                        launch.grid.tiles_x, jacobian);
              });
  return CudaStatus("PoseJacobianKernel launch", cudaGetLastError());
}

}  // namespace drr::kernels
