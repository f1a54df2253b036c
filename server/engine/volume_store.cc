#include "server/engine/volume_store.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/engine/status_from_kernel.h"
#include "status/quoted.h"
#include "status/status_macros.h"

namespace drr::server {
namespace {

kernels::VolumeShape ShapeOf(const VolumeHeader& h) {
  return {static_cast<int>(h.width), static_cast<int>(h.height),
          static_cast<int>(h.depth)};
}

// Tells `listener`, if any, of `count` `event`s.
void Tell(CacheListener* listener, CacheEvent event, int count = 1) {
  if (listener != nullptr && count > 0) listener->OnCacheEvent(event, count);
}

}  // namespace

std::vector<float> AttenuationVolume(const VolumeHeader& header,
                                     const std::string& voxels,
                                     const kernels::AttenuationParams& params) {
  std::vector<float> values = VoxelsAsFloat(header.voxel_type, voxels);
  if (header.value_kind == ValueKind::kHu) {
    kernels::ConvertHuToMu(values.data(), values.size(), params, values.data());
  }
  return values;
}

std::vector<uint16_t> WidenLabels(const HostVolume& volume) {
  if (!volume.header.label_type) return {};
  const std::string& bytes = volume.labels;
  if (*volume.header.label_type == VoxelType::kUInt8) {
    const auto* first = reinterpret_cast<const uint8_t*>(bytes.data());
    return std::vector<uint16_t>(first, first + bytes.size());
  }
  std::vector<uint16_t> labels(bytes.size() / 2);
  std::memcpy(labels.data(), bytes.data(), labels.size() * 2);
  return labels;
}

int64_t StoredBytes(const VolumeHeader& header) {
  return header.voxel_bytes() +
         (header.label_type ? header.voxels() * int64_t{sizeof(uint16_t)} : 0);
}

absl::Status VolumeNotFound(const std::string& id) {
  return absl::NotFoundError(
      absl::StrCat("volume ", Quoted(id), " is not stored on this server"));
}

StoredVolume::StoredVolume(std::string id, HostVolume volume,
                           std::vector<uint16_t> labels, int classes,
                           kernels::Executor* executor, int device,
                           Memory memory)
    : id_(std::move(id)),
      header_(volume.header),
      raw_voxels_(std::move(volume.voxels)),
      labels_(std::move(labels)),
      classes_(classes),
      world_to_voxel_(*geometry::InvertAffine(header_.affine)),
      isocenter_(VolumeCenter(header_)),
      executor_(executor),
      device_(device),
      memory_(std::move(memory)) {}

std::vector<std::shared_ptr<const kernels::ResidentVolume>>
StoredVolume::TakeIdleResidents(const MemoryBudget* budget,
                                int64_t* freed) const {
  std::vector<std::shared_ptr<const kernels::ResidentVolume>> taken;
  absl::MutexLock lock(&mutex_);
  for (auto it = derived_.begin(); it != derived_.end();) {
    const int64_t bytes = budget == memory_.device_budget
                              ? it->device_held.bytes()
                              : it->held.bytes();
    // Held by a render, or taking nothing of `budget` (a GPU's copy when
    // host memory is short): kept.
    if (it->resident.use_count() > 1 || bytes == 0) {
      ++it;
      continue;
    }
    *freed += bytes;
    taken.push_back(std::move(it->resident));
    it = derived_.erase(it);
  }
  return taken;
}

absl::StatusOr<std::shared_ptr<const kernels::ResidentVolume>>
StoredVolume::Resident(const kernels::AttenuationParams& params,
                       const kernels::Residency& residency) const {
  // Attenuation volumes do not depend on the HU map.
  const kernels::AttenuationParams used = header_.value_kind == ValueKind::kHu
                                              ? params
                                              : kernels::AttenuationParams{};
  const DerivedKey key{used.mu_water, used.mu_bone, used.hu_bone,
                       residency.storage, residency.texture};
  {
    absl::MutexLock lock(&mutex_);
    for (auto it = derived_.begin(); it != derived_.end(); ++it) {
      if (it->key.Serves(key)) {
        derived_.splice(derived_.begin(), derived_, it);
        Tell(memory_.listener, CacheEvent::kHit);
        return derived_.front().resident;
      }
    }
  }
  Tell(memory_.listener, CacheEvent::kMiss);
  // The float32 μ while it is derived (host memory), and the copy made
  // resident: in the device's budget and, when the device's memory is the
  // host's, in the host budget too.
  const int64_t voxels = header_.voxels();
  const std::string what = absl::StrCat("a resident copy of volume ", id_);
  MemoryHold deriving, held, device_held;
  if (memory_.budget != nullptr) {
    DRR_ASSIGN_OR_RETURN(
        deriving, memory_.budget->Reserve(
                      MemoryUse::kResident, voxels * int64_t{sizeof(float)},
                      absl::StrCat("deriving μ of volume ", id_)));
  }
  const int64_t voxel_bytes = voxels * kernels::StorageBytes(residency.storage);
  const int64_t resident_bytes =
      voxel_bytes + static_cast<int64_t>(labels_.size() * sizeof(uint16_t));
  const bool host = executor_->space() == kernels::MemorySpace::kHost;
  if (memory_.device_budget != nullptr) {
    // On CUDA a textured copy keeps its linear copy too.
    DRR_ASSIGN_OR_RETURN(
        device_held,
        memory_.device_budget->Reserve(
            MemoryUse::kResident,
            resident_bytes + (!host && residency.texture ? voxel_bytes : 0),
            what));
  }
  if (host && memory_.budget != nullptr) {
    DRR_ASSIGN_OR_RETURN(held, memory_.budget->Reserve(MemoryUse::kResident,
                                                       resident_bytes, what));
  }
  // Derive outside the lock: converting a large volume takes a while.
  std::shared_ptr<const kernels::ResidentVolume> resident;
  {
    const std::vector<float> mu = AttenuationVolume(header_, raw_voxels_, used);
    DRR_RETURN_IF_KERNEL_ERROR(executor_->MakeResident(
        mu.data(), labels_.empty() ? nullptr : labels_.data(), ShapeOf(header_),
        residency, &resident));
  }
  deriving.Release();
  // Evicted volumes are freed after the lock is released: freeing device
  // memory may wait for the device.
  std::vector<Derived> evicted;
  absl::MutexLock lock(&mutex_);
  derived_.push_front({key, resident, std::move(held), std::move(device_held)});
  while (static_cast<int>(derived_.size()) > kDerivedKept) {
    evicted.push_back(std::move(derived_.back()));
    Tell(memory_.listener, CacheEvent::kEviction);
    derived_.pop_back();
  }
  return resident;
}

int64_t StoredVolume::resident_bytes() const {
  absl::MutexLock lock(&mutex_);
  int64_t bytes = 0;
  for (const Derived& derived : derived_)
    bytes += derived.resident->resident_bytes();
  return bytes;
}

VolumeStore::VolumeStore(std::vector<Residence> residences, Placement place,
                         int max_volumes, int max_classes,
                         const DiskArchive* archive, MemoryBudget* budget,
                         CacheListener* listener)
    : residences_(std::move(residences)),
      place_(std::move(place)),
      max_volumes_(max_volumes),
      max_classes_(max_classes),
      archive_(archive),
      budget_(budget),
      listener_(listener) {
  if (budget_ != nullptr) {
    budget_->set_reclaimer(
        [this](int64_t shortfall) { MakeRoom(budget_, shortfall); });
  }
  for (const Residence& residence : residences_) {
    if (residence.budget == nullptr) continue;
    residence.budget->set_reclaimer(
        [this, device = residence.budget](int64_t shortfall) {
          MakeRoom(device, shortfall);
        });
  }
  if (archive_ == nullptr) return;
  absl::MutexLock lock(&mutex_);
  for (std::string& id : archive_->List(DiskArchive::Kind::kVolume)) {
    archived_.insert(std::move(id));
  }
}

VolumeStore::VolumeStore(kernels::Executor* executor, int max_volumes,
                         int max_classes, const DiskArchive* archive,
                         MemoryBudget* budget, CacheListener* listener)
    : VolumeStore(
          {Residence{executor, nullptr}}, [](const std::string&) { return 0; },
          max_volumes, max_classes, archive, budget, listener) {}

int VolumeStore::CountLocked() const {
  // With an archive every loaded volume is archived too.
  return static_cast<int>(archive_ ? archived_.size() : volumes_.size());
}

absl::StatusOr<std::shared_ptr<const StoredVolume>> VolumeStore::Insert(
    std::string id, HostVolume volume) {
  {
    absl::MutexLock lock(&mutex_);
    auto it = volumes_.find(id);
    if (it != volumes_.end()) return it->second;
    if (archived_.count(id) == 0 && CountLocked() >= max_volumes_) {
      return StoreFull();
    }
  }
  return Admit(std::move(id), std::move(volume), /*persist=*/true);
}

absl::Status VolumeStore::AdoptArchived(const VolumeSummary& summary) {
  {
    absl::MutexLock lock(&mutex_);
    if (archived_.count(summary.id) > 0) return absl::OkStatus();
    if (CountLocked() < max_volumes_) {
      archived_.insert(summary.id);
      summaries_.emplace(summary.id, summary);
      return absl::OkStatus();
    }
  }
  archive_->Remove(DiskArchive::Kind::kVolume, summary.id).IgnoreError();
  return StoreFull();
}

absl::StatusOr<std::shared_ptr<const StoredVolume>> VolumeStore::Admit(
    std::string id, HostVolume volume, bool persist, MemoryHold held) const {
  if (!geometry::InvertAffine(volume.header.affine)) {
    return absl::InvalidArgumentError(
        "header.affine is not an invertible affine transform");
  }
  std::vector<uint16_t> labels = WidenLabels(volume);
  const int classes =
      labels.empty() ? 1 : *std::max_element(labels.begin(), labels.end()) + 1;
  if (classes > max_classes_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the labels have ", classes,
                     " classes, over the server's limit of ", max_classes_));
  }
  StoredVolume::Memory memory;
  if (budget_ != nullptr) {
    if (held.bytes() > 0) {
      memory.uploaded = std::move(held);
    } else {
      DRR_ASSIGN_OR_RETURN(
          memory.uploaded,
          budget_->Reserve(MemoryUse::kVolumes, StoredBytes(volume.header),
                           absl::StrCat("storing volume ", id)));
    }
    memory.budget = budget_;
  }
  memory.listener = listener_;
  const int device = place_(id);
  memory.device_budget = residences_[device].budget;
  if (persist && archive_ != nullptr) {
    DRR_RETURN_IF_ERROR(archive_->PutVolume(id, volume));
  }
  auto stored = std::make_shared<StoredVolume>(
      id, std::move(volume), std::move(labels), classes,
      residences_[device].executor, device, std::move(memory));
  // Its μ is made resident at its first render, in the storage type that
  // render asks for: a volume rendered only in float16 never holds a
  // float32 copy.
  {
    absl::MutexLock lock(&mutex_);
    // A volume loaded from disk while a Delete removed it stays deleted.
    if (!persist && archived_.count(id) == 0) return VolumeNotFound(id);
    // Concurrent uploads of different volumes checked the count apart.
    const bool full = persist && volumes_.count(id) == 0 &&
                      archived_.count(id) == 0 && CountLocked() >= max_volumes_;
    if (!full) {
      if (archive_ != nullptr) archived_.insert(id);
      return volumes_.emplace(std::move(id), std::move(stored)).first->second;
    }
  }
  if (archive_ != nullptr) {
    archive_->Remove(DiskArchive::Kind::kVolume, id).IgnoreError();
  }
  return StoreFull();
}

