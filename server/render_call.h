// A render request in engine terms (no protobuf), and its validation.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/camera.h"
#include "kernels/host_math.h"
#include "kernels/pose.h"
#include "server/limits.h"

namespace drr::server {

// A pose as Euler angles and a translation, for nanodrr's make_rt_inv.
struct EulerPoseSpec {
  std::string convention = "ZXY";
  bool degrees = true;
  kernels::Vec3d rotation{0, 0, 0};
  kernels::Vec3d translation{0, 0, 0};
  kernels::Orientation orientation = kernels::Orientation::kAP;
  // Rotation centre in world mm; the volume centre when absent.
  std::optional<kernels::Vec3d> isocenter;
};

// A camera pose: camera→world directly, or Euler angles.
using PoseSpec = std::variant<kernels::Mat4d, EulerPoseSpec>;

// One batch of poses of one volume, sharing intrinsics.
struct RenderCall {
  std::string volume_id;
  std::vector<PoseSpec> poses;
  kernels::Intrinsics intrinsics;
  int n_samples = 500;
};

// Rendered images, [batch, channels, height, width] float32, and where the
// time went.
struct RenderResult {
  std::vector<float> images;
  int batch = 0;
  int channels = 1;
  int height = 0;
  int width = 0;
  double queue_seconds = 0;
  double render_seconds = 0;
};

// Checks everything about `call` that does not need the volume: batch size,
// image size, samples, finite intrinsics and poses. INVALID_ARGUMENT names the
// field (as the API spells it); sizes over `limits` are RESOURCE_EXHAUSTED
// only where the request is well-formed but too big for this server.
absl::Status ValidateRenderCall(const RenderCall& call, const Limits& limits);

// Camera→world of `pose`; `volume_center` is the isocenter when the pose
// names none.
kernels::Mat4d ResolvePose(const PoseSpec& pose,
                           const kernels::Vec3d& volume_center);

}  // namespace drr::server
