// Fuzzes the loss options and the losses: a Loss message (2 bytes of length,
// little endian, then its bytes) converted as a loss request's (FromProto)
// and checked (CheckLoss) for an image of height and width from the next two
// bytes (1 to 32 each); the rest of the input gives the image's and the
// target's pixels (float32, non-finite ones read as 0, missing ones as 0).
// Never a crash, and finite images give a finite loss and gradient.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "drr/v1/renderer.pb.h"
#include "server/engine/image_losses.h"
#include "server/frontend/proto_convert.h"

namespace {

// `count` finite float32 values read from `data` onwards (0 past `end`).
std::vector<float> Pixels(const uint8_t*& data, const uint8_t* end, int count) {
  std::vector<float> pixels(count, 0.0f);
  for (float& pixel : pixels) {
    if (end - data < 4) break;
    std::memcpy(&pixel, data, 4);
    data += 4;
    if (!std::isfinite(pixel)) pixel = 0.0f;
  }
  return pixels;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const uint8_t* const end = data + size;
  const size_t length = std::min<size_t>(data[0] | (data[1] << 8), size - 2);
  drr::v1::RenderRequest request;
  if (!request.mutable_loss()->ParseFromArray(data + 2,
                                              static_cast<int>(length))) {
    return 0;
  }
  const uint8_t* at = data + 2 + length;
  if (end - at < 2) return 0;
  const int height = 1 + at[0] % 32;
  const int width = 1 + at[1] % 32;
  at += 2;
  absl::StatusOr<drr::server::RenderCall> call =
      drr::server::FromProto(request);
  if (!call.ok() || call->loss() == nullptr) return 0;
  const drr::server::LossSpec& spec = call->loss()->spec;
  if (!drr::server::CheckLoss(spec, height, width).ok()) return 0;
  const std::vector<float> image = Pixels(at, end, height * width);
  const std::vector<float> target = Pixels(at, end, height * width);
  std::vector<double> gradient;
  const double loss = drr::server::LossAndGradient(
      spec, image.data(), target.data(), height, width, &gradient);
  const bool finite = std::isfinite(loss) &&
                      std::all_of(gradient.begin(), gradient.end(),
                                  [](double g) { return std::isfinite(g); });
  if (!finite || gradient.size() != image.size()) {
    std::fprintf(stderr, "loss %g of finite images is not finite\n", loss);
    std::abort();
  }
  return 0;
}
