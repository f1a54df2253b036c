// Fuzzes the NIfTI-1 reader (ParseNifti) and, on what it accepts, the label
// reader (AttachLabels, the file read as a label map of itself): any bytes
// give a volume or an error, never a crash; an accepted volume's voxel bytes
// match its header.
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "io/labels.h"
#include "io/nifti.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Small enough that every accepted volume fits the fuzzer's memory.
  const drr::NiftiLimits limits{int64_t{1} << 22};
  absl::StatusOr<drr::HostVolume> volume = drr::ParseNifti(
      absl::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!volume.ok()) return 0;
  if (static_cast<int64_t>(volume->voxels.size()) !=
      volume->header.voxel_bytes()) {
    std::abort();
  }
  drr::HostVolume labelled = *volume;
  if (drr::AttachLabels(*volume, &labelled).ok() &&
      static_cast<int64_t>(labelled.labels.size()) !=
          labelled.header.label_bytes()) {
    std::abort();
  }
  return 0;
}
