// Assembles one volume upload (header, data chunks, digest) and checks it
// against the limits and the digest before anything is stored.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/engine/disk_archive.h"
#include "server/engine/limits.h"
#include "volume/sha256.h"
#include "volume/volume.h"

namespace drr::server {

// Largest data chunk an upload may carry.
inline constexpr size_t kMaxUploadChunkBytes = size_t{1} << 20;

// A complete upload whose digest matched.
struct FinishedUpload {
  // Its id (the content digest), header and label classes.
  VolumeSummary summary;
  // The volume, when the upload kept it in memory; with an archive it is
  // the archive's file of `id` instead.
  std::optional<HostVolume> in_memory;
};

// The state of one upload. Abandoning it (a client that disconnects) leaves
// nothing behind.
class VolumeUpload {
 public:
  // Writes the bytes to `archive` as they arrive when it is not nullptr (it
  // must outlive the upload), so that an upload holds no more memory than a
  // chunk; keeps them in memory otherwise.
  explicit VolumeUpload(const Limits& limits,
                        const DiskArchive* archive = nullptr)
      : limits_(limits), archive_(archive) {}

  // OK when `header` can be taken under `limits`: shape within them, an
  // invertible affine within the meaningful ranges; checks nothing that
  // costs more than reading it.
  static absl::Status CheckHeader(const VolumeHeader& header,
                                  const Limits& limits);

  // Takes the header, which must come first and once, after CheckHeader. With
  // an archive, reserves the disk space the volume takes (RESOURCE_EXHAUSTED
  // when the disk cannot).
  absl::Status AcceptHeader(const VolumeHeader& header);

  // Appends voxel bytes, then label bytes (at most kMaxUploadChunkBytes per
  // call) after the header; more bytes than the header declares, or labels
  // of more classes than the limit, is an error.
  absl::Status AcceptData(absl::string_view bytes);

  // Completes the upload: all declared bytes received and `digest` equal to
  // the content digest. With an archive the volume is then committed to it,
  // durably; a mismatch removes the file written.
  absl::StatusOr<FinishedUpload> Finish(absl::string_view digest);

  // Bytes of voxel and label data received so far.
  int64_t received_bytes() const { return received_; }

 private:
  const Limits& limits_;
  const DiskArchive* const archive_;
  bool have_header_ = false;
  VolumeHeader header_;
  Sha256 hash_;
  int64_t received_ = 0;
  // Refuses float32 voxels that are not finite or beyond kMaxVoxelValue
  // among `bytes`, the next voxel bytes.
  absl::Status CheckFloatVoxels(absl::string_view bytes);

  // The first bytes of a float32 voxel whose last bytes come next.
  std::string split_;
  // Counts the label classes, when the volume has labels.
  std::optional<LabelClassCounter> classes_;
  // Where the bytes go: the archive's file, or memory.
  std::unique_ptr<ArchiveFile> file_;
  std::string in_memory_;
};

}  // namespace drr::server
