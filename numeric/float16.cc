#include "numeric/float16.h"

#include <cmath>

namespace drr {

Half ToHalf(float f) {
  const uint32_t x = FloatToBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t magnitude = x & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {  // inf or NaN
    return Half{static_cast<uint16_t>(
        sign | (magnitude > 0x7f800000u ? 0x7e00u : 0x7c00u))};
  }
  if (magnitude >= 0x477ff000u)
    return Half{static_cast<uint16_t>(sign | 0x7c00u)};  // ≥ 65520
  if (magnitude <
      0x38800000u) {  // below 2⁻¹⁴: subnormal half (or the smallest normal)
    const long m =
        std::lrint(BitsToFloat(magnitude) * 16777216.0f);  // exact, then RNE
    return Half{static_cast<uint16_t>(sign | m)};
  }
  uint32_t h = (((magnitude >> 23) - 112) << 10) | ((magnitude >> 13) & 0x3ffu);
  const uint32_t rest = magnitude & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    ++h;  // carries into the exponent
  return Half{static_cast<uint16_t>(sign | h)};
}

BFloat16 ToBFloat16(float f) {
  const uint32_t x = FloatToBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return BFloat16{static_cast<uint16_t>((x >> 16) | 0x40u)};
  return BFloat16{
      static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16)};
}

}  // namespace drr
