// Translation between drr.v1 messages and engine types; structural checks of
// messages (oneofs set, repeated fields of the right length) happen here.
#pragma once

#include "absl/status/statusor.h"
#include "drr/v1/registrations.pb.h"
#include "drr/v1/renderer.pb.h"
#include "drr/v1/volumes.pb.h"
#include "server/engine/registration.h"
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

// The registration of a request, its starts as the poses of a loss call (of
// BATCH priority unless it says otherwise); fields it leaves unset take the
// defaults. Errors name the request's fields.
absl::StatusOr<RegistrationSpec> FromProto(const v1::RegisterRequest& request);

// `status` with the fields of a registration's loss call named as a
// RegisterRequest names them: poses[i].parameterized.x is starts[i].x.
absl::Status NamedForRegistration(const absl::Status& status);

// Fills `out` with `step`, its best pose as the request's start with the
// best parameters.
void ToProto(const RegistrationStep& step, const v1::RegisterRequest& request,
             v1::RegisterStep* out);

// Fills `out` with `outcome` and its trajectory.
void ToProto(const RegistrationOutcome& outcome,
             const v1::RegisterRequest& request, v1::RegisterResult* out);

}  // namespace drr::server
