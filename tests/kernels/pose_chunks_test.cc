// How the CUDA executor splits a batch into launches (kernels/pose_chunks.h):
// plain arithmetic, so it is tested on every host.
#include "kernels/pose_chunks.h"

#include <cstddef>

#include "gtest/gtest.h"

namespace drr::kernels {
namespace {

// Every pose in exactly one launch, in order, each launch within
// `max_bytes` unless it holds a single pose, and no fewer launches possible.
void ExpectChunksCover(int n_poses, size_t bytes_per_pose, size_t max_bytes) {
  const PoseChunks chunks = ChunkPoses(n_poses, bytes_per_pose, max_bytes);
  int next = 0;
  for (int chunk = 0; chunk < chunks.count; ++chunk) {
    EXPECT_EQ(chunks.first(chunk), next) << chunk;
    const int poses = chunks.poses(chunk);
    ASSERT_GE(poses, 1) << chunk;
    EXPECT_LE(poses, chunks.size) << chunk;
    if (poses > 1) {
      EXPECT_LE(poses * bytes_per_pose, max_bytes) << chunk;
    }
    next += poses;
  }
  EXPECT_EQ(next, n_poses);
  const size_t fitting =
      bytes_per_pose > max_bytes ? 1 : max_bytes / bytes_per_pose;
  const size_t fewest = (n_poses + fitting - 1) / fitting;
  EXPECT_EQ(static_cast<size_t>(chunks.count), fewest)
      << n_poses << " poses of " << bytes_per_pose << " bytes";
}

TEST(ChunkPosesTest, CoversEveryPoseOnceInTheFewestLaunches) {
  for (int n_poses : {1, 2, 7, 13, 14, 64, 255, 256, 1000}) {
    for (size_t bytes_per_pose : {1, 4, 160000, 1 << 20, 3 << 20, 64 << 20}) {
      ExpectChunksCover(n_poses, bytes_per_pose, kLaunchResultBytes);
    }
  }
}

TEST(ChunkPosesTest, AFullLaunchOfTheReferenceImagesHoldsThirteenPoses) {
  // 200 × 200 float32 pixels, one channel: 160,000 bytes a pose.
  const PoseChunks chunks = ChunkPoses(256, 160000);
  EXPECT_EQ(chunks.count, 20);
  EXPECT_EQ(chunks.size, 13);
  EXPECT_EQ(chunks.poses(19), 256 - 19 * 13);
}

TEST(ChunkPosesTest, SpreadsPosesOverTheLaunchesItNeeds) {
  // 14 poses of which 13 fit a launch: two launches of 7, not 13 and 1.
  const PoseChunks chunks = ChunkPoses(14, 160000);
  EXPECT_EQ(chunks.count, 2);
  EXPECT_EQ(chunks.poses(0), 7);
  EXPECT_EQ(chunks.poses(1), 7);
}

TEST(ChunkPosesTest, PosesLargerThanALaunchGoOneByOne) {
  const PoseChunks chunks = ChunkPoses(5, kLaunchResultBytes + 1);
  EXPECT_EQ(chunks.count, 5);
  EXPECT_EQ(chunks.size, 1);
}

TEST(ChunkPosesTest, NoPosesNoLaunches) {
  EXPECT_EQ(ChunkPoses(0, 160000).count, 0);
}

}  // namespace
}  // namespace drr::kernels
