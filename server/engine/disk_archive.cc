#include "server/engine/disk_archive.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "status/quoted.h"
#include "status/status_macros.h"
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

// The refusal of a file name that is not a content id.
absl::Status NotAContentId(absl::string_view id) {
  return absl::InvalidArgumentError(
      absl::StrCat("not a content id: ", Quoted(id)));
}

// Writes all of `bytes` to `fd`.
bool WriteAll(int fd, absl::string_view bytes) {
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
bool ReadLittleEndian(absl::string_view bytes, size_t* offset, T* out) {
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
  // The stored files' directories and the owners', without the temporary
  // files a crash left in them.
  for (const char* name : {SubdirOf(Kind::kVolume), SubdirOf(Kind::kTarget),
                           static_cast<const char*>("owners")}) {
    const fs::path sub = fs::path(dir) / name;
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

absl::StatusOr<std::unique_ptr<ArchiveFile>> DiskArchive::Create(
    Kind kind, int64_t bytes) const {
  struct statvfs disk;
  if (::statvfs(dir_.c_str(), &disk) != 0) {
    return ErrnoError("cannot read the free space of", dir_);
  }
  const int64_t available =
      static_cast<int64_t>(disk.f_bavail) * static_cast<int64_t>(disk.f_frsize);
  const int64_t before = reserved_.fetch_add(bytes);
  if (before + bytes > available) {
    reserved_.fetch_sub(bytes);
    return absl::ResourceExhaustedError(
        absl::StrCat("the server's disk has room for ",
                     std::max<int64_t>(0, available - before),
                     " more bytes of uploads; this one needs ", bytes));
  }
  // Unique per process and call: concurrent uploads of one id each write
  // their own temporary file; the renames agree on the content.
  static std::atomic<uint64_t> counter{0};
  std::string temporary =
      (fs::path(dir_) / SubdirOf(kind) /
       absl::StrCat(kTemporaryPrefix, ::getpid(), "-", ++counter))
          .string();
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    reserved_.fetch_sub(bytes);
    return ErrnoError("cannot create", temporary);
  }
  return std::unique_ptr<ArchiveFile>(
      new ArchiveFile(this, kind, fd, std::move(temporary), bytes));
}

ArchiveFile::~ArchiveFile() {
  if (!committed_) Drop();
}

void ArchiveFile::Drop() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temporary_.c_str());
  archive_->reserved_.fetch_sub(unwritten_);
  committed_ = true;  // nothing left to drop
}

absl::Status ArchiveFile::Append(absl::string_view bytes) {
  const auto size = static_cast<int64_t>(bytes.size());
  if (size > unwritten_) {
    return absl::InternalError("more bytes than the archive file reserved");
  }
  if (!WriteAll(fd_, bytes)) return ErrnoError("cannot write", temporary_);
  unwritten_ -= size;
  archive_->reserved_.fetch_sub(size);
  return absl::OkStatus();
}

absl::Status ArchiveFile::Commit(const std::string& id) {
  const std::string path = archive_->PathOf(kind_, id);
  if (!IsDigest(id)) {
    Drop();
    return NotAContentId(id);
  }
  std::error_code error;
  if (fs::exists(path, error)) {
    Drop();
    return absl::OkStatus();
  }
  if (::fsync(fd_) != 0) {
    absl::Status failed = ErrnoError("cannot write", temporary_);
    Drop();
    return failed;
  }
  if (::rename(temporary_.c_str(), path.c_str()) != 0) {
    absl::Status failed = ErrnoError("cannot rename into", path);
    Drop();
    return failed;
  }
  // Renamed: nothing to unlink any more.
  ::close(fd_);
  fd_ = -1;
  archive_->reserved_.fetch_sub(unwritten_);
  committed_ = true;
  return SyncDirectory((fs::path(archive_->dir_) / SubdirOf(kind_)).string());
}

absl::Status DiskArchive::Put(Kind kind, const std::string& id,
                              const std::string& bytes) const {
  if (!IsDigest(id)) return NotAContentId(id);
  std::error_code error;
  if (fs::exists(PathOf(kind, id), error)) return absl::OkStatus();
  DRR_ASSIGN_OR_RETURN(std::unique_ptr<ArchiveFile> file,
                       Create(kind, static_cast<int64_t>(bytes.size())));
  DRR_RETURN_IF_ERROR(file->Append(bytes));
  return file->Commit(id);
}

