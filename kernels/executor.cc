#include "kernels/executor.h"

namespace drr::kernels {

KernelStatus CheckDifferentiable(const RenderSettings& settings) {
  if (settings.renderer != Renderer::kTrilinear) {
    return KernelStatus::Error(KernelCode::kInvalidArgument,
                               "pose gradients need the trilinear renderer");
  }
  if (settings.reduce != Reduce::kSum) {
    return KernelStatus::Error(KernelCode::kInvalidArgument,
                               "pose gradients need a line integral (not MIP)");
  }
  if (settings.sampler != Sampler::kExact) {
    return KernelStatus::Error(KernelCode::kInvalidArgument,
                               "pose gradients need the exact sampler");
  }
  return KernelStatus::Ok();
}

}  // namespace drr::kernels
