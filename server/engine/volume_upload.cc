#include "server/engine/volume_upload.h"

#include <algorithm>
#include <cmath>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "kernels/resident_volume.h"

namespace drr::server {

absl::Status VolumeUpload::AcceptHeader(const VolumeHeader& header) {
  if (have_header_) {
    return absl::InvalidArgumentError(
        "header: an upload carries exactly one header");
  }
  const int64_t dims[3] = {header.depth, header.height, header.width};
  for (int i = 0; i < 3; ++i) {
    if (dims[i] < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header.shape[", i, "] is ", dims[i], ", must be at least 1"));
    }
    if (dims[i] > limits_.max_volume_dim) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "header.shape[", i, "] is ", dims[i], ", over the server's limit of ",
          limits_.max_volume_dim));
    }
  }
  // The kernels index voxels with 32-bit integers, whatever the limit says.
  if (header.voxels() >
      std::min<int64_t>(limits_.max_volume_voxels, kernels::kMaxVolumeVoxels)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("header.shape has ", header.voxels(),
                     " voxels, over the server's limit of ",
                     std::min<int64_t>(limits_.max_volume_voxels,
                                       kernels::kMaxVolumeVoxels)));
  }
  if (header.label_type && *header.label_type != VoxelType::kUInt8 &&
      *header.label_type != VoxelType::kUInt16) {
    return absl::InvalidArgumentError(
        "header.label_type must be UINT8 or UINT16");
  }
  for (const auto& row : header.affine.m) {
    for (double v : row) {
      if (!std::isfinite(v))
        return absl::InvalidArgumentError(
            "header.affine has a non-finite entry");
    }
  }
  if (!geometry::InvertAffine(header.affine)) {
    return absl::InvalidArgumentError(
        "header.affine is not an invertible affine transform (last row must be "
        "0 0 0 1)");
  }
  try {
    volume_.voxels.reserve(header.voxel_bytes() + header.label_bytes());
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of host memory for the upload");
  }
  volume_.header = header;
  have_header_ = true;
  return absl::OkStatus();
}

absl::Status VolumeUpload::AcceptData(absl::string_view bytes) {
  if (!have_header_) {
    return absl::InvalidArgumentError(
        "data: the header must come before any data");
  }
  if (bytes.size() > kMaxUploadChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data: a chunk holds ", bytes.size(), " bytes, more than the ",
        kMaxUploadChunkBytes, " allowed"));
  }
  const int64_t expected =
      volume_.header.voxel_bytes() + volume_.header.label_bytes();
  if (received_bytes() + static_cast<int64_t>(bytes.size()) > expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data: more voxel and label bytes than the header declares (", expected,
        ")"));
  }
  volume_.voxels.append(bytes.data(), bytes.size());
  return absl::OkStatus();
}

absl::StatusOr<HostVolume> VolumeUpload::Finish(absl::string_view digest) {
  if (!have_header_)
    return absl::InvalidArgumentError("header: the upload has no header");
  const int64_t expected =
      volume_.header.voxel_bytes() + volume_.header.label_bytes();
  if (received_bytes() != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("data: received ", received_bytes(),
                     " voxel and label bytes, the header declares ", expected));
  }
  // The stream carries the voxels, then the labels.
  volume_.labels = volume_.voxels.substr(volume_.header.voxel_bytes());
  volume_.voxels.resize(volume_.header.voxel_bytes());
  const std::string actual =
      ContentDigest(volume_.header, volume_.voxels, volume_.labels);
  if (digest != actual) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest: the client sent ", digest,
                     " but the content hashes to ", actual));
  }
  have_header_ = false;
  return std::move(volume_);
}

}  // namespace drr::server
