// Assembles one volume upload (header, data chunks, digest) and checks it
// against the limits and the digest before anything is stored.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/engine/limits.h"
#include "volume/volume.h"

namespace drr::server {

// Largest data chunk an upload may carry.
inline constexpr size_t kMaxUploadChunkBytes = size_t{1} << 20;

// The state of one upload. Abandoning it (a client that disconnects) leaves
// nothing behind.
class VolumeUpload {
 public:
  explicit VolumeUpload(const Limits& limits) : limits_(limits) {}

  // Takes the header, which must come first and once: shape within the
  // limits, a finite invertible affine.
  absl::Status AcceptHeader(const VolumeHeader& header);

  // Appends voxel bytes, then label bytes (at most kMaxUploadChunkBytes per
  // call) after the header; more bytes than the header declares is an error.
  absl::Status AcceptData(absl::string_view bytes);

  // Completes the upload: all declared bytes received and `digest` equal to
  // the content digest. Returns the volume, whose id is the digest.
  absl::StatusOr<HostVolume> Finish(absl::string_view digest);

  // Bytes of voxel and label data received so far.
  int64_t received_bytes() const {
    return static_cast<int64_t>(volume_.voxels.size());
  }

 private:
  const Limits& limits_;
  bool have_header_ = false;
  HostVolume volume_;
};

}  // namespace drr::server
