// Host entry points of the CUDA kernels: each launches the kernels of one
// launch's poses on the caller's stream (the pose gradient two: its tiles'
// partials, then their sums), dispatching on the volume's storage type,
// labels and sampler. All pointers are device memory; nothing is allocated
// and nothing is waited for.
#pragma once

#include <cuda_runtime.h>

#include "kernels/executor.h"
#include "kernels/resident_volume.h"

namespace drr::kernels {

// The work of one launch: one block per tile of 8 × 4 pixels of the image of
// each pose, poses fastest, eight threads a ray.
struct TileGrid {
  // Tiles per image row, and per image.
  int tiles_x = 0;
  int tiles = 0;
};

// kOk when this build has kernel code the current device can run (its
// architecture is among CMAKE_CUDA_ARCHITECTURES), else why not.
KernelStatus CheckKernelImage();

// The tiles of an image of `settings` of the pose gradient's kernel: one
// partial each.
TileGrid TilesOf(const RenderSettings& settings);

// Threads every launch runs for each pixel: the lanes of its ray.
int ThreadsPerPixel();

// Writes QuadAt of every voxel of `volume` into `quads` (shape.voxels()
// Quad<T> of its storage type T, in the voxels' order), which
// Sampler::kQuads reads.
KernelStatus LaunchBuildQuads(const VolumeBuffers& volume, cudaStream_t stream,
                              void* quads);

// Renders `n_poses` images into `images` (Executor::Render's layout).
KernelStatus LaunchRender(const VolumeBuffers& volume,
                          const PoseGeometry* poses, int n_poses,
                          const RenderSettings& settings, cudaStream_t stream,
                          float* images);

// Writes each pose's gradient of Σ upstream·image into grad[pose]: first,
// for each pose and tile (TilesOf), the tile's sum of its per-ray gradients,
// reduced by a fixed tree, into partials[pose][tile] (kPoseMapEntries floats
// each); then each pose's partials added in tile order in float64
// (SumEntryInOrder, the host's arithmetic). No atomics: same bits every run.
KernelStatus LaunchPoseGradient(const VolumeBuffers& volume,
                                const PoseGeometry* poses, int n_poses,
                                const RenderSettings& settings,
                                const float* upstream, cudaStream_t stream,
                                float* partials, PoseMapGradient* grad);

// Writes dI/dM of every pose, channel and pixel into `jacobian`
// (Executor::PoseJacobian's layout).
KernelStatus LaunchPoseJacobian(const VolumeBuffers& volume,
                                const PoseGeometry* poses, int n_poses,
                                const RenderSettings& settings,
                                cudaStream_t stream, float* jacobian);

}  // namespace drr::kernels
