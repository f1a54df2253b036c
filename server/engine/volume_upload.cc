#include "server/engine/volume_upload.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "kernels/resident_volume.h"
#include "status/quoted.h"
#include "status/status_macros.h"

namespace drr::server {

absl::Status VolumeUpload::CheckHeader(const VolumeHeader& header,
                                       const Limits& limits) {
  const int64_t dims[3] = {header.depth, header.height, header.width};
  for (int i = 0; i < 3; ++i) {
    if (dims[i] < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header.shape[", i, "] is ", dims[i], ", must be at least 1"));
    }
    if (dims[i] > limits.max_volume_dim) {
      return absl::ResourceExhaustedError(
          absl::StrCat("header.shape[", i, "] is ", dims[i],
                       ", over the server's limit of ", limits.max_volume_dim));
    }
  }
  // The kernels index voxels with 32-bit integers, whatever the limit says.
  if (header.voxels() >
      std::min<int64_t>(limits.max_volume_voxels, kernels::kMaxVolumeVoxels)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("header.shape has ", header.voxels(),
                     " voxels, over the server's limit of ",
                     std::min<int64_t>(limits.max_volume_voxels,
                                       kernels::kMaxVolumeVoxels)));
  }
  if (header.label_type && *header.label_type != VoxelType::kUInt8 &&
      *header.label_type != VoxelType::kUInt16) {
    return absl::InvalidArgumentError(
        "header.label_type must be UINT8 or UINT16");
  }
  for (const auto& row : header.affine.m) {
    for (double v : row) {
      if (!(std::fabs(v) <= kMaxMillimetres)) {
        return absl::InvalidArgumentError(
            absl::StrCat("header.affine has an entry of ", v,
                         ", outside the meaningful range [-", kMaxMillimetres,
                         ", ", kMaxMillimetres, "] mm"));
      }
    }
  }
  for (int axis = 0; axis < 3; ++axis) {
    const auto& m = header.affine.m;
    const double spacing =
        std::sqrt(m[0][axis] * m[0][axis] + m[1][axis] * m[1][axis] +
                  m[2][axis] * m[2][axis]);
    if (spacing < kMinSpacingMillimetres) {
      return absl::InvalidArgumentError(
          absl::StrCat("header.affine: the voxel spacing along axis ", axis,
                       " is ", spacing, " mm, under the smallest meaningful ",
                       kMinSpacingMillimetres, " mm"));
    }
  }
  if (!geometry::InvertAffine(header.affine)) {
    return absl::InvalidArgumentError(
        "header.affine is not an invertible affine transform (last row must be "
        "0 0 0 1)");
  }
  return absl::OkStatus();
}

absl::Status VolumeUpload::AcceptHeader(const VolumeHeader& header) {
  if (have_header_) {
    return absl::InvalidArgumentError(
        "header: an upload carries exactly one header");
  }
  DRR_RETURN_IF_ERROR(CheckHeader(header, limits_));
  const int64_t bytes = header.voxel_bytes() + header.label_bytes();
  const std::string head = CanonicalHeaderBytes(header);
  if (archive_ != nullptr) {
    DRR_ASSIGN_OR_RETURN(
        file_, archive_->Create(DiskArchive::Kind::kVolume,
                                static_cast<int64_t>(head.size()) + bytes));
    DRR_RETURN_IF_ERROR(file_->Append(head));
  } else {
    try {
      in_memory_.reserve(static_cast<size_t>(bytes));
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError("out of host memory for the upload");
    }
  }
  hash_.Update(head);
  if (header.label_type) classes_.emplace(*header.label_type);
  header_ = header;
  have_header_ = true;
  return absl::OkStatus();
}

absl::Status VolumeUpload::AcceptData(absl::string_view bytes) {
  if (!have_header_) {
    return absl::InvalidArgumentError(
        "data: the header must come before any data");
  }
  if (bytes.size() > kMaxUploadChunkBytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "data: a chunk holds ", bytes.size(), " bytes, more than the ",
        kMaxUploadChunkBytes, " allowed"));
  }
  const int64_t expected = header_.voxel_bytes() + header_.label_bytes();
  if (received_ + static_cast<int64_t>(bytes.size()) > expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data: more voxel and label bytes than the header declares (", expected,
        ")"));
  }
  // The stream carries the voxels, then the labels.
  const int64_t voxels_left =
      std::max<int64_t>(0, header_.voxel_bytes() - received_);
  if (header_.voxel_type == VoxelType::kFloat32 && voxels_left > 0) {
    DRR_RETURN_IF_ERROR(CheckFloatVoxels(bytes.substr(
        0, static_cast<size_t>(std::min<int64_t>(
               voxels_left, static_cast<int64_t>(bytes.size()))))));
  }
  if (static_cast<int64_t>(bytes.size()) > voxels_left) {
    classes_->Add(std::string_view(bytes.data(), bytes.size())
                      .substr(static_cast<size_t>(voxels_left)));
    if (classes_->classes() > limits_.max_classes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the labels have at least ", classes_->classes(),
          " classes, over the server's limit of ", limits_.max_classes));
    }
  }
  if (file_ != nullptr) {
    DRR_RETURN_IF_ERROR(file_->Append(bytes));
  } else {
    in_memory_.append(bytes.data(), bytes.size());
  }
  hash_.Update(std::string_view(bytes.data(), bytes.size()));
  received_ += static_cast<int64_t>(bytes.size());
  return absl::OkStatus();
}

absl::Status VolumeUpload::CheckFloatVoxels(absl::string_view bytes) {
  // A float may be split between chunks: its first bytes wait in split_.
  size_t i = 0;
  float value;
  while (i < bytes.size()) {
    const size_t take =
        std::min(sizeof value - split_.size(), bytes.size() - i);
    split_.append(bytes.data() + i, take);
    i += take;
    if (split_.size() < sizeof value) break;
    std::memcpy(&value, split_.data(), sizeof value);
    split_.clear();
    if (!(std::fabs(value) <= kMaxVoxelValue)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data: voxel ", (received_ + static_cast<int64_t>(i)) / 4 - 1, " is ",
          value, ", outside the meaningful range [-", kMaxVoxelValue, ", ",
          kMaxVoxelValue, "]"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<FinishedUpload> VolumeUpload::Finish(absl::string_view digest) {
  if (!have_header_)
    return absl::InvalidArgumentError("header: the upload has no header");
  const int64_t expected = header_.voxel_bytes() + header_.label_bytes();
  if (received_ != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("data: received ", received_,
                     " voxel and label bytes, the header declares ", expected));
  }
  have_header_ = false;
  const std::string actual = hash_.HexDigest();
  if (digest != actual) {
    file_.reset();
    return absl::InvalidArgumentError(
        absl::StrCat("digest: the client sent ", Quoted(digest),
                     " but the content hashes to ", actual));
  }
  FinishedUpload finished;
  finished.summary = {actual, header_, classes_ ? classes_->classes() : 1};
  if (file_ != nullptr) {
    DRR_RETURN_IF_ERROR(file_->Commit(actual));
    file_.reset();
  } else {
    HostVolume volume;
    volume.header = header_;
    volume.labels = in_memory_.substr(header_.voxel_bytes());
    in_memory_.resize(header_.voxel_bytes());
    volume.voxels = std::move(in_memory_);
    finished.in_memory = std::move(volume);
  }
  return finished;
}

}  // namespace drr::server
