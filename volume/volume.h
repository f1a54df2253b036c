// The host-side description of a CT volume as uploaded: what the server's
// engine stores, what the clients and file readers produce.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "geometry/host_math.h"

namespace drr {

// Voxel storage types accepted on upload (the wire enum's values).
enum class VoxelType : uint32_t {
  kInt16 = 1,
  kUInt8 = 2,
  kUInt16 = 3,
  kInt32 = 4,
  kFloat32 = 5,
};

// Bytes per voxel of `type`.
int VoxelBytes(VoxelType type);

// What voxel values mean (the wire enum's values).
enum class ValueKind : uint32_t { kHu = 1, kAttenuation = 2 };

// Shape, storage type, meaning and voxel→world affine of a volume V[k][j][i],
// and the storage type of its optional label volume (class indices, same
// shape).
struct VolumeHeader {
  VoxelType voxel_type = VoxelType::kInt16;
  ValueKind value_kind = ValueKind::kHu;
  int64_t depth = 0;   // nz, slowest
  int64_t height = 0;  // ny
  int64_t width = 0;   // nx, fastest
  geometry::Mat4d affine = geometry::Mat4d::Identity();
  // kUInt8 or kUInt16 when the volume has labels.
  std::optional<VoxelType> label_type;

  int64_t voxels() const { return depth * height * width; }
  int64_t voxel_bytes() const { return voxels() * VoxelBytes(voxel_type); }
  int64_t label_bytes() const {
    return label_type ? voxels() * VoxelBytes(*label_type) : 0;
  }
};

// A whole volume in host memory: header, little-endian voxel bytes, and the
// label bytes (empty without labels).
struct HostVolume {
  VolumeHeader header;
  std::string voxels;
  std::string labels;
};

// What a client is told of a stored volume: its id, header and label
// classes (largest label + 1; 1 without labels).
struct VolumeSummary {
  std::string id;
  VolumeHeader header;
  int classes = 1;
};

// Counts the label classes (largest label + 1) of little-endian label bytes
// of `type` (kUInt8 or kUInt16) fed in pieces of any size.
class LabelClassCounter {
 public:
  explicit LabelClassCounter(VoxelType type) : type_(type) {}

  // Feeds the next `bytes` of the labels.
  void Add(std::string_view bytes);
  // Classes so far (0 before any label).
  int classes() const { return largest_ + 1; }

 private:
  VoxelType type_;
  int largest_ = -1;
  // The first byte of a uint16 label whose second byte comes next.
  int split_byte_ = -1;
};

// The little-endian voxels of `type` in `bytes`, as float32 (int32 values
// beyond 2²⁴ round).
std::vector<float> VoxelsAsFloat(VoxelType type, const std::string& bytes);

// The canonical header bytes that the content digest covers (see
// proto/drr/v1/volumes.proto, UploadVolumeChunk.digest).
std::string CanonicalHeaderBytes(const VolumeHeader& header);

// The volume id: hex SHA-256 of the canonical header bytes, the voxels, then
// the labels.
std::string ContentDigest(const VolumeHeader& header, std::string_view voxels,
                          std::string_view labels = {});

// World coordinates of the volume centre, affine · ((W−1)/2, (H−1)/2, (D−1)/2):
// the default isocenter, as TorchIO's get_center gives it.
geometry::Vec3d VolumeCenter(const VolumeHeader& header);

}  // namespace drr
