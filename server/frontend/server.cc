#include "server/frontend/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "server/engine/device_pool.h"
#include "server/engine/disk_archive.h"
#include "server/engine/engine_set.h"
#include "server/engine/memory_budget.h"
#include "server/engine/ownership.h"
#include "server/engine/target_store.h"
#include "server/engine/volume_store.h"
#include "server/frontend/auth.h"
#include "server/frontend/drain_gate.h"
#include "server/frontend/metrics.h"
#include "server/frontend/registrations_service.h"
#include "server/frontend/renderer_service.h"
#include "server/frontend/targets_service.h"
#include "server/frontend/upload_tracker.h"
#include "server/frontend/volumes_service.h"
#include "status/status_macros.h"

namespace drr::server {
namespace {

// `options` with `budget` bounding the requests in flight.
EngineOptions WithBudget(EngineOptions options, MemoryBudget* budget) {
  options.budget = budget;
  return options;
}

// The budget of `device`'s resident volumes: `configured` when set, else 90 %
// of a GPU's memory (the rest for workspaces and the CUDA context), or for
// a CPU executor an equal share of the host budget `host_limit` among
// `device_count` devices.
int64_t DeviceBudget(int64_t configured, const SelectedDevice& device,
                     int64_t host_limit, int device_count) {
  if (configured > 0) return configured;
  if (device.memory_bytes > 0) return device.memory_bytes / 10 * 9;
  return host_limit / device_count;
}

// Registers the series of each device of `devices` in `metrics`, in order,
// and returns them as the listeners of the devices' engines.
std::vector<EngineListener*> DeviceListeners(ServerMetrics& metrics,
                                             const DevicePool& devices) {
  std::vector<EngineListener*> listeners;
  for (int i = 0; i < devices.size(); ++i) {
    listeners.push_back(&metrics.AddDevice(devices.device(i).label,
                                           devices.device(i).budget->limit()));
  }
  return listeners;
}

// Takes gRPC's reflection plugin out of a server builder.
class NoReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*
                         plugins) override {
    plugins->erase(
        std::remove_if(
            plugins->begin(), plugins->end(),
            [](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
              return dynamic_cast<
                         grpc::reflection::ProtoServerReflectionPlugin*>(
                         p.get()) != nullptr;
            }),
        plugins->end());
  }
};

}  // namespace

class Server::Impl {
 public:
  Impl(SelectedExecutors selected, std::unique_ptr<DiskArchive> opened,
       std::unique_ptr<Authenticator> authenticator, const Options& options)
      : backend_reason(std::move(selected.reason)),
        archive(std::move(opened)),
        auth(std::move(authenticator)),
        metrics(selected.devices.front().executor->name()),
        owners(archive.get(),
               [this](const std::string& tenant, int64_t bytes) {
                 metrics.SetTenantStoredBytes(tenant, bytes);
               }),
        quotas(
            [this](const std::string& tenant) { return auth->QuotaOf(tenant); },
            &owners,
            [this](const std::string& tenant, QuotaKind kind) {
              metrics.CountQuotaRefusal(tenant, QuotaName(kind));
            }),
        budget(options.memory_budget > 0 ? options.memory_budget
                                         : DefaultMemoryBudget(),
               [this](MemoryUse use, int64_t bytes) {
                 metrics.SetMemoryUsed(use, bytes);
               }),
        uploads(options.limits.max_concurrent_uploads,
                options.limits.upload_idle_timeout),
        devices(
            std::move(selected.devices),
            [&](const SelectedDevice& device, int device_count) {
              return DeviceBudget(options.device_memory_budget, device,
                                  budget.limit(), device_count);
            },
            [this](int index, int64_t bytes) {
              metrics.device(index).SetResidentBytes(bytes);
            }),
        device_listeners(DeviceListeners(metrics, devices)),
        store(
            devices.Residences(),
            [this](const std::string& id) { return devices.Place(id); },
            options.limits.max_volumes, options.limits.max_classes,
            archive.get(), &budget, &metrics),
        targets(options.limits, archive.get(), &budget),
        engines(devices, &store, &targets, options.limits,
                WithBudget(options.engine, &budget), device_listeners),
        context(Context(options)),
        volumes_service(context),
        renderer_service(context),
        targets_service(context),
        registrations_service(context),
        drain_timeout(options.drain_timeout) {
    metrics.SetMemoryBudget(budget.limit());
  }

  ~Impl() {
    if (grpc_server && !shut_down) Shutdown();
  }

  // What the services share.
  ServiceContext Context(const Options& options) {
    return ServiceContext{&store,         &targets,
                          archive.get(),  auth.get(),
                          &owners,        &quotas,
                          &devices,       &engines,
                          &metrics,       &gate,
                          &budget,        &uploads,
                          options.limits, options.require_volume_header};
  }

  // Health turns NOT_SERVING and new calls are refused at once; the work in
  // flight gets up to drain_timeout to finish, then whatever is left (work
  // that did not finish, idle streams) is cancelled.
  bool Shutdown() {
    shut_down = true;
    gate.Close();
    uploads.Drain();
    grpc_server->GetHealthCheckService()->SetServingStatus(false);
    const bool drained = gate.WaitUntilIdle(absl::FromChrono(drain_timeout));
    grpc_server->Shutdown(std::chrono::system_clock::now());
    return drained;
  }

