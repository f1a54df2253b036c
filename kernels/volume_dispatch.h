// From run-time volume facts to the compile-time views the per-ray bodies are
// templated on: the storage type of the voxels and whether labels split the
// channels; and the renderer and the reduction, for bodies (or GPU kernels)
// chosen at compile time. Shared by the CPU and CUDA executors.
#pragma once

#include <type_traits>

#include "kernels/executor.h"
#include "kernels/resident_volume.h"
#include "kernels/volume_view.h"

namespace drr::kernels {

// Whether the labels of `volume` split a render of `settings` into channels:
// with one channel, or without labels, every class counts as one.
inline bool SplitsByLabel(const VolumeBuffers& volume,
                          const RenderSettings& settings) {
  return settings.channels > 1 && volume.labels != nullptr;
}

// Calls f(view, labels) with `view` and the label view of `volume`, or
// NoLabels when one channel sums every class (SplitsByLabel).
template <class View, class F>
void WithLabels(const View& view, const VolumeBuffers& volume,
                const RenderSettings& settings, F&& f) {
  if (SplitsByLabel(volume, settings)) {
    f(view, LabelView{volume.labels, volume.shape.nx, volume.shape.ny,
                      volume.shape.nz});
  } else {
    f(view, NoLabels{});
  }
}

// Calls f(view) with the VolumeView of the storage type of `volume`, its
// voxels read in place (host or device memory).
template <class F>
void WithVoxelView(const VolumeBuffers& volume, F&& f) {
  const VolumeShape& s = volume.shape;
  switch (volume.storage) {
    case StorageType::kFloat32:
      return f(VolumeView<float>{static_cast<const float*>(volume.voxels), s.nx,
                                 s.ny, s.nz});
    case StorageType::kFloat16:
      return f(VolumeView<Half>{static_cast<const Half*>(volume.voxels), s.nx,
                                s.ny, s.nz});
    case StorageType::kBFloat16:
      return f(VolumeView<BFloat16>{static_cast<const BFloat16*>(volume.voxels),
                                    s.nx, s.ny, s.nz});
  }
}

// Calls f(view, labels) with the VolumeView of `volume` (WithVoxelView) and
// its labels as WithLabels gives them.
template <class F>
void VisitVolume(const VolumeBuffers& volume, const RenderSettings& settings,
                 F&& f) {
  WithVoxelView(
      volume, [&](const auto& view) { WithLabels(view, volume, settings, f); });
}

// Calls f(view, labels) with the QuadView of the quads of `volume` (which
// must have them) and its labels as WithLabels gives them.
template <class F>
void VisitQuads(const VolumeBuffers& volume, const RenderSettings& settings,
                F&& f) {
  WithVoxelView(volume, [&](const auto& view) {
    using T = typename std::decay_t<decltype(view)>::Element;
    WithLabels(QuadView<T>{static_cast<const Quad<T>*>(volume.quads), view.nx,
                           view.ny, view.nz},
               volume, settings, f);
  });
}

// Calls f(std::integral_constant<Projector, p>{}) for the renderer p of
// `settings`, so that f can instantiate a body (or a GPU kernel) for it.
template <class F>
void WithProjector(const RenderSettings& settings, F&& f) {
  if (settings.projector == Projector::kSiddon) {
    f(std::integral_constant<Projector, Projector::kSiddon>{});
  } else {
    f(std::integral_constant<Projector, Projector::kTrilinear>{});
  }
}

// Calls f(std::integral_constant<Reduce, r>{}) for the reduction r of
// `settings`, so that f can instantiate a kernel for it.
template <class F>
void WithReduce(const RenderSettings& settings, F&& f) {
  if (settings.reduce == Reduce::kMax) {
    f(std::integral_constant<Reduce, Reduce::kMax>{});
  } else {
    f(std::integral_constant<Reduce, Reduce::kSum>{});
  }
}

// Calls f(view, labels, projector) for a render, pose gradient or Jacobian
// of `settings`: the QuadView where it reads quads (ReadsQuads), else the
// VolumeView; and std::integral_constant<Projector, p>{} for its renderer p.
template <class F>
void VisitRender(const VolumeBuffers& volume, const RenderSettings& settings,
                 F&& f) {
  if (ReadsQuads(settings)) {
    VisitQuads(volume, settings, [&](const auto& view, const auto& labels) {
      f(view, labels,
        std::integral_constant<Projector, Projector::kTrilinear>{});
    });
    return;
  }
  VisitVolume(volume, settings, [&](const auto& view, const auto& labels) {
    WithProjector(settings,
                  [&](auto projector) { f(view, labels, projector); });
  });
}

}  // namespace drr::kernels
