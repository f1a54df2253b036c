// One pixel of one pose, all channels: the dispatch from run-time settings
// to the per-ray bodies, shared by the CPU and CUDA executors.
#pragma once

#include "kernels/executor.h"
#include "kernels/ray_march.h"
#include "kernels/siddon.h"

namespace drr::kernels {

// Channels accumulated per pass of a labelled ray; more classes take more
// passes (registers, not memory, hold the accumulators on the GPU).
inline constexpr int kChannelsPerPass = 8;

template <Reduce R, int kChannels, class Volume, class Labels>
DRR_HD void MarchPass(const Volume& volume, const Labels& labels,
                      const PoseGeometry& g, const RenderSettings& s, int row,
                      int col, ChannelAccumulator<R, kChannels>* acc) {
  if (s.projector == Projector::kSiddon) {
    MarchSiddon(volume, labels, g, row, col, acc);
  } else {
    MarchTrilinear(volume, labels, g, s.rays, row, col, acc);
  }
}

template <Reduce R, class Volume, class Labels>
DRR_HD void RenderPixelReduced(const Volume& volume, const Labels& labels,
                               const PoseGeometry& g, const RenderSettings& s,
                               int row, int col, float* out,
                               long long channel_stride) {
  if (s.channels == 1) {
    ChannelAccumulator<R, 1> acc{0, {0.0f}};
    MarchPass(volume, labels, g, s, row, col, &acc);
    out[0] = acc.value[0];
    return;
  }
  for (int first = 0; first < s.channels; first += kChannelsPerPass) {
    ChannelAccumulator<R, kChannelsPerPass> acc{first, {}};
    MarchPass(volume, labels, g, s, row, col, &acc);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int c = 0; c < kChannelsPerPass; ++c) {
      if (first + c < s.channels)
        out[(first + c) * channel_stride] = acc.value[c];
    }
  }
}

// Writes the s.channels values of pixel (row, col) of pose `g` to
// out[c · channel_stride]. With one channel only class 0 is counted, so
// executors pass NoLabels then, which sums every class.
template <class Volume, class Labels>
DRR_HD void RenderPixel(const Volume& volume, const Labels& labels,
                        const PoseGeometry& g, const RenderSettings& s, int row,
                        int col, float* out, long long channel_stride) {
  if (s.reduce == Reduce::kMax) {
    RenderPixelReduced<Reduce::kMax>(volume, labels, g, s, row, col, out,
                                     channel_stride);
  } else {
    RenderPixelReduced<Reduce::kSum>(volume, labels, g, s, row, col, out,
                                     channel_stride);
  }
}

}  // namespace drr::kernels
