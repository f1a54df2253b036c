// The CPU executor's vectorised path: every render of the voxels (line
// integrals and MIPs, trilinear or Siddon, one channel or split by label,
// hard or soft), and the pose gradients and Jacobians of the line integrals,
// marched by the widest SIMD unit of this CPU, chosen at run time (Highway:
// AVX-512, AVX2, SSE4, ...). One lane per ray; the rays of consecutive
// pixels of a row march in lockstep, so the voxels of one step share cache
// lines. Each lane does the per-ray body's arithmetic (MarchTrilinear,
// MarchSiddon, MarchTrilinearVjp, MarchSiddonVjp) in the same order, so the
// two give the same bits. Builds without Highway (the kernels-only build on
// GPU hosts) have no vectorised path: SimdRenders is then false.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "kernels/executor.h"
#include "kernels/pose_map.h"
#include "kernels/ray_march.h"
#include "kernels/resident_volume.h"

namespace drr::kernels {

// Bytes a host voxel buffer keeps readable past its last voxel: 16-bit
// voxels are gathered as the aligned 32-bit words that hold them, so the
// buffer must also start 4-byte aligned.
inline constexpr size_t kSimdVoxelPadding = 2;

// Labels a host label buffer keeps readable past its last voxel's: each is
// read as the 32-bit word it starts.
inline constexpr size_t kSimdLabelPadding = 1;

// True when this build has the vectorised path and it renders `settings`:
// every render, summed or MIP, in any channels (split by hard or soft
// labels), either sampling, but those that read the volume's quads
// (ReadsQuads: the same bits, which the per-ray bodies read).
bool SimdRenders(const RenderSettings& settings);

// True when this build has the vectorised path and it differentiates
// `settings`: the pose gradient and Jacobian of a summed render (trilinear
// or Siddon, one channel or split by hard or soft labels), but those that
// read the volume's quads (ReadsQuads).
bool SimdDifferentiates(const RenderSettings& settings);

// The instruction set the vectorised path runs on here ("AVX3", "AVX2",
// ...), or "none" without one.
const char* SimdTargetName();

// Every instruction set the vectorised path can run on here (built and
// supported by this CPU), best first; empty without one.
std::vector<std::string> SimdTargets();

// Makes the vectorised path run on `target` (one of SimdTargets()) from now
// on, in every thread, or on the best again when `target` is empty: for tests
// that cover every instruction set. Not while renders run.
void UseSimdTarget(const std::string& target);

// Writes the values (line integrals, or MIPs) of pixels [col_begin, col_end)
// of row `row` of pose `g`, every channel as the per-ray body gives it
// (RenderPixelAs): channel c of pixel col to
// out[c · channel_stride + col − col_begin]; `volume` in host memory with
// kSimdVoxelPadding (and its labels with kSimdLabelPadding); needs
// SimdRenders(settings).
void RenderSimdSpan(const VolumeBuffers& volume, const PoseGeometry& g,
                    const RenderSettings& settings, int row, int col_begin,
                    int col_end, float* out, long long channel_stride);

// Adds to row_sum the pose gradient (dL/dM, pose_map.h) of pixels
// [col_begin, col_end) of row `row` of pose `g` for upstream weights
// upstream[c · channel_stride + i] of channel c at pixel col_begin + i, as
// the CPU executor sums MarchPoseVjp: each ray's float entries, added in
// double left to right; `volume` as for RenderSimdSpan; needs
// SimdDifferentiates(settings).
void AddVjpSimdSpan(const VolumeBuffers& volume, const PoseGeometry& g,
                    const RenderSettings& settings, int row, int col_begin,
                    int col_end, const float* upstream,
                    long long channel_stride, double row_sum[kPoseMapEntries]);

// Writes the pose Jacobian (dI/dM, pose_map.h) of pixels [col_begin, col_end)
// of row `row` of pose `g`, channel c of pixel col_begin + i to
// out[c · channel_stride + kPoseMapEntries · i ..]: the bits of MarchPoseVjp
// for upstream weight 1 on that channel's class, as the CPU executor's
// per-ray Jacobian; `volume` as for RenderSimdSpan; needs
// SimdDifferentiates(settings).
void WriteJacobianSimdSpan(const VolumeBuffers& volume, const PoseGeometry& g,
                           const RenderSettings& settings, int row,
                           int col_begin, int col_end, float* out,
                           long long channel_stride);

}  // namespace drr::kernels
