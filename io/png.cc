#include "io/png.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace drr {

std::vector<uint8_t> WindowToGrey(const float* image, size_t n) {
  float lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; ++i) {
    if (std::isfinite(image[i])) {
      lo = std::min(lo, image[i]);
      hi = std::max(hi, image[i]);
    }
  }
  const float scale = hi > lo ? 255.0f / (hi - lo) : 0.0f;
  std::vector<uint8_t> grey(n);
  for (size_t i = 0; i < n; ++i) {
    const float level = std::isfinite(image[i]) ? (image[i] - lo) * scale : 0;
    grey[i] = static_cast<uint8_t>(std::clamp(std::lround(level), 0L, 255L));
  }
  return grey;
}

absl::Status WritePng(const std::string& path, const float* image, int rows,
                      int cols) {
  std::vector<uint8_t> gray =
      WindowToGrey(image, static_cast<size_t>(rows) * cols);

  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(cols);
  png.height = static_cast<png_uint_32>(rows);
  png.format = PNG_FORMAT_GRAY;
  if (!png_image_write_to_file(&png, path.c_str(), /*convert_to_8bit=*/0,
                               gray.data(), /*row_stride=*/cols,
                               /*colormap=*/nullptr)) {
    const std::string why = png.message;
    png_image_free(&png);
    return absl::UnavailableError(
        absl::StrCat("cannot write ", path, ": ", why));
  }
  return absl::OkStatus();
}

}  // namespace drr
