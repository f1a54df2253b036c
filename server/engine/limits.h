// Every size the server accepts is bounded by these limits (design.md §6).
#pragma once

#include <chrono>
#include <cstdint>

namespace drr::server {

// Physically meaningful ranges of geometry and attenuation: values beyond
// them are refused (INVALID_ARGUMENT), so that no accepted request renders a
// non-finite pixel or overflows a conversion.
// Largest magnitude of a coordinate, distance or affine entry, in mm.
inline constexpr double kMaxMillimetres = 1e6;
// Smallest detector or voxel spacing, and source-to-detector distance, in mm.
inline constexpr double kMinSpacingMillimetres = 1e-6;
// Largest magnitude of a rotation parameter (degrees, radians or unitless).
inline constexpr double kMaxRotationParameter = 1e6;
// Largest magnitude of the HU→μ parameters mu_water and mu_bone (per mm).
inline constexpr double kMaxAttenuationPerMm = 1e3;
// Largest magnitude of a float32 voxel (HU or μ per mm).
inline constexpr double kMaxVoxelValue = 1e6;

// Bounds on untrusted input, set from flags.
struct Limits {
  // Largest number of voxels in one volume.
  int64_t max_volume_voxels = int64_t{512} * 512 * 1024;
  // Largest extent of a volume along any axis, in voxels.
  int64_t max_volume_dim = 2048;
  // Most volumes stored at once.
  int max_volumes = 64;
  // Most target images stored at once.
  int max_targets = 1024;
  // Most label classes in one volume (each is an image channel).
  int max_classes = 256;
  // Largest image side, in pixels.
  int max_image_side = 4096;
  // Most pixels in one image.
  int64_t max_image_pixels = int64_t{2048} * 2048;
  // Most samples per ray.
  int max_samples = 8192;
  // Most poses in one request.
  int max_batch = 256;
  // Most pixels (poses × height × width) in one request's output.
  int64_t max_output_pixels = int64_t{64} * 1024 * 1024;
  // Most requests waiting for the renderer; more are refused.
  int max_queued_requests = 256;
  // Most frames of one stream in flight before the server stops reading it.
  int max_frames_in_flight = 8;
  // Most volume uploads in progress at once.
  int max_concurrent_uploads = 8;
  // How long an upload may go without a chunk before it is cancelled.
  std::chrono::milliseconds upload_idle_timeout{30000};
};

}  // namespace drr::server
