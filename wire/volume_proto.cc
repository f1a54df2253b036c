#include "wire/volume_proto.h"

#include "absl/strings/str_cat.h"

namespace drr {

absl::StatusOr<VolumeHeader> VolumeHeaderFromProto(
    const v1::VolumeHeader& header) {
  VolumeHeader out;
  if (header.shape_size() != 3)
    return absl::InvalidArgumentError(
        absl::StrCat("header.shape needs 3 values, got ", header.shape_size()));
  out.depth = header.shape(0);
  out.height = header.shape(1);
  out.width = header.shape(2);
  switch (header.voxel_type()) {
    case v1::VOXEL_TYPE_INT16:
      out.voxel_type = VoxelType::kInt16;
      break;
    case v1::VOXEL_TYPE_UINT8:
      out.voxel_type = VoxelType::kUInt8;
      break;
    case v1::VOXEL_TYPE_UINT16:
      out.voxel_type = VoxelType::kUInt16;
      break;
    case v1::VOXEL_TYPE_INT32:
      out.voxel_type = VoxelType::kInt32;
      break;
    case v1::VOXEL_TYPE_FLOAT32:
      out.voxel_type = VoxelType::kFloat32;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "header.voxel_type must be set (got ", header.voxel_type(), ")"));
  }
  switch (header.value_kind()) {
    case v1::VALUE_KIND_UNSPECIFIED:
    case v1::VALUE_KIND_HU:
      out.value_kind = ValueKind::kHu;
      break;
    case v1::VALUE_KIND_ATTENUATION:
      out.value_kind = ValueKind::kAttenuation;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "header.value_kind has unknown value ", header.value_kind()));
  }
  if (header.affine_size() != 16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "header.affine needs 16 values, got ", header.affine_size()));
  }
  for (int i = 0; i < 16; ++i) out.affine.m[i / 4][i % 4] = header.affine(i);
  switch (header.label_type()) {
    case v1::VOXEL_TYPE_UNSPECIFIED:
      break;
    case v1::VOXEL_TYPE_UINT8:
      out.label_type = VoxelType::kUInt8;
      break;
    case v1::VOXEL_TYPE_UINT16:
      out.label_type = VoxelType::kUInt16;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("header.label_type must be UINT8 or UINT16 (got ",
                       header.label_type(), ")"));
  }
  return out;
}

void VolumeHeaderToProto(const VolumeHeader& header, v1::VolumeHeader* out) {
  out->clear_shape();
  out->add_shape(header.depth);
  out->add_shape(header.height);
  out->add_shape(header.width);
  out->set_voxel_type(static_cast<v1::VoxelType>(header.voxel_type));
  out->set_value_kind(static_cast<v1::ValueKind>(header.value_kind));
  out->clear_affine();
  for (const auto& row : header.affine.m) {
    for (double v : row) out->add_affine(v);
  }
  out->set_label_type(header.label_type
                          ? static_cast<v1::VoxelType>(*header.label_type)
                          : v1::VOXEL_TYPE_UNSPECIFIED);
}

}  // namespace drr
