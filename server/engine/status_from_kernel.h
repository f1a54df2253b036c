// Turns the kernels' KernelStatus into absl::Status at the engine boundary.
#pragma once

#include "absl/status/status.h"
#include "kernels/kernel_status.h"
#include "status/status_macros.h"

namespace drr::server {

// The absl::Status with the same meaning as `status`.
absl::Status FromKernelStatus(const kernels::KernelStatus& status);

}  // namespace drr::server

// Returns the absl::Status of the KernelStatus `expr` unless it is OK.
#define DRR_RETURN_IF_KERNEL_ERROR(expr) \
  DRR_RETURN_IF_ERROR(::drr::server::FromKernelStatus(expr))
