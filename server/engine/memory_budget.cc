#include "server/engine/memory_budget.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace drr::server {

const char* MemoryUseName(MemoryUse use) {
  switch (use) {
    case MemoryUse::kVolumes:
      return "volumes";
    case MemoryUse::kResident:
      return "resident";
    case MemoryUse::kUploads:
      return "uploads";
    case MemoryUse::kRequests:
      return "requests";
    case MemoryUse::kTargets:
      break;
  }
  return "targets";
}

MemoryHold::MemoryHold(MemoryHold&& other) noexcept
    : budget_(std::exchange(other.budget_, nullptr)),
      use_(other.use_),
      bytes_(std::exchange(other.bytes_, 0)) {}

MemoryHold& MemoryHold::operator=(MemoryHold&& other) noexcept {
  if (this != &other) {
    Release();
    budget_ = std::exchange(other.budget_, nullptr);
    use_ = other.use_;
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void MemoryHold::Release() {
  if (budget_ != nullptr && bytes_ > 0) budget_->Give(use_, bytes_);
  budget_ = nullptr;
  bytes_ = 0;
}

bool MemoryBudget::TryTake(MemoryUse use, int64_t bytes) {
  int64_t used = used_.load();
  do {
    if (bytes > limit_ - used) return false;
  } while (!used_.compare_exchange_weak(used, used + bytes));
  by_use_[static_cast<int>(use)] += bytes;
  Tell(use);
  return true;
}

absl::StatusOr<MemoryHold> MemoryBudget::Reserve(MemoryUse use, int64_t bytes,
                                                 absl::string_view what) {
  if (bytes < 0) bytes = 0;
  if (TryTake(use, bytes)) return MemoryHold(this, use, bytes);
  if (reclaimer_) {
    reclaimer_(bytes - (limit_ - used_.load()));
    if (TryTake(use, bytes)) return MemoryHold(this, use, bytes);
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      what, " needs ", bytes, " bytes of memory; ", name_, " has ",
      limit_ - used_.load(), " of ", limit_, " free; retry later"));
}

void MemoryBudget::Give(MemoryUse use, int64_t bytes) {
  used_ -= bytes;
  by_use_[static_cast<int>(use)] -= bytes;
  Tell(use);
}

void MemoryBudget::Tell(MemoryUse use) const {
  if (observer_) observer_(use, by_use_[static_cast<int>(use)].load());
}

int64_t DefaultMemoryBudget() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return int64_t{8} << 30;
  return int64_t{pages} * page / 2;
}

}  // namespace drr::server
