// The engine's store of uploaded volumes: content-addressed, resident on the
// executor that renders them. Knows nothing of gRPC or protobuf.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/volume.h"
#include "kernels/attenuation.h"
#include "kernels/executor.h"

namespace drr::server {

// A stored volume: its description as uploaded, its raw voxels, and its μ
// volume resident on the executor.
struct StoredVolume {
  std::string id;
  VolumeHeader header;
  // Voxels as uploaded (raw HU are kept so μ can be re-derived).
  std::string raw_voxels;
  // World → voxel, the inverse of header.affine.
  kernels::Mat4d world_to_voxel;
  // World coordinates of the volume centre, the default isocenter.
  kernels::Vec3d isocenter;
  std::shared_ptr<kernels::ResidentVolume> resident;
};

// Holds volumes by id. Thread-safe.
class VolumeStore {
 public:
  // Stores on `executor` (which must outlive the store), at most `max_volumes`.
  VolumeStore(kernels::Executor* executor, int max_volumes);

  // Converts `volume` to μ (HU volumes with `params`), makes it resident and
  // stores it under `id` (the content digest, checked by the caller). Storing
  // an id that is already present returns the existing entry.
  absl::StatusOr<std::shared_ptr<const StoredVolume>> Insert(
      std::string id, HostVolume volume,
      const kernels::AttenuationParams& params = {});

  // The volume with `id`, or NOT_FOUND naming the id.
  absl::StatusOr<std::shared_ptr<const StoredVolume>> Get(
      const std::string& id) const;

  // Every stored volume, ordered by id.
  std::vector<std::shared_ptr<const StoredVolume>> List() const;

  // How many volumes are stored, and their resident bytes in total.
  int size() const;
  int64_t resident_bytes() const;

  // Removes the volume with `id` (renders in flight keep their reference),
  // or NOT_FOUND.
  absl::Status Delete(const std::string& id);

 private:
  kernels::Executor* const executor_;
  const int max_volumes_;
  mutable absl::Mutex mutex_;
  std::map<std::string, std::shared_ptr<const StoredVolume>> volumes_
      ABSL_GUARDED_BY(mutex_);
};

// The μ volume (float32, x fastest) of `volume`: HU mapped with `params`, or
// the values as they are for attenuation volumes.
std::vector<float> AttenuationVolume(const HostVolume& volume,
                                     const kernels::AttenuationParams& params);

// The NOT_FOUND status for an unknown volume id; it names the id so a client
// can re-upload.
absl::Status VolumeNotFound(const std::string& id);

}  // namespace drr::server
