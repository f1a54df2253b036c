#include "server/engine/volume_upload.h"

#include "gtest/gtest.h"

namespace drr::server {
namespace {

VolumeHeader SmallHeader() {
  VolumeHeader h;
  h.voxel_type = VoxelType::kInt16;
  h.depth = 2;
  h.height = 3;
  h.width = 4;
  return h;
}

const std::string kVoxels(2 * 3 * 4 * 2, '\x07');

TEST(VolumeUploadTest, AcceptsAWholeUploadWithItsDigest) {
  Limits limits;
  VolumeUpload upload(limits);
  ASSERT_TRUE(upload.AcceptHeader(SmallHeader()).ok());
  ASSERT_TRUE(upload.AcceptData(kVoxels.substr(0, 10)).ok());
  ASSERT_TRUE(upload.AcceptData(kVoxels.substr(10)).ok());
  absl::StatusOr<HostVolume> v =
      upload.Finish(ContentDigest(SmallHeader(), kVoxels));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->voxels, kVoxels);
}

TEST(VolumeUploadTest, RejectsAMismatchedDigestNamingBoth) {
  Limits limits;
  VolumeUpload upload(limits);
  ASSERT_TRUE(upload.AcceptHeader(SmallHeader()).ok());
  ASSERT_TRUE(upload.AcceptData(kVoxels).ok());
  const absl::Status s = upload.Finish(std::string(64, '0')).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(ContentDigest(SmallHeader(), kVoxels)),
            absl::string_view::npos);
}

TEST(VolumeUploadTest, RejectsTooFewAndTooManyBytes) {
  Limits limits;
  VolumeUpload short_upload(limits);
  ASSERT_TRUE(short_upload.AcceptHeader(SmallHeader()).ok());
  ASSERT_TRUE(short_upload.AcceptData(kVoxels.substr(1)).ok());
  EXPECT_EQ(short_upload.Finish(ContentDigest(SmallHeader(), kVoxels))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  VolumeUpload long_upload(limits);
  ASSERT_TRUE(long_upload.AcceptHeader(SmallHeader()).ok());
  EXPECT_EQ(long_upload.AcceptData(kVoxels + "x").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(VolumeUploadTest, RejectsShapesOverTheLimitsAndBadAffines) {
  Limits limits;
  limits.max_volume_voxels = 10;
  VolumeUpload upload(limits);
  EXPECT_EQ(upload.AcceptHeader(SmallHeader()).code(),
            absl::StatusCode::kResourceExhausted);
  Limits defaults;
  VolumeHeader zero = SmallHeader();
  zero.height = 0;
  EXPECT_EQ(VolumeUpload(defaults).AcceptHeader(zero).code(),
            absl::StatusCode::kInvalidArgument);
  VolumeHeader huge = SmallHeader();
  huge.width = defaults.max_volume_dim + 1;
  EXPECT_EQ(VolumeUpload(defaults).AcceptHeader(huge).code(),
            absl::StatusCode::kResourceExhausted);
  VolumeHeader singular = SmallHeader();
  singular.affine.m[1][1] = 0.0;
  EXPECT_EQ(VolumeUpload(defaults).AcceptHeader(singular).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(VolumeUploadTest, RejectsOutOfOrderAndOversizedParts) {
  Limits limits;
  VolumeUpload upload(limits);
  EXPECT_EQ(upload.AcceptData("ab").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(upload.Finish("00").status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(upload.AcceptHeader(SmallHeader()).ok());
  EXPECT_EQ(upload.AcceptHeader(SmallHeader()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      upload.AcceptData(std::string(kMaxUploadChunkBytes + 1, 'x')).code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace drr::server
