#include "io/image_files.h"

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace drr {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + std::to_string(getpid()) + name;
}

TEST(WriteNpyTest, WritesAVersion1HeaderAndRawFloats) {
  const float image[6] = {1, 2, 3, 4, 5, -6.5f};
  const std::string path = TempPath("image.npy");
  ASSERT_TRUE(WriteNpy(path, image, {2, 3}).ok());
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

TEST(WritePngTest, WritesAGrayscalePngOfTheRightSize) {
  const float image[6] = {0, 1, 2, 3, 4, 5};
  const std::string path = TempPath("image.png");
  ASSERT_TRUE(WritePng(path, image, 2, 3).ok());
  const std::string bytes = ReadAll(path);
  ASSERT_EQ(bytes.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)), 0);
  EXPECT_EQ(bytes.compare(12, 4, "IHDR"), 0);
  EXPECT_EQ(static_cast<uint8_t>(bytes[19]), 3);  // width
  EXPECT_EQ(static_cast<uint8_t>(bytes[23]), 2);  // height
  EXPECT_EQ(bytes.compare(bytes.size() - 8, 4, "IEND"), 0);
}

TEST(WritePngTest, UnwritablePathIsAnError) {
  const float image[1] = {0};
  EXPECT_FALSE(WritePng("/nonexistent/dir/x.png", image, 1, 1).ok());
}

}  // namespace
}  // namespace drr
