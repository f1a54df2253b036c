#include "io/labels.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace drr {

absl::Status AttachLabels(const HostVolume& labels, HostVolume* volume) {
  const VolumeHeader& a = volume->header;
  const VolumeHeader& b = labels.header;
  if (a.depth != b.depth || a.height != b.height || a.width != b.width) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the labels are ", b.width, "×", b.height, "×", b.depth,
        " voxels, the volume ", a.width, "×", a.height, "×", a.depth));
  }
  const int64_t count = a.voxels();
  const std::vector<float> values = VoxelsAsFloat(b.voxel_type, labels.voxels);
  std::vector<uint16_t> classes(count);
  uint16_t largest = 0;
  for (int64_t i = 0; i < count; ++i) {
    const double v = values[i];
    if (!(v >= 0 && v <= 65535 && v == std::floor(v))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label voxel ", i, " is ", v, ", not a class index in [0, 65535]"));
    }
    classes[i] = static_cast<uint16_t>(v);
    largest = std::max(largest, classes[i]);
  }
  if (largest < 256) {
    volume->header.label_type = VoxelType::kUInt8;
    volume->labels.assign(classes.begin(), classes.end());
  } else {
    volume->header.label_type = VoxelType::kUInt16;
    volume->labels.assign(reinterpret_cast<const char*>(classes.data()),
                          count * 2);
  }
  return absl::OkStatus();
}

}  // namespace drr
