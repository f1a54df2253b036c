#include "volume/volume.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "volume/sha256.h"

namespace drr {
namespace {

template <typename T>
void AppendLittleEndian(T value, std::string* out) {
  static_assert(std::is_trivially_copyable_v<T>);
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  std::reverse(bytes, bytes + sizeof(T));
#endif
  out->append(bytes, sizeof(T));
}

template <typename T>
std::vector<float> DecodeAs(const std::string& bytes) {
  std::vector<float> out(bytes.size() / sizeof(T));
  for (size_t i = 0; i < out.size(); ++i) {
    T v;
    std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<float>(v);
  }
  return out;
}

}  // namespace

int VoxelBytes(VoxelType type) {
  switch (type) {
    case VoxelType::kUInt8:
      return 1;
    case VoxelType::kInt16:
    case VoxelType::kUInt16:
      return 2;
    case VoxelType::kInt32:
    case VoxelType::kFloat32:
      return 4;
  }
  return 0;
}

std::vector<float> VoxelsAsFloat(VoxelType type, const std::string& bytes) {
  switch (type) {
    case VoxelType::kUInt8:
      return DecodeAs<uint8_t>(bytes);
    case VoxelType::kInt16:
      return DecodeAs<int16_t>(bytes);
    case VoxelType::kUInt16:
      return DecodeAs<uint16_t>(bytes);
    case VoxelType::kInt32:
      return DecodeAs<int32_t>(bytes);
    case VoxelType::kFloat32:
      break;
  }
  return DecodeAs<float>(bytes);
}

std::string CanonicalHeaderBytes(const VolumeHeader& header) {
  std::string out("DRRVOL1\0", 8);  // the NUL is part of the magic
  AppendLittleEndian(static_cast<uint32_t>(header.voxel_type), &out);
  AppendLittleEndian(static_cast<uint32_t>(header.value_kind), &out);
  AppendLittleEndian(static_cast<uint32_t>(
                         header.label_type ? *header.label_type : VoxelType{}),
                     &out);
  AppendLittleEndian(header.depth, &out);
  AppendLittleEndian(header.height, &out);
  AppendLittleEndian(header.width, &out);
  for (const auto& row : header.affine.m) {
    for (double v : row) AppendLittleEndian(v, &out);
  }
  return out;
}

std::string ContentDigest(const VolumeHeader& header, std::string_view voxels,
                          std::string_view labels) {
  Sha256 hash;
  hash.Update(CanonicalHeaderBytes(header));
  hash.Update(voxels);
  hash.Update(labels);
  return hash.HexDigest();
}

void LabelClassCounter::Add(std::string_view bytes) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t i = 0;
  if (type_ == VoxelType::kUInt8) {
    for (; i < bytes.size(); ++i) largest_ = std::max<int>(largest_, data[i]);
    return;
  }
  if (split_byte_ >= 0 && !bytes.empty()) {
    largest_ = std::max(largest_, split_byte_ | (data[0] << 8));
    split_byte_ = -1;
    i = 1;
  }
  for (; i + 1 < bytes.size(); i += 2)
    largest_ = std::max(largest_, data[i] | (data[i + 1] << 8));
  if (i < bytes.size()) split_byte_ = data[i];
}

geometry::Vec3d VolumeCenter(const VolumeHeader& header) {
  return geometry::TransformPoint(
      header.affine, {(header.width - 1) / 2.0, (header.height - 1) / 2.0,
                      (header.depth - 1) / 2.0});
}

}  // namespace drr
