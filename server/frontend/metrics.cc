#include "server/frontend/metrics.h"

#include <exception>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "prometheus/exposer.h"

namespace drr::server {
namespace {

// Latency buckets (seconds) with edges at the navigation frame budgets.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0005, 0.001, 0.002, 0.005, 0.01, 0.0167, 0.0333, 0.05,
          0.1,    0.25,  0.5,   1,     2.5,  5,      10};
}

// Batch sizes (poses or calls per launch) by powers of two.
prometheus::Histogram::BucketBoundaries BatchBuckets() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256};
}

// The reason label of a dropped call's status code.
const char* DropReason(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kAborted:
      return "superseded";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline";
    default:
      return "cancelled";
  }
}

}  // namespace

ServerMetrics::ServerMetrics(absl::string_view backend)
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(
          prometheus::BuildCounter()
              .Name("drr_requests_total")
              .Help(
                  "Finished RPCs and stream frames by method and status code.")
              .Register(*registry_)),
      request_duration_(prometheus::BuildHistogram()
                            .Name("drr_request_duration_seconds")
                            .Help("Time from receiving a request (or stream "
                                  "frame) to its answer.")
                            .Register(*registry_)),
      poses_rendered_(prometheus::BuildCounter()
                          .Name("drr_poses_rendered_total")
                          .Help("Poses rendered into images.")
                          .Register(*registry_)
                          .Add({})),
      upload_bytes_(
          prometheus::BuildCounter()
              .Name("drr_volume_upload_bytes_total")
              .Help("Voxel bytes received by completed volume uploads.")
              .Register(*registry_)
              .Add({})),
      volumes_(prometheus::BuildGauge()
                   .Name("drr_volume_cache_volumes")
                   .Help("Volumes stored on this server.")
                   .Register(*registry_)
                   .Add({})),
      volume_bytes_(prometheus::BuildGauge()
                        .Name("drr_volume_cache_bytes")
                        .Help("Bytes of resident attenuation volumes.")
                        .Register(*registry_)
                        .Add({})),
      queue_depth_(prometheus::BuildGauge()
                       .Name("drr_queue_depth")
                       .Help("Render requests waiting for the renderer.")
                       .Register(*registry_)
                       .Add({})),
      batch_poses_(prometheus::BuildHistogram()
                       .Name("drr_batch_poses")
                       .Help("Poses per executor launch.")
                       .Register(*registry_)
                       .Add({}, BatchBuckets())),
      batch_calls_(prometheus::BuildHistogram()
                       .Name("drr_batch_calls")
                       .Help("Requests (or stream frames) per executor launch.")
                       .Register(*registry_)
                       .Add({}, BatchBuckets())),
      dropped_(prometheus::BuildCounter()
                   .Name("drr_calls_dropped_total")
                   .Help("Render requests and frames answered unrendered or "
                         "stopped while rendering, by reason: superseded "
                         "(LATEST streams), deadline, cancelled.")
                   .Register(*registry_)),
      stage_duration_(
          prometheus::BuildHistogram()
              .Name("drr_stage_duration_seconds")
              .Help("Time a rendered request spent in each stage: queue, "
                    "batch_wait, render (its launch), post (its own channels, "
                    "losses, gradients), encode.")
              .Register(*registry_)),
      memory_budget_(prometheus::BuildGauge()
                         .Name("drr_memory_budget_bytes")
                         .Help("The host memory budget (--memory-budget).")
                         .Register(*registry_)
                         .Add({})),
      memory_used_(prometheus::BuildGauge()
                       .Name("drr_memory_used_bytes")
                       .Help("Host memory held against the budget, by use: "
                             "volumes (as uploaded), resident (μ copies), "
                             "uploads (in progress), requests (in flight), "
                             "targets.")
                       .Register(*registry_)),
      active_streams_(prometheus::BuildGauge()
                          .Name("drr_active_streams")
                          .Help("RenderStream calls in progress.")
                          .Register(*registry_)
                          .Add({})),
      active_uploads_(prometheus::BuildGauge()
                          .Name("drr_active_uploads")
                          .Help("Volume uploads in progress.")
                          .Register(*registry_)
                          .Add({})),
      cache_events_(
          prometheus::BuildCounter()
              .Name("drr_volume_cache_events_total")
              .Help("Volume cache events: hit and miss (a render found or "
                    "derived its resident copy), eviction (a resident copy "
                    "dropped), load and unload (a stored volume read from or "
                    "dropped to --data-dir).")
              .Register(*registry_)),
      quota_refusals_(
          prometheus::BuildCounter()
              .Name("drr_tenant_quota_refusals_total")
              .Help("Requests refused over a tenant's quota, by tenant (those "
                    "of --tokens) and quota: stored-bytes, streams, uploads, "
                    "requests-per-second.")
              .Register(*registry_)),
      tenant_requests_(
          prometheus::BuildCounter()
              .Name("drr_tenant_requests_total")
              .Help("Authenticated requests and stream frames, by tenant "
                    "(those of --tokens, or anonymous).")
              .Register(*registry_)),
      tenant_stored_bytes_(
          prometheus::BuildGauge()
              .Name("drr_tenant_stored_bytes")
              .Help("Bytes of the volumes and targets each tenant owns, as "
                    "its stored-bytes quota counts them (shared content "
                    "counts whole for each owner).")
              .Register(*registry_)),
      device_launches_(prometheus::BuildCounter()
                           .Name("drr_device_launches_total")
                           .Help("Executor launches on each device.")
                           .Register(*registry_)),
      device_poses_(prometheus::BuildCounter()
                        .Name("drr_device_poses_total")
                        .Help("Poses launched on each device.")
                        .Register(*registry_)),
      device_queue_depth_(prometheus::BuildGauge()
                              .Name("drr_device_queue_depth")
                              .Help("Render requests waiting for each device.")
                              .Register(*registry_)),
      device_volumes_(prometheus::BuildGauge()
                          .Name("drr_device_volumes")
                          .Help("Stored volumes placed on each device.")
                          .Register(*registry_)),
      device_memory_budget_(
          prometheus::BuildGauge()
              .Name("drr_device_memory_budget_bytes")
              .Help("Memory each device's resident volumes may take "
                    "(--device-memory-budget).")
              .Register(*registry_)),
      device_memory_used_(
          prometheus::BuildGauge()
              .Name("drr_device_memory_used_bytes")
              .Help("Memory each device's resident volumes take.")
              .Register(*registry_)) {
  for (const char* event : {"hit", "miss", "eviction", "load", "unload"}) {
    cache_events_.Add({{"event", event}});
  }
  for (int use = 0; use < kMemoryUses; ++use) {
    memory_used_.Add({{"use", MemoryUseName(static_cast<MemoryUse>(use))}});
  }
  for (const char* reason : {"superseded", "deadline", "cancelled"}) {
    dropped_.Add({{"reason", reason}});
  }
  for (const char* stage :
       {"queue", "batch_wait", "render", "post", "encode"}) {
    stage_duration_.Add({{"stage", stage}}, LatencyBuckets());
  }
  prometheus::BuildGauge()
      .Name("drr_build_info")
      .Help("Build information; the value is always 1.")
      .Register(*registry_)
      .Add({{"version", DRR_VERSION}, {"backend", std::string(backend)}})
      .Set(1);
}

