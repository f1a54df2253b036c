#include "kernels/volume_view.h"

#include <cstring>
#include <random>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "numeric/float16.h"

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

// A 5×4×3 volume of distinct values (most not exactly representable in
// 16 bits) in storage type T, and its quads.
template <typename T>
struct QuadVolume {
  static constexpr int nx = 5, ny = 4, nz = 3;
  std::vector<T> voxels;
  std::vector<Quad<T>> quads;
  QuadVolume() : voxels(nx * ny * nz), quads(nx * ny * nz) {
    for (size_t v = 0; v < voxels.size(); ++v)
      voxels[v] = Stored(0.013f * (v + 1) + 0.37f * ((v * 7) % 5));
    StoreQuads(linear(), quads.data());
  }
  static T Stored(float value) {
    if constexpr (std::is_same_v<T, Half>) {
      return ToHalfSaturating(value);
    } else if constexpr (std::is_same_v<T, BFloat16>) {
      return ToBFloat16(value);
    } else {
      return value;
    }
  }
  VolumeView<T> linear() const { return {voxels.data(), nx, ny, nz}; }
  QuadView<T> quad() const { return {quads.data(), nx, ny, nz}; }
};

// Whether two floats have the same bits (so +0 and -0 differ).
bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

template <typename T>
class QuadViewTest : public ::testing::Test {};
using StorageTypes = ::testing::Types<float, Half, BFloat16>;
TYPED_TEST_SUITE(QuadViewTest, StorageTypes);

TYPED_TEST(QuadViewTest, HoldsEachVoxelAndItsNeighboursZeroBeyondTheEdges) {
  const QuadVolume<TypeParam> v;
  const VolumeView<TypeParam> linear = v.linear();
  for (int k = 0; k < v.nz; ++k) {
    for (int j = 0; j < v.ny; ++j) {
      for (int i = 0; i < v.nx; ++i) {
        const Quad<TypeParam>& q = v.quads[(k * v.ny + j) * v.nx + i];
        auto neighbour = [&](int di, int dj) {
          const bool inside = i + di < v.nx && j + dj < v.ny;
          return inside ? linear.Voxel(i + di, j + dj, k) : 0.0f;
        };
        EXPECT_EQ(ToFloat(q.v[0]), linear.Voxel(i, j, k));
        EXPECT_EQ(ToFloat(q.v[1]), neighbour(1, 0));
        EXPECT_EQ(ToFloat(q.v[2]), neighbour(0, 1));
        EXPECT_EQ(ToFloat(q.v[3]), neighbour(1, 1));
        EXPECT_EQ(v.quad().Voxel(i, j, k), linear.Voxel(i, j, k));
      }
    }
  }
}

TYPED_TEST(QuadViewTest, SamplesTheSameBitsAsTheVoxels) {
  const QuadVolume<TypeParam> v;
  std::mt19937 random(12);
  // Inside, across the faces and corners, and well outside.
  std::uniform_real_distribution<float> x(-1.5f, v.nx + 0.5f),
      y(-1.5f, v.ny + 0.5f), z(-1.5f, v.nz + 0.5f);
  int interior = 0;
  for (int n = 0; n < 20000; ++n) {
    const Vec3 p{x(random), y(random), z(random)};
    const float expected = v.linear()(p), got = v.quad()(p);
    ASSERT_TRUE(SameBits(got, expected))
        << "at (" << p.x << ", " << p.y << ", " << p.z << "): " << got
        << " against " << expected;
    interior += p.x >= 0 && p.y >= 0 && p.z >= 0 && p.x < v.nx - 1 &&
                p.y < v.ny - 1 && p.z < v.nz - 1;
  }
  EXPECT_GT(interior, 2000);  // the two-quad path was taken often
  // Voxel centres and cell faces exactly.
  for (const Vec3 p : {Vec3{0, 0, 0}, Vec3{4, 3, 2}, Vec3{3, 2, 1},
                       Vec3{3.5f, 3, 1.5f}, Vec3{-0.5f, 0, 0}})
    EXPECT_TRUE(SameBits(v.quad()(p), v.linear()(p)));
}

TYPED_TEST(QuadViewTest, GivesTheSameGradientBitsAsTheVoxels) {
  const QuadVolume<TypeParam> v;
  std::mt19937 random(13);
  std::uniform_real_distribution<float> x(-1.5f, v.nx + 0.5f),
      y(-1.5f, v.ny + 0.5f), z(-1.5f, v.nz + 0.5f);
  int interior = 0;
  for (int n = 0; n < 20000; ++n) {
    const Vec3 p{x(random), y(random), z(random)};
    interior += p.x >= 0 && p.y >= 0 && p.z >= 0 && p.x < v.nx - 1 &&
                p.y < v.ny - 1 && p.z < v.nz - 1;
    Vec3 expected, got;
    const float expected_value = SampleWithGradient(v.linear(), p, &expected);
    const float value = SampleWithGradient(v.quad(), p, &got);
    ASSERT_TRUE(SameBits(value, expected_value) &&
                SameBits(got.x, expected.x) && SameBits(got.y, expected.y) &&
                SameBits(got.z, expected.z))
        << "at (" << p.x << ", " << p.y << ", " << p.z << ")";
  }
  EXPECT_GT(interior, 2000);  // the two-quad path was taken often
}

}  // namespace
}  // namespace drr::kernels
