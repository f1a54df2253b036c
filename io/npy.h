// NumPy .npy files: float32 images out (what drrctl renders), float32 or
// float64 arrays in (target images, upstream gradients).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace drr {

// An array read from a .npy file, converted to double.
struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<double> values;
};

// Limits on what a .npy file may declare, checked before any allocation.
struct NpyLimits {
  int64_t max_values = int64_t{1} << 28;
};

// Writes float32 `values` (C order) as a NumPy .npy array of `shape`.
absl::Status WriteNpy(const std::string& path, const float* values,
                      const std::vector<int64_t>& shape);

// Parses the bytes of a .npy file (format version 1, 2 or 3) holding a
// C-order little-endian float32 ('<f4') or float64 ('<f8') array. Anything
// else, a malformed header or a size that does not match the shape gives
// INVALID_ARGUMENT; more values than `limits` allow give RESOURCE_EXHAUSTED.
absl::StatusOr<NpyArray> ParseNpy(const std::string& bytes,
                                  const NpyLimits& limits = {});

// Reads and parses the .npy file at `path` (NOT_FOUND when it cannot be
// opened); errors name the path.
absl::StatusOr<NpyArray> ReadNpy(const std::string& path,
                                 const NpyLimits& limits = {});

}  // namespace drr
