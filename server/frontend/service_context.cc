#include "server/frontend/service_context.h"

#include "absl/strings/str_cat.h"
#include "status/quoted.h"
#include "wire/routing.h"

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

void ServiceContext::PublishStoreSize() const {
  metrics->SetStoredVolumes(store->size(), store->resident_bytes());
  const std::vector<int> counts = store->CountByResidence();
  for (size_t i = 0; i < counts.size(); ++i) {
    metrics->device(static_cast<int>(i)).SetVolumes(counts[i]);
  }
}

absl::Status ServiceContext::CheckRouted(
    const std::optional<std::string>& routed,
    absl::string_view volume_id) const {
  if (!routed.has_value()) {
    if (!require_volume_header) return absl::OkStatus();
    return VolumeHeaderMissing(
        absl::StrCat("the call names volume ", Quoted(volume_id)));
  }
  if (*routed == volume_id) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      kVolumeHeader, " is ", Quoted(*routed), " but the call names volume ",
      Quoted(volume_id), ": it was routed by another volume"));
}

absl::Status VolumeHeaderMissing(absl::string_view detail) {
  return absl::FailedPreconditionError(absl::StrCat(
      "this server requires the ", kVolumeHeader,
      " header on every call that names a volume (a proxy routes by it); ",
      detail));
}

std::optional<std::string> RoutedVolume(const grpc::ServerContextBase& call) {
  const auto& metadata = call.client_metadata();
  const auto it = metadata.find(kVolumeHeader);
  if (it == metadata.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
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

std::optional<std::chrono::steady_clock::time_point> ClientDeadline(
    const grpc::ServerContextBase& call) {
  const auto left = call.deadline() - std::chrono::system_clock::now();
  // None, or one too far away to matter (and to convert without overflow).
  if (call.deadline() == std::chrono::system_clock::time_point::max() ||
      left > std::chrono::hours(24 * 365)) {
    return std::nullopt;
  }
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(left);
}

}  // namespace drr::server
