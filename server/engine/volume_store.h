// The engine's store of uploaded volumes: content-addressed, with their μ
// derived and made resident on the executor that renders them. Knows
// nothing of gRPC or protobuf.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "kernels/attenuation.h"
#include "kernels/executor.h"
#include "server/engine/disk_archive.h"
#include "server/engine/memory_budget.h"
#include "volume/volume.h"

namespace drr::server {

// What the volume cache does, for metrics.
enum class CacheEvent {
  // A render found the resident copy it needs.
  kHit,
  // A render had to derive its resident copy.
  kMiss,
  // A resident copy was dropped (too many per volume, or to free memory).
  kEviction,
  // A stored volume was loaded from the data directory.
  kLoad,
  // A stored volume was unloaded to free memory (still on disk).
  kUnload,
};

// Hears the volume cache's events. Called from engine and gRPC threads;
// must be cheap and must not call back into the store.
class CacheListener {
 public:
  virtual ~CacheListener() = default;
  virtual void OnCacheEvent(CacheEvent event, int count) = 0;
};

// Where volumes are made resident: an executor and the budget of the memory
// its resident copies take there (a GPU's memory; on the CPU, the share of
// host memory this stand-in device may fill), or nullptr for none.
struct Residence {
  kernels::Executor* executor = nullptr;
  MemoryBudget* budget = nullptr;
};

// A stored volume: its description and raw voxels as uploaded (HU are kept,
// so μ can be derived again with other parameters), its labels, and the μ
// volumes derived from it, resident on the executor.
class StoredVolume {
 public:
  // How many derived μ volumes each stored volume keeps resident.
  static constexpr int kDerivedKept = 2;

  // Where a stored volume's memory is accounted: the host budget (or
  // nullptr; its reclaimer may free idle copies of this volume too), the
  // hold on its uploaded bytes there, and the budget of its residence's
  // memory (or nullptr), which holds its resident copies too.
  struct Memory {
    MemoryBudget* budget = nullptr;
    MemoryHold uploaded;
    MemoryBudget* device_budget = nullptr;
    // Hears its cache hits, misses and evictions; may be nullptr.
    CacheListener* listener = nullptr;
  };

  // Made resident on `executor`, the device of index `device` of its store.
  StoredVolume(std::string id, HostVolume volume, std::vector<uint16_t> labels,
               int classes, kernels::Executor* executor, int device,
               Memory memory);

  const std::string& id() const { return id_; }
  const VolumeHeader& header() const { return header_; }
  // The executor its copies are made resident on, and its device's index.
  const kernels::Executor* executor() const { return executor_; }
  int device() const { return device_; }
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
  // What a client is told of it.
  VolumeSummary summary() const { return {id_, header_, classes_}; }

  // The μ volume for `params` (ignored for attenuation volumes) made
  // resident on the executor as `residency` asks: derived on first use, the
  // kDerivedKept most recently used kept.
  absl::StatusOr<std::shared_ptr<const kernels::ResidentVolume>> Resident(
      const kernels::AttenuationParams& params,
      const kernels::Residency& residency) const;

  // Bytes held on the executor by the derived volumes.
  int64_t resident_bytes() const;

  // Takes out the derived volumes no render holds that hold bytes of
  // `budget`, the host's or the device's (adding them to `*freed`), for the
  // caller to free once it holds no lock; they are derived again when next
  // needed.
  std::vector<std::shared_ptr<const kernels::ResidentVolume>> TakeIdleResidents(
      const MemoryBudget* budget, int64_t* freed) const;

  // A counter value of the store's at the volume's last use (for LRU).
  int64_t last_used() const { return last_used_.load(); }
  void Touch(int64_t tick) const { last_used_.store(tick); }

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
  // A derived volume and what it holds of the host's and the device's
  // budgets.
  struct Derived {
    DerivedKey key;
    std::shared_ptr<const kernels::ResidentVolume> resident;
    MemoryHold held;
    MemoryHold device_held;
  };

  kernels::Executor* const executor_;
  const int device_;
  const Memory memory_;
  mutable std::atomic<int64_t> last_used_{0};
  mutable absl::Mutex mutex_;
  // Most recently used first.
  mutable std::list<Derived> derived_ ABSL_GUARDED_BY(mutex_);
};

// Holds volumes by id, in memory and, with an archive, on disk: a volume is
// written to the archive before Insert returns, and the volumes an archive
// already holds (from before a restart) are loaded on first use. Thread-safe.
class VolumeStore {
 public:
  // Chooses the index of the residence of the volume with `id`.
  using Placement = std::function<int(const std::string& id)>;

  // Stores volumes made resident on `residences` (whose executors and
  // budgets must outlive the store), each on the one `place` chooses: at
  // most `max_volumes` volumes of at most `max_classes` label classes, kept
  // in `archive` too when it is not nullptr (it must outlive the store).
  // Accounts host memory in `budget` when it is not nullptr. Becomes the
  // reclaimer of that budget and of the residences': what does not fit is
  // refused only after the resident copies no render uses (and, with an
  // archive and for the host budget, loaded volumes no render uses) are
  // freed, least recently used first; they come back on demand.
  VolumeStore(std::vector<Residence> residences, Placement place,
              int max_volumes, int max_classes = 256,
              const DiskArchive* archive = nullptr,
              MemoryBudget* budget = nullptr,
              CacheListener* listener = nullptr);
  // Stores every volume on `executor`, with no budget of its own.
  VolumeStore(kernels::Executor* executor, int max_volumes,
              int max_classes = 256, const DiskArchive* archive = nullptr,
              MemoryBudget* budget = nullptr,
              CacheListener* listener = nullptr);

