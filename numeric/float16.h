// float16 and bfloat16: raw-bit types and their conversions to and from
// float32, identical on the host and a CUDA device. Volumes may be stored in
// them and images returned in them; accumulation is always float32
// (design.md §1).
#pragma once

#include <cstdint>
#include <cstring>

#include "numeric/host_device.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace drr {

// IEEE 754 binary16, as raw bits.
struct Half {
  uint16_t bits;
};

// bfloat16 (the upper half of a binary32), as raw bits.
struct BFloat16 {
  uint16_t bits;
};

// The float32 whose bit pattern is `bits`.
DRR_HD float BitsToFloat(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

// The bit pattern of the float32 `f`.
inline uint32_t FloatToBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

// `v` itself, so that samplers read every storage type through ToFloat.
DRR_HD float ToFloat(float v) { return v; }

// The float32 value of a bfloat16 (exact).
DRR_HD float ToFloat(BFloat16 v) {
  return BitsToFloat(static_cast<uint32_t>(v.bits) << 16);
}

// The float32 value of a float16 (exact, subnormals included).
DRR_HD float ToFloat(Half v) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(v.bits));
#else
  const uint32_t sign = static_cast<uint32_t>(v.bits & 0x8000u) << 16;
  const uint32_t exponent = (v.bits >> 10) & 0x1fu;
  const uint32_t mantissa = v.bits & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa · 2⁻²⁴, exact in float
    const float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return BitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  return BitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
#endif
}

// float32 → float16, rounding to nearest even; overflow gives ±inf.
Half ToHalf(float f);

// The largest finite float16.
inline constexpr float kHalfMax = 65504.0f;

// float32 → float16 for stored values: as ToHalf, but saturating at
// ±kHalfMax (NaN gives −kHalfMax), so that a stored value is never ±inf
// (whose differences in interpolation would be NaN).
inline Half ToHalfSaturating(float f) {
  return ToHalf(f >= kHalfMax ? kHalfMax : (f > -kHalfMax ? f : -kHalfMax));
}

// float32 → bfloat16, rounding to nearest even.
BFloat16 ToBFloat16(float f);

}  // namespace drr