  // Declaration order is teardown order reversed: the engines' workers may
  // still record metrics while they drain.
  std::string backend_reason;
  std::unique_ptr<DiskArchive> archive;  // nullptr without --data-dir
  std::unique_ptr<Authenticator> auth;
  ServerMetrics metrics;
  Ownership owners;
  QuotaGate quotas;
  MemoryBudget budget;
  UploadTracker uploads;
  DevicePool devices;
  // Each device's series, registered as soon as the devices exist.
  std::vector<EngineListener*> device_listeners;
  VolumeStore store;
  TargetStore targets;
  EngineSet engines;
  DrainGate gate;
  ServiceContext context;
  VolumesService volumes_service;
  RendererService renderer_service;
  TargetsService targets_service;
  RegistrationsService registrations_service;
  const std::chrono::milliseconds drain_timeout;
  std::unique_ptr<grpc::Server> grpc_server;
  bool shut_down = false;
  int port = 0;
  int metrics_port = 0;
};

absl::StatusOr<Server> Server::Start(const Options& options) {
  absl::StatusOr<SelectedExecutors> selected =
      SelectExecutors(options.device, options.devices, options.cpu_threads);
  if (!selected.ok()) return selected.status();
  std::unique_ptr<DiskArchive> archive;
  if (!options.data_dir.empty()) {
    absl::StatusOr<std::unique_ptr<DiskArchive>> opened =
        DiskArchive::Open(options.data_dir);
    if (!opened.ok()) return opened.status();
    archive = *std::move(opened);
  }
  absl::StatusOr<std::unique_ptr<Authenticator>> auth =
      Authenticator::Open(options.tokens_path, options.tenant_quota);
  if (!auth.ok()) return auth.status();
  auto impl = std::make_unique<Impl>(*std::move(selected), std::move(archive),
                                     *std::move(auth), options);
  if (absl::Status engines = impl->engines.status(); !engines.ok()) {
    return engines;
  }
  // The volumes a --data-dir already holds.
  impl->context.PublishStoreSize();

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentialsFor(options.tls);
  if (!credentials.ok()) return credentials.status();
  grpc::EnableDefaultHealthCheckService(true);
  // Registers the plugin for every builder of the process (loading gRPC's
  // reflection library does too); a builder without --reflection drops it.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (!options.reflection) builder.SetOption(std::make_unique<NoReflection>());
  builder.AddListeningPort(options.listen, *credentials, &impl->port);
  // Room for upload chunks, target images and upstream gradients, bounded.
  builder.SetMaxReceiveMessageSize(64 << 20);
  // What a stream may have in flight towards the server, unread: 1 MiB (an
  // upload chunk), not the many MiB gRPC's bandwidth probing grows it to,
  // which no budget would see.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1 << 20);
  builder.RegisterService(&impl->volumes_service);
  builder.RegisterService(&impl->renderer_service);
  builder.RegisterService(&impl->targets_service);
  builder.RegisterService(&impl->registrations_service);
  impl->grpc_server = builder.BuildAndStart();
  if (impl->grpc_server == nullptr || impl->port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen));
  }
  grpc::HealthCheckServiceInterface* health =
      impl->grpc_server->GetHealthCheckService();
  for (const char* service : {"", "drr.v1.Volumes", "drr.v1.Renderer",
                              "drr.v1.Targets", "drr.v1.Registrations"}) {
    health->SetServingStatus(service, true);
  }
  if (!options.metrics_listen.empty()) {
    absl::StatusOr<int> metrics_port =
        impl->metrics.Expose(options.metrics_listen);
    if (!metrics_port.ok()) return metrics_port.status();
    impl->metrics_port = *metrics_port;
  }
  return Server(std::move(impl));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;
Server::~Server() = default;

int Server::port() const { return impl_->port; }
int Server::metrics_port() const { return impl_->metrics_port; }
std::string Server::backend() const {
  const DevicePool& devices = impl_->devices;
  if (devices.size() == 1) return devices.device(0).executor->name();
  std::vector<std::string> labels;
  for (int i = 0; i < devices.size(); ++i) {
    labels.push_back(devices.device(i).label);
  }
  return absl::StrJoin(labels, ", ");
}
std::string Server::backend_reason() const { return impl_->backend_reason; }

std::string Server::storage() const {
  if (impl_->archive == nullptr) {
    return "volumes and targets in memory only (no --data-dir)";
  }
  return absl::StrCat("volumes and targets in ", impl_->archive->dir(), " (",
                      impl_->store.size(), " volumes, ", impl_->targets.size(),
                      " targets)");
}

absl::StatusOr<std::string> Server::Preload(HostVolume volume) {
  std::string id = ContentDigest(volume.header, volume.voxels, volume.labels);
  absl::StatusOr<std::shared_ptr<const StoredVolume>> stored =
      impl_->store.Insert(id, std::move(volume));
  if (!stored.ok()) return stored.status();
  // The operator's volume: every tenant renders it.
  DRR_RETURN_IF_ERROR(impl_->owners.Grant(
      Ownership::Kind::kVolume, id, kEveryTenant, (*stored)->uploaded_bytes()));
  impl_->context.PublishStoreSize();
  return id;
}

absl::StatusOr<int> Server::ReloadTokens() {
  absl::StatusOr<int> tokens = impl_->auth->Reload();
  if (tokens.ok()) impl_->quotas.Reset();
  return tokens;
}

bool Server::uses_tokens() const { return impl_->auth->enabled(); }

void Server::Wait() { impl_->grpc_server->Wait(); }

bool Server::Shutdown() { return impl_->Shutdown(); }

}  // namespace drr::server
