#include "server/engine/target_store.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "volume/sha256.h"

namespace drr::server {
namespace {

absl::Status TargetNotFound(const std::string& id) {
  return absl::NotFoundError(
      absl::StrCat("target ", id, " is not stored on this server"));
}

}  // namespace

std::string TargetDigest(int height, int width,
                         const std::vector<float>& pixels) {
  std::string header("DRRTGT1\0", 8);  // the NUL is part of the magic
  const uint32_t dims[2] = {static_cast<uint32_t>(height),
                            static_cast<uint32_t>(width)};
  header.append(reinterpret_cast<const char*>(dims), sizeof dims);
  Sha256 hash;
  hash.Update(header);
  hash.Update(std::string_view(reinterpret_cast<const char*>(pixels.data()),
                               pixels.size() * sizeof(float)));
  return hash.HexDigest();
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
  auto target = std::make_shared<Target>();
  target->id = TargetDigest(height, width, pixels);
  target->height = height;
  target->width = width;
  target->pixels = std::move(pixels);
  absl::MutexLock lock(&mutex_);
  auto it = targets_.find(target->id);
  if (it != targets_.end()) return it->second;
  if (static_cast<int>(targets_.size()) >= limits_.max_targets) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the server already stores ", targets_.size(),
                     " targets, its limit; delete one first"));
  }
  return targets_.emplace(target->id, target).first->second;
}

absl::StatusOr<std::shared_ptr<const Target>> TargetStore::Get(
    const std::string& id) const {
  absl::MutexLock lock(&mutex_);
  auto it = targets_.find(id);
  if (it == targets_.end()) return TargetNotFound(id);
  return it->second;
}

std::vector<std::shared_ptr<const Target>> TargetStore::List() const {
  absl::MutexLock lock(&mutex_);
  std::vector<std::shared_ptr<const Target>> out;
  for (const auto& [id, target] : targets_) out.push_back(target);
  return out;
}

absl::Status TargetStore::Delete(const std::string& id) {
  absl::MutexLock lock(&mutex_);
  if (targets_.erase(id) == 0) return TargetNotFound(id);
  return absl::OkStatus();
}

}  // namespace drr::server
