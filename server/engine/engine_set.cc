#include "server/engine/engine_set.h"

#include "absl/strings/str_cat.h"

namespace drr::server {

EngineSet::EngineSet(const DevicePool& devices, const VolumeStore* store,
                     const TargetStore* targets, const Limits& limits,
                     const EngineOptions& options,
                     const std::vector<EngineListener*>& listeners)
    : devices_(devices) {
  for (int i = 0; i < devices.size(); ++i) {
    EngineOptions own = options;
    own.listener = listeners[i];
    engines_.push_back(std::make_unique<RenderEngine>(
        devices.device(i).executor.get(), store, targets, limits, own));
  }
}

absl::Status EngineSet::status() const {
  for (int i = 0; i < size(); ++i) {
    const absl::Status& status = engines_[i]->status();
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat(devices_.device(i).label,
                                                      ": ", status.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace drr::server
