// The vectorised CPU path of a build made without Highway (the kernels-only
// build on GPU hosts): every ray takes the per-ray body.
#include <cstdlib>

#include "kernels/cpu_simd.h"

namespace drr::kernels {

bool SimdRenders(const RenderSettings&) { return false; }

bool SimdDifferentiates(const RenderSettings&) { return false; }

const char* SimdTargetName() { return "none"; }

std::vector<std::string> SimdTargets() { return {}; }

void UseSimdTarget(const std::string&) {}

void RenderSimdSpan(const VolumeBuffers&, const PoseGeometry&,
                    const RenderSettings&, int, int, int, float*, long long) {
  std::abort();  // unreachable: SimdRenders is false
}

void AddVjpSimdSpan(const VolumeBuffers&, const PoseGeometry&,
                    const RenderSettings&, int, int, int, const float*,
                    long long, double*) {
  std::abort();  // unreachable: SimdDifferentiates is false
}

void WriteJacobianSimdSpan(const VolumeBuffers&, const PoseGeometry&,
                           const RenderSettings&, int, int, int, float*,
                           long long) {
  std::abort();  // unreachable: SimdDifferentiates is false
}

}  // namespace drr::kernels
