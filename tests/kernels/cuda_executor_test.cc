// Device results against the CPU executor (the reference), on GPU hosts only.
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/executor.h"
#include "kernels/pose.h"
#include "tests/kernels/test_volumes.h"

namespace drr::kernels {
namespace {

TEST(CudaExecutorTest, MatchesTheCpuExecutor) {
  std::string why;
  std::unique_ptr<Executor> cuda = MakeCudaExecutor(&why);
  if (!cuda) GTEST_SKIP() << "no CUDA device: " << why;
  const VolumeShape shape{61, 47, 37};
  const std::vector<float> volume =
      testing::WavyVolume(shape.nx, shape.ny, shape.nz);
  Intrinsics in;
  in.sdd = 400.0;
  in.delx = in.dely = 1.5;
  in.height = 37;
  in.width = 53;
  std::vector<PoseGeometry> poses;
  for (double angle : {0.0, 45.0, 170.0, -20.0}) {
    poses.push_back(
        MakePoseGeometry(Mat4d::Identity(),
                         MakeRtInv(EulerToMatrix("ZXY", {angle, 5, -3}, true),
                                   {0, 250, 0}, Orientation::kAP, {30, 23, 18}),
                         in));
  }
  const RaySettings s{in.height, in.width, 500};
  std::unique_ptr<Executor> cpu = MakeCpuExecutor(0);
  std::vector<float> expected(poses.size() * s.height * s.width);
  std::vector<float> actual(expected.size());
  std::shared_ptr<ResidentVolume> on_cpu, on_gpu;
  ASSERT_TRUE(cpu->MakeResident(volume.data(), shape, &on_cpu).ok());
  ASSERT_TRUE(cuda->MakeResident(volume.data(), shape, &on_gpu).ok());
  ASSERT_TRUE(cpu->Render(*on_cpu, poses.data(), 4, s, expected.data()).ok());
  const KernelStatus status =
      cuda->Render(*on_gpu, poses.data(), 4, s, actual.data());
  ASSERT_TRUE(status.ok()) << status.message();
  for (size_t i = 0; i < expected.size(); ++i) {
    // Only contraction into FMAs differs between host and device.
    ASSERT_NEAR(actual[i], expected[i], 1e-5f * std::fabs(expected[i]) + 1e-7f)
        << i;
  }
  // Determinism: the same launch gives the same bits.
  std::vector<float> again(expected.size());
  ASSERT_TRUE(cuda->Render(*on_gpu, poses.data(), 4, s, again.data()).ok());
  EXPECT_EQ(actual, again);
}

}  // namespace
}  // namespace drr::kernels
