// How the CUDA executor splits a call into launches (kernels/pose_chunks.h):
// plain arithmetic, so it is tested on every host.
#include "kernels/pose_chunks.h"

#include <algorithm>
#include <cstdint>

#include "gtest/gtest.h"

namespace drr::kernels {
namespace {

// An H200: 132 multiprocessors of 2048 threads.
constexpr int64_t kH200Wave = 132 * 2048;

// Every pose in exactly one launch, in order; no launch of more than one pose
// over both the samples' and the waves' bounds, nor over the bytes' bound;
// and no fewer launches possible.
void ExpectChunksCover(int n_poses, const LaunchCost& cost) {
  const PoseChunks chunks = ChunkPoses(n_poses, cost);
  int next = 0;
  for (int chunk = 0; chunk < chunks.count; ++chunk) {
    EXPECT_EQ(chunks.first(chunk), next) << chunk;
    const int poses = chunks.poses(chunk);
    ASSERT_GE(poses, 1) << chunk;
    EXPECT_LE(poses, chunks.size) << chunk;
    if (poses > 1) {
      // Within the samples' bound, or no more than the waves ask for.
      EXPECT_TRUE(poses * cost.samples_per_pose <= kLaunchRaySamples ||
                  (poses - 1) * cost.threads_per_pose <
                      kLaunchWaves * cost.wave_threads)
          << chunk;
      EXPECT_LE(poses * cost.bytes_per_pose, kLaunchBytes) << chunk;
    }
    next += poses;
  }
  EXPECT_EQ(next, n_poses);
  // As many poses in a launch as the larger bound allows: no fewer launches.
  const int64_t filling =
      (kLaunchWaves * cost.wave_threads + cost.threads_per_pose - 1) /
      cost.threads_per_pose;
  const int64_t fitting = std::max<int64_t>(
      1, std::min(std::max(filling, kLaunchRaySamples / cost.samples_per_pose),
                  kLaunchBytes / cost.bytes_per_pose));
  EXPECT_EQ(chunks.count, (n_poses + fitting - 1) / fitting)
      << n_poses << " poses of " << cost.samples_per_pose << " samples, "
      << cost.threads_per_pose << " threads and " << cost.bytes_per_pose
      << " bytes";
}

TEST(ChunkPosesTest, CoversEveryPoseOnceInTheFewestLaunches) {
  for (int n_poses : {1, 2, 7, 13, 14, 64, 255, 256, 1000}) {
    for (int64_t samples : {1, 40000, 20000000, 80000000, 1 << 30}) {
      for (int64_t threads : {1, 40000, 320000, 1 << 23}) {
        for (int64_t bytes : {4, 160000, 1920000, 200000000}) {
          ExpectChunksCover(n_poses, {samples, threads, kH200Wave, bytes});
        }
      }
    }
  }
}

TEST(ChunkPosesTest, TheReferenceCaseGoesInLaunchesOfThirteenPoses) {
  // 200 × 200 pixels, 500 samples a ray, eight threads a ray: 2·10⁷ samples
  // (13 poses to 2²⁸) and 320,000 threads (14 poses to 16 waves) a pose.
  const PoseChunks chunks = ChunkPoses(256, {20000000, 320000, kH200Wave});
  EXPECT_EQ(chunks.size, 14);
  EXPECT_EQ(chunks.count, 19);
  EXPECT_EQ(chunks.poses(18), 256 - 18 * 14);
}

TEST(ChunkPosesTest, LaunchesFillTheGpuEvenBeyondTheSamplesBound) {
  // Siddon, one thread a ray, some 1157 voxels a ray: 5 poses' samples fit
  // 2²⁸, but 16 waves need 109 poses.
  const PoseChunks chunks = ChunkPoses(256, {46280000, 40000, kH200Wave});
  EXPECT_EQ(chunks.count, 3);
  EXPECT_EQ(chunks.size, 86);
}

TEST(ChunkPosesTest, SpreadsPosesOverTheLaunchesItNeeds) {
  // 15 poses of which 14 fit a launch: two launches of 8 and 7, not 14 and 1.
  const PoseChunks chunks = ChunkPoses(15, {20000000, 320000, kH200Wave});
  EXPECT_EQ(chunks.count, 2);
  EXPECT_EQ(chunks.poses(0), 8);
  EXPECT_EQ(chunks.poses(1), 7);
}

TEST(ChunkPosesTest, PosesOverBothBoundsGoOneByOne) {
  const PoseChunks chunks =
      ChunkPoses(5, {kLaunchRaySamples + 1, 16 * kH200Wave, kH200Wave});
  EXPECT_EQ(chunks.count, 5);
  EXPECT_EQ(chunks.size, 1);
}

TEST(ChunkPosesTest, AJacobianOfFewSamplesARayStaysWithinTheBytesBound) {
  // 512 × 512 pixels, 8 samples a ray, eight threads a ray, 48 bytes a pixel:
  // 2²⁸ samples would take 128 poses (1.6 GB of Jacobians), 16 waves 3;
  // 128 MiB holds 10, so 256 poses go in 26 launches.
  const int64_t pixels = 512 * 512;
  const PoseChunks chunks =
      ChunkPoses(256, {pixels * 8, pixels * 8, kH200Wave, pixels * 48});
  EXPECT_EQ(chunks.count, 26);
  EXPECT_EQ(chunks.size, 10);
}

TEST(ChunkPosesTest, TheReferenceCasesJacobianGoesInLaunchesOfFourteenPoses) {
  // 200 × 200 pixels, 500 samples, eight threads a ray: as its render (16
  // waves take 14 poses), its 1.92 MB a pose far within the bytes' bound.
  const PoseChunks chunks =
      ChunkPoses(256, {20000000, 320000, kH200Wave, 40000 * 48});
  EXPECT_EQ(chunks.count, 19);
  EXPECT_EQ(chunks.size, 14);
}

TEST(ChunkPosesTest, FewSamplesARayDoNotMakeALaunchHoldTheWholeCall) {
  // 256 images of 2048 × 128 pixels at one sample a ray, eight threads a
  // ray: 2²⁸ samples and 16 waves would take every pose (256 MiB of images)
  // into one launch; 128 MiB holds 128 of them.
  const int64_t pixels = 2048 * 128;
  const PoseChunks chunks =
      ChunkPoses(256, {pixels, pixels * 8, kH200Wave, pixels * 4});
  EXPECT_EQ(chunks.count, 2);
  EXPECT_EQ(chunks.size, 128);
}

TEST(ChunkPosesTest, APoseOverTheBytesBoundGoesAlone) {
  // A 2048 × 2048 Jacobian: 201 MB a pose.
  const int64_t pixels = 2048 * 2048;
  const PoseChunks chunks =
      ChunkPoses(3, {pixels * 500, pixels, kH200Wave, pixels * 48});
  EXPECT_EQ(chunks.count, 3);
  EXPECT_EQ(chunks.size, 1);
}

TEST(ChunkPosesTest, NoPosesNoLaunches) {
  EXPECT_EQ(ChunkPoses(0, {20000000, 320000, kH200Wave}).count, 0);
}

}  // namespace
}  // namespace drr::kernels