absl::Status DiskArchive::PutVolume(const std::string& id,
                                    const HostVolume& volume) const {
  if (!IsDigest(id)) return NotAContentId(id);
  std::error_code error;
  if (fs::exists(PathOf(Kind::kVolume, id), error)) return absl::OkStatus();
  const std::string head = CanonicalHeaderBytes(volume.header);
  DRR_ASSIGN_OR_RETURN(
      std::unique_ptr<ArchiveFile> file,
      Create(Kind::kVolume,
             static_cast<int64_t>(head.size() + volume.voxels.size() +
                                  volume.labels.size())));
  DRR_RETURN_IF_ERROR(file->Append(head));
  DRR_RETURN_IF_ERROR(file->Append(volume.voxels));
  DRR_RETURN_IF_ERROR(file->Append(volume.labels));
  return file->Commit(id);
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
  return SetAsideCorrupt(kind, id);
}

absl::StatusOr<VolumeHeader> DiskArchive::OpenVolume(const std::string& id,
                                                     std::ifstream& in) const {
  const std::string path = PathOf(Kind::kVolume, id);
  if (!IsDigest(id)) return absl::NotFoundError("not a content id");
  in.open(path, std::ios::binary);
  if (!in) {
    // Absent is NOT_FOUND; any other failure (no file descriptors left, say)
    // leaves the volume stored.
    if (errno != ENOENT) return ErrnoError("cannot open", path);
    return absl::NotFoundError(absl::StrCat(path, " is not on disk"));
  }
  std::string head(static_cast<size_t>(VolumeFileHeaderBytes()), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  absl::StatusOr<VolumeHeader> header =
      in ? VolumeHeaderFromFileBytes(head)
         : absl::InvalidArgumentError("shorter than a volume header");
  std::error_code error;
  // The sizes are checked before anything is allocated for them.
  if (!header.ok() ||
      static_cast<int64_t>(fs::file_size(path, error)) !=
          VolumeFileHeaderBytes() + header->voxel_bytes() +
              header->label_bytes() ||
      error) {
    in.close();
    return SetAsideCorrupt(Kind::kVolume, id);
  }
  return header;
}

absl::StatusOr<HostVolume> DiskArchive::GetVolume(
    const std::string& id,
    const std::function<absl::Status(const VolumeHeader&)>& before_reading)
    const {
  std::ifstream in;
  HostVolume volume;
  DRR_ASSIGN_OR_RETURN(volume.header, OpenVolume(id, in));
  if (before_reading) DRR_RETURN_IF_ERROR(before_reading(volume.header));
  volume.voxels.resize(static_cast<size_t>(volume.header.voxel_bytes()));
  volume.labels.resize(static_cast<size_t>(volume.header.label_bytes()));
  in.read(volume.voxels.data(),
          static_cast<std::streamsize>(volume.voxels.size()));
  in.read(volume.labels.data(),
          static_cast<std::streamsize>(volume.labels.size()));
  Sha256 hash;
  hash.Update(CanonicalHeaderBytes(volume.header));
  hash.Update(volume.voxels);
  hash.Update(volume.labels);
  if (in && hash.HexDigest() == id) return volume;
  in.close();
  return SetAsideCorrupt(Kind::kVolume, id);
}

absl::StatusOr<VolumeSummary> DiskArchive::DescribeVolume(
    const std::string& id) const {
  std::ifstream in;
  VolumeSummary summary;
  summary.id = id;
  DRR_ASSIGN_OR_RETURN(summary.header, OpenVolume(id, in));
  if (!summary.header.label_type) return summary;
  in.seekg(VolumeFileHeaderBytes() + summary.header.voxel_bytes());
  LabelClassCounter classes(*summary.header.label_type);
  std::string piece(size_t{1} << 20, '\0');
  for (int64_t left = summary.header.label_bytes(); left > 0 && in;) {
    const int64_t n = std::min<int64_t>(left, piece.size());
    in.read(piece.data(), static_cast<std::streamsize>(n));
    classes.Add(std::string_view(piece.data(), static_cast<size_t>(n)));
    left -= n;
  }
  if (!in)
    return absl::UnavailableError("cannot read a stored volume's labels");
  summary.classes = classes.classes();
  return summary;
}

absl::Status DiskArchive::SetAsideCorrupt(Kind kind,
                                          const std::string& id) const {
  const std::string path = PathOf(kind, id);
  const std::string aside =
      (fs::path(dir_) / "corrupt" / absl::StrCat(SubdirOf(kind), "-", id))
          .string();
  std::error_code error;
  fs::rename(path, aside, error);
  std::fprintf(stderr,
               "drrserve: %s does not match its digest (corrupt); moved it "
               "to %s\n",
               path.c_str(), error ? "nowhere (rename failed)" : aside.c_str());
  // (Worded as every NOT_FOUND of a volume or target is, so that clients
  // upload it again: docs/api.md.)
  return absl::NotFoundError(absl::StrCat(
      kind == Kind::kVolume ? "volume " : "target ", id,
      " is not stored on this server: its stored copy was corrupt and has "
      "been set aside; upload it again"));
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

std::map<std::string, DiskArchive::OwnerRecord> DiskArchive::Owners(
    Kind kind) const {
  std::map<std::string, OwnerRecord> owners;
  const std::string prefix = absl::StrCat(SubdirOf(kind), "-");
  std::error_code error;
  for (const auto& entry :
       fs::directory_iterator(fs::path(dir_) / "owners", error)) {
    const std::string name = entry.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string id = name.substr(prefix.size());
    if (!IsDigest(id)) continue;
    // "#bytes N", then a tenant per line ('#' is in no tenant's name). A
    // size that is not a count (a damaged file) counts as 0.
    std::ifstream in(entry.path());
    OwnerRecord& record = owners[id];
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("#bytes ", 0) == 0) {
        int64_t bytes = 0;
        const bool counted = absl::SimpleAtoi(line.substr(7), &bytes);
        record.bytes = counted && bytes >= 0 ? bytes : 0;
      } else if (!line.empty()) {
        record.tenants.insert(line);
      }
    }
  }
  return owners;
}

