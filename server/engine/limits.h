// Every size the server accepts is bounded by these limits (design.md §6).
#pragma once

#include <chrono>
#include <cstdint>

namespace drr::server {

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
