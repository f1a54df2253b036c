#include "io/npy.h"

#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace drr {
namespace {

constexpr absl::string_view kMagic("\x93NUMPY", 6);

// The text between `key`'s quotes-and-colon and the next `close` in the
// header dictionary, e.g. Field(header, "'shape':", ')') → " (2, 3".
absl::string_view Field(absl::string_view header, absl::string_view key,
                        char close) {
  const size_t at = header.find(key);
  if (at == absl::string_view::npos) return {};
  const size_t start = at + key.size();
  const size_t end = header.find(close, start);
  if (end == absl::string_view::npos) return {};
  return header.substr(start, end - start);
}

absl::StatusOr<std::vector<int64_t>> ParseShape(absl::string_view text,
                                                int64_t max_values) {
  text = absl::StripAsciiWhitespace(text);
  if (!absl::ConsumePrefix(&text, "(")) {
    return absl::InvalidArgumentError("the header has no 'shape' tuple");
  }
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) continue;
    int64_t d;
    if (!absl::SimpleAtoi(part, &d) || d < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shape entry \"", part.substr(0, 32), "\" is not a size"));
    }
    if (d > 0 && count > max_values / d) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the array has more than ", max_values, " values, the limit"));
    }
    count *= d;
    shape.push_back(d);
  }
  return shape;
}

absl::Status WriteFile(const std::string& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
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

absl::StatusOr<NpyArray> ParseNpy(const std::string& bytes,
                                  const NpyLimits& limits) {
  if (bytes.size() < 10 || !absl::StartsWith(bytes, kMagic)) {
    return absl::InvalidArgumentError("not a .npy file (no \\x93NUMPY magic)");
  }
  const int major = static_cast<uint8_t>(bytes[6]);
  // Version 1 has a 2-byte header length; versions 2 and 3 a 4-byte one.
  const size_t length_bytes = major == 1 ? 2 : 4;
  if (major < 1 || major > 3 || bytes.size() < 8 + length_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(".npy format version ", major, " is not 1, 2 or 3"));
  }
  size_t header_len = 0;
  for (size_t i = 0; i < length_bytes; ++i)
    header_len |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + i]))
                  << (8 * i);
  const size_t data_start = 8 + length_bytes + header_len;
  if (data_start > bytes.size()) {
    return absl::InvalidArgumentError("the .npy header runs past the file");
  }
  const absl::string_view header(bytes.data() + 8 + length_bytes, header_len);
  const absl::string_view descr = Field(header, "'descr':", ',');
  const bool f4 = descr.find("'<f4'") != absl::string_view::npos;
  const bool f8 = descr.find("'<f8'") != absl::string_view::npos;
  if (!f4 && !f8) {
    return absl::InvalidArgumentError(
        absl::StrCat("need a float32 or float64 array ('<f4' or '<f8'), not ",
                     absl::StripAsciiWhitespace(descr.substr(0, 32))));
  }
  if (absl::StripAsciiWhitespace(Field(header, "'fortran_order':", ',')) !=
      "False") {
    return absl::InvalidArgumentError("need a C-order array");
  }
  NpyArray array;
  auto shape = ParseShape(Field(header, "'shape':", ')'), limits.max_values);
  if (!shape.ok()) return shape.status();
  array.shape = *std::move(shape);
  size_t count = 1;
  for (int64_t d : array.shape) count *= static_cast<size_t>(d);
  const size_t width = f4 ? 4 : 8;
  if (bytes.size() - data_start != count * width) {
    return absl::InvalidArgumentError(
        absl::StrCat("the .npy data holds ", bytes.size() - data_start,
                     " bytes, the shape needs ", count * width));
  }
  array.values.resize(count);
  const char* data = bytes.data() + data_start;
  for (size_t i = 0; i < count; ++i) {
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

absl::StatusOr<NpyArray> ReadNpy(const std::string& path,
                                 const NpyLimits& limits) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<NpyArray> array = ParseNpy(buffer.str(), limits);
  if (!array.ok()) {
    return absl::Status(array.status().code(),
                        absl::StrCat(path, ": ", array.status().message()));
  }
  return array;
}

}  // namespace drr