ServerMetrics::~ServerMetrics() = default;

absl::StatusOr<int> ServerMetrics::Expose(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  if (ports.empty())
    return absl::UnavailableError("the metrics endpoint bound no port");
  return ports.front();
}

void ServerMetrics::RecordRequest(absl::string_view method,
                                  absl::StatusCode code, double seconds) {
  requests_
      .Add({{"method", std::string(method)},
            {"code", absl::StatusCodeToString(code)}})
      .Increment();
  request_duration_.Add({{"method", std::string(method)}}, LatencyBuckets())
      .Observe(seconds);
}

void ServerMetrics::AddPosesRendered(int n) { poses_rendered_.Increment(n); }

void ServerMetrics::AddUploadBytes(int64_t n) {
  upload_bytes_.Increment(static_cast<double>(n));
}

void ServerMetrics::SetStoredVolumes(int count, int64_t bytes) {
  volumes_.Set(count);
  volume_bytes_.Set(static_cast<double>(bytes));
}

DeviceMetrics& ServerMetrics::AddDevice(const std::string& label,
                                        int64_t budget_bytes) {
  devices_.push_back(
      std::make_unique<DeviceMetrics>(this, label, budget_bytes));
  return *devices_.back();
}

DeviceMetrics::DeviceMetrics(ServerMetrics* server, const std::string& label,
                             int64_t budget_bytes)
    : server_(server),
      launches_(server->device_launches_.Add({{"device", label}})),
      poses_(server->device_poses_.Add({{"device", label}})),
      queue_depth_(server->device_queue_depth_.Add({{"device", label}})),
      volumes_(server->device_volumes_.Add({{"device", label}})),
      memory_used_(server->device_memory_used_.Add({{"device", label}})) {
  server->device_memory_budget_.Add({{"device", label}})
      .Set(static_cast<double>(budget_bytes));
}

