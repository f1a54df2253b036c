#include "server/engine/device.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "status/quoted.h"

namespace drr::server {
namespace {

// Most devices one process renders on.
constexpr int kMaxDevices = 64;

// CPU executors standing in for the devices of `list` (one for "all"), with
// `cpu_threads` threads each; 0 shares the cores (kMostCpuThreads at most)
// among them. INVALID_ARGUMENT where `cpu_threads` would start more than
// kMostCpuThreads threads in all.
absl::StatusOr<SelectedExecutors> CpuExecutors(const DeviceList& list,
                                               int cpu_threads,
                                               std::string reason) {
  SelectedExecutors selected;
  const std::vector<int> ordinals =
      list.all() ? std::vector<int>{0} : list.ordinals;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int threads = cpu_threads > 0
                          ? cpu_threads
                          : std::max(1, std::min(cores, kMostCpuThreads) /
                                            static_cast<int>(ordinals.size()));
  const int64_t total =
      int64_t{threads} * static_cast<int64_t>(ordinals.size());
  if (total > kMostCpuThreads) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--cpu-threads ", threads, " for each of ", ordinals.size(),
        " CPU executors is ", total, " threads, more than the ",
        kMostCpuThreads, " a server starts"));
  }
  for (int ordinal : ordinals) {
    selected.devices.push_back({ordinal, absl::StrCat("cpu:", ordinal),
                                kernels::MakeCpuExecutor(threads), 0});
  }
  selected.reason = std::move(reason);
  return selected;
}

}  // namespace

absl::StatusOr<DeviceMode> ParseDeviceMode(absl::string_view text) {
  if (text == "auto") return DeviceMode::kAuto;
  if (text == "cpu") return DeviceMode::kCpu;
  if (text == "cuda") return DeviceMode::kCuda;
  return absl::InvalidArgumentError(
      absl::StrCat("--device must be auto, cpu or cuda, not ", Quoted(text)));
}

absl::StatusOr<DeviceList> ParseDeviceList(absl::string_view text) {
  DeviceList list;
  if (text == "all") return list;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int ordinal = -1;
    if (!absl::SimpleAtoi(part, &ordinal) || ordinal < 0 ||
        ordinal >= kMaxDevices) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--devices must be all or device numbers 0 to ", kMaxDevices - 1,
          " separated by commas, not ", Quoted(text)));
    }
    if (std::find(list.ordinals.begin(), list.ordinals.end(), ordinal) !=
        list.ordinals.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--devices names device ", ordinal, " twice"));
    }
    list.ordinals.push_back(ordinal);
  }
  return list;
}

absl::StatusOr<SelectedExecutors> SelectExecutors(DeviceMode mode,
                                                  const DeviceList& list,
                                                  int cpu_threads) {
  if (mode == DeviceMode::kCpu) {
    return CpuExecutors(list, cpu_threads, "--device=cpu");
  }
  const kernels::CudaProbe probe = kernels::ProbeCuda();
  if (probe.device_count == 0) {
    if (mode == DeviceMode::kCuda) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--device=cuda but no CUDA device is usable: ", probe.reason));
    }
    return CpuExecutors(list, cpu_threads,
                        absl::StrCat("no usable CUDA device (", probe.reason,
                                     "), CPU fallback"));
  }
  std::vector<int> ordinals = list.ordinals;
  if (list.all()) {
    for (int i = 0; i < probe.device_count; ++i) ordinals.push_back(i);
  }
  SelectedExecutors selected;
  std::vector<std::string> chosen, skipped;
  for (int ordinal : ordinals) {
    SelectedDevice device;
    device.ordinal = ordinal;
    device.label = absl::StrCat("cuda:", ordinal);
    const kernels::KernelStatus made =
        kernels::MakeCudaExecutor(&device.executor, ordinal);
    if (!made.ok()) {
      // A device the operator named must work; of "all", the usable ones
      // serve.
      if (!list.all()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "CUDA device ", ordinal, " is not usable: ", made.message()));
      }
      skipped.push_back(absl::StrCat("device ", ordinal, ": ", made.message()));
      continue;
    }
    device.memory_bytes = probe.devices[ordinal].memory_bytes;
    chosen.push_back(absl::StrCat("CUDA device ", ordinal, ": ",
                                  probe.devices[ordinal].name));
    selected.devices.push_back(std::move(device));
  }
  if (selected.devices.empty()) {
    if (mode == DeviceMode::kCuda) {
      return absl::FailedPreconditionError(
          absl::StrCat("--device=cuda but no CUDA device is usable: ",
                       absl::StrJoin(skipped, "; ")));
    }
    return CpuExecutors(
        list, cpu_threads,
        absl::StrCat("no usable CUDA device (", absl::StrJoin(skipped, "; "),
                     "), CPU fallback"));
  }
  selected.reason = absl::StrJoin(chosen, ", ");
  if (!skipped.empty()) {
    absl::StrAppend(&selected.reason, " (skipped ",
                    absl::StrJoin(skipped, "; "), ")");
  }
  return selected;
}

}  // namespace drr::server
