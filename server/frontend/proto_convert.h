// Translation between drr.v1 messages and engine types; structural checks of
// messages (oneofs set, repeated fields of the right length) happen here.
#pragma once

#include "absl/status/statusor.h"
#include "drr/v1/renderer.pb.h"
#include "drr/v1/volumes.pb.h"
#include "server/engine/render_call.h"
#include "server/engine/volume_store.h"
#include "volume/volume.h"

namespace drr::server {

// The wire description of a stored volume.
void ToProto(const VolumeSummary& volume, v1::VolumeInfo* out);

// The engine call of a render request; fields it leaves unset take the
// defaults (defaults/defaults.h).
absl::StatusOr<RenderCall> FromProto(const v1::RenderRequest& request);

// Fills `out` with the images and timings of `result`.
void ToProto(const RenderResult& result, v1::RenderResponse* out);

}  // namespace drr::server
