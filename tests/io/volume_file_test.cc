// Volumes through ITK: the DICOM slices of the chest CT against the matching
// rows of its NIfTI, the NIfTI's geometry, NRRD, MetaImage and NIfTI files
// written by ITK itself read back, and every refusal.
#include "io/volume_file.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "itkImage.h"
#include "itkImageFileWriter.h"
#include "itkMetaImageIO.h"
#include "itkNiftiImageIO.h"
#include "itkNrrdImageIO.h"
#include "tests/status_matchers.h"
#include "tests/temp_dir.h"

namespace drr {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::ScopedTempDir;
using ::drr::testing::StatusIs;
using ::testing::HasSubstr;

std::string SharedData(const std::string& name) {
  const char* data = std::getenv("DRR_SHARED_DATA");
  return std::string(data ? data : "") + "/" + name;
}

template <typename T>
std::vector<T> Values(const HostVolume& volume) {
  std::vector<T> values(volume.voxels.size() / sizeof(T));
  std::memcpy(values.data(), volume.voxels.data(), volume.voxels.size());
  return values;
}

TEST(VolumeFileTest, ReadsTheChestCtNiftiWithItsRasAffine) {
  const std::string path = SharedData("lidc-idri-0001.nii.gz");
  if (!std::ifstream(path).good()) GTEST_SKIP() << "no " << path;
  absl::StatusOr<HostVolume> v = ReadVolumeFile(path);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->header.width, 512);
  EXPECT_EQ(v->header.height, 512);
  EXPECT_EQ(v->header.depth, 133);
  EXPECT_EQ(v->header.voxel_type, VoxelType::kInt16);
  EXPECT_EQ(v->header.value_kind, ValueKind::kHu);
  // data/README.md: RAS diag(−0.703125, −0.703125, 2.5), offset (166.0,
  // 171.7, −340.0).
  const double expected[3][4] = {
      {-0.703125, 0, 0, 166.0}, {0, -0.703125, 0, 171.7}, {0, 0, 2.5, -340.0}};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 4; ++c) {
      EXPECT_NEAR(v->header.affine.m[r][c], expected[r][c], 1e-4)
          << r << "," << c;
    }
  }
  const std::vector<int16_t> hu = Values<int16_t>(*v);
  const auto [lo, hi] = std::minmax_element(hu.begin(), hu.end());
  EXPECT_EQ(*lo, -2048);
  EXPECT_EQ(*hi, 3071);
}

// The 8 slices 1-040 … 1-047 (z = −107.5 … −125.0) are rows k = 86 … 93 of
// the NIfTI made from the whole series.
TEST(VolumeFileTest, DicomSeriesGivesTheVoxelsAndAffineOfTheNiftiRows) {
  const std::string nifti_path = SharedData("lidc-idri-0001.nii.gz");
  const std::string series = SharedData("lidc-idri-0001-dicom");
  if (!std::ifstream(nifti_path).good() ||
      !std::ifstream(series + "/1-040.dcm").good()) {
    GTEST_SKIP() << "no " << nifti_path << " or " << series;
  }
  absl::StatusOr<HostVolume> nifti = ReadVolumeFile(nifti_path);
  absl::StatusOr<HostVolume> dicom = ReadVolumeFile(series);
  ASSERT_THAT(nifti, IsOk());
  ASSERT_THAT(dicom, IsOk());
  // One of its files stands for the series.
  absl::StatusOr<HostVolume> from_slice = ReadVolumeFile(series + "/1-043.dcm");
  ASSERT_THAT(from_slice, IsOk());
  EXPECT_EQ(from_slice->voxels, dicom->voxels);
  ASSERT_EQ(dicom->header.width, 512);
  ASSERT_EQ(dicom->header.height, 512);
  ASSERT_EQ(dicom->header.depth, 8);
  // HU after the intercept −1024, as int16 (GDCM's int32, narrowed).
  EXPECT_EQ(dicom->header.voxel_type, VoxelType::kInt16);
  const int first = 86;
  const size_t plane = size_t{512} * 512;
  const std::vector<int16_t> rows = Values<int16_t>(*nifti);
  const std::vector<int16_t> slices = Values<int16_t>(*dicom);
  EXPECT_TRUE(
      std::equal(slices.begin(), slices.end(), rows.begin() + first * plane));
  // The same axes; the origin is the NIfTI's voxel (0, 0, 86).
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      EXPECT_NEAR(dicom->header.affine.m[r][c], nifti->header.affine.m[r][c],
                  1e-6);
    }
    EXPECT_NEAR(
        dicom->header.affine.m[r][3],
        nifti->header.affine.m[r][3] + first * nifti->header.affine.m[r][2],
        1e-4);
  }
}

