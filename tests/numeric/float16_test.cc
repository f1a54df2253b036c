#include "numeric/float16.h"

#include <cmath>

#include "gtest/gtest.h"

namespace drr {
namespace {

TEST(HalfTest, EncodesKnownValuesAndRoundsToNearestEven) {
  EXPECT_EQ(ToHalf(1.0f).bits, 0x3c00);
  EXPECT_EQ(ToHalf(-2.5f).bits, 0xc100);
  EXPECT_EQ(ToHalf(65504.0f).bits, 0x7bff);               // largest finite
  EXPECT_EQ(ToHalf(65520.0f).bits, 0x7c00);               // rounds to inf
  EXPECT_EQ(ToHalf(std::ldexp(1.0f, -24)).bits, 0x0001);  // smallest subnormal
  EXPECT_EQ(ToHalf(1.0f + std::ldexp(1.0f, -11)).bits, 0x3c00);  // tie: even
  EXPECT_EQ(ToHalf(1.0f + 3 * std::ldexp(1.0f, -11)).bits,
            0x3c02);  // tie: even (up)
  EXPECT_TRUE(std::isnan(ToFloat(ToHalf(NAN))));
}

TEST(HalfTest, RoundTripsEveryHalfValue) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const Half h{static_cast<uint16_t>(bits)};
    const float f = ToFloat(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(ToHalf(f).bits, h.bits) << std::hex << bits;
  }
}

TEST(BFloat16Test, TruncatesTheMantissaWithRoundToNearestEven) {
  EXPECT_EQ(ToBFloat16(1.0f).bits, 0x3f80);
  EXPECT_EQ(ToFloat(BFloat16{0x3f80}), 1.0f);
  EXPECT_EQ(ToBFloat16(1.0f + std::ldexp(1.0f, -8)).bits, 0x3f80);  // tie: even
  EXPECT_EQ(ToBFloat16(1.0f + 3 * std::ldexp(1.0f, -8)).bits, 0x3f82);
  EXPECT_NEAR(ToFloat(ToBFloat16(0.0573f)), 0.0573f, 0.0573f / 256);
  EXPECT_TRUE(std::isnan(ToFloat(ToBFloat16(NAN))));
}

}  // namespace
}  // namespace drr
