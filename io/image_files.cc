#include "io/image_files.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace drr {
namespace {

absl::Status WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

void AppendBigEndian32(uint32_t v, std::string* out) {
  const char bytes[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                         static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(bytes, 4);
}

// Appends one PNG chunk: length, type, data, CRC over type and data.
void AppendChunk(std::string_view type, std::string_view data,
                 std::string* out) {
  AppendBigEndian32(static_cast<uint32_t>(data.size()), out);
  const size_t start = out->size();
  out->append(type);
  out->append(data);
  const uLong crc =
      crc32(0L, reinterpret_cast<const Bytef*>(out->data() + start),
            static_cast<uInt>(out->size() - start));
  AppendBigEndian32(static_cast<uint32_t>(crc), out);
}

}  // namespace

absl::Status WriteNpy(const std::string& path, const float* values,
                      const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  std::string dims = absl::StrJoin(shape, ", ");
  if (shape.size() == 1) dims += ",";
  std::string header = absl::StrCat(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (", dims, "), }");
  // Magic (6) + version (2) + length (2) + header + '\n' is padded to 64 bytes.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(values),
               sizeof(float) * static_cast<size_t>(count));
  return WriteFile(path, bytes);
}

absl::Status WritePng(const std::string& path, const float* image, int rows,
                      int cols) {
  const size_t n = static_cast<size_t>(rows) * cols;
  float lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; ++i) {
    if (std::isfinite(image[i])) {
      lo = std::min(lo, image[i]);
      hi = std::max(hi, image[i]);
    }
  }
  const float scale = hi > lo ? 255.0f / (hi - lo) : 0.0f;
  std::string raw;
  raw.reserve(n + rows);
  for (int r = 0; r < rows; ++r) {
    raw.push_back('\0');  // filter type: none
    for (int c = 0; c < cols; ++c) {
      const float v = image[static_cast<size_t>(r) * cols + c];
      const float level = std::isfinite(v) ? (v - lo) * scale : 0.0f;
      raw.push_back(
          static_cast<char>(std::clamp(std::lround(level), 0L, 255L)));
    }
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size,
                reinterpret_cast<const Bytef*>(raw.data()),
                static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION) != Z_OK) {
    return absl::InternalError("zlib failed to compress the PNG image data");
  }
  packed.resize(packed_size);
  std::string ihdr;
  AppendBigEndian32(static_cast<uint32_t>(cols), &ihdr);
  AppendBigEndian32(static_cast<uint32_t>(rows), &ihdr);
  ihdr.append("\x08\x00\x00\x00\x00", 5);  // 8-bit grayscale, no interlace
  std::string png("\x89PNG\r\n\x1a\n", 8);
  AppendChunk("IHDR", ihdr, &png);
  AppendChunk("IDAT", packed, &png);
  AppendChunk("IEND", "", &png);
  return WriteFile(path, png);
}

}  // namespace drr
