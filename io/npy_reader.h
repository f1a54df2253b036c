// Reads little-endian float32/float64 C-order .npy files (volumes for
// render_bench, target images for drrctl). Header-only and standard library
// only, so the kernels-only build can use it.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace drr {

// An array read from a .npy file, converted to double.
struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<double> values;
};

// Reads `path`; throws std::runtime_error on anything else than a version 1
// C-order '<f4' or '<f8' array.
inline NpyArray ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string bytes = buffer.str();
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
    throw std::runtime_error(path + ": not a .npy file");
  }
  const size_t header_len =
      static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
  const std::string header = bytes.substr(10, header_len);
  const bool f4 = header.find("'<f4'") != std::string::npos;
  if ((!f4 && header.find("'<f8'") == std::string::npos) ||
      header.find("'fortran_order': False") == std::string::npos) {
    throw std::runtime_error(path +
                             ": need a C-order float32 or float64 array");
  }
  NpyArray array;
  std::istringstream dims(header.substr(header.find('(') + 1));
  int64_t count = 1, d;
  char sep;
  while (dims >> d) {
    array.shape.push_back(d);
    count *= d;
    if (!(dims >> sep) || sep == ')') break;
  }
  const char* data = bytes.data() + 10 + header_len;
  if (bytes.size() - 10 - header_len <
      static_cast<size_t>(count) * (f4 ? 4 : 8)) {
    throw std::runtime_error(path + ": truncated");
  }
  array.values.resize(count);
  for (int64_t i = 0; i < count; ++i) {
    if (f4) {
      float v;
      std::memcpy(&v, data + 4 * i, 4);
      array.values[i] = v;
    } else {
      std::memcpy(&array.values[i], data + 8 * i, 8);
    }
  }
  return array;
}

}  // namespace drr
