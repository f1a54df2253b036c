#include "io/phantom.h"

#include <cstring>

#include "gtest/gtest.h"

namespace drr {
namespace {

int16_t HuAt(const HostVolume& v, int i, int j, int k) {
  int16_t hu;
  std::memcpy(
      &hu,
      v.voxels.data() + 2 * ((k * v.header.height + j) * v.header.width + i),
      2);
  return hu;
}

TEST(ThoraxPhantomTest, HasTheDeclaredShapeAndTissues) {
  const HostVolume v = MakeThoraxPhantom();
  ASSERT_EQ(v.voxels.size(), static_cast<size_t>(v.header.voxel_bytes()));
  EXPECT_EQ(HuAt(v, 0, 0, 0), -1000);  // air in the corner
  // x = 158.75 − 2.5i, y = 158.75 − 2.5j, z = 2.5k − 118.75 (mm).
  EXPECT_EQ(HuAt(v, 57, 93, 48), 700);  // (16.25, −73.75, 1.25): vertebral body
  EXPECT_EQ(HuAt(v, 63, 93, 48), 10);    // (1.25, −73.75, 1.25): spinal canal
  EXPECT_EQ(HuAt(v, 35, 63, 52), -820);  // (71.25, 1.25, 11.25): left lung
}

TEST(ThoraxPhantomTest, CentreOfTheVolumeIsTheWorldOrigin) {
  const HostVolume v = MakeThoraxPhantom();
  const geometry::Vec3d c = VolumeCenter(v.header);
  for (double x : c) EXPECT_NEAR(x, 0.0, 1e-12);
}

}  // namespace
}  // namespace drr
