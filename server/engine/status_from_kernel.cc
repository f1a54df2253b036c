#include "server/engine/status_from_kernel.h"

namespace drr::server {

absl::Status FromKernelStatus(const kernels::KernelStatus& status) {
  switch (status.code()) {
    case kernels::KernelCode::kOk:
      return absl::OkStatus();
    case kernels::KernelCode::kInvalidArgument:
      return absl::InvalidArgumentError(status.message());
    case kernels::KernelCode::kResourceExhausted:
      return absl::ResourceExhaustedError(status.message());
    case kernels::KernelCode::kUnavailable:
      return absl::UnavailableError(status.message());
    case kernels::KernelCode::kCancelled:
      return absl::CancelledError(status.message());
    case kernels::KernelCode::kInternal:
      break;
  }
  return absl::InternalError(status.message());
}

}  // namespace drr::server