absl::Status VolumeStore::StoreFull() const {
  return absl::ResourceExhaustedError(
      absl::StrCat("the server already stores ", max_volumes_,
                   " volumes, its limit; delete one first"));
}

absl::Status VolumeStore::CheckRoomForAnother() const {
  return size() >= max_volumes_ ? StoreFull() : absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const StoredVolume>> VolumeStore::Get(
    const std::string& id) const {
  std::shared_ptr<Loading> loading;
  bool loads;
  {
    absl::MutexLock lock(&mutex_);
    auto it = volumes_.find(id);
    if (it != volumes_.end()) {
      it->second->Touch(++clock_);
      return it->second;
    }
    if (archived_.count(id) == 0) return VolumeNotFound(id);
    // One load per id: later callers wait for the first one's.
    auto [entry, first] = loading_.try_emplace(id);
    if (first) entry->second = std::make_shared<Loading>();
    loading = entry->second;
    loads = first;
  }
  if (!loads) {
    loading->done.WaitForNotification();
    return loading->result;
  }
  // The budget is held before the file is read: its voxels and widened
  // labels for as long as the volume stays loaded, its raw labels while they
  // are widened.
  MemoryHold kept, widening;
  absl::StatusOr<HostVolume> volume =
      archive_->GetVolume(id, [&](const VolumeHeader& header) -> absl::Status {
        if (budget_ == nullptr) return absl::OkStatus();
        const std::string what = absl::StrCat("loading volume ", id);
        DRR_ASSIGN_OR_RETURN(kept, budget_->Reserve(MemoryUse::kVolumes,
                                                    StoredBytes(header), what));
        DRR_ASSIGN_OR_RETURN(
            widening,
            budget_->Reserve(MemoryUse::kVolumes, header.label_bytes(), what));
        return absl::OkStatus();
      });
  const absl::StatusCode read = volume.status().code();
  loading->result =
      volume.ok()
          ? Admit(id, *std::move(volume), /*persist=*/false, std::move(kept))
          : absl::StatusOr<std::shared_ptr<const StoredVolume>>(
                volume.status());
  widening.Release();
  {
    absl::MutexLock lock(&mutex_);
    // Gone or corrupt (set aside); a volume the budget could not take now
    // stays stored.
    if (read == absl::StatusCode::kNotFound) {
      archived_.erase(id);
      summaries_.erase(id);
    }
    loading_.erase(id);
  }
  if (loading->result.ok()) Tell(listener_, CacheEvent::kLoad);
  loading->done.Notify();
  return loading->result;
}

bool VolumeStore::OnDiskOnly(const std::string& id) const {
  absl::MutexLock lock(&mutex_);
  return archived_.count(id) > 0 && volumes_.count(id) == 0;
}

absl::StatusOr<VolumeSummary> VolumeStore::Describe(
    const std::string& id) const {
  {
    absl::MutexLock lock(&mutex_);
    auto loaded = volumes_.find(id);
    if (loaded != volumes_.end()) return loaded->second->summary();
    auto known = summaries_.find(id);
    if (known != summaries_.end()) return known->second;
    if (archived_.count(id) == 0) return VolumeNotFound(id);
  }
  absl::StatusOr<VolumeSummary> summary = archive_->DescribeVolume(id);
  absl::MutexLock lock(&mutex_);
  // A corrupt file was set aside; one deleted meanwhile stays deleted.
  if (summary.status().code() == absl::StatusCode::kNotFound) {
    archived_.erase(id);
  } else if (summary.ok() && archived_.count(id) > 0) {
    summaries_.emplace(id, *summary);
  }
  return summary;
}

std::vector<VolumeSummary> VolumeStore::List() const {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mutex_);
    if (archive_ != nullptr) {
      ids.assign(archived_.begin(), archived_.end());
    } else {
      for (const auto& [id, volume] : volumes_) ids.push_back(id);
    }
  }
  std::vector<VolumeSummary> out;
  out.reserve(ids.size());
  for (const std::string& id : ids) {
    absl::StatusOr<VolumeSummary> summary = Describe(id);
    if (summary.ok()) out.push_back(*std::move(summary));
  }
  return out;
}

