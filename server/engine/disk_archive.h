// The server's data directory (--data-dir): uploaded volumes and targets
// kept on disk, content-addressed, so that a restarted server serves the same
// ids without a re-upload. Knows nothing of gRPC.
#pragma once

#include <atomic>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "volume/volume.h"

namespace drr::server {

class ArchiveFile;

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

  // Starts a file of `kind` that will hold `bytes` bytes, reserving that much
  // of the disk's free space for it until it is committed or dropped:
  // RESOURCE_EXHAUSTED, naming both, when the disk has not that much free
  // beyond what the files in progress reserved.
  absl::StatusOr<std::unique_ptr<ArchiveFile>> Create(Kind kind,
                                                      int64_t bytes) const;

  // Writes `bytes` as the file of `id` of `kind`, durably, unless it exists.
  absl::Status Put(Kind kind, const std::string& id,
                   const std::string& bytes) const;

  // Writes `volume` as the volume file of `id`, durably, unless it exists.
  absl::Status PutVolume(const std::string& id, const HostVolume& volume) const;

  // The verified bytes of `id` of `kind`: NOT_FOUND when absent, or, when the
  // file's digest is not `id`, NOT_FOUND saying it was corrupt and moved
  // aside (the client uploads it again).
  absl::StatusOr<std::string> Get(Kind kind, const std::string& id) const;

  // The verified volume of `id`, read straight into its voxels and labels
  // (no second copy of the file), or NOT_FOUND as Get says. Once the header
  // is read and before anything is allocated for the rest, `before_reading`
  // (if any) is called with it; its error ends the read.
  absl::StatusOr<HostVolume> GetVolume(
      const std::string& id,
      const std::function<absl::Status(const VolumeHeader&)>& before_reading =
          nullptr) const;

  // The summary of the volume file of `id`: its header and, read from its
  // labels, its classes, without reading its voxels. The digest is checked
  // only when the volume is read (GetVolume); a file of the wrong size is
  // corrupt (set aside, NOT_FOUND).
  absl::StatusOr<VolumeSummary> DescribeVolume(const std::string& id) const;

  // The ids of every stored file of `kind`.
  std::vector<std::string> List(Kind kind) const;

  // Removes the file of `id` of `kind`, if present.
  absl::Status Remove(Kind kind, const std::string& id) const;

  // Who owns a stored file, and its size as counted against their quotas.
  struct OwnerRecord {
    int64_t bytes = 0;
    std::set<std::string> tenants;
  };

  // The owners recorded for each id of `kind` (by SetOwners), by id.
  std::map<std::string, OwnerRecord> Owners(Kind kind) const;

  // Records `record` for `id` of `kind`, durably, in DIR/owners/; no tenants
  // removes the record.
  absl::Status SetOwners(Kind kind, const std::string& id,
                         const OwnerRecord& record) const;

  const std::string& dir() const { return dir_; }

 private:
  friend class ArchiveFile;
  explicit DiskArchive(std::string dir) : dir_(std::move(dir)) {}
  std::string PathOf(Kind kind, const std::string& id) const;
  // Moves the file of `id`, which does not match its digest, aside and says
  // so: the NOT_FOUND a reader answers.
  absl::Status SetAsideCorrupt(Kind kind, const std::string& id) const;
  // Opens the volume file of `id` and reads its header, leaving `in` after
  // it; NOT_FOUND when absent or (set aside) of the wrong size.
  absl::StatusOr<VolumeHeader> OpenVolume(const std::string& id,
                                          std::ifstream& in) const;

  const std::string dir_;
  // Disk bytes reserved by files in progress.
  mutable std::atomic<int64_t> reserved_{0};
};

// A file being written into the archive: bytes appended as they arrive, then
// committed under their id (flushed, renamed into place, its directory
// flushed) or, when dropped uncommitted, removed. Holds its reservation of
// disk space until then. Not thread-safe.
class ArchiveFile {
 public:
  ArchiveFile(const ArchiveFile&) = delete;
  ArchiveFile& operator=(const ArchiveFile&) = delete;
  ~ArchiveFile();

  // Appends `bytes`; more than the file was created for is an error.
  absl::Status Append(absl::string_view bytes);

  // Makes the bytes written the file of `id` (whose digest the caller
  // checked). When that file exists already, these same bytes are dropped.
  absl::Status Commit(const std::string& id);

 private:
  friend class DiskArchive;
  ArchiveFile(const DiskArchive* archive, DiskArchive::Kind kind, int fd,
              std::string temporary, int64_t reserved)
      : archive_(archive),
        kind_(kind),
        fd_(fd),
        temporary_(std::move(temporary)),
        unwritten_(reserved) {}
  // Closes and removes the temporary file, and gives the reservation back.
  void Drop();

  const DiskArchive* const archive_;
  const DiskArchive::Kind kind_;
  int fd_;
  const std::string temporary_;
  // Bytes it may still write, still reserved: the disk's free space shrinks
  // by what it has written.
  int64_t unwritten_;
  bool committed_ = false;
};

// Bytes of a volume file's canonical header, before its voxels and labels.
int64_t VolumeFileHeaderBytes();

// The header of a volume file's first VolumeFileHeaderBytes() bytes, or
// INVALID_ARGUMENT when they are not one.
absl::StatusOr<VolumeHeader> VolumeHeaderFromFileBytes(absl::string_view head);

}  // namespace drr::server
