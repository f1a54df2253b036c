#include "server/engine/device_pool.h"

#include <utility>

namespace drr::server {
namespace {

// FNV-1a over `key`: stable across processes and builds, unlike absl::Hash.
uint64_t StableHash(absl::string_view key) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : key) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

// splitmix64's finaliser: spreads the combined key and ordinal over 64 bits.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

int RendezvousPick(absl::string_view key, const std::vector<int>& ordinals) {
  const uint64_t hash = StableHash(key);
  int best = 0;
  uint64_t best_score = 0;
  for (size_t i = 0; i < ordinals.size(); ++i) {
    const uint64_t score =
        Mix(hash ^ Mix(static_cast<uint64_t>(ordinals[i]) + 1));
    if (i == 0 || score > best_score) {
      best = static_cast<int>(i);
      best_score = score;
    }
  }
  return best;
}

DevicePool::DevicePool(std::vector<SelectedDevice> selected,
                       const BudgetOf& budget_of, const Observer& observer) {
  for (size_t i = 0; i < selected.size(); ++i) {
    SelectedDevice& device = selected[i];
    MemoryBudget::Observer tell;
    if (observer) {
      tell = [observer, index = static_cast<int>(i)](MemoryUse use,
                                                     int64_t used) {
        if (use == MemoryUse::kResident) observer(index, used);
      };
    }
    auto budget = std::make_unique<MemoryBudget>(
        budget_of(device, static_cast<int>(selected.size())), tell,
        "the budget of device " + device.label + " (--device-memory-budget)");
    ordinals_.push_back(device.ordinal);
    devices_.push_back({device.ordinal, std::move(device.label),
                        std::move(device.executor), std::move(budget)});
  }
}

int DevicePool::Place(absl::string_view volume_id) const {
  return devices_.size() == 1 ? 0 : RendezvousPick(volume_id, ordinals_);
}

std::vector<Residence> DevicePool::Residences() const {
  std::vector<Residence> residences;
  for (const PooledDevice& device : devices_) {
    residences.push_back({device.executor.get(), device.budget.get()});
  }
  return residences;
}

}  // namespace drr::server
