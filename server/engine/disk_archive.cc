#include "server/engine/disk_archive.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "volume/sha256.h"

namespace drr::server {
namespace {

namespace fs = std::filesystem;

// Prefix of files being written; a crash can leave them, Open removes them.
constexpr absl::string_view kTemporaryPrefix = ".tmp-";

const char* SubdirOf(DiskArchive::Kind kind) {
  return kind == DiskArchive::Kind::kVolume ? "volumes" : "targets";
}

// The status of a failed file operation on `path`: logged with the path,
// answered without it; a full disk is RESOURCE_EXHAUSTED, anything else
// UNAVAILABLE (the server cannot keep data now).
absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  const int error = errno;
  std::fprintf(stderr, "drrserve: %s %s: %s\n", std::string(what).c_str(),
               path.c_str(), std::strerror(error));
  const std::string message = absl::StrCat(
      "the server cannot keep data on its disk (", std::strerror(error), ")");
  if (error == ENOSPC || error == EDQUOT) {
    return absl::ResourceExhaustedError(message);
  }
  return absl::UnavailableError(message);
}

// True when `id` can name a file: 64 lower-case hex digits (a SHA-256).
bool IsDigest(absl::string_view id) {
  if (id.size() != 64) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Writes all of `bytes` to `fd`.
bool WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Flushes the directory `dir`, so that a rename in it survives a crash.
absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return ErrnoError("cannot open", dir);
  const int synced = ::fsync(fd);
  ::close(fd);
  if (synced != 0) return ErrnoError("cannot flush", dir);
  return absl::OkStatus();
}

// Reads the little-endian value at `*offset` of `bytes`, advancing it.
template <typename T>
bool ReadLittleEndian(const std::string& bytes, size_t* offset, T* out) {
  if (*offset > bytes.size() || bytes.size() - *offset < sizeof(T)) {
    return false;
  }
  std::memcpy(out, bytes.data() + *offset, sizeof(T));
  *offset += sizeof(T);
  return true;
}

bool IsVoxelType(uint32_t v) { return v >= 1 && v <= 5; }

}  // namespace

absl::StatusOr<std::unique_ptr<DiskArchive>> DiskArchive::Open(
    const std::string& dir) {
  std::error_code error;
  for (Kind kind : {Kind::kVolume, Kind::kTarget}) {
    const fs::path sub = fs::path(dir) / SubdirOf(kind);
    fs::create_directories(sub, error);
    if (error) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--data-dir: cannot create ", sub.string(), ": ", error.message()));
    }
    for (const auto& entry : fs::directory_iterator(sub, error)) {
      if (absl::string_view(entry.path().filename().string())
              .substr(0, kTemporaryPrefix.size()) == kTemporaryPrefix) {
        fs::remove(entry.path(), error);
      }
    }
  }
  fs::create_directories(fs::path(dir) / "corrupt", error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("--data-dir: cannot use ", dir, ": ", error.message()));
  }
  // Refuse to start on a directory that cannot be written, rather than fail
  // every upload once its bytes have arrived.
  const std::string probe =
      (fs::path(dir) / SubdirOf(Kind::kVolume) /
       absl::StrCat(kTemporaryPrefix, "probe-", ::getpid()))
          .string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const bool writable = fd >= 0 && WriteAll(fd, "probe") && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  ::unlink(probe.c_str());
  if (!writable) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--data-dir: cannot write in ", dir, ": ", std::strerror(errno)));
  }
  return std::unique_ptr<DiskArchive>(new DiskArchive(dir));
}

std::string DiskArchive::PathOf(Kind kind, const std::string& id) const {
  return (fs::path(dir_) / SubdirOf(kind) / id).string();
}

absl::Status DiskArchive::Put(Kind kind, const std::string& id,
                              const std::string& bytes) const {
  if (!IsDigest(id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a content id: ", id.substr(0, 80)));
  }
  const std::string path = PathOf(kind, id);
  std::error_code error;
  if (fs::exists(path, error)) return absl::OkStatus();
  // Unique per process and call: concurrent uploads of one id each write
  // their own temporary file; the renames agree on the content.
  static std::atomic<uint64_t> counter{0};
  const std::string temporary =
      (fs::path(dir_) / SubdirOf(kind) /
       absl::StrCat(kTemporaryPrefix, id, "-", ::getpid(), "-", ++counter))
          .string();
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return ErrnoError("cannot create", temporary);
  const bool written = WriteAll(fd, bytes) && ::fsync(fd) == 0;
  const absl::Status status =
      written ? absl::OkStatus() : ErrnoError("cannot write", temporary);
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) {
    absl::Status failed =
        written ? ErrnoError("cannot rename into", path) : status;
    ::unlink(temporary.c_str());
    return failed;
  }
  return SyncDirectory((fs::path(dir_) / SubdirOf(kind)).string());
}

