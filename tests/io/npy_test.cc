#include "io/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/status_matchers.h"
#include "tests/temp_dir.h"

namespace drr {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::ScopedTempDir;
using ::drr::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A version-1 .npy file with `header` (padded) followed by `data`.
std::string NpyBytes(const std::string& header, const std::string& data) {
  std::string padded = header;
  while ((10 + padded.size() + 1) % 64 != 0) padded.push_back(' ');
  padded.push_back('\n');
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(padded.size() & 0xff));
  bytes.push_back(static_cast<char>(padded.size() >> 8));
  return bytes + padded + data;
}

TEST(WriteNpyTest, WritesAVersion1HeaderAndRawFloats) {
  ScopedTempDir dir;
  const float image[6] = {1, 2, 3, 4, 5, -6.5f};
  const std::string path = dir.File("image.npy");
  ASSERT_THAT(WriteNpy(path, image, {2, 3}), IsOk());
  const std::string bytes = ReadAll(path);
  ASSERT_EQ(bytes.compare(0, 6, "\x93NUMPY"), 0);
  const uint16_t header_len =
      static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0);
  EXPECT_NE(bytes.find("'shape': (2, 3)"), std::string::npos);
  EXPECT_NE(bytes.find("'descr': '<f4'"), std::string::npos);
  ASSERT_EQ(bytes.size(), 10u + header_len + sizeof image);
  EXPECT_EQ(std::memcmp(bytes.data() + 10 + header_len, image, sizeof image),
            0);
}

TEST(ReadNpyTest, ReadsWhatWriteNpyWrote) {
  ScopedTempDir dir;
  const float image[6] = {1, 2, 3, 4, 5, -6.5f};
  ASSERT_THAT(WriteNpy(dir.File("a.npy"), image, {3, 2}), IsOk());
  absl::StatusOr<NpyArray> array = ReadNpy(dir.File("a.npy"));
  ASSERT_THAT(array, IsOk());
  EXPECT_THAT(array->shape, ElementsAre(3, 2));
  EXPECT_THAT(array->values, ElementsAre(1, 2, 3, 4, 5, -6.5));
}

TEST(ParseNpyTest, ReadsFloat64AndOneDimensionalShapes) {
  const double values[3] = {0.5, -1e300, 7};
  absl::StatusOr<NpyArray> array = ParseNpy(
      NpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
               std::string(reinterpret_cast<const char*>(values), 24)));
  ASSERT_THAT(array, IsOk());
  EXPECT_THAT(array->shape, ElementsAre(3));
  EXPECT_THAT(array->values, ElementsAre(0.5, -1e300, 7));
}

TEST(ParseNpyTest, RefusesWhatItCannotRead) {
  const std::string four(16, '\0');
  struct Case {
    std::string bytes;
    std::string why;
  };
  for (const Case& c : {
           Case{"not numpy at all", "magic"},
           Case{NpyBytes("{'descr': '<i4', 'fortran_order': False, "
                         "'shape': (4,), }",
                         four),
                "float32 or float64"},
           Case{NpyBytes("{'descr': '>f4', 'fortran_order': False, "
                         "'shape': (4,), }",
                         four),
                "float32 or float64"},
           Case{NpyBytes("{'descr': '<f4', 'fortran_order': True, "
                         "'shape': (4,), }",
                         four),
                "C-order"},
           Case{NpyBytes("{'descr': '<f4', 'fortran_order': False, "
                         "'shape': (5,), }",
                         four),
                "the shape needs 20"},
           Case{NpyBytes("{'descr': '<f4', 'fortran_order': False, "
                         "'shape': (-4,), }",
                         four),
                "not a size"},
           Case{NpyBytes("{'descr': '<f4', 'fortran_order': False, }", four),
                "shape"},
       }) {
    EXPECT_THAT(ParseNpy(c.bytes),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.why)))
        << c.why;
  }
  std::string header_past_end = NpyBytes("{}", "");
  header_past_end[8] = '\xff';
  EXPECT_THAT(ParseNpy(header_past_end),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseNpyTest, AShapeOverTheLimitIsRefusedBeforeAllocating) {
  EXPECT_THAT(
      ParseNpy(NpyBytes("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (100000, 100000, 100000), }",
                        "")),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("limit")));
  NpyLimits small;
  small.max_values = 3;
  EXPECT_THAT(ParseNpy(NpyBytes("{'descr': '<f4', 'fortran_order': False, "
                                "'shape': (2, 2), }",
                                std::string(16, '\0')),
                       small),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(ReadNpyTest, AMissingFileIsNotFoundAndNamed) {
  EXPECT_THAT(ReadNpy("/nonexistent/x.npy"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("x.npy")));
}

}  // namespace
}  // namespace drr
