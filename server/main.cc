// drrserve: the DRR render server. Parses flags, starts the server, preloads
// volumes, and serves until SIGINT or SIGTERM.
#include <malloc.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "io/phantom.h"
#include "io/volume_file.h"
#include "kernels/resident_volume.h"
#include "server/engine/device.h"
#include "server/frontend/server.h"
#include "status/status_macros.h"

namespace drr::server {
namespace {

// The flags of drrserve.
struct Flags {
  Server::Options options;
  std::string device = "auto";
  std::string devices = "all";
  std::string preload;
  bool preload_phantom = false;
  // A double, so that 5e8 reads as a count.
  double max_volume_voxels = static_cast<double>(Limits{}.max_volume_voxels);
  int batch_delay_us = 0;
  double drain_timeout_s = 30;
  // Doubles, so that 8e9 reads as a count.
  double memory_budget = 0;
  double device_memory_budget = 0;
  double upload_idle_timeout_s = 30;
  double tenant_stored_bytes = 0;
};

void DeclareFlags(CLI::App& app, Flags& f) {
  Server::Options& o = f.options;
  Limits& limits = o.limits;
  app.add_option("--listen", o.listen,
                 "gRPC address host:port (port 0 picks one; 0.0.0.0:PORT "
                 "serves every interface)")
      ->capture_default_str();
  app.add_option("--metrics-listen", o.metrics_listen,
                 "Prometheus /metrics address host:port (\"\" disables); "
                 "operator-only")
      ->capture_default_str();
  app.add_option("--tls-cert", o.tls.cert,
                 "PEM certificate chain of the gRPC port (with --tls-key: "
                 "TLS; re-read when it changes)");
  app.add_option("--tls-key", o.tls.key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", o.tls.client_ca,
                 "PEM CA that must have signed every client's certificate "
                 "(mutual TLS)");
  app.add_option("--tokens", o.tokens_path,
                 "token file of the tenants: one line per token, TENANT "
                 "ROLE(user|admin) SHA256-OF-TOKEN; read again on SIGHUP");
  app.add_option("--tenant-stored-bytes", f.tenant_stored_bytes,
                 "each tenant's stored volumes and targets, in bytes, "
                 "unless the token file says (0 = unlimited)")
      ->check(CLI::Range(0.0, 1e18))
      ->capture_default_str();
  app.add_option("--tenant-streams", o.tenant_quota.streams,
                 "each tenant's open RenderStreams (0 = unlimited)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  app.add_option("--tenant-uploads", o.tenant_quota.uploads,
                 "each tenant's uploads in progress (0 = unlimited)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  app.add_option("--tenant-rps", o.tenant_quota.requests_per_second,
                 "each tenant's requests (calls, uploads, stream frames) "
                 "per second (0 = unlimited)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  app.add_flag("--require-volume-header", o.require_volume_header,
               "refuse calls that name a volume without the x-drr-volume-id "
               "header (FAILED_PRECONDITION): behind a proxy that routes by "
               "it, such a call would reach any replica");
  app.add_flag("--reflection", o.reflection,
               "serve gRPC server reflection (describes every service to "
               "anyone who connects)");
  app.add_option("--device", f.device,
                 "executor: auto (CUDA if usable, else CPU), cpu or cuda")
      ->capture_default_str();
  app.add_option("--devices", f.devices,
                 "devices to render on, each with an engine of its own and "
                 "volumes placed by a hash of their ids: all, or device "
                 "numbers such as 0,1 (on the CPU, CPU executors stand in "
                 "for them; all = one)")
      ->capture_default_str();
  app.add_option("--device-memory-budget", f.device_memory_budget,
                 "memory, in bytes, each device's resident volumes may take "
                 "(0 = 90% of a GPU's memory; on the CPU an equal share of "
                 "--memory-budget)")
      ->check(CLI::Range(0.0, 1e18))
      ->capture_default_str();
  app.add_option("--cpu-threads", o.cpu_threads,
                 "threads of each CPU executor, 1024 in all at most (0 = the "
                 "cores, shared equally among the CPU executors)")
      ->check(CLI::Range(0, kMostCpuThreads))
      ->capture_default_str();
  app.add_option("--preload", f.preload,
                 "volume to store at start: NIfTI, NRRD, MetaImage, or a "
                 "directory of one DICOM series");
  app.add_flag("--preload-phantom", f.preload_phantom,
               "store the built-in analytic thorax phantom at start");
  app.add_option("--max-volume-voxels", f.max_volume_voxels,
                 "largest volume accepted, in voxels")
      ->check(CLI::Range(1.0, static_cast<double>(kernels::kMaxVolumeVoxels)))
      ->capture_default_str();
  app.add_option("--max-volumes", limits.max_volumes, "most volumes stored")
      ->capture_default_str();
  app.add_option("--max-image-side", limits.max_image_side,
                 "largest image height or width, in pixels")
      ->capture_default_str();
  app.add_option("--max-samples", limits.max_samples, "most samples per ray")
      ->capture_default_str();
  app.add_option("--max-batch", limits.max_batch, "most poses per request")
      ->capture_default_str();
  app.add_option("--max-queued-requests", limits.max_queued_requests,
                 "most render requests waiting per device; more are refused")
      ->capture_default_str();
  app.add_option("--workers", o.engine.workers,
                 "render workers per device, each with its own workspace "
                 "(CUDA: its own stream); 0 = two on CUDA, one on the CPU")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  app.add_option("--max-batch-poses", o.engine.max_batch_poses,
                 "most poses gathered from several requests into one launch")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--memory-budget", f.memory_budget,
                 "host memory, in bytes, for stored volumes, their resident "
                 "copies, uploads and requests in flight (0 = half of "
                 "physical memory)")
      ->check(CLI::Range(0.0, 1e18))
      ->capture_default_str();
  app.add_option("--max-concurrent-uploads", limits.max_concurrent_uploads,
                 "most volume uploads in progress at once")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  app.add_option("--upload-idle-timeout", f.upload_idle_timeout_s,
                 "seconds an upload may go without a chunk before it is "
                 "cancelled")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  app.add_option("--data-dir", o.data_dir,
                 "directory keeping uploaded volumes and targets across "
                 "restarts (empty: memory only)");
  app.add_option("--drain-timeout", f.drain_timeout_s,
                 "on SIGTERM, seconds the work in flight may take to finish "
                 "before it is cancelled; the process exits at most a second "
                 "later")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--batch-delay-us", f.batch_delay_us,
                 "how long a launch that is not full waits for more "
                 "requests, in microseconds")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
}

