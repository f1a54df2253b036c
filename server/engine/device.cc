#include "server/engine/device.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace drr::server {

absl::StatusOr<DeviceMode> ParseDeviceMode(absl::string_view text) {
  if (text == "auto") return DeviceMode::kAuto;
  if (text == "cpu") return DeviceMode::kCpu;
  if (text == "cuda") return DeviceMode::kCuda;
  return absl::InvalidArgumentError(
      absl::StrCat("--device must be auto, cpu or cuda, not \"", text, "\""));
}

absl::StatusOr<SelectedExecutor> SelectExecutor(DeviceMode mode,
                                                int cpu_threads) {
  SelectedExecutor selected;
  if (mode == DeviceMode::kCpu) {
    selected.executor = kernels::MakeCpuExecutor(cpu_threads);
    selected.reason = "--device=cpu";
    return selected;
  }
  const kernels::KernelStatus cuda =
      kernels::MakeCudaExecutor(&selected.executor);
  if (cuda.ok()) {
    selected.reason =
        absl::StrCat("CUDA device 0: ", kernels::ProbeCuda().device_name);
    return selected;
  }
  if (mode == DeviceMode::kCuda) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--device=cuda but no CUDA device is usable: ", cuda.message()));
  }
  selected.executor = kernels::MakeCpuExecutor(cpu_threads);
  selected.reason = absl::StrCat("no usable CUDA device (", cuda.message(),
                                 "), CPU fallback");
  return selected;
}

}  // namespace drr::server
