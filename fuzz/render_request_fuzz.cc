// Fuzzes the request path of Render, Stream and Loss calls: arbitrary bytes
// parsed as a RenderRequest, converted (FromProto) and validated
// (ValidateRenderCall); a request that passes is rendered on the CPU from a
// small labelled volume (and, for a loss, against a stored 8 × 8 target).
// Never a crash, and — the promise of the input ranges in limits.h — no
// accepted request renders a non-finite pixel.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "drr/v1/renderer.pb.h"
#include "kernels/executor.h"
#include "server/engine/render_engine.h"
#include "server/engine/target_store.h"
#include "server/engine/volume_store.h"
#include "server/frontend/proto_convert.h"
#include "volume/volume.h"

namespace {

using drr::server::Limits;
using drr::server::RenderCall;

// Requests small enough to render thousands per second.
Limits SmallLimits() {
  Limits limits;
  limits.max_image_side = 16;
  limits.max_image_pixels = 64;
  limits.max_samples = 16;
  limits.max_batch = 4;
  limits.max_output_pixels = 128;
  return limits;
}

// A 12 × 10 × 8 int16 CT (air, water, bone) with 3 label classes, 2 mm
// voxels, and an 8 × 8 target image.
struct Fixture {
  Fixture()
      : executor(drr::kernels::MakeCpuExecutor(1)),
        store(executor.get(), 2),
        targets(limits),
        engine(executor.get(), &store, &targets, limits) {
    drr::HostVolume volume;
    volume.header.depth = 8;
    volume.header.height = 10;
    volume.header.width = 12;
    volume.header.label_type = drr::VoxelType::kUInt8;
    for (int i = 0; i < 3; ++i) volume.header.affine.m[i][i] = 2.0;
    const int64_t voxels = volume.header.voxels();
    for (int64_t v = 0; v < voxels; ++v) {
      const int16_t hu = static_cast<int16_t>(-1000 + (v * 37) % 2500);
      volume.voxels.append(reinterpret_cast<const char*>(&hu), sizeof(hu));
      volume.labels.push_back(static_cast<char>(v % 3));
    }
    volume_id = drr::ContentDigest(volume.header, volume.voxels, volume.labels);
    if (!store.Insert(volume_id, std::move(volume)).ok()) std::abort();
    std::vector<float> target(64);
    for (int p = 0; p < 64; ++p) target[p] = static_cast<float>(p % 9);
    target_id = (*targets.Insert(8, 8, std::move(target)))->id;
  }

  const Limits limits = SmallLimits();
  std::unique_ptr<drr::kernels::Executor> executor;
  drr::server::VolumeStore store;
  drr::server::TargetStore targets;
  drr::server::RenderEngine engine;
  std::string volume_id;
  std::string target_id;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* const fixture = new Fixture;
  drr::v1::RenderRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  // Ids are digests the fuzzer cannot guess: requests name the stored ones.
  request.set_volume_id(fixture->volume_id);
  if (request.has_loss()) {
    request.mutable_loss()->set_target_id(fixture->target_id);
  }
  absl::StatusOr<RenderCall> call = drr::server::FromProto(request);
  if (!call.ok()) return 0;
  if (!drr::server::ValidateRenderCall(*call, fixture->limits).ok()) return 0;
  absl::StatusOr<drr::server::RenderResult> result =
      fixture->engine.Render(*call);
  if (!result.ok()) return 0;
  for (float pixel : result->images) {
    if (!std::isfinite(pixel)) {
      std::fprintf(stderr, "an accepted request rendered %f\n", pixel);
      std::abort();
    }
  }
  return 0;
}
