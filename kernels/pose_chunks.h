// How the CUDA executor splits a call's poses into launches: launches large
// enough to fill the GPU, bounded so that the stop check is asked often
// enough and so that a workspace's device memory does not grow with the
// call, whose results cross to the host while the next launch runs.
// Host-only arithmetic, tested on every build.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace drr::kernels {

// The size of each piece of results staged through pinned host memory.
inline constexpr size_t kStagingPieceBytes = size_t{2} << 20;

// Waves of threads (as many as the GPU holds at once) a launch holds at
// least, unless the call has fewer poses: a launch's last, partial wave then
// idles at most a sixteenth of its time.
inline constexpr int64_t kLaunchWaves = 16;

// Ray samples (pixels × samples per ray) of a launch beyond those waves, at
// most (unless a single pose has more): a call nobody wants any more stops
// within about this much work. 13 poses of the reference case (200 × 200
// pixels, 500 samples), about 0.35 ms of kernel time on an H200.
inline constexpr int64_t kLaunchRaySamples = int64_t{1} << 28;

// Bytes of device memory a launch's poses take at most (their results, or
// the upstream gradients and partials a pose gradient reads), unless a single
// pose takes more, whatever the other bounds ask: a workspace holds two
// launches' results, so a call of any size needs at most twice this. 838
// poses of the reference case's images; 10 of a 512 × 512 Jacobian (48 bytes
// a pixel) at 8 samples a ray, where the samples' bound would take 128.
inline constexpr int64_t kLaunchBytes = int64_t{128} << 20;

// A batch of `n_poses` poses in `count` launches of `size` consecutive poses
// each (the last one may hold fewer).
struct PoseChunks {
  int n_poses = 0;
  int size = 1;
  int count = 0;

  // The first pose of launch `chunk`, and how many it holds.
  int first(int chunk) const { return chunk * size; }
  int poses(int chunk) const { return std::min(size, n_poses - first(chunk)); }
};

// What one pose costs a launch, and what the GPU holds at once.
struct LaunchCost {
  // Ray samples of one pose's image (a Siddon ray counting the most voxels
  // it can cross).
  int64_t samples_per_pose = 1;
  // Threads the kernel runs for one pose.
  int64_t threads_per_pose = 1;
  // Threads the GPU runs at once: multiprocessors × threads each.
  int64_t wave_threads = 1;
  // Bytes of device memory one pose takes (kLaunchBytes).
  int64_t bytes_per_pose = 0;
};

// The fewest launches that each hold at most the poses of kLaunchRaySamples
// samples or of kLaunchWaves waves of threads, whichever is more, and at most
// the poses of kLaunchBytes (but at least one pose). All but the last hold
// the same number of poses, the smallest that this count of launches allows.
inline PoseChunks ChunkPoses(int n_poses, const LaunchCost& cost) {
  if (n_poses <= 0) return PoseChunks{};
  auto at_least_one = [](int64_t n) { return std::max<int64_t>(1, n); };
  const int64_t threads = at_least_one(cost.threads_per_pose);
  const int64_t filling =
      (kLaunchWaves * at_least_one(cost.wave_threads) + threads - 1) / threads;
  const int64_t fitting =
      std::min(std::max(filling, kLaunchRaySamples /
                                     at_least_one(cost.samples_per_pose)),
               kLaunchBytes / at_least_one(cost.bytes_per_pose));
  const int64_t poses = n_poses;
  const int64_t fewest =
      (poses + at_least_one(fitting) - 1) / at_least_one(fitting);
  const int64_t size = (poses + fewest - 1) / fewest;
  return PoseChunks{n_poses, static_cast<int>(size),
                    static_cast<int>((poses + size - 1) / size)};
}

}  // namespace drr::kernels
