#include "server/engine/ownership.h"

namespace drr::server {

Ownership::Ownership(const DiskArchive* archive, StoredBytesObserver observer)
    : archive_(archive), observer_(std::move(observer)) {
  if (archive_ == nullptr) return;
  absl::MutexLock lock(&mutex_);
  for (Kind kind : {Kind::kVolume, Kind::kTarget}) {
    for (auto& [id, record] : archive_->Owners(kind)) {
      Count(record, +1);
      owners_[{kind, id}] = std::move(record);
    }
  }
}

void Ownership::Count(const Record& record, int sign) {
  for (const std::string& tenant : record.tenants) {
    const int64_t bytes = stored_bytes_[tenant] += sign * record.bytes;
    if (observer_) observer_(tenant, bytes);
  }
}

absl::Status Ownership::Grant(Kind kind, const std::string& id,
                              const std::string& tenant, int64_t bytes) {
  absl::MutexLock lock(&mutex_);
  Record& record = owners_[{kind, id}];
  if (record.tenants.count(tenant) > 0) return absl::OkStatus();
  Record updated = record;
  updated.bytes = bytes;
  updated.tenants.insert(tenant);
  if (archive_ != nullptr) {
    absl::Status recorded = archive_->SetOwners(kind, id, updated);
    if (!recorded.ok()) {
      if (record.tenants.empty()) owners_.erase({kind, id});
      return recorded;
    }
  }
  Count(record, -1);
  record = std::move(updated);
  Count(record, +1);
  return absl::OkStatus();
}

int64_t Ownership::StoredBytes(const std::string& tenant) const {
  absl::MutexLock lock(&mutex_);
  auto it = stored_bytes_.find(tenant);
  return it == stored_bytes_.end() ? 0 : it->second;
}

bool Ownership::Sees(Kind kind, const std::string& id,
                     const Caller& caller) const {
  if (caller.admin) return true;
  absl::MutexLock lock(&mutex_);
  auto it = owners_.find({kind, id});
  return it != owners_.end() && (it->second.tenants.count(caller.tenant) > 0 ||
                                 it->second.tenants.count(kEveryTenant) > 0);
}

absl::StatusOr<bool> Ownership::Release(Kind kind, const std::string& id,
                                        const Caller& caller) {
  absl::MutexLock lock(&mutex_);
  auto it = owners_.find({kind, id});
  if (it == owners_.end()) return true;
  Record left = it->second;
  if (caller.admin) {
    left.tenants.clear();
  } else if (left.tenants.erase(caller.tenant) == 0) {
    return absl::PermissionDeniedError(
        "it is shared with every tenant by the operator; only an "
        "administrator deletes it");
  }
  if (archive_ != nullptr) {
    absl::Status recorded = archive_->SetOwners(kind, id, left);
    if (!recorded.ok()) return recorded;
  }
  Count(it->second, -1);
  if (left.tenants.empty()) {
    owners_.erase(it);
    return true;
  }
  it->second = std::move(left);
  Count(it->second, +1);
  return false;
}

}  // namespace drr::server
