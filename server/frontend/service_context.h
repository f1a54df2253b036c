// What the gRPC services share: the engine parts and the metrics.
#pragma once

#include <chrono>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/engine/disk_archive.h"
#include "server/engine/limits.h"
#include "server/engine/memory_budget.h"
#include "server/engine/render_engine.h"
#include "server/engine/volume_store.h"
#include "server/frontend/drain_gate.h"
#include "server/frontend/metrics.h"
#include "server/frontend/upload_tracker.h"

namespace drr::server {

// Borrowed pointers to the server's engine, metrics, drain gate, memory
// budget, upload tracker and data directory (owned by Server).
struct ServiceContext {
  VolumeStore* store;
  // The data directory, or nullptr without --data-dir.
  const DiskArchive* archive;
  RenderEngine* engine;
  ServerMetrics* metrics;
  DrainGate* gate;
  MemoryBudget* budget;
  UploadTracker* uploads;
  Limits limits;
};

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