int VolumeStore::size() const {
  absl::MutexLock lock(&mutex_);
  return CountLocked();
}

int64_t VolumeStore::resident_bytes() const {
  std::vector<std::shared_ptr<const StoredVolume>> loaded;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [id, volume] : volumes_) loaded.push_back(volume);
  }
  int64_t bytes = 0;
  for (const auto& volume : loaded) bytes += volume->resident_bytes();
  return bytes;
}

std::vector<int> VolumeStore::CountByResidence() const {
  std::vector<int> counts(residences_.size(), 0);
  absl::MutexLock lock(&mutex_);
  if (archive_ != nullptr) {
    for (const std::string& id : archived_) ++counts[place_(id)];
  } else {
    for (const auto& [id, volume] : volumes_) ++counts[volume->device()];
  }
  return counts;
}

void VolumeStore::MakeRoom(const MemoryBudget* budget, int64_t needed) const {
  // Freed once the lock is released.
  std::vector<std::shared_ptr<const kernels::ResidentVolume>> residents;
  std::vector<std::shared_ptr<const StoredVolume>> unloaded;
  {
    absl::MutexLock lock(&mutex_);
    std::vector<std::pair<int64_t, std::string>> oldest_first;
    const bool host = budget == budget_;
    for (const auto& [id, volume] : volumes_) {
      if (host || residences_[volume->device()].budget == budget) {
        oldest_first.emplace_back(volume->last_used(), id);
      }
    }
    std::sort(oldest_first.begin(), oldest_first.end());
    int64_t freed = 0;
    for (const auto& [tick, id] : oldest_first) {
      if (freed >= needed) break;
      for (auto& r : volumes_.at(id)->TakeIdleResidents(budget, &freed)) {
        residents.push_back(std::move(r));
      }
    }
    for (const auto& [tick, id] : oldest_first) {
      if (!host || archive_ == nullptr || freed >= needed) break;
      auto it = volumes_.find(id);
      // Only the store holds it: no render or upload uses it.
      if (it->second.use_count() > 1) continue;
      freed += it->second->uploaded_bytes();
      unloaded.push_back(std::move(it->second));
      volumes_.erase(it);
    }
  }
  Tell(listener_, CacheEvent::kEviction, static_cast<int>(residents.size()));
  Tell(listener_, CacheEvent::kUnload, static_cast<int>(unloaded.size()));
}

absl::Status VolumeStore::Delete(const std::string& id) {
  std::shared_ptr<const StoredVolume> deleted;  // freed after unlocking
  {
    absl::MutexLock lock(&mutex_);
    auto it = volumes_.find(id);
    const bool archived = archived_.erase(id) > 0;
    summaries_.erase(id);
    if (it == volumes_.end() && !archived) return VolumeNotFound(id);
    if (it != volumes_.end()) {
      deleted = std::move(it->second);
      volumes_.erase(it);
    }
  }
  if (archive_ == nullptr) return absl::OkStatus();
  return archive_->Remove(DiskArchive::Kind::kVolume, id);
}

}  // namespace drr::server