  // Stores `volume` under `id` (its content digest, checked by the caller):
  // on disk first, with an archive, then in memory (its μ is made resident
  // at its first render). Storing an id that is already present returns the
  // existing entry.
  absl::StatusOr<std::shared_ptr<const StoredVolume>> Insert(std::string id,
                                                             HostVolume volume);

  // Stores the volume an upload wrote to the archive as the file of
  // `summary.id` (its content digest, checked by the upload), to be loaded
  // at its first use; RESOURCE_EXHAUSTED, removing the file, once
  // --max-volumes are stored. Requires an archive.
  absl::Status AdoptArchived(const VolumeSummary& summary);

  // The volume with `id` (loaded from the archive on first use), or
  // NOT_FOUND naming the id.
  absl::StatusOr<std::shared_ptr<const StoredVolume>> Get(
      const std::string& id) const;

  // Whether the volume with `id` is stored on disk and not loaded: a Get
  // would read it.
  bool OnDiskOnly(const std::string& id) const;

  // What a client is told of the volume with `id`, without loading it (an
  // archived volume's labels are read once, for its classes), or NOT_FOUND.
  absl::StatusOr<VolumeSummary> Describe(const std::string& id) const;

  // The summary of every stored volume, ordered by id, loading none.
  std::vector<VolumeSummary> List() const;

  // OK while another volume can be stored; RESOURCE_EXHAUSTED, saying so,
  // once --max-volumes are.
  absl::Status CheckRoomForAnother() const;

  // How many volumes are stored (loaded or not), and the resident bytes of
  // those loaded.
  int size() const;
  int64_t resident_bytes() const;
  // How many stored volumes (loaded or not) each residence holds, by index.
  std::vector<int> CountByResidence() const;

  // Removes the volume with `id`, from disk too (renders in flight keep
  // their reference), or NOT_FOUND.
  absl::Status Delete(const std::string& id);

 private:
  // Makes `volume` a stored volume under `id`, written to the archive first
  // when `persist`, holding `held` of the budget (StoredBytes of it) or, when
  // that is empty, reserving it.
  absl::StatusOr<std::shared_ptr<const StoredVolume>> Admit(
      std::string id, HostVolume volume, bool persist,
      MemoryHold held = MemoryHold()) const;
  int CountLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The refusal of a volume over max_volumes_.
  absl::Status StoreFull() const;
  // Frees at least `needed` bytes of `budget` (the host's, or a residence's)
  // if it can: idle resident copies counted in it, then, for the host
  // budget and with an archive (which can load them again), idle volumes,
  // least recently used first.
  void MakeRoom(const MemoryBudget* budget, int64_t needed) const;

  const std::vector<Residence> residences_;
  const Placement place_;
  const int max_volumes_;
  const int max_classes_;
  const DiskArchive* const archive_;
  MemoryBudget* const budget_;
  CacheListener* const listener_;
  // Ticks at every Get, for least-recently-used order.
  mutable std::atomic<int64_t> clock_{0};
  mutable absl::Mutex mutex_;
  // Loaded volumes (a cache of the archive, when there is one).
  mutable std::map<std::string, std::shared_ptr<const StoredVolume>> volumes_
      ABSL_GUARDED_BY(mutex_);
  // Ids in the archive, loaded or not.
  mutable std::set<std::string> archived_ ABSL_GUARDED_BY(mutex_);
  // Summaries of archived volumes known without loading them (from their
  // uploads, or read once).
  mutable std::map<std::string, VolumeSummary> summaries_
      ABSL_GUARDED_BY(mutex_);
  // A load from the archive in progress, and its outcome once done.
  struct Loading {
    absl::Notification done;
    absl::StatusOr<std::shared_ptr<const StoredVolume>> result;
  };
  // The loads in progress, by id.
  mutable std::map<std::string, std::shared_ptr<Loading>> loading_
      ABSL_GUARDED_BY(mutex_);
};

// The μ volume (float32, x fastest) of raw voxels described by `header`: HU
// mapped with `params`, or the values as they are for attenuation volumes.
std::vector<float> AttenuationVolume(const VolumeHeader& header,
                                     const std::string& voxels,
                                     const kernels::AttenuationParams& params);

// Bytes a stored volume keeps in memory: its voxels as uploaded and its
// labels widened to uint16.
int64_t StoredBytes(const VolumeHeader& header);

// The labels of `volume` widened to uint16 (empty without labels).
std::vector<uint16_t> WidenLabels(const HostVolume& volume);

// The NOT_FOUND status for an unknown volume id; it names the id so a client
// can re-upload.
absl::Status VolumeNotFound(const std::string& id);

}  // namespace drr::server