absl::StatusOr<std::string> DiskArchive::Get(Kind kind,
                                             const std::string& id) const {
  const std::string path = PathOf(kind, id);
  if (!IsDigest(id)) return absl::NotFoundError("not a content id");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, " is not on disk"));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  std::string bytes = std::move(contents).str();
  Sha256 hash;
  hash.Update(bytes);
  if (hash.HexDigest() == id) return bytes;
  const std::string aside =
      (fs::path(dir_) / "corrupt" / absl::StrCat(SubdirOf(kind), "-", id))
          .string();
  std::error_code error;
  fs::rename(path, aside, error);
  std::fprintf(stderr,
               "drrserve: %s does not match its digest (corrupt); moved it "
               "to %s\n",
               path.c_str(), error ? "nowhere (rename failed)" : aside.c_str());
  return absl::NotFoundError(
      absl::StrCat("the server's stored copy of ", id,
                   " was corrupt and has been set aside; upload it again"));
}

std::vector<std::string> DiskArchive::List(Kind kind) const {
  std::vector<std::string> ids;
  std::error_code error;
  for (const auto& entry :
       fs::directory_iterator(fs::path(dir_) / SubdirOf(kind), error)) {
    std::string name = entry.path().filename().string();
    if (IsDigest(name)) ids.push_back(std::move(name));
  }
  return ids;
}

absl::Status DiskArchive::Remove(Kind kind, const std::string& id) const {
  if (!IsDigest(id)) return absl::OkStatus();
  std::error_code error;
  fs::remove(PathOf(kind, id), error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot remove ", PathOf(kind, id),
                                            ": ", error.message()));
  }
  return absl::OkStatus();
}

std::string VolumeFileBytes(const HostVolume& volume) {
  std::string bytes = CanonicalHeaderBytes(volume.header);
  bytes.reserve(bytes.size() + volume.voxels.size() + volume.labels.size());
  bytes += volume.voxels;
  bytes += volume.labels;
  return bytes;
}

absl::StatusOr<HostVolume> VolumeFromFileBytes(const std::string& bytes) {
  const auto malformed = [] {
    return absl::InvalidArgumentError("not a drrserve volume file");
  };
  if (bytes.compare(0, 8, std::string("DRRVOL1\0", 8)) != 0) {
    return malformed();
  }
  size_t offset = 8;
  uint32_t voxel_type, value_kind, label_type;
  HostVolume volume;
  VolumeHeader& h = volume.header;
  if (!ReadLittleEndian(bytes, &offset, &voxel_type) ||
      !ReadLittleEndian(bytes, &offset, &value_kind) ||
      !ReadLittleEndian(bytes, &offset, &label_type) ||
      !ReadLittleEndian(bytes, &offset, &h.depth) ||
      !ReadLittleEndian(bytes, &offset, &h.height) ||
      !ReadLittleEndian(bytes, &offset, &h.width)) {
    return malformed();
  }
  for (auto& row : h.affine.m) {
    for (double& v : row) {
      if (!ReadLittleEndian(bytes, &offset, &v)) return malformed();
    }
  }
  if (!IsVoxelType(voxel_type) || (value_kind != 1 && value_kind != 2) ||
      (label_type != 0 && label_type != 2 && label_type != 3) || h.depth < 1 ||
      h.height < 1 || h.width < 1 || h.depth > (int64_t{1} << 20) ||
      h.height > (int64_t{1} << 20) || h.width > (int64_t{1} << 20)) {
    return malformed();
  }
  h.voxel_type = static_cast<VoxelType>(voxel_type);
  h.value_kind = static_cast<ValueKind>(value_kind);
  if (label_type != 0) h.label_type = static_cast<VoxelType>(label_type);
  const size_t rest = bytes.size() - offset;
  if (static_cast<uint64_t>(h.voxel_bytes()) + h.label_bytes() != rest) {
    return malformed();
  }
  volume.voxels = bytes.substr(offset, h.voxel_bytes());
  volume.labels = bytes.substr(offset + h.voxel_bytes());
  return volume;
}

}  // namespace drr::server
