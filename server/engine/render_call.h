// A render request in engine terms (no protobuf), and its validation.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "defaults/defaults.h"
#include "geometry/camera.h"
#include "geometry/host_math.h"
#include "geometry/pose.h"
#include "kernels/attenuation.h"
#include "kernels/executor.h"
#include "kernels/storage.h"
#include "server/engine/image_losses.h"
#include "server/engine/limits.h"
#include "server/engine/target_store.h"

namespace drr::server {

// A pose as rotation parameters and a translation (nanodrr's make_rt_inv).
struct ParameterizedPoseSpec {
  geometry::Parameterization parameterization =
      geometry::Parameterization::kEuler;
  std::string convention = defaults::kEulerConvention;  // Euler only
  bool degrees = true;                                  // Euler only
  std::vector<double> rotation{0, 0, 0};
  geometry::Vec3d translation{defaults::kTranslation[0],
                              defaults::kTranslation[1],
                              defaults::kTranslation[2]};
  geometry::Orientation orientation = geometry::Orientation::kAP;
  // Rotation centre in world mm; the volume centre when absent.
  std::optional<geometry::Vec3d> isocenter;
};

// A camera pose: camera→world directly, or parameterized.
using PoseSpec = std::variant<geometry::Mat4d, ParameterizedPoseSpec>;

// What each pixel holds.
enum class OutputKind { kLineIntegral, kExp, kMip };

// Which channels come back: every class (labelled volumes), the classes
// listed, or one channel summing all.
struct ChannelSelection {
  bool sum = false;
  std::vector<int> classes;
};

// A render call that returns its images and nothing more.
struct ImagesRequest {};

// The derivative of the rendered images asked for: dL/dθ for an upstream
// gradient dL/dI (a vector–Jacobian product, what a PyTorch backward needs).
struct GradientRequest {
  // dL/dI, float32 with the layout of the returned images [B, C, H, W].
  std::vector<float> upstream;
};

// A loss against a stored target image: the response carries its value and
// its gradient with respect to each pose instead of the images.
struct LossRequest {
  std::string target_id;
  LossSpec spec;
  // Return the rendered images too.
  bool return_images = false;
  // The target itself when the caller holds it (a registration's target at
  // a coarse scale); else the engine looks target_id up.
  std::shared_ptr<const Target> target;
};

// The images and the full Jacobian dI/dθ of every image (for Gauss–Newton
// style optimisers).
struct JacobianRequest {};

// What a render call computes from its images: one of returning them, a
// vector–Jacobian product, the full Jacobian, or a loss and its gradient.
using CallKind =
    std::variant<ImagesRequest, GradientRequest, JacobianRequest, LossRequest>;

// dL/d(pose) of one pose: with respect to its own parameters (rotation values
// then translation; the 16 matrix entries for an rt_inv pose), and with
// respect to its camera→world matrix.
struct PoseGradient {
  std::vector<double> parameters;
  geometry::Mat4d rt_inv;
  // When asked for: dI/dθ of every pixel, float32 [C, H, W, k] with k the
  // size of `parameters`.
  std::vector<float> jacobian;
};

// Who waits first when the renderer is busy: interactive work before any
// batch work; within a class, clients in turn.
enum class Priority { kInteractive, kBatch };

// Who asked for a call and how it is scheduled among everyone else's.
struct Scheduling {
  // Calls of different clients are served in turn (the gRPC peer, later the
  // tenant); one client's calls in order of arrival.
  std::string client;
  Priority priority = Priority::kInteractive;
  // Non-zero for the frames of a LATEST stream (one number per stream): a
  // newer call of the same stream supersedes this one while it waits.
  uint64_t latest_stream = 0;
  // The frame id, to name the superseding frame.
  uint64_t frame_id = 0;
  // The order in which the engine received the call: of two calls of one
  // LATEST stream, the later arrival supersedes the other, whichever reaches
  // the queue first (a call waiting for its volume to load reaches it late).
  uint64_t arrival = 0;
  // A later step of work the engine admitted already (a registration's next
  // iteration): queued even when the queue is full, so that admitted work
  // runs to its end. Each such piece of work has at most one call waiting at
  // a time, and the streams that carry it are limited, so the queue's bound
  // is exceeded by at most that many calls (each held in the memory budget).
  bool continuation = false;
};

// One batch of poses of one volume.
struct RenderCall {
  std::string volume_id;
  // When the caller stops waiting (the gRPC deadline, or a stream frame's
  // frame_deadline_us if earlier). A call still queued then is answered
  // DEADLINE_EXCEEDED and not rendered; a running one stops early, or its
  // images are dropped, and it is answered DEADLINE_EXCEEDED: no call is
  // answered OK after its deadline.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  // Set by the caller when it gives up (a cancelled RPC). A call still queued
  // then is answered CANCELLED and not rendered; a running one stops early.
  std::shared_ptr<const std::atomic<bool>> cancelled;
  Scheduling scheduling;
  std::vector<PoseSpec> poses;
  // One shared by every pose, or one per pose (all of the same size).
  std::vector<geometry::Intrinsics> intrinsics{geometry::Intrinsics{}};
  int n_samples = defaults::kSamples;
  kernels::Projector projector = kernels::Projector::kTrilinear;
  kernels::Sampler sampler = kernels::Sampler::kExact;
  kernels::Sampling sampling = kernels::Sampling::kSegment;
  bool soft_labels = false;
  OutputKind output = OutputKind::kLineIntegral;
  kernels::StorageType image_dtype = kernels::StorageType::kFloat32;
  kernels::StorageType volume_storage = kernels::StorageType::kFloat32;
  kernels::AttenuationParams attenuation;
  ChannelSelection channels;
  CallKind kind;

