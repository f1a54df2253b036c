// The server's Prometheus metrics (design.md §5), built on prometheus-cpp.
// Request handlers record; the exposer formats on scrape, which never touches
// the renderer.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/engine/memory_budget.h"
#include "server/engine/render_call.h"
#include "server/engine/render_engine.h"
#include "server/engine/volume_store.h"

namespace prometheus {
class Exposer;
}

namespace drr::server {

class ServerMetrics;

// The series of one device, labelled device="cuda:1": its launches and
// poses, its queue, the volumes placed on it and the memory their resident
// copies take of its budget. Hears its engine, and passes launches and
// dropped calls on to the server's histograms and counters.
class DeviceMetrics final : public EngineListener {
 public:
  DeviceMetrics(ServerMetrics* server, const std::string& label,
                int64_t budget_bytes);

  // Sets the calls waiting for this device (and the server's total).
  void SetQueueDepth(int depth);
  // Sets the stored volumes placed on it.
  void SetVolumes(int count);
  // Sets the bytes its resident copies hold of its budget.
  void SetResidentBytes(int64_t bytes);

  // EngineListener.
  void OnLaunch(int calls, int poses) override;
  void OnDropped(absl::StatusCode code) override;

 private:
  ServerMetrics* const server_;
  prometheus::Counter& launches_;
  prometheus::Counter& poses_;
  prometheus::Gauge& queue_depth_;
  prometheus::Gauge& volumes_;
  prometheus::Gauge& memory_used_;
  // Keeps this device's depth and its share of the server's total equal.
  absl::Mutex depth_mutex_;
  int last_depth_ ABSL_GUARDED_BY(depth_mutex_) = 0;
};

// Metric families of one server, and the HTTP endpoint serving them. Hears
// the engine's launches and dropped calls.
class ServerMetrics final : public EngineListener, public CacheListener {
 public:
  // Registers every family; `backend` ("cpu", "cuda") labels drr_build_info.
  explicit ServerMetrics(absl::string_view backend);
  ~ServerMetrics() override;

  // Serves /metrics on `address` ("host:port", port 0 picks one); returns
  // the bound port.
  absl::StatusOr<int> Expose(const std::string& address);

  // Counts one finished RPC (or stream frame) of `method` with `code`, and
  // observes its duration.
  void RecordRequest(absl::string_view method, absl::StatusCode code,
                     double seconds);
  // Counts `n` rendered poses.
  void AddPosesRendered(int n);
  // Counts `n` uploaded voxel bytes.
  void AddUploadBytes(int64_t n);
  // Sets the number of stored volumes and their resident bytes.
  void SetStoredVolumes(int count, int64_t bytes);
  // The series of a device labelled `label` with a budget of
  // `budget_bytes`, its index the number of devices added before it. Called
  // at start, before the metrics are shared.
  DeviceMetrics& AddDevice(const std::string& label, int64_t budget_bytes);
  // The series of device `index`.
  DeviceMetrics& device(int index) { return *devices_[index]; }
  // Observes where the time of a rendered call went, `encode_seconds` being
  // the frontend's encoding of its response.
  void RecordStages(const RenderResult& result, double encode_seconds);

  // Sets the memory budget and what `use` holds of it now.
  void SetMemoryBudget(int64_t bytes);
  void SetMemoryUsed(MemoryUse use, int64_t bytes);
  // Adds `delta` to the streams (or uploads) in progress.
  void AddActiveStreams(int delta);
  void AddActiveUploads(int delta);
  // Counts a request `tenant` was refused over its quota `quota`.
  void CountQuotaRefusal(const std::string& tenant, absl::string_view quota);
  // Counts one authenticated request (or stream frame) of `tenant`.
  void CountTenantRequest(const std::string& tenant);
  // Sets the bytes of the volumes and targets `tenant` owns.
  void SetTenantStoredBytes(const std::string& tenant, int64_t bytes);

  // Most tenants labelled in the per-tenant families; the requests and
  // refusals of tenants beyond them count as tenant="other", their stored
  // bytes are not reported.
  static constexpr int kMaxTenantSeries = 100;

  // EngineListener: the batch-size histograms.
  void OnLaunch(int calls, int poses) override;
  // EngineListener: calls dropped, by reason.
  void OnDropped(absl::StatusCode code) override;
  // CacheListener: the volume cache's hits, misses, evictions, loads and
  // unloads.
  void OnCacheEvent(CacheEvent event, int count) override;

  // The registry, for tests that serialise it directly.
  const prometheus::Registry& registry() const { return *registry_; }

 private:
  friend class DeviceMetrics;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Counter& poses_rendered_;
  prometheus::Counter& upload_bytes_;
  prometheus::Gauge& volumes_;
  prometheus::Gauge& volume_bytes_;
  prometheus::Gauge& queue_depth_;
  prometheus::Histogram& batch_poses_;
  prometheus::Histogram& batch_calls_;
  prometheus::Family<prometheus::Counter>& dropped_;
  prometheus::Family<prometheus::Histogram>& stage_duration_;
  prometheus::Gauge& memory_budget_;
  prometheus::Family<prometheus::Gauge>& memory_used_;
  prometheus::Gauge& active_streams_;
  prometheus::Gauge& active_uploads_;
  prometheus::Family<prometheus::Counter>& cache_events_;
  prometheus::Family<prometheus::Counter>& quota_refusals_;
  prometheus::Family<prometheus::Counter>& tenant_requests_;
  prometheus::Family<prometheus::Gauge>& tenant_stored_bytes_;
  prometheus::Family<prometheus::Counter>& device_launches_;
  prometheus::Family<prometheus::Counter>& device_poses_;
  prometheus::Family<prometheus::Gauge>& device_queue_depth_;
  prometheus::Family<prometheus::Gauge>& device_volumes_;
  prometheus::Family<prometheus::Gauge>& device_memory_budget_;
  prometheus::Family<prometheus::Gauge>& device_memory_used_;
  std::vector<std::unique_ptr<DeviceMetrics>> devices_;
  std::unique_ptr<prometheus::Exposer> exposer_;

  // The label of `tenant`: itself while fewer than kMaxTenantSeries tenants
  // are labelled, else "other".
  std::string TenantLabel(const std::string& tenant);
  absl::Mutex tenants_mutex_;
  std::set<std::string> labelled_tenants_ ABSL_GUARDED_BY(tenants_mutex_);
};

}  // namespace drr::server