absl::Status DiskArchive::SetOwners(Kind kind, const std::string& id,
                                    const OwnerRecord& record) const {
  if (!IsDigest(id)) return NotAContentId(id);
  const fs::path dir = fs::path(dir_) / "owners";
  const std::string path =
      (dir / absl::StrCat(SubdirOf(kind), "-", id)).string();
  if (record.tenants.empty()) {
    std::error_code error;
    fs::remove(path, error);
    return SyncDirectory(dir.string());
  }
  std::string text = absl::StrCat("#bytes ", record.bytes, "\n");
  for (const std::string& tenant : record.tenants) {
    absl::StrAppend(&text, tenant, "\n");
  }
  static std::atomic<uint64_t> counter{0};
  const std::string temporary =
      (dir / absl::StrCat(kTemporaryPrefix, ::getpid(), "-", ++counter))
          .string();
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return ErrnoError("cannot create", temporary);
  const bool written = WriteAll(fd, text) && ::fsync(fd) == 0;
  absl::Status status =
      written ? absl::OkStatus() : ErrnoError("cannot write", temporary);
  ::close(fd);
  if (status.ok() && ::rename(temporary.c_str(), path.c_str()) != 0) {
    status = ErrnoError("cannot rename into", path);
  }
  if (!status.ok()) {
    ::unlink(temporary.c_str());
    return status;
  }
  return SyncDirectory(dir.string());
}

int64_t VolumeFileHeaderBytes() {
  static const int64_t bytes =
      static_cast<int64_t>(CanonicalHeaderBytes(VolumeHeader{}).size());
  return bytes;
}

absl::StatusOr<VolumeHeader> VolumeHeaderFromFileBytes(absl::string_view head) {
  const auto malformed = [] {
    return absl::InvalidArgumentError("not a drrserve volume file");
  };
  if (static_cast<int64_t>(head.size()) != VolumeFileHeaderBytes() ||
      head.substr(0, 8) != absl::string_view("DRRVOL1\0", 8)) {
    return malformed();
  }
  size_t offset = 8;
  uint32_t voxel_type, value_kind, label_type;
  VolumeHeader h;
  if (!ReadLittleEndian(head, &offset, &voxel_type) ||
      !ReadLittleEndian(head, &offset, &value_kind) ||
      !ReadLittleEndian(head, &offset, &label_type) ||
      !ReadLittleEndian(head, &offset, &h.depth) ||
      !ReadLittleEndian(head, &offset, &h.height) ||
      !ReadLittleEndian(head, &offset, &h.width)) {
    return malformed();
  }
  for (auto& row : h.affine.m) {
    for (double& v : row) {
      if (!ReadLittleEndian(head, &offset, &v)) return malformed();
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
  return h;
}

}  // namespace drr::server
