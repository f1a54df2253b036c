// Conversion of volume headers between the engine type and the drr.v1 wire
// message, shared by the server and the clients.
#pragma once

#include "absl/status/statusor.h"
#include "drr/v1/volumes.pb.h"
#include "volume/volume.h"

namespace drr {

// The wire header of `header`.
void VolumeHeaderToProto(const VolumeHeader& header, v1::VolumeHeader* out);

// The engine header of a wire header; INVALID_ARGUMENT names a malformed field.
absl::StatusOr<VolumeHeader> VolumeHeaderFromProto(
    const v1::VolumeHeader& header);

}  // namespace drr
