#include "server/frontend/quotas.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace drr::server {

const char* QuotaName(QuotaKind kind) {
  switch (kind) {
    case QuotaKind::kStoredBytes:
      return "stored-bytes";
    case QuotaKind::kStreams:
      return "streams";
    case QuotaKind::kUploads:
      return "uploads";
    case QuotaKind::kRequestRate:
      break;
  }
  return "requests-per-second";
}

QuotaGate::Slot::Slot(Slot&& other) noexcept
    : gate_(std::exchange(other.gate_, nullptr)),
      tenant_(std::move(other.tenant_)),
      kind_(other.kind_) {}

QuotaGate::Slot& QuotaGate::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (gate_ != nullptr) gate_->Give(tenant_, kind_);
    gate_ = std::exchange(other.gate_, nullptr);
    tenant_ = std::move(other.tenant_);
    kind_ = other.kind_;
  }
  return *this;
}

QuotaGate::Slot::~Slot() {
  if (gate_ != nullptr) gate_->Give(tenant_, kind_);
}

QuotaGate::QuotaGate(std::function<TenantQuota(const std::string&)> quota_of,
                     const Ownership* owners, QuotaRefusalObserver observer)
    : quota_of_(std::move(quota_of)),
      owners_(owners),
      observer_(std::move(observer)) {}

QuotaGate::TenantState& QuotaGate::StateOf(const std::string& tenant) {
  auto [it, added] = tenants_.try_emplace(tenant);
  if (added) {
    it->second.quota = quota_of_(tenant);
    it->second.tokens = it->second.quota.requests_per_second;
    it->second.refilled = std::chrono::steady_clock::now();
  }
  return it->second;
}

absl::Status QuotaGate::Refuse(const std::string& tenant, QuotaKind kind,
                               absl::string_view detail) {
  if (observer_) observer_(tenant, kind);
  return absl::ResourceExhaustedError(
      absl::StrCat("tenant ", tenant, " is at its ", QuotaName(kind),
                   " quota (", detail, ")"));
}

absl::Status QuotaGate::Request(const Caller& caller) {
  if (caller.admin) return absl::OkStatus();
  double rate;
  {
    absl::MutexLock lock(&mutex_);
    TenantState& state = StateOf(caller.tenant);
    rate = state.quota.requests_per_second;
    if (rate <= 0) return absl::OkStatus();
    // A bucket of one second's requests, refilled continuously.
    const auto now = std::chrono::steady_clock::now();
    state.tokens = std::min(
        rate,
        state.tokens +
            rate * std::chrono::duration<double>(now - state.refilled).count());
    state.refilled = now;
    if (state.tokens >= 1) {
      state.tokens -= 1;
      return absl::OkStatus();
    }
  }
  return Refuse(caller.tenant, QuotaKind::kRequestRate,
                absl::StrCat(rate, " per second; retry later"));
}

absl::Status QuotaGate::CheckStore(const Caller& caller, int64_t bytes) {
  if (caller.admin) return absl::OkStatus();
  int64_t limit;
  {
    absl::MutexLock lock(&mutex_);
    limit = StateOf(caller.tenant).quota.stored_bytes;
  }
  if (limit <= 0) return absl::OkStatus();
  const int64_t stored = owners_->StoredBytes(caller.tenant);
  if (stored + bytes <= limit) return absl::OkStatus();
  return Refuse(
      caller.tenant, QuotaKind::kStoredBytes,
      absl::StrCat(stored, " of ", limit, " bytes stored; this needs ", bytes,
                   " more; delete something first"));
}

absl::StatusOr<QuotaGate::Slot> QuotaGate::Take(const Caller& caller,
                                                QuotaKind kind) {
  if (caller.admin) return Slot();
  int limit;
  {
    absl::MutexLock lock(&mutex_);
    TenantState& state = StateOf(caller.tenant);
    int& used = kind == QuotaKind::kStreams ? state.streams : state.uploads;
    limit =
        kind == QuotaKind::kStreams ? state.quota.streams : state.quota.uploads;
    if (limit <= 0 || used < limit) {
      ++used;
      return Slot(this, caller.tenant, kind);
    }
  }
  return Refuse(caller.tenant, kind, absl::StrCat(limit, " at once"));
}

void QuotaGate::Give(const std::string& tenant, QuotaKind kind) {
  absl::MutexLock lock(&mutex_);
  auto it = tenants_.find(tenant);
  if (it == tenants_.end()) return;
  --(kind == QuotaKind::kStreams ? it->second.streams : it->second.uploads);
}

void QuotaGate::Reset() {
  absl::MutexLock lock(&mutex_);
  for (auto& [tenant, state] : tenants_) {
    state.quota = quota_of_(tenant);
    state.tokens = std::min(state.tokens, state.quota.requests_per_second);
  }
}

}  // namespace drr::server
