// The server's data directory (--data-dir): uploaded volumes and targets
// kept on disk, content-addressed, so that a restarted server serves the same
// ids without a re-upload. Knows nothing of gRPC.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "volume/volume.h"

namespace drr::server {

// Volumes and targets on disk: DIR/volumes/ID and DIR/targets/ID, each file
// exactly the bytes whose SHA-256 is its ID (a volume's canonical header,
// voxels and labels; a target's header and pixels). A file is written to a
// temporary name, flushed to disk, renamed into place and its directory
// flushed, so after a crash a file is either whole or absent. Reads check the
// digest: a corrupt file is moved to DIR/corrupt/, reported on stderr, and
// never served. Thread-safe (the file system serialises what matters).
class DiskArchive {
 public:
  // The two kinds of stored file.
  enum class Kind { kVolume, kTarget };

  // Opens (creating if needed) the archive in `dir`, removing temporary files
  // a crash left behind.
  static absl::StatusOr<std::unique_ptr<DiskArchive>> Open(
      const std::string& dir);

  // Writes `bytes` as the file of `id` of `kind`, durably, unless it exists.
  absl::Status Put(Kind kind, const std::string& id,
                   const std::string& bytes) const;

  // The verified bytes of `id` of `kind`: NOT_FOUND when absent, or, when the
  // file's digest is not `id`, NOT_FOUND saying it was corrupt and moved
  // aside (the client uploads it again).
  absl::StatusOr<std::string> Get(Kind kind, const std::string& id) const;

  // The ids of every stored file of `kind`.
  std::vector<std::string> List(Kind kind) const;

  // Removes the file of `id` of `kind`, if present.
  absl::Status Remove(Kind kind, const std::string& id) const;

  const std::string& dir() const { return dir_; }

 private:
  explicit DiskArchive(std::string dir) : dir_(std::move(dir)) {}
  std::string PathOf(Kind kind, const std::string& id) const;

  const std::string dir_;
};

// The archived bytes of `volume`: its canonical header, voxels and labels
// (their SHA-256 is its id).
std::string VolumeFileBytes(const HostVolume& volume);

// The volume of archived `bytes`, or INVALID_ARGUMENT (DATA_LOSS would be
// right for a verified file, but a verified file always parses).
absl::StatusOr<HostVolume> VolumeFromFileBytes(const std::string& bytes);

}  // namespace drr::server
