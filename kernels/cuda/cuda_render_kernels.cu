// The render kernels: a kernel per renderer and reduction, eight threads a
// ray, every pose of a launch in one grid (the executor splits a batch into
// launches).
#include <algorithm>
#include <type_traits>

#include "kernels/cuda/block_tiles.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/render_pixel.h"
#include "kernels/volume_dispatch.h"

namespace drr::kernels {
namespace {

using block_tiles::BlockLanes;
using block_tiles::BlockWork;
using block_tiles::ClearLastError;
using block_tiles::Launch;
using block_tiles::RayLanesTile;

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

// One thread a voxel (grid-stride): the voxel's quad (QuadAt).
template <typename T>
__global__ void BuildQuadsKernel(VolumeView<T> volume, Quad<T>* quads) {
  const long long count = 1LL * volume.nx * volume.ny * volume.nz;
  const long long stride = 1LL * gridDim.x * blockDim.x;
  for (long long v = 1LL * blockIdx.x * blockDim.x + threadIdx.x; v < count;
       v += stride) {
    const int i = static_cast<int>(v % volume.nx);
    const int j = static_cast<int>(v / volume.nx % volume.ny);
    const int k = static_cast<int>(v / (1LL * volume.nx * volume.ny));
    quads[v] = QuadAt(volume, i, j, k);
  }
}

}  // namespace

KernelStatus LaunchBuildQuads(const VolumeBuffers& volume, cudaStream_t stream,
                              void* quads) {
  ClearLastError();
  constexpr int kThreads = 256;
  constexpr long long kMostBlocks = 1 << 16;
  const long long blocks = std::clamp(
      (volume.shape.voxels() + kThreads - 1) / kThreads, 1LL, kMostBlocks);
  WithVoxelView(volume, [&](const auto& view) {
    using T = typename std::decay_t<decltype(view)>::Element;
    BuildQuadsKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        view, static_cast<Quad<T>*>(quads));
  });
  return CudaStatus("BuildQuadsKernel launch", cudaGetLastError());
}

KernelStatus CheckKernelImage() {
  cudaFuncAttributes attributes{};
  return CudaStatus(
      "cudaFuncGetAttributes (is there a kernel image for this GPU?)",
      cudaFuncGetAttributes(&attributes,
                            RenderKernel<Projector::kTrilinear, Reduce::kSum,
                                         VolumeView<float>, NoLabels>));
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
    VisitRender(volume, settings,
                [&](const auto& view, const auto& labels, auto projector) {
                  render(projector, view, labels);
                });
  }
  return CudaStatus("RenderKernel launch", cudaGetLastError());
}

}  // namespace drr::kernels
