// Fuzzes what the server reads back from --data-dir, as a crash or another
// program could leave it: a volume file (DescribeVolume parses its header and
// labels without the digest; GetVolume verifies it and sets a corrupt file
// aside) and an owners record (Owners). The first byte picks which (bit 0),
// and whether a volume file is stored under its own digest or another id
// (bit 1); the rest is the file. Never a crash; a volume described or read
// has a header that counts voxels, a record never a negative size.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "server/engine/disk_archive.h"
#include "volume/sha256.h"

namespace {

namespace fs = std::filesystem;
using drr::server::DiskArchive;

// An id that is no file's digest.
constexpr char kWrongId[] =
    "00000000000000000000000000000000000000000000000000000000000000aa";

// An archive in a temporary directory, removed when the fuzzer exits.
class TemporaryArchive {
 public:
  TemporaryArchive() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr ? base : "/tmp") + "/archive-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    dir_ = pattern;
    archive_ = *DiskArchive::Open(dir_);
  }
  ~TemporaryArchive() {
    std::error_code error;
    fs::remove_all(dir_, error);
  }
  const DiskArchive& archive() const { return *archive_; }
  // Writes `bytes` as the file `name` of subdirectory `subdir`.
  void Write(const char* subdir, const std::string& name,
             std::string_view bytes) const {
    std::ofstream out(fs::path(dir_) / subdir / name, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  // Removes every file but the directories' own.
  void Clear() const {
    for (const char* subdir : {"volumes", "owners", "corrupt"}) {
      std::error_code error;
      for (const auto& entry :
           fs::directory_iterator(fs::path(dir_) / subdir, error)) {
        fs::remove(entry.path(), error);
      }
    }
  }

 private:
  std::string dir_;
  std::unique_ptr<DiskArchive> archive_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const TemporaryArchive* const temporary = new TemporaryArchive;
  static const int cleanup = std::atexit([] { delete temporary; });
  (void)cleanup;
  if (size == 0) return 0;
  const char* file = reinterpret_cast<const char*>(data) + 1;
  const DiskArchive& archive = temporary->archive();
  const std::string_view bytes(file, size - 1);
  drr::Sha256 hash;
  hash.Update(bytes);
  const std::string digest = hash.HexDigest();
  if (data[0] % 2 == 0) {
    const std::string id = data[0] & 2 ? kWrongId : digest;
    temporary->Write("volumes", id, bytes);
    absl::StatusOr<drr::VolumeSummary> summary = archive.DescribeVolume(id);
    if (summary.ok() &&
        (summary->header.voxels() <= 0 || summary->classes < 1)) {
      std::abort();
    }
    absl::StatusOr<drr::HostVolume> volume = archive.GetVolume(id);
    if (volume.ok() && static_cast<int64_t>(volume->voxels.size()) !=
                           volume->header.voxel_bytes()) {
      std::abort();
    }
  } else {
    temporary->Write("owners", "volumes-" + digest, bytes);
    for (const auto& [id, record] :
         archive.Owners(DiskArchive::Kind::kVolume)) {
      if (record.bytes < 0) std::abort();
    }
  }
  temporary->Clear();
  return 0;
}
