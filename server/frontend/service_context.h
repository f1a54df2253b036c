// What the gRPC services share: the engine parts and the metrics.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/engine/device_pool.h"
#include "server/engine/disk_archive.h"
#include "server/engine/engine_set.h"
#include "server/engine/limits.h"
#include "server/engine/memory_budget.h"
#include "server/engine/ownership.h"
#include "server/engine/target_store.h"
#include "server/engine/volume_store.h"
#include "server/frontend/auth.h"
#include "server/frontend/drain_gate.h"
#include "server/frontend/metrics.h"
#include "server/frontend/quotas.h"
#include "server/frontend/upload_tracker.h"

namespace drr::server {

// Borrowed pointers to the server's engine, metrics, drain gate, memory
// budget, upload tracker, data directory and tenancy (owned by Server).
struct ServiceContext {
  VolumeStore* store;
  TargetStore* targets;
  // The data directory, or nullptr without --data-dir.
  const DiskArchive* archive;
  const Authenticator* auth;
  Ownership* owners;
  QuotaGate* quotas;
  // The devices volumes are placed on, and their engines.
  const DevicePool* devices;
  EngineSet* engines;
  ServerMetrics* metrics;
  DrainGate* gate;
  MemoryBudget* budget;
  UploadTracker* uploads;
  Limits limits;
  // Calls that name a volume must carry it as x-drr-volume-id
  // (--require-volume-header).
  bool require_volume_header = false;

  // The caller of a call, counted as one request of its tenant (metrics) and
  // against its rate quota:
  // UNAUTHENTICATED, or RESOURCE_EXHAUSTED over the rate.
  absl::StatusOr<Caller> Authenticate(
      const grpc::ServerContextBase& call) const;
  // OK when `caller` may see the volume `id`; else the NOT_FOUND of an
  // unknown volume, so that a foreign id tells nothing.
  absl::Status CheckVolumeVisible(const std::string& id,
                                  const Caller& caller) const;
  // As CheckVolumeVisible, for the target `id`.
  absl::Status CheckTargetVisible(const std::string& id,
                                  const Caller& caller) const;
  // OK when a call that names `volume_id` was routed by it: its
  // x-drr-volume-id (`routed`, if any) names that volume, or it carries none
  // and the server does not require one; else FAILED_PRECONDITION naming the
  // header.
  absl::Status CheckRouted(const std::optional<std::string>& routed,
                           absl::string_view volume_id) const;
  // The scheduling key of `caller` on connection `peer`: the tenant when
  // calls carry tokens (tenants share the renderer fairly), else the peer.
  std::string FairnessKey(const Caller& caller, const std::string& peer) const {
    return auth->enabled() ? caller.tenant : peer;
  }
  // Sets the metrics of the stored volumes: their count, resident bytes and
  // how many each device holds.
  void PublishStoreSize() const;
};

// The FAILED_PRECONDITION of a call without x-drr-volume-id on a server that
// requires it; `detail` says which volume the call names.
absl::Status VolumeHeaderMissing(absl::string_view detail);

// The client's deadline of `call` on the steady clock, or nothing when it set
// none (or one beyond a year).
std::optional<std::chrono::steady_clock::time_point> ClientDeadline(
    const grpc::ServerContextBase& call);

// The x-drr-volume-id of `call`, if it carries one.
std::optional<std::string> RoutedVolume(const grpc::ServerContextBase& call);

// Measures one RPC or stream frame from construction and records it in the
// metrics when it ends.
class RequestTimer {
 public:
  RequestTimer(ServerMetrics* metrics, absl::string_view method)
      : metrics_(metrics),
        method_(method),
        start_(std::chrono::steady_clock::now()) {}

  // Records the request as finished with `status`; returns `status`.
  const absl::Status& Done(const absl::Status& status) const {
    metrics_->RecordRequest(
        method_, status.code(),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
            .count());
    return status;
  }

 private:
  ServerMetrics* metrics_;
  absl::string_view method_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace drr::server
