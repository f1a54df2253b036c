// One render engine per device of a pool: each renders the volumes placed on
// its device, with its own workers and queue.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/engine/device_pool.h"
#include "server/engine/limits.h"
#include "server/engine/render_engine.h"
#include "server/engine/target_store.h"
#include "server/engine/volume_store.h"

namespace drr::server {

// The engines of a device pool, by device index.
class EngineSet {
 public:
  // An engine per device of `devices`, over `store` and `targets` (which
  // must outlive the set, the pool too), each with `options` (its workers,
  // its own queue of limits.max_queued_requests) heard by `listeners[i]`
  // (one per device; nullptr hears nothing).
  EngineSet(const DevicePool& devices, const VolumeStore* store,
            const TargetStore* targets, const Limits& limits,
            const EngineOptions& options,
            const std::vector<EngineListener*>& listeners);

  // The engine of the device the volume `volume_id` is placed on.
  RenderEngine& For(absl::string_view volume_id) const {
    return *engines_[devices_.Place(volume_id)];
  }
  // The engine of device `index`.
  RenderEngine& at(int index) const { return *engines_[index]; }
  int size() const { return static_cast<int>(engines_.size()); }

  // OK when every engine is (RenderEngine::status); else the first failure,
  // naming its device.
  absl::Status status() const;

 private:
  const DevicePool& devices_;
  std::vector<std::unique_ptr<RenderEngine>> engines_;
};

}  // namespace drr::server
