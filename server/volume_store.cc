#include "server/volume_store.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/kernel_status.h"

namespace drr::server {
namespace {

template <typename T>
std::vector<float> ToFloat(const std::string& bytes) {
  std::vector<float> out(bytes.size() / sizeof(T));
  for (size_t i = 0; i < out.size(); ++i) {
    T v;
    std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<float>(v);
  }
  return out;
}

std::vector<float> VoxelsAsFloat(const HostVolume& volume) {
  switch (volume.header.voxel_type) {
    case VoxelType::kUInt8:
      return ToFloat<uint8_t>(volume.voxels);
    case VoxelType::kInt16:
      return ToFloat<int16_t>(volume.voxels);
    case VoxelType::kUInt16:
      return ToFloat<uint16_t>(volume.voxels);
    case VoxelType::kInt32:
      return ToFloat<int32_t>(volume.voxels);
    case VoxelType::kFloat32:
      break;
  }
  return ToFloat<float>(volume.voxels);
}

}  // namespace

std::vector<float> AttenuationVolume(const HostVolume& volume,
                                     const kernels::AttenuationParams& params) {
  std::vector<float> values = VoxelsAsFloat(volume);
  if (volume.header.value_kind == ValueKind::kHu) {
    kernels::ConvertHuToMu(values.data(), values.size(), params, values.data());
  }
  return values;
}

absl::Status VolumeNotFound(const std::string& id) {
  return absl::NotFoundError(
      absl::StrCat("volume ", id, " is not stored on this server"));
}

VolumeStore::VolumeStore(kernels::Executor* executor, int max_volumes)
    : executor_(executor), max_volumes_(max_volumes) {}

absl::StatusOr<std::shared_ptr<const StoredVolume>> VolumeStore::Insert(
    std::string id, HostVolume volume,
    const kernels::AttenuationParams& params) {
  {
    absl::MutexLock lock(&mutex_);
    auto it = volumes_.find(id);
    if (it != volumes_.end()) return it->second;
    if (static_cast<int>(volumes_.size()) >= max_volumes_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the server already stores ", volumes_.size(),
                       " volumes, its limit; delete one first"));
    }
  }
  const std::optional<kernels::Mat4d> world_to_voxel =
      kernels::InvertAffine(volume.header.affine);
  if (!world_to_voxel) {
    return absl::InvalidArgumentError(
        "header.affine is not an invertible affine transform");
  }
  auto stored = std::make_shared<StoredVolume>();
  stored->id = id;
  stored->header = volume.header;
  stored->world_to_voxel = *world_to_voxel;
  stored->isocenter = VolumeCenter(volume.header);
  const kernels::VolumeShape shape{static_cast<int>(volume.header.width),
                                   static_cast<int>(volume.header.height),
                                   static_cast<int>(volume.header.depth)};
  const std::vector<float> mu = AttenuationVolume(volume, params);
  DRR_RETURN_IF_KERNEL_ERROR(
      executor_->MakeResident(mu.data(), shape, &stored->resident));
  stored->raw_voxels = std::move(volume.voxels);

  absl::MutexLock lock(&mutex_);
  auto [it, inserted] = volumes_.emplace(std::move(id), std::move(stored));
  return it->second;
}

absl::StatusOr<std::shared_ptr<const StoredVolume>> VolumeStore::Get(
    const std::string& id) const {
  absl::MutexLock lock(&mutex_);
  auto it = volumes_.find(id);
  if (it == volumes_.end()) return VolumeNotFound(id);
  return it->second;
}

std::vector<std::shared_ptr<const StoredVolume>> VolumeStore::List() const {
  absl::MutexLock lock(&mutex_);
  std::vector<std::shared_ptr<const StoredVolume>> out;
  out.reserve(volumes_.size());
  for (const auto& [id, volume] : volumes_) out.push_back(volume);
  return out;
}

int VolumeStore::size() const {
  absl::MutexLock lock(&mutex_);
  return static_cast<int>(volumes_.size());
}

int64_t VolumeStore::resident_bytes() const {
  absl::MutexLock lock(&mutex_);
  int64_t bytes = 0;
  for (const auto& [id, volume] : volumes_)
    bytes += volume->resident->resident_bytes();
  return bytes;
}

absl::Status VolumeStore::Delete(const std::string& id) {
  absl::MutexLock lock(&mutex_);
  if (volumes_.erase(id) == 0) return VolumeNotFound(id);
  return absl::OkStatus();
}

}  // namespace drr::server
