// Chooses the executors the server renders on (--device=auto|cpu|cuda,
// --devices=all|0,1,…).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/executor.h"

namespace drr::server {

// Which executor the operator asked for.
enum class DeviceMode { kAuto, kCpu, kCuda };

// Parses "auto", "cpu" or "cuda".
absl::StatusOr<DeviceMode> ParseDeviceMode(absl::string_view text);

// Which devices to render on: every usable one (an empty list), or these
// ordinals, distinct and in the operator's order.
struct DeviceList {
  std::vector<int> ordinals;
  bool all() const { return ordinals.empty(); }
};

// Parses "all" or a comma-separated list of distinct ordinals ("0,1,3").
absl::StatusOr<DeviceList> ParseDeviceList(absl::string_view text);

// One executor chosen: its device's ordinal, its label for logs and metrics
// ("cuda:1", "cpu:0") and, on CUDA, the device's memory (0 on the CPU,
// whose executors share the host's).
struct SelectedDevice {
  int ordinal = 0;
  std::string label;
  std::unique_ptr<kernels::Executor> executor;
  int64_t memory_bytes = 0;
};

// The executors chosen and, for logs, why.
struct SelectedExecutors {
  std::vector<SelectedDevice> devices;
  std::string reason;
};

// The most threads the CPU executors of one server start in all.
inline constexpr int kMostCpuThreads = 1024;

// kAuto takes the CUDA devices of `list` (of "all", those usable) when CUDA
// is usable, else as many CPU executors (one for "all"); kCuda fails with
// FAILED_PRECONDITION when no device is usable or one `list` names is not;
// kCpu takes CPU executors. Each CPU executor has `cpu_threads` threads, the
// caller's included (0 = the cores, kMostCpuThreads at most, shared equally
// among them), and INVALID_ARGUMENT says where `cpu_threads` would pass
// kMostCpuThreads in all; several of them stand in for several devices
// (tests, and trials of a multi-GPU setup).
absl::StatusOr<SelectedExecutors> SelectExecutors(DeviceMode mode,
                                                  const DeviceList& list,
                                                  int cpu_threads);

}  // namespace drr::server
