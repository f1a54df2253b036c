// The CUDA entry points of a build made without nvcc: CUDA is never usable.
#include "kernels/executor.h"

namespace drr::kernels {

CudaProbe ProbeCuda() {
  CudaProbe probe;
  probe.reason =
      "drrserve was built without CUDA (nvcc not found at configure time)";
  return probe;
}

KernelStatus MakeCudaExecutor(std::unique_ptr<Executor>*, int) {
  return KernelStatus::Error(KernelCode::kUnavailable, ProbeCuda().reason);
}

}  // namespace drr::kernels