absl::Status Preload(const Flags& flags, Server& server) {
  std::vector<std::pair<std::string, HostVolume>> volumes;
  if (!flags.preload.empty()) {
    DRR_ASSIGN_OR_RETURN(
        HostVolume volume,
        ReadVolumeFile(
            flags.preload,
            VolumeFileLimits{flags.options.limits.max_volume_voxels}));
    volumes.emplace_back(flags.preload, std::move(volume));
  }
  if (flags.preload_phantom)
    volumes.emplace_back("thorax phantom", MakeThoraxPhantom());
  for (auto& [name, volume] : volumes) {
    DRR_ASSIGN_OR_RETURN(std::string id, server.Preload(std::move(volume)));
    std::printf("drrserve: preloaded %s as volume %s\n", name.c_str(),
                id.c_str());
  }
  return absl::OkStatus();
}

// Makes glibc give memory back soon after it is freed, so that the process
// stays near what the memory budget holds: blocks of 256 KiB and more (image
// buffers, upload chunks, volumes) are mapped and unmapped, not kept in a
// heap; free heap tops are trimmed past 1 MiB; at most four arenas; and
// every second the free pages inside the heaps are given back too.
void ReturnFreedMemoryPromptly() {
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
  mallopt(M_TRIM_THRESHOLD, 1 << 20);
  mallopt(M_ARENA_MAX, 4);
  std::thread([] {
    while (true) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      malloc_trim(0);
    }
  }).detach();
}

