// drrserve: the DRR render server. Parses flags, starts the server, preloads
// volumes, and serves until SIGINT or SIGTERM.
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "io/nifti.h"
#include "io/phantom.h"
#include "server/frontend/server.h"
#include "status/status_macros.h"

namespace drr::server {
namespace {

void DeclareFlags(CommandLine& cli) {
  const Limits defaults;
  cli.Add("listen", 1, "0.0.0.0:50051",
          "gRPC address host:port (port 0 picks one)");
  cli.Add("metrics-listen", 1, "0.0.0.0:9464",
          "Prometheus /metrics address host:port (\"\" disables)");
  cli.Add("device", 1, "auto",
          "executor: auto (CUDA if usable, else CPU), cpu or cuda");
  cli.Add("cpu-threads", 1, "0", "CPU executor threads (0 = one per core)");
  cli.Add("preload", 1, "", "NIfTI volume (.nii/.nii.gz) to store at start");
  cli.Add("preload-phantom", 0, "",
          "store the built-in analytic thorax phantom at start");
  cli.Add("max-volume-voxels", 1, std::to_string(defaults.max_volume_voxels),
          "largest volume accepted, in voxels");
  cli.Add("max-volumes", 1, std::to_string(defaults.max_volumes),
          "most volumes stored");
  cli.Add("max-image-side", 1, std::to_string(defaults.max_image_side),
          "largest image height or width, in pixels");
  cli.Add("max-samples", 1, std::to_string(defaults.max_samples),
          "most samples per ray");
  cli.Add("max-batch", 1, std::to_string(defaults.max_batch),
          "most poses per request");
  cli.Add("max-queued-requests", 1,
          std::to_string(defaults.max_queued_requests),
          "most render requests waiting; more are refused");
  cli.Add("help", 0, "", "print this help");
}

absl::StatusOr<Server::Options> OptionsFromFlags(const CommandLine& cli) {
  Server::Options options;
  options.listen = cli.Value("listen");
  options.metrics_listen = cli.Value("metrics-listen");
  DRR_ASSIGN_OR_RETURN(options.device, ParseDeviceMode(cli.Value("device")));
  DRR_ASSIGN_OR_RETURN(options.cpu_threads, cli.Int("cpu-threads"));
  Limits& limits = options.limits;
  DRR_ASSIGN_OR_RETURN(double voxels, cli.Double("max-volume-voxels"));
  limits.max_volume_voxels = static_cast<int64_t>(voxels);
  DRR_ASSIGN_OR_RETURN(limits.max_volumes, cli.Int("max-volumes"));
  DRR_ASSIGN_OR_RETURN(limits.max_image_side, cli.Int("max-image-side"));
  DRR_ASSIGN_OR_RETURN(limits.max_samples, cli.Int("max-samples"));
  DRR_ASSIGN_OR_RETURN(limits.max_batch, cli.Int("max-batch"));
  DRR_ASSIGN_OR_RETURN(limits.max_queued_requests,
                       cli.Int("max-queued-requests"));
  return options;
}

absl::Status Preload(const CommandLine& cli, Server& server) {
  std::vector<std::pair<std::string, HostVolume>> volumes;
  if (!cli.Value("preload").empty()) {
    DRR_ASSIGN_OR_RETURN(HostVolume volume,
                         ReadNiftiFile(cli.Value("preload")));
    volumes.emplace_back(cli.Value("preload"), std::move(volume));
  }
  if (cli.Given("preload-phantom"))
    volumes.emplace_back("thorax phantom", MakeThoraxPhantom());
  for (auto& [name, volume] : volumes) {
    DRR_ASSIGN_OR_RETURN(std::string id, server.Preload(std::move(volume)));
    std::printf("drrserve: preloaded %s as volume %s\n", name.c_str(),
                id.c_str());
  }
  return absl::OkStatus();
}

int Run(int argc, char** argv) {
  CommandLine cli;
  DeclareFlags(cli);
  absl::Status status =
      cli.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (status.ok() && !cli.positional().empty()) {
    status = absl::InvalidArgumentError(
        absl::StrCat("unexpected argument \"", cli.positional().front(), "\""));
  }
  if (!status.ok() || cli.Given("help")) {
    if (!status.ok())
      std::fprintf(stderr, "drrserve: %s\n",
                   std::string(status.message()).c_str());
    std::fprintf(stderr, "usage: drrserve [options]\n%s", cli.Usage().c_str());
    return status.ok() ? 0 : 2;
  }
  absl::StatusOr<Server::Options> options = OptionsFromFlags(cli);
  if (!options.ok()) {
    std::fprintf(stderr, "drrserve: %s\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }
  // Signals are taken by sigwait below, not by whichever thread gets them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<Server> server = Server::Start(*options);
  if (!server.ok()) {
    std::fprintf(stderr, "drrserve: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("drrserve: backend %s (%s)\n", server->backend().c_str(),
              server->backend_reason().c_str());
  status = Preload(cli, *server);
  if (!status.ok()) {
    std::fprintf(stderr, "drrserve: preload failed: %s\n",
                 status.ToString().c_str());
    return 1;
  }
  std::printf("drrserve: listening on port %d, metrics on port %d\n",
              server->port(), server->metrics_port());
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  std::printf("drrserve: signal %d, shutting down\n", signal_number);
  server->Shutdown();
  return 0;
}

}  // namespace
}  // namespace drr::server

int main(int argc, char** argv) { return drr::server::Run(argc, argv); }
