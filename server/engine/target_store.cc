#include "server/engine/target_store.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "status/quoted.h"
#include "status/status_macros.h"
#include "volume/sha256.h"

namespace drr::server {

absl::Status TargetNotFound(const std::string& id) {
  return absl::NotFoundError(
      absl::StrCat("target ", Quoted(id), " is not stored on this server"));
}

namespace {

// The target of archived `bytes` (already verified against `id`), or
// INVALID_ARGUMENT when they are not a target file.
absl::StatusOr<std::shared_ptr<Target>> TargetFromFileBytes(
    const std::string& id, const std::string& bytes) {
  uint32_t dims[2];
  if (bytes.size() < 8 + sizeof dims ||
      bytes.compare(0, 8, std::string("DRRTGT1\0", 8)) != 0) {
    return absl::InvalidArgumentError("not a drrserve target file");
  }
  std::memcpy(dims, bytes.data() + 8, sizeof dims);
  const size_t pixels = (bytes.size() - 8 - sizeof dims) / sizeof(float);
  if (dims[0] < 1 || dims[1] < 1 || uint64_t{dims[0]} * dims[1] != pixels ||
      8 + sizeof dims + pixels * sizeof(float) != bytes.size()) {
    return absl::InvalidArgumentError("not a drrserve target file");
  }
  auto target = std::make_shared<Target>();
  target->id = id;
  target->height = static_cast<int>(dims[0]);
  target->width = static_cast<int>(dims[1]);
  target->pixels.resize(pixels);
  std::memcpy(target->pixels.data(), bytes.data() + 8 + sizeof dims,
              pixels * sizeof(float));
  return target;
}

}  // namespace

std::string TargetFileBytes(int height, int width,
                            const std::vector<float>& pixels) {
  std::string bytes("DRRTGT1\0", 8);  // the NUL is part of the magic
  const uint32_t dims[2] = {static_cast<uint32_t>(height),
                            static_cast<uint32_t>(width)};
  bytes.append(reinterpret_cast<const char*>(dims), sizeof dims);
  bytes.append(reinterpret_cast<const char*>(pixels.data()),
               pixels.size() * sizeof(float));
  return bytes;
}

std::string TargetDigest(int height, int width,
                         const std::vector<float>& pixels) {
  Sha256 hash;
  hash.Update(TargetFileBytes(height, width, pixels));
  return hash.HexDigest();
}

TargetStore::TargetStore(const Limits& limits, const DiskArchive* archive,
                         MemoryBudget* budget)
    : limits_(limits), archive_(archive), budget_(budget) {
  if (archive_ == nullptr) return;
  absl::MutexLock lock(&mutex_);
  for (std::string& id : archive_->List(DiskArchive::Kind::kTarget)) {
    archived_.insert(std::move(id));
  }
}

absl::Status TargetStore::Hold(Target& target) const {
  if (budget_ == nullptr) return absl::OkStatus();
  DRR_ASSIGN_OR_RETURN(
      target.held, budget_->Reserve(MemoryUse::kTargets,
                                    static_cast<int64_t>(target.pixels.size() *
                                                         sizeof(float)),
                                    absl::StrCat("target ", target.id)));
  return absl::OkStatus();
}

int TargetStore::CountLocked() const {
  // With an archive every loaded target is archived too.
  return static_cast<int>(archive_ ? archived_.size() : targets_.size());
}
absl::StatusOr<std::shared_ptr<const Target>> TargetStore::Insert(
    int height, int width, std::vector<float> pixels) {
  if (height < 1 || width < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target is ", height, "×", width, ", both must be at least 1"));
  }
  if (height > limits_.max_image_side || width > limits_.max_image_side ||
      int64_t{height} * width > limits_.max_image_pixels) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "target is ", height, "×", width, ", over the server's image limits"));
  }
  if (pixels.size() != static_cast<size_t>(height) * width) {
    return absl::InvalidArgumentError(absl::StrCat("target has ", pixels.size(),
                                                   " pixels, its shape says ",
                                                   int64_t{height} * width));
  }
  for (size_t i = 0; i < pixels.size(); ++i) {
    if (!std::isfinite(pixels[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("target pixel ", i, " is not finite"));
    }
  }
  const std::string bytes = TargetFileBytes(height, width, pixels);
  Sha256 hash;
  hash.Update(bytes);
  auto target = std::make_shared<Target>();
  target->id = hash.HexDigest();
  target->height = height;
  target->width = width;
  target->pixels = std::move(pixels);
  {
    absl::MutexLock lock(&mutex_);
    auto it = targets_.find(target->id);
    if (it != targets_.end()) return it->second;
    if (archived_.count(target->id) == 0 &&
        CountLocked() >= limits_.max_targets) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the server already stores ", CountLocked(),
                       " targets, its limit; delete one first"));
    }
  }
  DRR_RETURN_IF_ERROR(Hold(*target));
  if (archive_ != nullptr) {
    absl::Status written =
        archive_->Put(DiskArchive::Kind::kTarget, target->id, bytes);
    if (!written.ok()) return written;
  }
  absl::MutexLock lock(&mutex_);
  if (archive_ != nullptr) archived_.insert(target->id);
  return targets_.emplace(target->id, target).first->second;
}

absl::StatusOr<std::shared_ptr<const Target>> TargetStore::Get(
    const std::string& id) const {
  {
    absl::MutexLock lock(&mutex_);
    auto it = targets_.find(id);
    if (it != targets_.end()) return it->second;
    if (archived_.count(id) == 0) return TargetNotFound(id);
  }
  absl::StatusOr<std::string> bytes =
      archive_->Get(DiskArchive::Kind::kTarget, id);
  absl::StatusOr<std::shared_ptr<Target>> target =
      bytes.ok() ? TargetFromFileBytes(id, *bytes) : bytes.status();
  if (target.ok()) {
    absl::Status held = Hold(**target);
    if (!held.ok()) return held;
  }
  absl::MutexLock lock(&mutex_);
  if (!target.ok()) {
    archived_.erase(id);
    return target.status();
  }
  // A target loaded while a Delete removed it stays deleted.
  if (archived_.count(id) == 0) return TargetNotFound(id);
  return targets_.emplace(id, *std::move(target)).first->second;
}

std::vector<std::shared_ptr<const Target>> TargetStore::List() const {
  std::vector<std::string> unloaded;
  {
    absl::MutexLock lock(&mutex_);
    for (const std::string& id : archived_) {
      if (targets_.count(id) == 0) unloaded.push_back(id);
    }
  }
  for (const std::string& id : unloaded) Get(id).IgnoreError();
  absl::MutexLock lock(&mutex_);
  std::vector<std::shared_ptr<const Target>> out;
  for (const auto& [id, target] : targets_) out.push_back(target);
  return out;
}

int TargetStore::size() const {
  absl::MutexLock lock(&mutex_);
  return CountLocked();
}

absl::Status TargetStore::Delete(const std::string& id) {
  {
    absl::MutexLock lock(&mutex_);
    const bool loaded = targets_.erase(id) > 0;
    const bool archived = archived_.erase(id) > 0;
    if (!loaded && !archived) return TargetNotFound(id);
  }
  if (archive_ == nullptr) return absl::OkStatus();
  return archive_->Remove(DiskArchive::Kind::kTarget, id);
}

}  // namespace drr::server
