// Reads single-file NIfTI-1 volumes (.nii, .nii.gz), the format nibabel,
// TorchIO and the bundled CT data use.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "volume/volume.h"

namespace drr {

// Limits on what a NIfTI file may declare, checked before any allocation.
struct NiftiLimits {
  int64_t max_voxels = int64_t{1} << 30;
};

// Parses the bytes of an uncompressed single-file NIfTI-1 image (header,
// extensions, voxels) into a volume. The affine is the sform when its code is
// set, else the qform, else the pixel spacing. Data with a scale slope other
// than 1 or an offset other than 0 is stored as float32 after scaling;
// int8 becomes int16 and float64 becomes float32. The value kind is HU.
// Malformed input gives INVALID_ARGUMENT, never a crash.
absl::StatusOr<HostVolume> ParseNifti(absl::string_view bytes,
                                      const NiftiLimits& limits = {});

// Reads and parses the NIfTI-1 file at `path`, gzip-compressed or not.
absl::StatusOr<HostVolume> ReadNiftiFile(const std::string& path,
                                         const NiftiLimits& limits = {});

}  // namespace drr
