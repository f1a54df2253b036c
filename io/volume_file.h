// Reads CT volumes and label maps in every format clinical data comes in,
// through libraries from Debian: NIfTI (.nii, .nii.gz) with niftilib, the
// reference NIfTI library (libniftiio; ITK's own NIfTI reader wraps it, but
// keeps only an orthonormal direction and spacings, where the file's affine
// may shear); NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) and DICOM with ITK
// (libinsighttoolkit5), DICOM read by GDCM: a directory holding one series
// of slices, one file of a series (which stands for its series), or a
// multi-frame file.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "geometry/host_math.h"
#include "volume/volume.h"

namespace drr {

// Limits on what a file may declare, checked before its voxels are read.
struct VolumeFileLimits {
  int64_t max_voxels = int64_t{1} << 30;
};

// The volume in the file or DICOM series directory at `path`, and its
// voxel→world affine in RAS mm; values rescaled as the format says (DICOM's
// slope and intercept, NIfTI's scl_slope and scl_inter, then as float32),
// as drrclient.load_volume reads them, so that a file has one volume id from
// either client: NIfTI integers as stored (uint8, int16, uint16, int32; int8
// widened to int16) and its affine the sform, else the qform, else the
// spacings (as nibabel); other formats' integers as int16 where every voxel
// fits, else as stored; anything else as float32. The value kind is HU. A
// missing path is NOT_FOUND; a file ITK cannot read, one that is not a 3-D
// scalar volume, or a directory without exactly one DICOM series is
// INVALID_ARGUMENT naming the path; more voxels than `limits` allow is
// RESOURCE_EXHAUSTED.
absl::StatusOr<HostVolume> ReadVolumeFile(const std::string& path,
                                          const VolumeFileLimits& limits = {});

// The RAS voxel→world affine of ITK's LPS image geometry: the world point of
// voxel index (i, j, k) is origin + direction · (spacing ⊙ (i, j, k)) in LPS,
// and RAS negates its first two coordinates.
geometry::Mat4d RasAffineOfLps(const double origin[3], const double spacing[3],
                               const double direction[3][3]);

}  // namespace drr
