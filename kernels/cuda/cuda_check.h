// CUDA runtime errors as KernelStatus, and the early-return macro the CUDA
// executor checks every runtime call with.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "kernels/kernel_status.h"

namespace drr::kernels {

// "what: cudaErrorName (description)".
inline std::string CudaErrorText(const char* what, cudaError_t error) {
  return std::string(what) + ": " + cudaGetErrorName(error) + " (" +
         cudaGetErrorString(error) + ")";
}

// kOk for cudaSuccess; kResourceExhausted when device memory ran out;
// kInternal for anything else. `what` names the call in the message.
inline KernelStatus CudaStatus(const char* what, cudaError_t error) {
  if (error == cudaSuccess) return KernelStatus::Ok();
  const KernelCode code = error == cudaErrorMemoryAllocation
                              ? KernelCode::kResourceExhausted
                              : KernelCode::kInternal;
  return KernelStatus::Error(code, CudaErrorText(what, error));
}

}  // namespace drr::kernels

// Evaluates the CUDA runtime call `expr`; returns its error as a KernelStatus
// naming `what` from the enclosing function unless it is cudaSuccess.
#define DRR_CUDA_RETURN_IF_ERROR(what, expr) \
  DRR_KERNEL_RETURN_IF_ERROR(::drr::kernels::CudaStatus(what, (expr)))