int Run(int argc, char** argv) {
  CLI::App app{"drrserve: the DRR render server"};
  Flags flags;
  DeclareFlags(app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "drrserve: %s (drrserve --help)\n", e.what());
    return 2;
  }
  flags.options.limits.max_volume_voxels =
      static_cast<int64_t>(flags.max_volume_voxels);
  flags.options.engine.batch_delay =
      std::chrono::microseconds(flags.batch_delay_us);
  flags.options.memory_budget = static_cast<int64_t>(flags.memory_budget);
  flags.options.device_memory_budget =
      static_cast<int64_t>(flags.device_memory_budget);
  flags.options.tenant_quota.stored_bytes =
      static_cast<int64_t>(flags.tenant_stored_bytes);
  flags.options.limits.upload_idle_timeout = std::chrono::milliseconds(
      std::llround(flags.upload_idle_timeout_s * 1000));
  flags.options.drain_timeout =
      std::chrono::milliseconds(std::llround(flags.drain_timeout_s * 1000));
  absl::StatusOr<DeviceMode> device = ParseDeviceMode(flags.device);
  if (!device.ok()) {
    std::fprintf(stderr, "drrserve: %s\n",
                 std::string(device.status().message()).c_str());
    return 2;
  }
  flags.options.device = *device;
  absl::StatusOr<DeviceList> devices = ParseDeviceList(flags.devices);
  if (!devices.ok()) {
    std::fprintf(stderr, "drrserve: %s\n",
                 std::string(devices.status().message()).c_str());
    return 2;
  }
  flags.options.devices = *std::move(devices);
  // Signals are taken by sigwait below, not by whichever thread gets them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // After the mask: its thread must not take the signals either.
  ReturnFreedMemoryPromptly();

  absl::StatusOr<Server> server = Server::Start(flags.options);
  if (!server.ok()) {
    std::fprintf(stderr, "drrserve: %s\n", server.status().ToString().c_str());
    // INVALID_ARGUMENT names flags the server refuses together (--cpu-threads
    // for its CPU executors, --tokens, --tls-*): a usage error, as a bad flag.
    return absl::IsInvalidArgument(server.status()) ? 2 : 1;
  }
  std::printf("drrserve: backend %s (%s)\n", server->backend().c_str(),
              server->backend_reason().c_str());
  std::printf("drrserve: %s\n", server->storage().c_str());
  std::printf("drrserve: %s\n",
              server->uses_tokens()
                  ? "calls need a token of --tokens (tenants)"
                  : "no --tokens: every caller is the one anonymous tenant "
                    "and sees every volume");
  const absl::Status status = Preload(flags, *server);
  if (!status.ok()) {
    std::fprintf(stderr, "drrserve: preload failed: %s\n",
                 status.ToString().c_str());
    return 1;
  }
  std::printf("drrserve: listening on port %d, metrics on port %d\n",
              server->port(), server->metrics_port());
  std::fflush(stdout);
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
    absl::StatusOr<int> tokens = server->ReloadTokens();
    if (tokens.ok()) {
      std::printf("drrserve: SIGHUP: %d tokens\n", *tokens);
    } else {
      std::printf("drrserve: SIGHUP: kept the tokens in use: %s\n",
                  std::string(tokens.status().message()).c_str());
    }
    std::fflush(stdout);
  }
  std::printf("drrserve: signal %d, draining (at most %g s)\n", signal_number,
              flags.drain_timeout_s);
  std::fflush(stdout);
  // Whatever happens, the process is gone a second after the drain timeout.
  std::thread([deadline =
                   flags.options.drain_timeout + std::chrono::seconds(1)] {
    std::this_thread::sleep_for(deadline);
    std::fprintf(stderr, "drrserve: the drain overran its timeout; exiting\n");
    std::_Exit(1);
  }).detach();
  const bool drained = server->Shutdown();
  std::printf("drrserve: %s\n",
              drained ? "drained" : "drain timed out; cancelled the rest");
  std::fflush(stdout);
  // Every call is answered and every volume on disk is durable: the rest of
  // the teardown (the metrics web server alone waits up to 2 s) would only
  // overrun the drain's bound.
  std::_Exit(0);
}

}  // namespace
}  // namespace drr::server

int main(int argc, char** argv) { return drr::server::Run(argc, argv); }
