// Chooses the executor the server renders with (--device=auto|cpu|cuda).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/executor.h"

namespace drr::server {

// Which executor the operator asked for.
enum class DeviceMode { kAuto, kCpu, kCuda };

// Parses "auto", "cpu" or "cuda".
absl::StatusOr<DeviceMode> ParseDeviceMode(absl::string_view text);

// The executor chosen and, for logs, why.
struct SelectedExecutor {
  std::unique_ptr<kernels::Executor> executor;
  std::string reason;
};

// kAuto takes CUDA when a device is usable, else the CPU; kCuda fails with
// FAILED_PRECONDITION when no device is usable; kCpu always takes the CPU
// executor with `cpu_threads` workers (0 = one per core).
absl::StatusOr<SelectedExecutor> SelectExecutor(DeviceMode mode,
                                                int cpu_threads);

}  // namespace drr::server
