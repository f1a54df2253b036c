// The devices one server renders on (--devices): each one's executor and the
// budget of its memory for resident volumes, and the placement of every
// volume on one of them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "kernels/executor.h"
#include "server/engine/device.h"
#include "server/engine/memory_budget.h"
#include "server/engine/volume_store.h"

namespace drr::server {

// One device of a pool.
struct PooledDevice {
  // Its ordinal (CUDA's, or the stand-in number of a CPU executor) and its
  // label for logs and metrics ("cuda:1").
  int ordinal = 0;
  std::string label;
  std::unique_ptr<kernels::Executor> executor;
  // The memory its volumes' resident copies may take.
  std::unique_ptr<MemoryBudget> budget;
};

// Owns the devices; places each volume on one by rendezvous hashing of its
// id over the devices' ordinals (each id goes to the device whose hash with
// it is highest), so that a volume always lands on the same device, the
// devices share the volumes about evenly, and a device added or taken away
// moves only the volumes it gains or loses. Thread-safe once built.
class DevicePool {
 public:
  // Hears the resident bytes of device `index` change (metrics).
  using Observer = std::function<void(int index, int64_t resident_bytes)>;

  // The bytes of a device's budget (> 0), given the number of devices.
  using BudgetOf =
      std::function<int64_t(const SelectedDevice& device, int device_count)>;

  // The devices of `selected`, each with a budget of `budget_of` bytes;
  // `observer` may be empty.
  DevicePool(std::vector<SelectedDevice> selected, const BudgetOf& budget_of,
             const Observer& observer);

  int size() const { return static_cast<int>(devices_.size()); }
  const PooledDevice& device(int index) const { return devices_[index]; }

  // The index of the device the volume `volume_id` is placed on.
  int Place(absl::string_view volume_id) const;

  // Each device as a volume store's residence, by index.
  std::vector<Residence> Residences() const;

 private:
  std::vector<PooledDevice> devices_;
  // The devices' ordinals, by index.
  std::vector<int> ordinals_;
};

// The index of the highest-scoring of `ordinals` for `key` by rendezvous
// hashing (a stable 64-bit hash of the key and the ordinal).
int RendezvousPick(absl::string_view key, const std::vector<int>& ordinals);

}  // namespace drr::server
