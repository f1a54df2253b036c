// PNG previews of rendered images (libpng).
#pragma once

#include <string>

#include "absl/status/status.h"

namespace drr {

// Writes a rows×cols image as an 8-bit grayscale PNG, windowed linearly from
// the image's minimum (black) to its maximum (white); row 0 is the top.
// Non-finite pixels are black.
absl::Status WritePng(const std::string& path, const float* image, int rows,
                      int cols);

}  // namespace drr
