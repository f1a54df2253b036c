#include "server/frontend/service_context.h"

namespace drr::server {

absl::StatusOr<Caller> ServiceContext::Authenticate(
    const grpc::ServerContextBase& call) const {
  absl::StatusOr<Caller> caller = auth->Authenticate(call);
  if (!caller.ok()) return caller;
  metrics->CountTenantRequest(caller->tenant);
  if (absl::Status allowed = quotas->Request(*caller); !allowed.ok()) {
    return allowed;
  }
  return caller;
}

absl::Status ServiceContext::CheckVolumeVisible(const std::string& id,
                                                const Caller& caller) const {
  return owners->Sees(Ownership::Kind::kVolume, id, caller)
             ? absl::OkStatus()
             : VolumeNotFound(id);
}

absl::Status ServiceContext::CheckTargetVisible(const std::string& id,
                                                const Caller& caller) const {
  return owners->Sees(Ownership::Kind::kTarget, id, caller)
             ? absl::OkStatus()
             : TargetNotFound(id);
}

}  // namespace drr::server
