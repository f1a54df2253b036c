// Tenants: who owns each stored volume and target. Content is stored once
// (content-addressed) whatever the number of tenants that uploaded it; each
// tenant sees only what it uploaded, and content is deleted when its last
// owner deletes it. Knows nothing of gRPC or tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/engine/disk_archive.h"

namespace drr::server {

// Who makes a call: a tenant, and whether it administers the server (sees
// and deletes everything). Without --tokens every call is the anonymous
// tenant "", an administrator.
struct Caller {
  std::string tenant;
  bool admin = false;
};

// The owner that lets every tenant see content (volumes preloaded by the
// operator); only an administrator deletes it.
inline constexpr char kEveryTenant[] = "*";

// The owners of each stored volume and target, kept in the data directory
// when there is one so that they survive a restart. Content with no owner
// (stored before owners were recorded) is an administrator's alone.
// Thread-safe.
class Ownership {
 public:
  using Kind = DiskArchive::Kind;

  // Hears each tenant's stored bytes whenever they change (with the owners
  // read at the start too); must be cheap.
  using StoredBytesObserver =
      std::function<void(const std::string& tenant, int64_t bytes)>;

  // Reads the owners `archive` recorded (it may be nullptr: memory only; it
  // must outlive this).
  explicit Ownership(const DiskArchive* archive,
                     StoredBytesObserver observer = nullptr);

  // Records `tenant` as an owner of `id`, `bytes` large (durably, with an
  // archive); each owner's stored bytes count it whole.
  absl::Status Grant(Kind kind, const std::string& id,
                     const std::string& tenant, int64_t bytes);

  // The bytes of the volumes and targets `tenant` owns.
  int64_t StoredBytes(const std::string& tenant) const;

  // Whether `caller` may see `id`.
  bool Sees(Kind kind, const std::string& id, const Caller& caller) const;

  // Ends `caller`'s ownership of `id` (an administrator's ends every
  // owner's); true when nobody owns it any more, so that the caller deletes
  // the content. PERMISSION_DENIED for a tenant who sees it only as shared
  // with every tenant.
  absl::StatusOr<bool> Release(Kind kind, const std::string& id,
                               const Caller& caller);

 private:
  using Key = std::pair<Kind, std::string>;
  using Record = DiskArchive::OwnerRecord;

  // Adds `sign` × the record's bytes to each of its tenants' totals.
  void Count(const Record& record, int sign)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const DiskArchive* const archive_;
  const StoredBytesObserver observer_;
  mutable absl::Mutex mutex_;
  std::map<Key, Record> owners_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, int64_t> stored_bytes_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace drr::server
