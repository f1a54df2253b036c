// The engine's store of uploaded volumes: content-addressed, with their μ
// derived and made resident on the executor that renders them. Knows
// nothing of gRPC or protobuf.
#pragma once

#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kernels/attenuation.h"
#include "kernels/executor.h"
#include "server/engine/disk_archive.h"
#include "volume/volume.h"

namespace drr::server {

// A stored volume: its description and raw voxels as uploaded (HU are kept,
// so μ can be derived again with other parameters), its labels, and the μ
// volumes derived from it, resident on the executor.
class StoredVolume {
 public:
  // How many derived μ volumes each stored volume keeps resident.
  static constexpr int kDerivedKept = 2;

  StoredVolume(std::string id, HostVolume volume, std::vector<uint16_t> labels,
               int classes, kernels::Executor* executor);

  const std::string& id() const { return id_; }
  const VolumeHeader& header() const { return header_; }
  // Bytes of voxel (and label) data as uploaded.
  int64_t uploaded_bytes() const {
    return header_.voxel_bytes() + header_.label_bytes();
  }
  // World → voxel, the inverse of header().affine.
  const geometry::Mat4d& world_to_voxel() const { return world_to_voxel_; }
  // World coordinates of the volume centre, the default isocenter.
  const geometry::Vec3d& isocenter() const { return isocenter_; }
  // Label classes (largest label + 1); 1 without labels.
  int classes() const { return classes_; }
  bool has_labels() const { return !labels_.empty(); }

  // The μ volume for `params` (ignored for attenuation volumes) made
  // resident on the executor as `residency` asks: derived on first use, the
  // kDerivedKept most recently used kept.
  absl::StatusOr<std::shared_ptr<const kernels::ResidentVolume>> Resident(
      const kernels::AttenuationParams& params,
      const kernels::Residency& residency) const;

  // Bytes held on the executor by the derived volumes.
  int64_t resident_bytes() const;

 private:
  struct DerivedKey {
    float mu_water, mu_bone, hu_bone;
    kernels::StorageType storage;
    bool texture;
    // Whether a volume made for `this` serves a call that asks for `wanted`:
    // the same μ and storage, and a texture if the call needs one (a
    // textured volume keeps its linear copy, so it serves exact sampling
    // too).
    bool Serves(const DerivedKey& wanted) const {
      return mu_water == wanted.mu_water && mu_bone == wanted.mu_bone &&
             hu_bone == wanted.hu_bone && storage == wanted.storage &&
             (texture || !wanted.texture);
    }
  };

  const std::string id_;
  const VolumeHeader header_;
  const std::string raw_voxels_;
  const std::vector<uint16_t> labels_;
  const int classes_;
  const geometry::Mat4d world_to_voxel_;
  const geometry::Vec3d isocenter_;
  kernels::Executor* const executor_;
  mutable absl::Mutex mutex_;
  // Most recently used first.
  mutable std::list<
      std::pair<DerivedKey, std::shared_ptr<const kernels::ResidentVolume>>>
      derived_ ABSL_GUARDED_BY(mutex_);
};

// Holds volumes by id, in memory and, with an archive, on disk: a volume is
// written to the archive before Insert returns, and the volumes an archive
// already holds (from before a restart) are loaded on first use. Thread-safe.
class VolumeStore {
 public:
  // Stores on `executor` (which must outlive the store): at most
  // `max_volumes` volumes of at most `max_classes` label classes, kept in
  // `archive` too when it is not nullptr (it must outlive the store).
  VolumeStore(kernels::Executor* executor, int max_volumes,
              int max_classes = 256, const DiskArchive* archive = nullptr);

  // Stores `volume` under `id` (its content digest, checked by the caller):
  // on disk first, with an archive, then in memory with its default μ
  // (nanodrr's parameters, float32) resident. Storing an id that is already
  // present returns the existing entry.
  absl::StatusOr<std::shared_ptr<const StoredVolume>> Insert(std::string id,
                                                             HostVolume volume);

  // The volume with `id` (loaded from the archive on first use), or
  // NOT_FOUND naming the id.
  absl::StatusOr<std::shared_ptr<const StoredVolume>> Get(
      const std::string& id) const;

  // Every stored volume, ordered by id (loading those not yet loaded).
  std::vector<std::shared_ptr<const StoredVolume>> List() const;

  // How many volumes are stored (loaded or not), and the resident bytes of
  // those loaded.
  int size() const;
  int64_t resident_bytes() const;

  // Removes the volume with `id`, from disk too (renders in flight keep
  // their reference), or NOT_FOUND.
  absl::Status Delete(const std::string& id);

 private:
  // Makes `volume` a stored volume under `id`, written to the archive first
  // when `persist`.
  absl::StatusOr<std::shared_ptr<const StoredVolume>> Admit(std::string id,
                                                            HostVolume volume,
                                                            bool persist) const;
  int CountLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  kernels::Executor* const executor_;
  const int max_volumes_;
  const int max_classes_;
  const DiskArchive* const archive_;
  mutable absl::Mutex mutex_;
  // Loaded volumes (a cache of the archive, when there is one).
  mutable std::map<std::string, std::shared_ptr<const StoredVolume>> volumes_
      ABSL_GUARDED_BY(mutex_);
  // Ids in the archive, loaded or not.
  mutable std::set<std::string> archived_ ABSL_GUARDED_BY(mutex_);
};

// The μ volume (float32, x fastest) of raw voxels described by `header`: HU
// mapped with `params`, or the values as they are for attenuation volumes.
std::vector<float> AttenuationVolume(const VolumeHeader& header,
                                     const std::string& voxels,
                                     const kernels::AttenuationParams& params);

// The labels of `volume` widened to uint16 (empty without labels).
std::vector<uint16_t> WidenLabels(const HostVolume& volume);

// The NOT_FOUND status for an unknown volume id; it names the id so a client
// can re-upload.
absl::Status VolumeNotFound(const std::string& id);

}  // namespace drr::server
