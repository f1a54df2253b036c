#include "volume/volume.h"

#include <cstring>

#include "gtest/gtest.h"
#include "volume/sha256.h"

namespace drr {
namespace {

TEST(Sha256Test, MatchesKnownDigests) {
  Sha256 empty;
  EXPECT_EQ(empty.HexDigest(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 abc;
  abc.Update("a");
  abc.Update("bc");
  EXPECT_EQ(abc.HexDigest(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CanonicalHeaderBytesTest, IsTheDocumentedLittleEndianLayout) {
  VolumeHeader h;
  h.voxel_type = VoxelType::kUInt16;
  h.value_kind = ValueKind::kAttenuation;
  h.depth = 3;
  h.height = 4;
  h.width = 5;
  h.affine.m[0][3] = -12.5;
  h.label_type = VoxelType::kUInt8;
  const std::string bytes = CanonicalHeaderBytes(h);
  ASSERT_EQ(bytes.size(), 8u + 4 + 4 + 4 + 3 * 8 + 16 * 8);
  EXPECT_EQ(std::memcmp(bytes.data(), "DRRVOL1\0", 8), 0);
  uint32_t type, kind, label_type;
  int64_t depth, width;
  double t;
  std::memcpy(&type, bytes.data() + 8, 4);
  std::memcpy(&kind, bytes.data() + 12, 4);
  std::memcpy(&label_type, bytes.data() + 16, 4);
  std::memcpy(&depth, bytes.data() + 20, 8);
  std::memcpy(&width, bytes.data() + 36, 8);
  std::memcpy(&t, bytes.data() + 44 + 3 * 8, 8);
  EXPECT_EQ(type, 3u);
  EXPECT_EQ(kind, 2u);
  EXPECT_EQ(label_type, 2u);
  EXPECT_EQ(depth, 3);
  EXPECT_EQ(width, 5);
  EXPECT_EQ(t, -12.5);
}

TEST(ContentDigestTest, DependsOnHeaderVoxelsAndLabels) {
  VolumeHeader h;
  h.depth = h.height = h.width = 1;
  const std::string a = ContentDigest(h, std::string("\x01\x00", 2));
  EXPECT_NE(a, ContentDigest(h, std::string("\x02\x00", 2)));
  EXPECT_NE(
      a, ContentDigest(h, std::string("\x01\x00", 2), std::string("\x01", 1)));
  h.affine.m[0][0] = 2.0;
  EXPECT_NE(a, ContentDigest(h, std::string("\x01\x00", 2)));
  Sha256 manual;
  h.affine.m[0][0] = 1.0;
  manual.Update(CanonicalHeaderBytes(h));
  manual.Update(std::string("\x01\x00", 2));
  EXPECT_EQ(a, manual.HexDigest());
}

TEST(VolumeCenterTest, IsTheAffineImageOfTheMiddleVoxel) {
  VolumeHeader h;
  h.depth = 133;
  h.height = 512;
  h.width = 512;
  h.affine = geometry::Mat4d{{{-0.703125, 0, 0, 166.0},
                              {0, -0.703125, 0, 171.7},
                              {0, 0, 2.5, -340.0},
                              {0, 0, 0, 1}}};
  const geometry::Vec3d c = VolumeCenter(h);
  EXPECT_NEAR(c[0], 166.0 - 0.703125 * 255.5, 1e-9);
  EXPECT_NEAR(c[1], 171.7 - 0.703125 * 255.5, 1e-9);
  EXPECT_NEAR(c[2], -340.0 + 2.5 * 66, 1e-9);
}

}  // namespace
}  // namespace drr
