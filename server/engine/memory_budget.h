// One budget for the host memory a user can make the server hold: stored
// volumes, their resident copies, uploads in progress, render requests in
// flight and stored targets (--memory-budget). Work that does not fit is
// refused with RESOURCE_EXHAUSTED naming what it needed, before it allocates.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace drr::server {

// What budgeted memory holds.
enum class MemoryUse {
  // Stored volumes' voxels and labels as uploaded.
  kVolumes,
  // Their μ copies made resident for rendering (rebuilt on demand).
  kResident,
  // Uploads in progress, reserved from their header on.
  kUploads,
  // Render requests from acceptance to answer: their inputs and results.
  kRequests,
  // Stored target images.
  kTargets,
};
inline constexpr int kMemoryUses = 5;

// The lowercase name of `use` ("volumes", "resident", ...), for metrics.
const char* MemoryUseName(MemoryUse use);

class MemoryBudget;

// Bytes held against a budget until destroyed (or Release). Movable.
class MemoryHold {
 public:
  MemoryHold() = default;
  MemoryHold(MemoryHold&& other) noexcept;
  MemoryHold& operator=(MemoryHold&& other) noexcept;
  ~MemoryHold() { Release(); }

  // Gives the bytes back now.
  void Release();
  int64_t bytes() const { return bytes_; }

 private:
  friend class MemoryBudget;
  MemoryHold(MemoryBudget* budget, MemoryUse use, int64_t bytes)
      : budget_(budget), use_(use), bytes_(bytes) {}

  MemoryBudget* budget_ = nullptr;
  MemoryUse use_ = MemoryUse::kRequests;
  int64_t bytes_ = 0;
};

// A number of bytes shared by every use. Thread-safe and lock-free.
class MemoryBudget {
 public:
  // Called after the bytes held for a use change, with the new total of that
  // use (for metrics); must be cheap and not call back into the budget.
  using Observer = std::function<void(MemoryUse use, int64_t used)>;

  // `name` is how refusals call it.
  explicit MemoryBudget(int64_t limit, Observer observer = nullptr,
                        std::string name = kServerBudgetName)
      : limit_(limit), observer_(std::move(observer)), name_(std::move(name)) {}

  // The name of the host budget: "the server's budget (--memory-budget)".
  static constexpr const char* kServerBudgetName =
      "the server's budget (--memory-budget)";
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Asked, when a reservation does not fit, to free at least `shortfall`
  // bytes held elsewhere (idle caches); the reservation is then tried once
  // more. Set before the budget is shared; it must not reserve.
  void set_reclaimer(std::function<void(int64_t shortfall)> reclaimer) {
    reclaimer_ = std::move(reclaimer);
  }

  // Holds `bytes` for `use` (after the reclaimer freed what it could, if
  // they did not fit), or RESOURCE_EXHAUSTED saying that `what` needs them,
  // naming the budget, and how much of it is free.
  absl::StatusOr<MemoryHold> Reserve(MemoryUse use, int64_t bytes,
                                     absl::string_view what);

  int64_t limit() const { return limit_; }
  // Bytes held, in total and for `use`.
  int64_t used() const { return used_.load(); }
  int64_t used(MemoryUse use) const {
    return by_use_[static_cast<int>(use)].load();
  }

 private:
  friend class MemoryHold;
  // Holds `bytes` if they fit now.
  bool TryTake(MemoryUse use, int64_t bytes);
  void Give(MemoryUse use, int64_t bytes);
  void Tell(MemoryUse use) const;

  const int64_t limit_;
  const Observer observer_;
  const std::string name_;
  std::function<void(int64_t)> reclaimer_;
  std::atomic<int64_t> used_{0};
  std::array<std::atomic<int64_t>, kMemoryUses> by_use_{};
};

// Half of this machine's physical memory: the default budget.
int64_t DefaultMemoryBudget();

}  // namespace drr::server