void DeviceMetrics::SetQueueDepth(int depth) {
  absl::MutexLock lock(&depth_mutex_);
  queue_depth_.Set(depth);
  server_->queue_depth_.Increment(depth - last_depth_);
  last_depth_ = depth;
}

void DeviceMetrics::SetVolumes(int count) { volumes_.Set(count); }

void DeviceMetrics::SetResidentBytes(int64_t bytes) {
  memory_used_.Set(static_cast<double>(bytes));
}

void DeviceMetrics::OnLaunch(int calls, int poses) {
  launches_.Increment();
  poses_.Increment(poses);
  server_->OnLaunch(calls, poses);
}

void DeviceMetrics::OnDropped(absl::StatusCode code) {
  server_->OnDropped(code);
}

void ServerMetrics::RecordStages(const RenderResult& result,
                                 double encode_seconds) {
  const std::pair<const char*, double> stages[] = {
      {"queue", result.queue_seconds},
      {"batch_wait", result.batch_wait_seconds},
      {"render", result.render_seconds},
      {"post", result.post_seconds},
      {"encode", encode_seconds}};
  for (const auto& [stage, seconds] : stages) {
    stage_duration_.Add({{"stage", stage}}, LatencyBuckets()).Observe(seconds);
  }
}

void ServerMetrics::SetMemoryBudget(int64_t bytes) {
  memory_budget_.Set(static_cast<double>(bytes));
}

void ServerMetrics::SetMemoryUsed(MemoryUse use, int64_t bytes) {
  memory_used_.Add({{"use", MemoryUseName(use)}})
      .Set(static_cast<double>(bytes));
}

void ServerMetrics::AddActiveStreams(int delta) {
  active_streams_.Increment(delta);
}

void ServerMetrics::CountQuotaRefusal(const std::string& tenant,
                                      absl::string_view quota) {
  quota_refusals_
      .Add({{"tenant", TenantLabel(tenant)}, {"quota", std::string(quota)}})
      .Increment();
}

void ServerMetrics::CountTenantRequest(const std::string& tenant) {
  tenant_requests_.Add({{"tenant", TenantLabel(tenant)}}).Increment();
}

void ServerMetrics::SetTenantStoredBytes(const std::string& tenant,
                                         int64_t bytes) {
  const std::string label = TenantLabel(tenant);
  if (label == tenant) {
    tenant_stored_bytes_.Add({{"tenant", label}}).Set(double(bytes));
  }
}

std::string ServerMetrics::TenantLabel(const std::string& tenant) {
  absl::MutexLock lock(&tenants_mutex_);
  if (labelled_tenants_.count(tenant) > 0) return tenant;
  if (labelled_tenants_.size() >= kMaxTenantSeries) return "other";
  labelled_tenants_.insert(tenant);
  return tenant;
}

void ServerMetrics::AddActiveUploads(int delta) {
  active_uploads_.Increment(delta);
}

void ServerMetrics::OnCacheEvent(CacheEvent event, int count) {
  const char* name = "hit";
  switch (event) {
    case CacheEvent::kHit:
      break;
    case CacheEvent::kMiss:
      name = "miss";
      break;
    case CacheEvent::kEviction:
      name = "eviction";
      break;
    case CacheEvent::kLoad:
      name = "load";
      break;
    case CacheEvent::kUnload:
      name = "unload";
      break;
  }
  cache_events_.Add({{"event", name}}).Increment(count);
}

void ServerMetrics::OnLaunch(int calls, int poses) {
  batch_calls_.Observe(calls);
  batch_poses_.Observe(poses);
}

void ServerMetrics::OnDropped(absl::StatusCode code) {
  dropped_.Add({{"reason", DropReason(code)}}).Increment();
}

}  // namespace drr::server
