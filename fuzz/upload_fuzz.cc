// Fuzzes the upload assembler as the Upload handler drives it: the input is
// one mode byte (bit 0: bytes to a disk archive, or to memory) and then
// UploadVolumeChunk messages, each preceded by its length (2 bytes, little
// endian). Each chunk is parsed, converted and handed to VolumeUpload until
// one is refused or the digest is taken. Never a crash; an upload that
// finishes holds exactly the bytes whose digest it was given.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "drr/v1/volumes.pb.h"
#include "fuzz/temporary_archive.h"
#include "server/engine/disk_archive.h"
#include "server/engine/volume_upload.h"
#include "volume/volume.h"
#include "wire/volume_proto.h"

namespace {

using drr::server::DiskArchive;
using drr::server::FinishedUpload;
using drr::server::Limits;
using drr::server::VolumeUpload;

// Small volumes only, so that every accepted one fits the fuzzer's memory.
Limits SmallLimits() {
  Limits limits;
  limits.max_volume_voxels = int64_t{1} << 20;
  limits.max_volume_dim = 256;
  limits.max_classes = 4096;
  return limits;
}

// Checks what a finished upload holds against the digest it was given.
void CheckFinished(const FinishedUpload& finished, const DiskArchive* archive) {
  const drr::VolumeSummary& summary = finished.summary;
  if (archive == nullptr) {
    const drr::HostVolume& volume = *finished.in_memory;
    if (drr::ContentDigest(volume.header, volume.voxels, volume.labels) !=
        summary.id) {
      std::abort();
    }
    return;
  }
  absl::StatusOr<drr::HostVolume> stored = archive->GetVolume(summary.id);
  if (!stored.ok() || static_cast<int64_t>(stored->voxels.size()) !=
                          summary.header.voxel_bytes()) {
    std::abort();
  }
  (void)archive->Remove(DiskArchive::Kind::kVolume, summary.id);
}

// Hands `chunk` to `upload` as the Upload handler does; sets `finished`
// when it was the digest and it matched.
absl::Status Accept(const drr::v1::UploadVolumeChunk& chunk,
                    const Limits& limits, VolumeUpload& upload,
                    std::optional<FinishedUpload>& finished) {
  switch (chunk.part_case()) {
    case drr::v1::UploadVolumeChunk::kHeader: {
      absl::StatusOr<drr::VolumeHeader> header =
          drr::VolumeHeaderFromProto(chunk.header());
      if (!header.ok()) return header.status();
      absl::Status checked = VolumeUpload::CheckHeader(*header, limits);
      if (!checked.ok()) return checked;
      return upload.AcceptHeader(*header);
    }
    case drr::v1::UploadVolumeChunk::kData:
      return upload.AcceptData(chunk.data());
    case drr::v1::UploadVolumeChunk::kDigest: {
      absl::StatusOr<FinishedUpload> done = upload.Finish(chunk.digest());
      if (!done.ok()) return done.status();
      finished = *std::move(done);
      return absl::OkStatus();
    }
    case drr::v1::UploadVolumeChunk::PART_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("no part");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Limits limits = SmallLimits();
  if (size == 0) return 0;
  const DiskArchive* archive =
      data[0] % 2 == 1 ? &drr::fuzz::ProcessArchive("upload-fuzz").archive()
                       : nullptr;
  VolumeUpload upload(limits, archive);
  size_t at = 1;
  while (at + 2 <= size) {
    const size_t length =
        std::min<size_t>(data[at] | (data[at + 1] << 8), size - at - 2);
    at += 2;
    drr::v1::UploadVolumeChunk chunk;
    if (!chunk.ParseFromArray(data + at, static_cast<int>(length))) break;
    at += length;
    std::optional<FinishedUpload> finished;
    if (!Accept(chunk, limits, upload, finished).ok()) break;
    if (finished) {
      CheckFinished(*finished, archive);
      break;
    }
  }
  return 0;
}
