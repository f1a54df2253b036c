// Fuzzes what the server reads back from --data-dir, as a crash or another
// program could leave it: a volume file (DescribeVolume parses its header and
// labels without the digest; GetVolume verifies it and sets a corrupt file
// aside) and an owners record (Owners). The first byte picks which (bit 0),
// and whether a volume file is stored under its own digest or another id
// (bit 1); the rest is the file. Never a crash; a volume described or read
// has a header that counts voxels, a record never a negative size.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz/temporary_archive.h"
#include "server/engine/disk_archive.h"
#include "volume/sha256.h"

namespace {

using drr::server::DiskArchive;

// An id that is no file's digest.
constexpr char kWrongId[] =
    "00000000000000000000000000000000000000000000000000000000000000aa";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const drr::fuzz::TemporaryArchive& temporary =
      drr::fuzz::ProcessArchive("archive-fuzz");
  if (size == 0) return 0;
  const char* file = reinterpret_cast<const char*>(data) + 1;
  const DiskArchive& archive = temporary.archive();
  const std::string_view bytes(file, size - 1);
  drr::Sha256 hash;
  hash.Update(bytes);
  const std::string digest = hash.HexDigest();
  if (data[0] % 2 == 0) {
    const std::string id = data[0] & 2 ? kWrongId : digest;
    temporary.Write("volumes", id, bytes);
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
    temporary.Write("owners", "volumes-" + digest, bytes);
    for (const auto& [id, record] :
         archive.Owners(DiskArchive::Kind::kVolume)) {
      if (record.bytes < 0) std::abort();
    }
  }
  temporary.Clear();
  return 0;
}
