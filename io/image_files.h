// Writes rendered images to files people and numpy can read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace drr {

// Writes float32 `values` (C order) as a NumPy .npy array of `shape`.
absl::Status WriteNpy(const std::string& path, const float* values,
                      const std::vector<int64_t>& shape);

// Writes a rows×cols image as an 8-bit grayscale PNG, windowed linearly from
// the image's minimum (black) to its maximum (white); row 0 is the top.
absl::Status WritePng(const std::string& path, const float* image, int rows,
                      int cols);

}  // namespace drr
