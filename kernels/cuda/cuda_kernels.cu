// The CUDA kernels: the shared per-ray bodies, one thread per pixel, every
// pose of a batch in one launch.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/pose_gradient.h"
#include "kernels/render_pixel.h"
#include "kernels/volume_dispatch.h"

namespace drr::kernels {
namespace {

constexpr int kTileWidth = 16;
constexpr int kTileHeight = 8;
constexpr int kTileThreads = kTileWidth * kTileHeight;

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

// One thread per pixel computes its ray's partial derivatives; the block
// sums them by a fixed tree in shared memory and writes one partial per
// (pose, tile), which the host sums in order: no atomics, same bits every run.
template <Projector kProjector, class Volume, class Labels>
__global__ void PoseGradientKernel(Volume volume, Labels labels,
                                   const PoseGeometry* poses,
                                   RenderSettings settings, int n_poses,
                                   int tiles_x, int tiles,
                                   const float* upstream, float* partials) {
  __shared__ PoseGeometry geometry;
  __shared__ float sums[kPoseMapEntries][kTileThreads];
  const BlockWork w = BlockWork::Of(poses, n_poses, tiles_x, &geometry);
  const int pose = w.pose, row = w.row, col = w.col;
  const int tile = blockIdx.x / n_poses;
  const int thread = threadIdx.y * kTileWidth + threadIdx.x;
  float g[kPoseMapEntries] = {};
  if (w.inside(settings)) {
    const long long plane =
        static_cast<long long>(settings.rays.height) * settings.rays.width;
    const float* weights = upstream + pose * settings.channels * plane +
                           row * settings.rays.width + col;
    MarchPoseVjp<kProjector>(volume, labels, geometry, settings.rays, row, col,
                             weights, plane, settings.channels, g);
  }
#pragma unroll
  for (int k = 0; k < kPoseMapEntries; ++k) sums[k][thread] = g[k];
  __syncthreads();
  for (int stride = kTileThreads / 2; stride > 0; stride /= 2) {
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

// One thread per pixel and channel writes its derivatives dI/dM.
template <Projector kProjector, class Volume, class Labels>
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
    float d[kPoseMapEntries] = {};
    MarchPoseVjp<kProjector>(volume, SingleClass<Labels>{labels, c}, geometry,
                             settings.rays, row, col, &one, 0, 1, d);
    float* pixel =
        out + ((((static_cast<long long>(pose) * settings.channels + c) *
                     settings.rays.height +
                 row) *
                    settings.rays.width +
                col) *
               kPoseMapEntries);
#pragma unroll
    for (int k = 0; k < kPoseMapEntries; ++k) pixel[k] = d[k];
  }
}

// Clears the thread's last CUDA error, so that the cudaGetLastError after a
// launch reports that launch and not an earlier, handled failure (an
// allocation that ran out of memory, say). Sticky errors stay.
void ClearLastError() { static_cast<void>(cudaGetLastError()); }

// The launch shape of `n_poses` images of `settings`.
struct Launch {
  Launch(const RenderSettings& settings, int n_poses)
      : grid(TilesOf(settings)),
        blocks(static_cast<unsigned>(grid.tiles) * n_poses, 1, 1),
        threads(kTileWidth, kTileHeight, 1) {}
  TileGrid grid;
  dim3 blocks, threads;
};

}  // namespace

KernelStatus CheckKernelImage() {
  cudaFuncAttributes attributes{};
  return CudaStatus(
      "cudaFuncGetAttributes (is there a kernel image for this GPU?)",
      cudaFuncGetAttributes(&attributes,
                            RenderKernel<VolumeView<float>, NoLabels>));
}

TileGrid TilesOf(const RenderSettings& settings) {
  TileGrid grid;
  grid.tiles_x = (settings.rays.width + kTileWidth - 1) / kTileWidth;
  grid.tiles =
      grid.tiles_x * ((settings.rays.height + kTileHeight - 1) / kTileHeight);
  return grid;
}

KernelStatus LaunchRender(const VolumeBuffers& volume,
                          const PoseGeometry* poses, int n_poses,
                          const RenderSettings& settings, cudaStream_t stream,
                          float* images) {
  const Launch launch(settings, n_poses);
  ClearLastError();
  auto render = [&](const auto& view, const auto& labels) {
    RenderKernel<<<launch.blocks, launch.threads, 0, stream>>>(
        view, labels, poses, settings, n_poses, launch.grid.tiles_x, images);
  };
  if (settings.sampler == Sampler::kTexture &&
      settings.projector == Projector::kTrilinear) {
    const TextureVolume texture{volume.texture, volume.shape.nx,
                                volume.shape.ny, volume.shape.nz};
    WithLabels(texture, volume, settings, render);
  } else {
    VisitVolume(volume, settings, render);
  }
  return CudaStatus("RenderKernel launch", cudaGetLastError());
}

KernelStatus LaunchPoseGradient(const VolumeBuffers& volume,
                                const PoseGeometry* poses, int n_poses,
                                const RenderSettings& settings,
                                const float* upstream, cudaStream_t stream,
                                float* partials) {
  const Launch launch(settings, n_poses);
  ClearLastError();
  VisitVolume(volume, settings, [&](const auto& view, const auto& labels) {
    WithProjector(settings, [&](auto projector) {
      PoseGradientKernel<decltype(projector)::value>
          <<<launch.blocks, launch.threads, 0, stream>>>(
              view, labels, poses, settings, n_poses, launch.grid.tiles_x,
              launch.grid.tiles, upstream, partials);
    });
  });
  return CudaStatus("PoseGradientKernel launch", cudaGetLastError());
}

KernelStatus LaunchPoseJacobian(const VolumeBuffers& volume,
                                const PoseGeometry* poses, int n_poses,
                                const RenderSettings& settings,
                                cudaStream_t stream, float* jacobian) {
  const Launch launch(settings, n_poses);
  ClearLastError();
  VisitVolume(volume, settings, [&](const auto& view, const auto& labels) {
    WithProjector(settings, [&](auto projector) {
      PoseJacobianKernel<decltype(projector)::value>
          <<<launch.blocks, launch.threads, 0, stream>>>(
              view, labels, poses, settings, n_poses, launch.grid.tiles_x,
              jacobian);
    });
  });
  return CudaStatus("PoseJacobianKernel launch", cudaGetLastError());
}

}  // namespace drr::kernels
