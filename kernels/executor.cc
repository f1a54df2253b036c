#include "kernels/executor.h"

#include <string>

namespace drr::kernels {
namespace {

const char* SpaceName(MemorySpace space) {
  return space == MemorySpace::kHost ? "host" : "CUDA";
}

}  // namespace

KernelStatus CheckDifferentiable(const RenderSettings& settings) {
  if (settings.reduce != Reduce::kSum) {
    return KernelStatus::Error(KernelCode::kInvalidArgument,
                               "pose gradients need a line integral (not MIP)");
  }
  if (settings.sampler == Sampler::kTexture) {
    return KernelStatus::Error(
        KernelCode::kInvalidArgument,
        "pose gradients need the exact sampler (or its quads), not the "
        "texture");
  }
  return KernelStatus::Ok();
}

KernelStatus CheckLaunch(MemorySpace space, const ResidentVolume& volume,
                         const RenderSettings& settings,
                         const Workspace& workspace) {
  if (volume.buffers().space != space) {
    return KernelStatus::Error(KernelCode::kInternal,
                               std::string("the volume is resident in ") +
                                   SpaceName(volume.buffers().space) +
                                   " memory, the executor runs on " +
                                   SpaceName(space) + " memory");
  }
  if (workspace.space() != space) {
    return KernelStatus::Error(KernelCode::kInternal,
                               std::string("the workspace belongs to a ") +
                                   SpaceName(workspace.space()) +
                                   " executor, not a " + SpaceName(space) +
                                   " one");
  }
  if (settings.sampler == Sampler::kTexture && space == MemorySpace::kHost) {
    return KernelStatus::Error(KernelCode::kInvalidArgument,
                               "the texture sampler needs the CUDA executor");
  }
  if (settings.rays.soft_labels &&
      (settings.projector != Projector::kTrilinear ||
       settings.reduce != Reduce::kSum)) {
    return KernelStatus::Error(
        KernelCode::kInvalidArgument,
        "soft labels need trilinear line integrals (not Siddon, not MIP)");
  }
  if (settings.sampler == Sampler::kTexture &&
      settings.projector == Projector::kTrilinear && !volume.has_texture()) {
    return KernelStatus::Error(
        KernelCode::kInvalidArgument,
        "the texture sampler needs a volume made resident with a texture");
  }
  if (settings.sampler == Sampler::kQuads &&
      settings.projector == Projector::kTrilinear && !volume.has_quads()) {
    return KernelStatus::Error(
        KernelCode::kInvalidArgument,
        "the quads sampler needs a volume made resident with quads");
  }
  return KernelStatus::Ok();
}

KernelStatus CheckGradientLaunch(MemorySpace space,
                                 const ResidentVolume& volume,
                                 const RenderSettings& settings,
                                 const Workspace& workspace) {
  DRR_KERNEL_RETURN_IF_ERROR(CheckLaunch(space, volume, settings, workspace));
  return CheckDifferentiable(settings);
}

}  // namespace drr::kernels
