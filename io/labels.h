// Turns a label image (as read from a file) into the label volume of a CT.
#pragma once

#include "absl/status/status.h"
#include "volume/volume.h"

namespace drr {

// Attaches the class indices of `labels` (same shape as `volume`; integer
// values in [0, 65535], stored as any voxel type) to `volume` as uint8 when
// every class is below 256, else uint16.
absl::Status AttachLabels(const HostVolume& labels, HostVolume* volume);

}  // namespace drr
