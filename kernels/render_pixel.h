// One pixel of one pose, all channels, with the renderer and the reduction
// chosen at compile time (the executors dispatch once per launch:
// WithProjector, WithReduce): the per-ray bodies' passes over the classes,
// shared by the CPU and CUDA executors.
#pragma once

#include <type_traits>

#include "kernels/executor.h"
#include "kernels/ray_march.h"
#include "kernels/siddon.h"
#include "kernels/volume_dispatch.h"
#include "kernels/volume_view.h"

namespace drr::kernels {

// Channels accumulated per pass of a labelled ray; more classes take more
// passes (registers, not memory, hold the accumulators on the GPU).
inline constexpr int kChannelsPerPass = 8;

// The passes a ray of a render of `settings` from `volume` takes: one per
// kChannelsPerPass channels where labels split them (SplitsByLabel), else
// one.
inline int RenderPasses(const VolumeBuffers& volume,
                        const RenderSettings& settings) {
  return SplitsByLabel(volume, settings)
             ? (settings.channels + kChannelsPerPass - 1) / kChannelsPerPass
             : 1;
}

// One pass of renderer kProjector over the classes of `acc`: this lane's
// share of the ray (its samples, or its piece of Siddon's walk).
template <Projector kProjector, Reduce R, int kChannels, class Volume,
          class Labels, class Lanes>
DRR_HD void MarchPass(const Volume& volume, const Labels& labels,
                      const PoseGeometry& g, const RenderSettings& s, int row,
                      int col, const Lanes& lanes,
                      ChannelAccumulator<R, kChannels>* acc) {
  if constexpr (kProjector == Projector::kSiddon) {
    MarchSiddon(volume, labels, g, row, col, acc, lanes);
  } else {
    MarchTrilinear(volume, labels, g, s.rays, row, col, acc, lanes);
  }
}

// Writes the s.channels values of pixel (row, col) of pose `g` to
// out[c · channel_stride], renderer kProjector reducing by R, the ray's
// work shared by `lanes` (every thread of them calls it; the one that
// lanes.writes() writes). With one channel only class 0 is counted, so
// executors pass NoLabels then, which sums every class; without labels every
// sample is class 0: one pass, and any further channel is zero.
template <Projector kProjector, Reduce R, class Volume, class Labels,
          class Lanes = SingleLane>
DRR_HD void RenderPixelAs(const Volume& volume, const Labels& labels,
                          const PoseGeometry& g, const RenderSettings& s,
                          int row, int col, float* out,
                          long long channel_stride, const Lanes& lanes = {}) {
  const bool writes = lanes.writes();
  if constexpr (std::is_same_v<Labels, NoLabels>) {
    ChannelAccumulator<R, 1> acc{0, {0.0f}};
    MarchPass<kProjector>(volume, labels, g, s, row, col, lanes, &acc);
    const float value = lanes.template Combine<R>(acc.value[0]);
    if (!writes) return;
    out[0] = value;
    for (int c = 1; c < s.channels; ++c) out[c * channel_stride] = 0.0f;
  } else {
    for (int first = 0; first < s.channels; first += kChannelsPerPass) {
      ChannelAccumulator<R, kChannelsPerPass> acc{first, {}};
      MarchPass<kProjector>(volume, labels, g, s, row, col, lanes, &acc);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
      for (int c = 0; c < kChannelsPerPass; ++c) {
        const float value = lanes.template Combine<R>(acc.value[c]);
        if (writes && first + c < s.channels)
          out[(first + c) * channel_stride] = value;
      }
    }
  }
}

}  // namespace drr::kernels