// An image ITK writes: 5 × 4 × 3 voxels of `Pixel`, values i + 10j + 100k
// (offset by `base`), spacing (0.5, 0.7, 1.2), origin (10, −20, 30) and a
// rotated, non-diagonal direction.
template <typename Pixel>
typename itk::Image<Pixel, 3>::Pointer Written(const std::string& path,
                                               itk::ImageIOBase* io,
                                               int base = 0) {
  using Image = itk::Image<Pixel, 3>;
  auto image = Image::New();
  typename Image::SizeType size;
  size[0] = 5;
  size[1] = 4;
  size[2] = 3;
  image->SetRegions(typename Image::RegionType(size));
  image->Allocate();
  const double spacing[3] = {0.5, 0.7, 1.2};
  const double origin[3] = {10, -20, 30};
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  typename Image::DirectionType direction;
  const double c = std::cos(0.3), s = std::sin(0.3);
  const double rows[3][3] = {{c, -s, 0}, {s, c, 0}, {0, 0, 1}};
  for (int r = 0; r < 3; ++r) {
    for (int k = 0; k < 3; ++k) direction[r][k] = rows[r][k];
  }
  image->SetDirection(direction);
  Pixel* voxels = image->GetBufferPointer();
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 5; ++i)
        voxels[(k * 4 + j) * 5 + i] =
            static_cast<Pixel>(base + i + 10 * j + 100 * k);
  auto writer = itk::ImageFileWriter<Image>::New();
  writer->SetImageIO(io);
  writer->SetFileName(path);
  writer->SetInput(image);
  writer->Update();
  return image;
}

// `read`'s affine maps voxel indices where ITK's geometry of `image` does,
// in RAS.
template <typename Image>
void ExpectSameGeometry(const HostVolume& read, const Image& image) {
  for (const auto& index :
       {std::array<int, 3>{0, 0, 0}, std::array<int, 3>{4, 3, 2},
        std::array<int, 3>{1, 2, 1}}) {
    typename Image::IndexType at;
    for (int d = 0; d < 3; ++d) at[d] = index[d];
    typename Image::PointType lps;
    image.TransformIndexToPhysicalPoint(at, lps);
    for (int r = 0; r < 3; ++r) {
      double ras = read.header.affine.m[r][3];
      for (int c = 0; c < 3; ++c) ras += read.header.affine.m[r][c] * index[c];
      EXPECT_NEAR(ras, r < 2 ? -lps[r] : lps[r], 1e-4) << r;
    }
  }
}

TEST(VolumeFileTest, NrrdMetaImageAndNiftiWrittenByItkReadBack) {
  ScopedTempDir dir;
  struct Format {
    std::string name;
    itk::ImageIOBase::Pointer io;
  };
  const std::vector<Format> formats{
      {"v.nrrd", itk::NrrdImageIO::New().GetPointer()},
      {"v.mha", itk::MetaImageIO::New().GetPointer()},
      {"v.nii.gz", itk::NiftiImageIO::New().GetPointer()}};
  for (const Format& format : formats) {
    const std::string path = dir.File(format.name);
    auto image = Written<int16_t>(path, format.io, -300);
    absl::StatusOr<HostVolume> read = ReadVolumeFile(path);
    ASSERT_THAT(read, IsOk()) << format.name;
    EXPECT_EQ(read->header.width, 5);
    EXPECT_EQ(read->header.height, 4);
    EXPECT_EQ(read->header.depth, 3);
    EXPECT_EQ(read->header.voxel_type, VoxelType::kInt16);
    const std::vector<int16_t> values = Values<int16_t>(*read);
    EXPECT_TRUE(
        std::equal(values.begin(), values.end(), image->GetBufferPointer()))
        << format.name;
    ExpectSameGeometry(*read, *image);
  }
}

