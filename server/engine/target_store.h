// The engine's store of target images (real X-rays to register against):
// content-addressed like volumes, so loss requests name them by id.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/engine/disk_archive.h"
#include "server/engine/limits.h"
#include "server/engine/memory_budget.h"

namespace drr::server {

// A stored target image, float32 row-major.
struct Target {
  std::string id;
  int height = 0;
  int width = 0;
  std::vector<float> pixels;
  // The budget its pixels hold while anything references it.
  MemoryHold held;
};

// The bytes a target's id is the SHA-256 of (and its file in an archive):
// the 8 bytes "DRRTGT1\0", uint32 height, uint32 width (little-endian), then
// the float32 pixels.
std::string TargetFileBytes(int height, int width,
                            const std::vector<float>& pixels);

// The NOT_FOUND status for an unknown target id, naming it.
absl::Status TargetNotFound(const std::string& id);

// The id of a target: the hex SHA-256 of its TargetFileBytes.
std::string TargetDigest(int height, int width,
                         const std::vector<float>& pixels);

// Holds targets by id, in memory and, with an archive, on disk (written
// before Insert returns; those from before a restart loaded on first use).
// Thread-safe.
class TargetStore {
 public:
  // At most limits.max_targets targets of limits' image sizes, kept in
  // `archive` too when it is not nullptr (it must outlive the store), their
  // pixels held in `budget` when it is not nullptr (a target that does not
  // fit is refused, RESOURCE_EXHAUSTED).
  explicit TargetStore(const Limits& limits,
                       const DiskArchive* archive = nullptr,
                       MemoryBudget* budget = nullptr);

  // Stores a height × width image (finite values, within the image limits);
  // storing the same image again returns the existing entry.
  absl::StatusOr<std::shared_ptr<const Target>> Insert(
      int height, int width, std::vector<float> pixels);
  // The target with `id` (loaded from the archive on first use), or
  // NOT_FOUND naming it.
  absl::StatusOr<std::shared_ptr<const Target>> Get(
      const std::string& id) const;
  // Every stored target, ordered by id (loading those not yet loaded).
  std::vector<std::shared_ptr<const Target>> List() const;
  // How many targets are stored, loaded or not.
  int size() const;
  // Removes the target with `id`, from disk too, or NOT_FOUND.
  absl::Status Delete(const std::string& id);

 private:
  int CountLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Holds the budget for `target`'s pixels (nothing without a budget).
  absl::Status Hold(Target& target) const;

  const Limits limits_;
  const DiskArchive* const archive_;
  MemoryBudget* const budget_;
  mutable absl::Mutex mutex_;
  // Loaded targets (a cache of the archive, when there is one).
  mutable std::map<std::string, std::shared_ptr<const Target>> targets_
      ABSL_GUARDED_BY(mutex_);
  // Ids in the archive, loaded or not.
  mutable std::set<std::string> archived_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace drr::server
