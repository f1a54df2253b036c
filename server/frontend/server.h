// drrserve's gRPC server: engine, services, health, reflection and metrics,
// started together and stopped together.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/engine/device.h"
#include "server/engine/limits.h"
#include "server/engine/render_engine.h"
#include "server/frontend/quotas.h"
#include "server/frontend/tls.h"
#include "volume/volume.h"

namespace drr::server {

// A running server. Movable; destroying it shuts it down.
class Server {
 public:
  // How to start a server.
  struct Options {
    // gRPC address, "host:port"; port 0 picks a free one. Loopback unless
    // the operator says otherwise.
    std::string listen = "127.0.0.1:50051";
    // Metrics address, "host:port"; empty serves no metrics. Operator-only:
    // it tells anyone who reaches it what the server holds and does.
    std::string metrics_listen = "127.0.0.1:9464";
    // TLS for the gRPC port (none when empty).
    TlsFiles tls;
    // Whether to serve gRPC server reflection (it describes every service to
    // anyone who connects).
    bool reflection = false;
    // Refuse calls that name a volume without x-drr-volume-id (behind a
    // proxy that routes by it: a call without it would land anywhere).
    bool require_volume_header = false;
    // The token file of the tenants (auth.h); empty: every caller is the
    // anonymous tenant, an administrator.
    std::string tokens_path;
    // The quotas of tenants the token file gives none of their own.
    TenantQuota tenant_quota;
    DeviceMode device = DeviceMode::kAuto;
    // The devices to render on, each with an engine of its own; volumes are
    // placed on them by a consistent hash of their ids. On the CPU, each
    // listed device is a CPU executor standing in for one.
    DeviceList devices;
    // What each device's resident volumes may take, in bytes; 0 = 90 % of a
    // GPU's memory, or on the CPU an equal share of the host budget.
    int64_t device_memory_budget = 0;
    // Threads of each CPU executor, the caller's included (0 = the cores
    // shared equally among the CPU executors).
    int cpu_threads = 0;
    Limits limits;
    // Workers and batching of each device's engine; its listener is the
    // server's metrics.
    EngineOptions engine;
    // Host memory for volumes, their resident copies, uploads and requests
    // in flight; 0 = half of physical memory.
    int64_t memory_budget = 0;
    // Where uploaded volumes and targets are kept across restarts; empty
    // keeps them in memory only.
    std::string data_dir;
    // How long Shutdown lets the work in flight finish before cancelling it.
    std::chrono::milliseconds drain_timeout{30000};
  };

  // Starts a server, or says why it could not.
  static absl::StatusOr<Server> Start(const Options& options);

  Server(Server&&) noexcept;
  Server& operator=(Server&&) noexcept;
  ~Server();

  // The bound gRPC port.
  int port() const;
  // The bound metrics port (0 when metrics are off).
  int metrics_port() const;
  // The executors in use ("cpu", "cuda"; their devices, when several) and
  // why they were chosen.
  std::string backend() const;
  std::string backend_reason() const;
  // Where volumes and targets are kept, for the start-up log.
  std::string storage() const;

  // Stores `volume` as if uploaded, for every tenant to render; returns its
  // id.
  absl::StatusOr<std::string> Preload(HostVolume volume);

  // Reads the token file again (SIGHUP); the tokens in use stay when it is
  // wrong. Returns how many tokens it holds.
  absl::StatusOr<int> ReloadTokens();
  // Whether calls need a token (--tokens).
  bool uses_tokens() const;

  // Blocks until Shutdown is called from another thread.
  void Wait();
  // Drains: health turns NOT_SERVING and new calls (and new stream frames)
  // are refused with UNAVAILABLE at once; calls, frames and uploads in flight
  // get up to options.drain_timeout to finish; then whatever is left is
  // cancelled (renders stop within milliseconds) and the server stops. True
  // when everything in flight finished in time.
  bool Shutdown();

 private:
  class Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drr::server
