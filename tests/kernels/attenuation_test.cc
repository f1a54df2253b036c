#include "kernels/attenuation.h"

#include <vector>

#include "gtest/gtest.h"

namespace drr::kernels {
namespace {

TEST(HuToMuTest, DefaultsMatchNanodrrBilinearMap) {
  const AttenuationParams p;
  EXPECT_FLOAT_EQ(HuToMu(-1000.0f, p), 0.0f);
  EXPECT_FLOAT_EQ(HuToMu(-500.0f, p), 0.0192f * 0.5f);
  EXPECT_FLOAT_EQ(HuToMu(0.0f, p), 0.0192f);
  EXPECT_FLOAT_EQ(HuToMu(500.0f, p), 0.0192f + (0.0573f - 0.0192f) * 0.5f);
  EXPECT_FLOAT_EQ(HuToMu(1000.0f, p), 0.0573f);
}

TEST(HuToMuTest, ClampsBelowAirAndNeverGoesNegative) {
  const AttenuationParams p;
  EXPECT_FLOAT_EQ(HuToMu(-2048.0f, p), 0.0f);
  AttenuationParams negative_bone{0.02f, -1.0f, 1000.0f};
  EXPECT_FLOAT_EQ(HuToMu(3000.0f, negative_bone), 0.0f);
}

TEST(HuToMuTest, UsesCustomParameters) {
  const AttenuationParams p{0.02f, 0.05f, 2000.0f};
  EXPECT_FLOAT_EQ(HuToMu(-250.0f, p), 0.02f * 0.75f);
  EXPECT_FLOAT_EQ(HuToMu(1000.0f, p), 0.02f + 0.03f * 0.5f);
}

TEST(ConvertHuToMuTest, ConvertsEveryVoxel) {
  const std::vector<int16_t> hu{-2048, -1000, 0, 1000};
  std::vector<float> mu(hu.size());
  ConvertHuToMu(hu.data(), hu.size(), AttenuationParams{}, mu.data());
  EXPECT_EQ(mu, (std::vector<float>{0.0f, 0.0f, 0.0192f, 0.0573f}));
}

}  // namespace
}  // namespace drr::kernels
