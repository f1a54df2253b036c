// Per-tenant quotas: stored bytes, concurrent streams and uploads, and
// requests per second (a token bucket). Administrators are exempt.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/engine/ownership.h"

namespace drr::server {

// A tenant's quotas; 0 leaves that one unlimited.
struct TenantQuota {
  int64_t stored_bytes = 0;
  int streams = 0;
  int uploads = 0;
  double requests_per_second = 0;
};

// What a refusal was for, for metrics.
enum class QuotaKind { kStoredBytes, kStreams, kUploads, kRequestRate };

// The name of `kind` as refusals and metrics spell it ("stored-bytes", ...).
const char* QuotaName(QuotaKind kind);

// Hears every refusal, for metrics; must be cheap.
using QuotaRefusalObserver =
    std::function<void(const std::string& tenant, QuotaKind kind)>;

// Keeps each tenant within its quotas. Thread-safe.
class QuotaGate {
 public:
  // A slot of a concurrent-use quota (a stream or an upload), given back
  // when destroyed.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    ~Slot();

   private:
    friend class QuotaGate;
    Slot(QuotaGate* gate, std::string tenant, QuotaKind kind)
        : gate_(gate), tenant_(std::move(tenant)), kind_(kind) {}
    QuotaGate* gate_ = nullptr;
    std::string tenant_;
    QuotaKind kind_ = QuotaKind::kStreams;
  };

  // Quotas of each tenant come from `quota_of` (called for a tenant's first
  // request and again after Reset); stored bytes from `owners` (which must
  // outlive this).
  QuotaGate(std::function<TenantQuota(const std::string&)> quota_of,
            const Ownership* owners, QuotaRefusalObserver observer = nullptr);

  // Takes one request from `caller`'s bucket: RESOURCE_EXHAUSTED naming the
  // quota when it is empty.
  absl::Status Request(const Caller& caller);

  // OK when `caller` may store `bytes` more.
  absl::Status CheckStore(const Caller& caller, int64_t bytes);

  // A slot of `kind` (kStreams or kUploads) for `caller`, or
  // RESOURCE_EXHAUSTED naming the quota when all are taken.
  absl::StatusOr<Slot> Take(const Caller& caller, QuotaKind kind);

  // Forgets the quotas read so far (the token file changed).
  void Reset();

 private:
  struct TenantState {
    TenantQuota quota;
    double tokens = 0;
    std::chrono::steady_clock::time_point refilled;
    int streams = 0;
    int uploads = 0;
  };

  TenantState& StateOf(const std::string& tenant)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::Status Refuse(const std::string& tenant, QuotaKind kind,
                      absl::string_view detail);
  void Give(const std::string& tenant, QuotaKind kind);

  const std::function<TenantQuota(const std::string&)> quota_of_;
  const Ownership* const owners_;
  const QuotaRefusalObserver observer_;
  absl::Mutex mutex_;
  std::map<std::string, TenantState> tenants_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace drr::server
