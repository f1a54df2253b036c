// How the CUDA executor splits a batch's poses into launches, so that the
// results of one launch cross to the host while the next one runs. Host-only
// arithmetic, tested on every build.
#pragma once

#include <algorithm>
#include <cstddef>

namespace drr::kernels {

// The results one launch writes, at most (unless a single pose writes more),
// and the size of each piece staged through pinned host memory. Small enough
// that the last launch's copy, which no launch overlaps, stays short; large
// enough that a launch of 200 × 200-pixel images holds 13 poses, about 25
// waves of blocks on an H200, so a launch's tail idles little of the GPU.
inline constexpr size_t kLaunchResultBytes = size_t{2} << 20;

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

// The fewest launches of at most `max_bytes` of results each (one pose per
// launch when a pose's results are larger). All but the last hold the same
// number of poses, the smallest that this count of launches allows.
inline PoseChunks ChunkPoses(int n_poses, size_t bytes_per_pose,
                             size_t max_bytes = kLaunchResultBytes) {
  if (n_poses <= 0) return PoseChunks{};
  const size_t fitting =
      std::max<size_t>(1, max_bytes / std::max<size_t>(1, bytes_per_pose));
  const size_t poses = static_cast<size_t>(n_poses);
  const size_t fewest = (poses + fitting - 1) / fitting;
  const size_t size = (poses + fewest - 1) / fewest;
  return PoseChunks{n_poses, static_cast<int>(size),
                    static_cast<int>((poses + size - 1) / size)};
}

}  // namespace drr::kernels
