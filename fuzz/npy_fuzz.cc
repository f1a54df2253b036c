// Fuzzes the .npy reader: any bytes give an array or an error, never a
// crash; an accepted array holds as many values as its shape says.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const drr::NpyLimits limits{int64_t{1} << 22};
  absl::StatusOr<drr::NpyArray> array = drr::ParseNpy(
      std::string(reinterpret_cast<const char*>(data), size), limits);
  if (!array.ok()) return 0;
  int64_t values = 1;
  for (int64_t side : array->shape) values *= side;
  if (values != static_cast<int64_t>(array->values.size())) std::abort();
  return 0;
}
