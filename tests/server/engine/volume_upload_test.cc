#include "server/engine/volume_upload.h"

#include <cstring>
#include <filesystem>

#include "gtest/gtest.h"
#include "tests/status_matchers.h"
#include "tests/temp_dir.h"

namespace drr::server {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::ScopedTempDir;
using ::drr::testing::StatusIs;

// Files (finished or in progress) in `dir`.
int FilesIn(const std::string& dir) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    n += entry.is_regular_file();
  }
  return n;
}

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
  absl::StatusOr<FinishedUpload> v =
      upload.Finish(ContentDigest(SmallHeader(), kVoxels));
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->summary.id, ContentDigest(SmallHeader(), kVoxels));
  EXPECT_EQ(v->summary.classes, 1);
  ASSERT_TRUE(v->in_memory.has_value());
  EXPECT_EQ(v->in_memory->voxels, kVoxels);
  EXPECT_TRUE(v->in_memory->labels.empty());
}

// A header with uint16 labels.
VolumeHeader LabelledHeader() {
  VolumeHeader h = SmallHeader();
  h.label_type = VoxelType::kUInt16;
  return h;
}

// Its labels: all 0 but the third, `largest`.
std::string Labels16(int largest) {
  std::string labels(2 * 3 * 4 * 2, '\0');
  labels[4] = char(largest & 0xff);  // the 3rd label, split below
  labels[5] = char(largest >> 8);
  return labels;
}

TEST(VolumeUploadTest, CountsLabelClassesAcrossChunksAndRefusesTooMany) {
  Limits limits;
  limits.max_classes = 300;
  // Chunks split the voxels from the labels mid-chunk and a uint16 label
  // between two chunks.
  const std::string bytes = kVoxels + Labels16(299);
  const std::string id =
      ContentDigest(LabelledHeader(), kVoxels, Labels16(299));
  VolumeUpload upload(limits);
  ASSERT_THAT(upload.AcceptHeader(LabelledHeader()), IsOk());
  const size_t split = kVoxels.size() + 5;  // between the bytes of label 3
  ASSERT_THAT(upload.AcceptData(bytes.substr(0, 40)), IsOk());
  ASSERT_THAT(upload.AcceptData(bytes.substr(40, split - 40)), IsOk());
  ASSERT_THAT(upload.AcceptData(bytes.substr(split)), IsOk());
  absl::StatusOr<FinishedUpload> v = upload.Finish(id);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->summary.classes, 300);
  EXPECT_EQ(v->in_memory->labels, Labels16(299));

  VolumeUpload over(limits);
  ASSERT_THAT(over.AcceptHeader(LabelledHeader()), IsOk());
  ASSERT_THAT(over.AcceptData(kVoxels), IsOk());
  EXPECT_THAT(over.AcceptData(Labels16(300)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       ::testing::HasSubstr("301 classes")));
}

TEST(VolumeUploadTest, WithAnArchiveTheBytesGoToDiskAsTheyArrive) {
  ScopedTempDir dir;
  absl::StatusOr<std::unique_ptr<DiskArchive>> archive =
      DiskArchive::Open(dir.path());
  ASSERT_THAT(archive, IsOk());
  Limits limits;
  const std::string id = ContentDigest(SmallHeader(), kVoxels);
  {
    VolumeUpload abandoned(limits, archive->get());
    ASSERT_THAT(abandoned.AcceptHeader(SmallHeader()), IsOk());
    ASSERT_THAT(abandoned.AcceptData(kVoxels.substr(0, 10)), IsOk());
    EXPECT_EQ(FilesIn(dir.File("volumes")), 1);  // the file in progress
  }
  EXPECT_EQ(FilesIn(dir.File("volumes")), 0);  // a dropped upload leaves none
  VolumeUpload upload(limits, archive->get());
  ASSERT_THAT(upload.AcceptHeader(SmallHeader()), IsOk());
  ASSERT_THAT(upload.AcceptData(kVoxels), IsOk());
  absl::StatusOr<FinishedUpload> v = upload.Finish(id);
  ASSERT_THAT(v, IsOk());
  EXPECT_FALSE(v->in_memory.has_value());
  EXPECT_EQ(FilesIn(dir.File("volumes")), 1);
  absl::StatusOr<HostVolume> stored = (*archive)->GetVolume(id);
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->voxels, kVoxels);

  // A mismatched digest leaves nothing either.
  VolumeUpload wrong(limits, archive->get());
  ASSERT_THAT(wrong.AcceptHeader(SmallHeader()), IsOk());
  ASSERT_THAT(wrong.AcceptData(std::string(kVoxels.size(), 'x')), IsOk());
  EXPECT_THAT(wrong.Finish(id), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(FilesIn(dir.File("volumes")), 1);
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

TEST(VolumeUploadTest, RefusesAffinesAndVoxelsBeyondTheirMeaningfulRange) {
  Limits limits;
  VolumeHeader far = SmallHeader();
  far.affine.m[2][3] = 1e30;
  EXPECT_THAT(VolumeUpload(limits).AcceptHeader(far),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("header.affine")));
  VolumeHeader flat = SmallHeader();
  flat.affine.m[0][0] = 1e-9;
  EXPECT_THAT(VolumeUpload(limits).AcceptHeader(flat),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("spacing along axis 0")));

  VolumeHeader floats = SmallHeader();
  floats.voxel_type = VoxelType::kFloat32;
  std::string voxels(floats.voxel_bytes(), '\0');
  const float fine = 1e6f, absurd = 1e30f;
  std::memcpy(voxels.data() + 4, &fine, 4);
  VolumeUpload good(limits);
  ASSERT_THAT(good.AcceptHeader(floats), IsOk());
  ASSERT_THAT(good.AcceptData(voxels), IsOk());
  // A value split between two chunks is checked whole.
  std::memcpy(voxels.data() + 8, &absurd, 4);
  VolumeUpload bad(limits);
  ASSERT_THAT(bad.AcceptHeader(floats), IsOk());
  ASSERT_THAT(bad.AcceptData(voxels.substr(0, 10)), IsOk());
  EXPECT_THAT(bad.AcceptData(voxels.substr(10)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("voxel 2 is 1e+30")));
}

TEST(VolumeUploadTest, QuotesAnAbsurdDigestOnlyInPart) {
  Limits limits;
  VolumeUpload upload(limits);
  ASSERT_THAT(upload.AcceptHeader(SmallHeader()), IsOk());
  ASSERT_THAT(upload.AcceptData(kVoxels), IsOk());
  const absl::Status s = upload.Finish(std::string(10000, 'f')).status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          ::testing::HasSubstr("(9872 more bytes)")));
  EXPECT_LT(s.message().size(), 400u);
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
              StatusIs(absl::StatusCode::kResourceExhausted));
}

}  // namespace
}  // namespace drr::server
