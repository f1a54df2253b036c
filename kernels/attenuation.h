// HU → linear attenuation μ (per mm), nanodrr's bilinear map (design.md §1).
#pragma once

#include <cstddef>
#include <cstdint>

#include "defaults/defaults.h"
#include "numeric/host_device.h"

namespace drr::kernels {

// The parameters of the bilinear HU → μ map; defaults are nanodrr's (≈70 keV).
struct AttenuationParams {
  float mu_water = static_cast<float>(defaults::kMuWater);
  float mu_bone = static_cast<float>(defaults::kMuBone);
  float hu_bone = static_cast<float>(defaults::kHuBone);
};

// μ for one HU value: HU is clamped to ≥ −1000; μ = μ_w(1 + HU/1000) for
// HU ≤ 0, μ = μ_w + (μ_b − μ_w)·HU/HU_b above; μ is clamped to ≥ 0.
DRR_HD float HuToMu(float hu, const AttenuationParams& p) {
  hu = hu < -1000.0f ? -1000.0f : hu;
  float mu = hu <= 0.0f
                 ? p.mu_water * (1.0f + hu / 1000.0f)
                 : p.mu_water + (p.mu_bone - p.mu_water) * hu / p.hu_bone;
  return mu < 0.0f ? 0.0f : mu;
}

// Converts `count` HU voxels of type T (int16, uint8, uint16, int32, float32)
// to μ into `mu`.
template <typename T>
void ConvertHuToMu(const T* hu, size_t count, const AttenuationParams& p,
                   float* mu) {
  for (size_t i = 0; i < count; ++i)
    mu[i] = HuToMu(static_cast<float>(hu[i]), p);
}

}  // namespace drr::kernels