  // The vector–Jacobian product asked for, or nullptr.
  const GradientRequest* gradient() const {
    return std::get_if<GradientRequest>(&kind);
  }
  // The loss asked for, or nullptr.
  const LossRequest* loss() const { return std::get_if<LossRequest>(&kind); }
  // Whether the full Jacobian is asked for.
  bool jacobian() const {
    return std::holds_alternative<JacobianRequest>(kind);
  }

  // The intrinsics of pose `i`.
  const geometry::Intrinsics& intrinsics_of(int i) const {
    return intrinsics.size() == 1 ? intrinsics[0] : intrinsics[i];
  }
};

// Rendered images, float32 [batch, channels, height, width] (to be encoded
// as `dtype`), and where the time went.
struct RenderResult {
  std::vector<float> images;
  kernels::StorageType dtype = kernels::StorageType::kFloat32;
  int batch = 0;
  int channels = 1;
  int height = 0;
  int width = 0;
  // One per pose when the call asked for a gradient or a loss.
  std::vector<PoseGradient> gradients;
  // One per pose when the call asked for a loss.
  std::vector<double> losses;
  // Where the time went: waiting in the queue, waiting for its batch to
  // fill, the batch's launches, and the call's own work after them (channels,
  // losses, gradients).
  double queue_seconds = 0;
  double batch_wait_seconds = 0;
  double render_seconds = 0;
  double post_seconds = 0;
  // Poses of the launch this call's images came from (its own and others').
  int launch_poses = 0;
};

// OK while `call`'s caller still wants it; DEADLINE_EXCEEDED or CANCELLED
// (saying `when`, e.g. "in the render queue") once its deadline has passed
// or its caller has given up.
absl::Status StillWanted(const RenderCall& call, absl::string_view when);

// Checks everything about `call` that does not need the volume: batch size,
// image sizes, samples, finite intrinsics, poses and attenuation. Malformed
// values are INVALID_ARGUMENT naming the field (as the API spells it); sizes
// over `limits` are RESOURCE_EXHAUSTED.
absl::Status ValidateRenderCall(const RenderCall& call, const Limits& limits);

// Camera→world of `pose`; `volume_center` is the isocenter when the pose
// names none.
geometry::Mat4d ResolvePose(const PoseSpec& pose,
                            const geometry::Vec3d& volume_center);

// The parameter Jacobian of `pose`: d(rt_inv)/dθ as 16 × k values (row r·4+c
// of rt_inv, column k of θ = rotation values then translation), by central
// differences of ResolvePose in float64 (relative error ~1e-9).
std::vector<double> PoseParameterJacobian(const PoseSpec& pose,
                                          const geometry::Vec3d& volume_center);

// The images of `result` as little-endian bytes of result.dtype.
std::string EncodeImages(const RenderResult& result);

}  // namespace drr::server
