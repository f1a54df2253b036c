#include "server/engine/ownership.h"

namespace drr::server {

Ownership::Ownership(const DiskArchive* archive) : archive_(archive) {
  if (archive_ == nullptr) return;
  absl::MutexLock lock(&mutex_);
  for (Kind kind : {Kind::kVolume, Kind::kTarget}) {
    for (auto& [id, tenants] : archive_->Owners(kind)) {
      owners_[{kind, id}] = std::move(tenants);
    }
  }
}

absl::Status Ownership::Grant(Kind kind, const std::string& id,
                              const std::string& tenant) {
  absl::MutexLock lock(&mutex_);
  std::set<std::string>& tenants = owners_[{kind, id}];
  if (!tenants.insert(tenant).second || archive_ == nullptr) {
    return absl::OkStatus();
  }
  absl::Status recorded = archive_->SetOwners(kind, id, tenants);
  if (!recorded.ok()) tenants.erase(tenant);
  return recorded;
}

bool Ownership::Sees(Kind kind, const std::string& id,
                     const Caller& caller) const {
  if (caller.admin) return true;
  absl::MutexLock lock(&mutex_);
  auto it = owners_.find({kind, id});
  return it != owners_.end() && (it->second.count(caller.tenant) > 0 ||
                                 it->second.count(kEveryTenant) > 0);
}

absl::StatusOr<bool> Ownership::Release(Kind kind, const std::string& id,
                                        const Caller& caller) {
  absl::MutexLock lock(&mutex_);
  auto it = owners_.find({kind, id});
  if (it == owners_.end()) return true;
  std::set<std::string> left = it->second;
  if (caller.admin) {
    left.clear();
  } else if (left.erase(caller.tenant) == 0) {
    return absl::PermissionDeniedError(
        "it is shared with every tenant by the operator; only an "
        "administrator deletes it");
  }
  if (archive_ != nullptr) {
    absl::Status recorded = archive_->SetOwners(kind, id, left);
    if (!recorded.ok()) return recorded;
  }
  if (left.empty()) {
    owners_.erase(it);
    return true;
  }
  it->second = std::move(left);
  return false;
}

}  // namespace drr::server