TEST(VolumeFileTest, KeepsNiftiIntegersAsStoredAndNarrowsTheOthers) {
  ScopedTempDir dir;
  // uint8: NIfTI keeps it (as nibabel); NRRD's fits int16.
  Written<uint8_t>(dir.File("u8.nii"), itk::NiftiImageIO::New());
  Written<uint8_t>(dir.File("u8.nrrd"), itk::NrrdImageIO::New());
  EXPECT_EQ(ReadVolumeFile(dir.File("u8.nii"))->header.voxel_type,
            VoxelType::kUInt8);
  EXPECT_EQ(ReadVolumeFile(dir.File("u8.nrrd"))->header.voxel_type,
            VoxelType::kInt16);
  // int32 beyond int16 stays int32; floats are float32.
  Written<int32_t>(dir.File("wide.mha"), itk::MetaImageIO::New(), 40000);
  absl::StatusOr<HostVolume> wide = ReadVolumeFile(dir.File("wide.mha"));
  ASSERT_THAT(wide, IsOk());
  EXPECT_EQ(wide->header.voxel_type, VoxelType::kInt32);
  EXPECT_EQ(Values<int32_t>(*wide)[7], 40000 + 2 + 10);
  Written<double>(dir.File("f.nrrd"), itk::NrrdImageIO::New());
  absl::StatusOr<HostVolume> real = ReadVolumeFile(dir.File("f.nrrd"));
  ASSERT_THAT(real, IsOk());
  EXPECT_EQ(real->header.voxel_type, VoxelType::kFloat32);
  EXPECT_EQ(Values<float>(*real)[59], 4 + 30 + 200);
}

TEST(VolumeFileTest, RefusesWhatIsNotOneVolume) {
  ScopedTempDir dir;
  EXPECT_THAT(ReadVolumeFile(dir.File("missing.nii.gz")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
  std::ofstream(dir.File("notes.txt")) << "not an image\n";
  EXPECT_THAT(ReadVolumeFile(dir.File("notes.txt")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a volume ITK reads")));
  EXPECT_THAT(ReadVolumeFile(dir.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("holds 0 DICOM series")));
  using Plane = itk::Image<float, 2>;
  auto plane = Plane::New();
  Plane::SizeType size;
  size[0] = size[1] = 3;
  plane->SetRegions(Plane::RegionType(size));
  plane->Allocate(true);
  auto writer = itk::ImageFileWriter<Plane>::New();
  writer->SetImageIO(itk::MetaImageIO::New());
  writer->SetFileName(dir.File("plane.mha"));
  writer->SetInput(plane);
  writer->Update();
  EXPECT_THAT(ReadVolumeFile(dir.File("plane.mha")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a 3-D scalar volume")));
  Written<int16_t>(dir.File("v.nrrd"), itk::NrrdImageIO::New());
  EXPECT_THAT(
      ReadVolumeFile(dir.File("v.nrrd"), VolumeFileLimits{59}),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("60 voxels")));
  // Truncated voxels.
  std::string bytes;
  {
    std::ifstream in(dir.File("v.nrrd"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(dir.File("cut.nrrd"), std::ios::binary)
      << bytes.substr(0, bytes.size() - 40);
  EXPECT_THAT(ReadVolumeFile(dir.File("cut.nrrd")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace drr
