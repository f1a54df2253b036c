#include "kernels/volume_view.h"

#include <vector>

#include "gtest/gtest.h"

namespace drr::kernels {
namespace {

// A 4×3×2 volume whose voxel (i, j, k) holds 1 + i + 10j + 100k.
struct RampVolume {
  std::vector<float> data;
  VolumeView<float> sampler;
  RampVolume() : data(4 * 3 * 2) {
    for (int k = 0; k < 2; ++k)
      for (int j = 0; j < 3; ++j)
        for (int i = 0; i < 4; ++i)
          data[(k * 3 + j) * 4 + i] = 1.0f + i + 10.0f * j + 100.0f * k;
    sampler = VolumeView<float>{data.data(), 4, 3, 2};
  }
};

TEST(VolumeViewTest, VoxelCentresAreIntegerCoordinates) {
  RampVolume v;
  EXPECT_FLOAT_EQ(v.sampler({0, 0, 0}), 1.0f);
  EXPECT_FLOAT_EQ(v.sampler({3, 2, 1}), 1.0f + 3 + 20 + 100);
}

TEST(VolumeViewTest, InterpolatesLinearlyInside) {
  RampVolume v;
  EXPECT_FLOAT_EQ(v.sampler({1.25f, 0.5f, 0.75f}), 1.0f + 1.25f + 5.0f + 75.0f);
}

TEST(VolumeViewTest, PadsWithZerosOutside) {
  RampVolume v;
  // Half a voxel beyond the first centre: half of voxel 0 and half of zero.
  EXPECT_FLOAT_EQ(v.sampler({-0.5f, 0, 0}), 0.5f);
  EXPECT_FLOAT_EQ(v.sampler({3.5f, 2, 1}), 0.5f * (1.0f + 3 + 20 + 100));
  EXPECT_FLOAT_EQ(v.sampler({-1.0f, 0, 0}), 0.0f);
  EXPECT_FLOAT_EQ(v.sampler({2, 7, 0}), 0.0f);
  EXPECT_FLOAT_EQ(v.sampler({1, 1, -3}), 0.0f);
}

}  // namespace
}  // namespace drr::kernels
