// Host scratch memory of an executor's workspace: it grows to the largest
// call it has served and is then reused, so steady calls allocate nothing.
#pragma once

#include <cstddef>
#include <new>
#include <string>
#include <vector>

#include "kernels/kernel_status.h"

namespace drr::kernels {

// At least `count` elements of T; growing does not keep what they held.
template <typename T>
class HostScratch {
 public:
  // Makes room for `count` elements; kResourceExhausted naming `what` when
  // the host is out of memory.
  KernelStatus Reserve(size_t count, const char* what) {
    try {
      if (values_.size() < count) values_.resize(count);
    } catch (const std::bad_alloc&) {
      return KernelStatus::Error(KernelCode::kResourceExhausted,
                                 std::string("out of host memory for ") + what);
    }
    return KernelStatus::Ok();
  }
  T* data() { return values_.data(); }

 private:
  std::vector<T> values_;
};

}  // namespace drr::kernels
