// PNG previews of rendered images (libpng).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace drr {

// The 8-bit grey levels of the `n` floats of `image`, windowed linearly from
// their finite minimum (0) to their maximum (255); non-finite values are 0.
std::vector<uint8_t> WindowToGrey(const float* image, size_t n);

// Writes a rows×cols image as an 8-bit grayscale PNG, windowed linearly from
// the image's minimum (black) to its maximum (white); row 0 is the top.
// Non-finite pixels are black.
absl::Status WritePng(const std::string& path, const float* image, int rows,
                      int cols);

}  // namespace drr
