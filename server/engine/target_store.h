// The engine's store of target images (real X-rays to register against):
// content-addressed like volumes, so loss requests name them by id.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/engine/limits.h"

namespace drr::server {

// A stored target image, float32 row-major.
struct Target {
  std::string id;
  int height = 0;
  int width = 0;
  std::vector<float> pixels;
};

// The id of a target: hex SHA-256 of the 8 bytes "DRRTGT1\0", uint32 height,
// uint32 width (little-endian), then the float32 pixels.
std::string TargetDigest(int height, int width,
                         const std::vector<float>& pixels);

// Holds targets by id. Thread-safe.
class TargetStore {
 public:
  explicit TargetStore(const Limits& limits) : limits_(limits) {}

  // Stores a height × width image (finite values, within the image limits);
  // storing the same image again returns the existing entry.
  absl::StatusOr<std::shared_ptr<const Target>> Insert(
      int height, int width, std::vector<float> pixels);
  // The target with `id`, or NOT_FOUND naming it.
  absl::StatusOr<std::shared_ptr<const Target>> Get(
      const std::string& id) const;
  // Every stored target, ordered by id.
  std::vector<std::shared_ptr<const Target>> List() const;
  // Removes the target with `id`, or NOT_FOUND.
  absl::Status Delete(const std::string& id);

 private:
  const Limits limits_;
  mutable absl::Mutex mutex_;
  std::map<std::string, std::shared_ptr<const Target>> targets_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace drr::server
