#include "io/nifti.h"

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/status_matchers.h"

namespace drr {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::StatusIs;

template <typename T>
void Put(std::string& bytes, int offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

// A single-file NIfTI-1 image of int16 voxels 0, 1, 2, ... with an sform.
std::string TinyNifti(int nx, int ny, int nz) {
  std::string bytes(352, '\0');
  Put<int32_t>(bytes, 0, 348);
  Put<int16_t>(bytes, 40, 3);
  Put<int16_t>(bytes, 42, nx);
  Put<int16_t>(bytes, 44, ny);
  Put<int16_t>(bytes, 46, nz);
  Put<int16_t>(bytes, 48, 1);
  Put<int16_t>(bytes, 70, 4);  // int16
  Put<int16_t>(bytes, 72, 16);
  for (int i = 0; i < 3; ++i) Put<float>(bytes, 80 + 4 * i, 1.0f);
  Put<float>(bytes, 108, 352.0f);
  Put<int16_t>(bytes, 254, 1);  // sform_code
  const float srow[3][4] = {
      {-0.5f, 0, 0, 10}, {0, -0.5f, 0, 20}, {0, 0, 2.0f, -30}};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c)
      Put<float>(bytes, 280 + 16 * r + 4 * c, srow[r][c]);
  std::memcpy(bytes.data() + 344, "n+1\0", 4);
  for (int16_t v = 0; v < nx * ny * nz; ++v)
    bytes.append(reinterpret_cast<char*>(&v), 2);
  return bytes;
}

TEST(ParseNiftiTest, ReadsShapeSformAndVoxels) {
  absl::StatusOr<HostVolume> v = ParseNifti(TinyNifti(4, 3, 2));
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->header.width, 4);
  EXPECT_EQ(v->header.height, 3);
  EXPECT_EQ(v->header.depth, 2);
  EXPECT_EQ(v->header.voxel_type, VoxelType::kInt16);
  EXPECT_EQ(v->header.affine.m[0][0], -0.5);
  EXPECT_EQ(v->header.affine.m[2][3], -30.0);
  ASSERT_EQ(v->voxels.size(), 24u * 2);
  int16_t last;
  std::memcpy(&last, v->voxels.data() + 46, 2);
  EXPECT_EQ(last, 23);
}

TEST(ParseNiftiTest, AppliesScaleSlopeAsFloat32) {
  std::string bytes = TinyNifti(2, 2, 2);
  Put<float>(bytes, 112, 2.0f);
  Put<float>(bytes, 116, -1024.0f);
  absl::StatusOr<HostVolume> v = ParseNifti(bytes);
  ASSERT_THAT(v, IsOk());
  ASSERT_EQ(v->header.voxel_type, VoxelType::kFloat32);
  float second;
  std::memcpy(&second, v->voxels.data() + 4, 4);
  EXPECT_EQ(second, 2.0f * 1 - 1024.0f);
}

TEST(ParseNiftiTest, RejectsMalformedFilesWithoutCrashing) {
  const std::string good = TinyNifti(4, 3, 2);
  EXPECT_FALSE(ParseNifti(good.substr(0, 100)).ok());  // short header
  EXPECT_FALSE(
      ParseNifti(good.substr(0, good.size() - 1)).ok());  // truncated data
  std::string bad_magic = good;
  bad_magic[345] = 'x';
  EXPECT_FALSE(ParseNifti(bad_magic).ok());
  std::string bad_dim = good;
  Put<int16_t>(bad_dim, 44, -3);
  EXPECT_FALSE(ParseNifti(bad_dim).ok());
  std::string bad_type = good;
  Put<int16_t>(bad_type, 70, 1536);
  EXPECT_FALSE(ParseNifti(bad_type).ok());
  std::string bad_offset = good;
  Put<float>(bad_offset, 108, 1e9f);
  EXPECT_FALSE(ParseNifti(bad_offset).ok());
  std::string singular = good;
  Put<float>(singular, 280, 0.0f);
  EXPECT_FALSE(ParseNifti(singular).ok());
  EXPECT_THAT(ParseNifti(good, NiftiLimits{10}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ReadNiftiFileTest, ReadsTheBundledChestCt) {
  const char* data = std::getenv("DRR_SHARED_DATA");
  const std::string path =
      std::string(data ? data : "") + "/lidc-idri-0001.nii.gz";
  if (!std::ifstream(path).good()) GTEST_SKIP() << "no " << path;
  absl::StatusOr<HostVolume> v = ReadNiftiFile(path);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->header.width, 512);
  EXPECT_EQ(v->header.height, 512);
  EXPECT_EQ(v->header.depth, 133);
  EXPECT_EQ(v->header.voxel_type, VoxelType::kInt16);
  EXPECT_NEAR(v->header.affine.m[0][0], -0.703125, 1e-6);
  EXPECT_NEAR(v->header.affine.m[2][2], 2.5, 1e-6);
  EXPECT_NEAR(v->header.affine.m[2][3], -340.0, 1e-4);
}

TEST(ReadNiftiFileTest, MissingFileIsNotFound) {
  EXPECT_THAT(ReadNiftiFile("/nonexistent/x.nii.gz"),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace drr
