#include "io/png.h"

#include <png.h>

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/status_matchers.h"
#include "tests/temp_dir.h"

namespace drr {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::ScopedTempDir;

// The 8-bit gray pixels of the PNG at `path` (decoded by libpng), and its
// size.
std::vector<png_byte> ReadGray(const std::string& path, int* rows, int* cols) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  EXPECT_TRUE(png_image_begin_read_from_file(&image, path.c_str()))
      << image.message;
  image.format = PNG_FORMAT_GRAY;
  std::vector<png_byte> pixels(PNG_IMAGE_SIZE(image));
  EXPECT_TRUE(png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr))
      << image.message;
  *rows = static_cast<int>(image.height);
  *cols = static_cast<int>(image.width);
  return pixels;
}

TEST(WritePngTest, WindowsTheImageFromItsMinimumToItsMaximum) {
  ScopedTempDir dir;
  const float image[6] = {0, 1, 2, 3, 4, 5};
  ASSERT_THAT(WritePng(dir.File("image.png"), image, 2, 3), IsOk());
  int rows = 0, cols = 0;
  const std::vector<png_byte> gray =
      ReadGray(dir.File("image.png"), &rows, &cols);
  EXPECT_EQ(rows, 2);
  EXPECT_EQ(cols, 3);
  EXPECT_EQ(gray, (std::vector<png_byte>{0, 51, 102, 153, 204, 255}));
}

TEST(WritePngTest, NonFinitePixelsAreBlackAndAFlatImageIsBlack) {
  ScopedTempDir dir;
  const float image[4] = {2, NAN, INFINITY, 4};
  ASSERT_THAT(WritePng(dir.File("nan.png"), image, 2, 2), IsOk());
  int rows = 0, cols = 0;
  EXPECT_EQ(ReadGray(dir.File("nan.png"), &rows, &cols),
            (std::vector<png_byte>{0, 0, 0, 255}));
  const float flat[2] = {7, 7};
  ASSERT_THAT(WritePng(dir.File("flat.png"), flat, 1, 2), IsOk());
  EXPECT_EQ(ReadGray(dir.File("flat.png"), &rows, &cols),
            (std::vector<png_byte>{0, 0}));
}

TEST(WritePngTest, UnwritablePathIsAnError) {
  const float image[1] = {0};
  EXPECT_FALSE(WritePng("/nonexistent/dir/x.png", image, 1, 1).ok());
}

}  // namespace
}  // namespace drr
