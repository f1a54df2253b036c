// Writes rendered images to files people and numpy can read.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace drr {

// Writes a rows×cols float32 image as a NumPy .npy file (shape (rows, cols)).
absl::Status WriteNpy(const std::string& path, const float* image, int rows,
                      int cols);

// Writes a rows×cols image as an 8-bit grayscale PNG, windowed linearly from
// the image's minimum (black) to its maximum (white); row 0 is the top.
absl::Status WritePng(const std::string& path, const float* image, int rows,
                      int cols);

}  // namespace drr
