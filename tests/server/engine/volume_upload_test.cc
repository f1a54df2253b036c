#include "server/engine/volume_upload.h"

#include "gtest/gtest.h"
#include "tests/status_matchers.h"

namespace drr::server {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::StatusIs;

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
  ASSERT_THAT(upload.AcceptHeader(SmallHeader()), IsOk());
  ASSERT_THAT(upload.AcceptData(kVoxels.substr(0, 10)), IsOk());
  ASSERT_THAT(upload.AcceptData(kVoxels.substr(10)), IsOk());
  absl::StatusOr<HostVolume> v =
      upload.Finish(ContentDigest(SmallHeader(), kVoxels));
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->voxels, kVoxels);
}

TEST(VolumeUploadTest, RejectsAMismatchedDigestNamingBoth) {
  Limits limits;
  VolumeUpload upload(limits);
  ASSERT_THAT(upload.AcceptHeader(SmallHeader()), IsOk());
  ASSERT_THAT(upload.AcceptData(kVoxels), IsOk());
  const absl::Status s = upload.Finish(std::string(64, '0')).status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(s.message().find(ContentDigest(SmallHeader(), kVoxels)),
            absl::string_view::npos);
}

TEST(VolumeUploadTest, RejectsTooFewAndTooManyBytes) {
  Limits limits;
  VolumeUpload short_upload(limits);
  ASSERT_THAT(short_upload.AcceptHeader(SmallHeader()), IsOk());
  ASSERT_THAT(short_upload.AcceptData(kVoxels.substr(1)), IsOk());
  EXPECT_THAT(short_upload.Finish(ContentDigest(SmallHeader(), kVoxels)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  VolumeUpload long_upload(limits);
  ASSERT_THAT(long_upload.AcceptHeader(SmallHeader()), IsOk());
  EXPECT_THAT(long_upload.AcceptData(kVoxels + "x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(VolumeUploadTest, RejectsShapesOverTheLimitsAndBadAffines) {
  Limits limits;
  limits.max_volume_voxels = 10;
  VolumeUpload upload(limits);
  EXPECT_THAT(upload.AcceptHeader(SmallHeader()),
              StatusIs(absl::StatusCode::kResourceExhausted));
  Limits defaults;
  VolumeHeader zero = SmallHeader();
  zero.height = 0;
  EXPECT_THAT(VolumeUpload(defaults).AcceptHeader(zero),
              StatusIs(absl::StatusCode::kInvalidArgument));
  VolumeHeader huge = SmallHeader();
  huge.width = defaults.max_volume_dim + 1;
  EXPECT_THAT(VolumeUpload(defaults).AcceptHeader(huge),
              StatusIs(absl::StatusCode::kResourceExhausted));
  VolumeHeader singular = SmallHeader();
  singular.affine.m[1][1] = 0.0;
  EXPECT_THAT(VolumeUpload(defaults).AcceptHeader(singular),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(VolumeUploadTest, NoLimitAdmitsMoreVoxelsThanTheKernelsCanIndex) {
  Limits limits;
  limits.max_volume_voxels = int64_t{1} << 40;
  limits.max_volume_dim = 4096;
  VolumeUpload upload(limits);
  VolumeHeader huge = SmallHeader();
  huge.depth = 1024;
  huge.height = 2048;
  huge.width = 1024;  // exactly 2^31 voxels
  EXPECT_THAT(upload.AcceptHeader(huge),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       ::testing::HasSubstr("2147483647")));
  huge.width = 1023;  // under 2^31 − 1: accepted (no bytes are allocated yet)
  EXPECT_THAT(VolumeUpload(limits).AcceptHeader(huge), IsOk());
}

TEST(VolumeUploadTest, RejectsOutOfOrderAndOversizedParts) {
  Limits limits;
  VolumeUpload upload(limits);
  EXPECT_THAT(upload.AcceptData("ab"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(upload.Finish("00"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(upload.AcceptHeader(SmallHeader()), IsOk());
  EXPECT_THAT(upload.AcceptHeader(SmallHeader()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(upload.AcceptData(std::string(kMaxUploadChunkBytes + 1, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace drr::server
