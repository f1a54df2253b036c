// The element types a volume may be stored in on an executor (float32,
// float16, bfloat16). The conversions are numeric/float16.h's.
#pragma once

#include "numeric/float16.h"

namespace drr::kernels {

// How voxels (and returned images) are stored.
enum class StorageType { kFloat32, kFloat16, kBFloat16 };

// Bytes per element of `type`.
inline int StorageBytes(StorageType type) {
  return type == StorageType::kFloat32 ? 4 : 2;
}

}  // namespace drr::kernels
