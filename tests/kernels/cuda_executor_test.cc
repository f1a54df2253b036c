// Device results against the CPU executor (the reference), on GPU hosts
// only; executor_conformance_test.cc holds what both must do alike.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "geometry/pose.h"
#include "gtest/gtest.h"
#include "kernels/executor.h"
#include "kernels/pose_chunks.h"
#include "tests/kernels/executor_testing.h"
#include "tests/kernels/test_volumes.h"

namespace drr::kernels {
namespace {

using ::drr::geometry::EulerToMatrix;
using ::drr::geometry::Intrinsics;
using ::drr::geometry::MakeRtInv;
using ::drr::geometry::Mat4d;
using ::drr::geometry::Orientation;

constexpr VolumeShape kShape{61, 47, 37};

class CudaExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const KernelStatus cuda = MakeCudaExecutor(&cuda_);
    if (!cuda.ok()) GTEST_SKIP() << "no CUDA device: " << cuda.message();
    cpu_ = MakeCpuExecutor(0);
    volume_ = testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
    labels_.resize(kShape.voxels());
    for (size_t v = 0; v < labels_.size(); ++v)
      labels_[v] = (v % kShape.nx) / 6;  // 0..10
    Intrinsics in;
    in.sdd = 400.0;
    in.delx = in.dely = 1.5;
    in.height = 37;
    in.width = 53;
    for (double angle : {0.0, 45.0, 170.0, -20.0}) {
      poses_.push_back(MakePoseGeometry(
          Mat4d::Identity(),
          MakeRtInv(EulerToMatrix("ZXY", {angle, 5, -3}, true), {0, 250, 0},
                    Orientation::kAP, {30, 23, 18}),
          in));
    }
  }

  std::vector<float> Render(Executor& executor, StorageType storage,
                            const RenderSettings& s) {
    const Residency residency{storage, s.sampler == Sampler::kTexture,
                              s.sampler == Sampler::kQuads};
    return testing::RenderImages(
        executor,
        *testing::MakeResident(executor, volume_, labels_.data(), kShape,
                               residency),
        poses_, s);
  }

  std::unique_ptr<Executor> cuda_, cpu_;
  std::vector<float> volume_;
  std::vector<uint16_t> labels_;
  std::vector<PoseGeometry> poses_;
};

// The trilinear renderer's samplings, with and without soft labels.
std::vector<RaySettings> RayVariants() {
  return {RaySettings{37, 53, 500, Sampling::kSegment, false},
          RaySettings{37, 53, 500, Sampling::kClipped, false},
          RaySettings{37, 53, 500, Sampling::kSegment, true},
          RaySettings{37, 53, 500, Sampling::kClipped, true}};
}

TEST_F(CudaExecutorTest, MatchesTheCpuExecutorForEveryModeAndStorage) {
  for (Projector projector : {Projector::kTrilinear, Projector::kSiddon}) {
    for (Reduce reduce : {Reduce::kSum, Reduce::kMax}) {
      for (int channels : {1, 11}) {
        for (StorageType storage :
             {StorageType::kFloat32, StorageType::kFloat16,
              StorageType::kBFloat16}) {
          for (const RaySettings& rays : RayVariants()) {
            RenderSettings s;
            s.rays = rays;
            s.projector = projector;
            s.reduce = reduce;
            s.channels = channels;
            if (rays.soft_labels &&
                (projector == Projector::kSiddon || reduce == Reduce::kMax))
              continue;
            if (rays.sampling != Sampling::kSegment &&
                projector == Projector::kSiddon)
              continue;
            const std::vector<float> expected = Render(*cpu_, storage, s);
            const std::vector<float> actual = Render(*cuda_, storage, s);
            for (size_t i = 0; i < expected.size(); ++i) {
              // The device adds a trilinear ray's samples in eight lanes,
              // not in order, and walks a Siddon ray in eight pieces, each
              // voxel where one ends in two chords; otherwise it does the
              // host's arithmetic (neither contracts multiply-adds into
              // FMAs).
              ASSERT_NEAR(actual[i], expected[i],
                          2e-5f * std::fabs(expected[i]) + 1e-6f)
                  << i << " projector " << int(projector) << " reduce "
                  << int(reduce) << " sampling " << int(rays.sampling)
                  << " soft " << rays.soft_labels;
            }
          }
        }
      }
    }
  }
}

// The device's Jacobian within 10⁻⁴ of the CPU's (plus 10⁻⁶), relative to
// the largest derivative of the pixel in the same column of the pose map
// (k % 4: the camera's x, y, z, or the translation), whose entries share a
// scale. The device adds the parts of a ray's eight lanes in lane order, so
// an entry much smaller than its column's largest, a sum of parts that
// cancel, may differ relatively more than 10⁻⁴ of itself. (On the host, the
// lanes' parts of the inputs here, added as the device adds them, came
// within 0.44 of this bound.)
void ExpectJacobiansNear(const std::vector<float>& actual,
                         const std::vector<float>& expected,
                         const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t pixel = 0; pixel < expected.size(); pixel += kPoseMapEntries) {
    float column_scale[4] = {};
    for (int k = 0; k < kPoseMapEntries; ++k) {
      column_scale[k % 4] =
          std::max(column_scale[k % 4], std::fabs(expected[pixel + k]));
    }
    for (int k = 0; k < kPoseMapEntries; ++k) {
      ASSERT_NEAR(actual[pixel + k], expected[pixel + k],
                  1e-4f * column_scale[k % 4] + 1e-6f)
          << what << ": pixel " << pixel / kPoseMapEntries << " entry " << k;
    }
  }
}

TEST_F(CudaExecutorTest, PoseGradientAndJacobianMatchTheCpuExecutor) {
  // Every trilinear variant, and Siddon.
  std::vector<std::pair<Projector, RaySettings>> renders;
  for (const RaySettings& rays : RayVariants())
    renders.emplace_back(Projector::kTrilinear, rays);
  renders.emplace_back(Projector::kSiddon, RaySettings{37, 53, 2});
  for (int channels : {1, 11}) {
    for (const auto& [projector, rays] : renders) {
      RenderSettings s;
      s.projector = projector;
      s.rays = rays;
      s.channels = channels;
      std::vector<float> upstream(poses_.size() * channels * 37 * 53);
      for (size_t i = 0; i < upstream.size(); ++i)
        upstream[i] = std::sin(0.37f * i);
      auto on_cpu =
          testing::MakeResident(*cpu_, volume_, labels_.data(), kShape);
      auto on_gpu =
          testing::MakeResident(*cuda_, volume_, labels_.data(), kShape);
      const std::vector<double> expected =
          testing::PoseGradients(*cpu_, *on_cpu, poses_, s, upstream);
      const std::vector<double> actual =
          testing::PoseGradients(*cuda_, *on_gpu, poses_, s, upstream);
      ASSERT_EQ(actual.size(), expected.size());
      double scale = 0;
      for (double g : expected) scale = std::max(scale, std::fabs(g));
      for (size_t i = 0; i < expected.size(); ++i)
        EXPECT_NEAR(actual[i], expected[i], 1e-4 * scale);
      const std::vector<float> jacobian_cpu =
          testing::PoseJacobians(*cpu_, *on_cpu, poses_, s);
      const std::vector<float> jacobian_gpu =
          testing::PoseJacobians(*cuda_, *on_gpu, poses_, s);
      ExpectJacobiansNear(jacobian_gpu, jacobian_cpu,
                          "projector " + std::to_string(int(projector)) +
                              " sampling " +
                              std::to_string(int(rays.sampling)) + " soft " +
                              std::to_string(rays.soft_labels) + " channels " +
                              std::to_string(channels));
    }
  }
}

// `count` poses around the test volume, each turned 17° from the last, with
// images of `height` × `width` pixels that cover as much of it as 37 × 53.
std::vector<PoseGeometry> TurningPoses(int count, int height, int width) {
  Intrinsics in;
  in.sdd = 400.0;
  in.delx = in.dely = 1.5 * 37 / height;
  in.height = height;
  in.width = width;
  std::vector<PoseGeometry> poses;
  for (int i = 0; i < count; ++i) {
    poses.push_back(MakePoseGeometry(
        Mat4d::Identity(),
        MakeRtInv(EulerToMatrix("ZXY", {17.0 * i, 5, -3}, true), {0, 250, 0},
                  Orientation::kAP, {30, 23, 18}),
        in));
  }
  return poses;
}

// 1000 × 1024 pixels, 100 samples: two poses' samples fit a launch, as do
// the threads of 16 waves of any GPU up to 256 multiprocessors, and 128 MiB
// holds more than two poses' images or upstream images, so five poses go in
// three launches.
RenderSettings ThreeLaunchesOfFivePoses() {
  RenderSettings s;
  s.rays = RaySettings{1000, 1024, 100};
  const int64_t pixels = int64_t{1000} * 1024;
  for (int64_t wave_threads : {132 * 2048, 256 * 2048}) {
    EXPECT_EQ(ChunkPoses(5, {pixels * 100, pixels * 8, wave_threads,
                             2 * pixels * sizeof(float)})
                  .count,
              3);
  }
  return s;
}

// A call goes in launches, written into two device slots in turn, whose
// results cross to the host in pieces through two pinned buffers while the
// next launch runs (kernels/pose_chunks.h): three launches of several pieces
// each (the third waits for the first's slot), a stop between launches with
// copies in flight, a single launch, and a Jacobian of many pieces, all in
// one workspace (each call starts from the state the last one left), each
// checked value by value against the CPU.
TEST_F(CudaExecutorTest, ResultsOfManyLaunchesAndPiecesMatchTheCpuExecutor) {
  const RenderSettings s = ThreeLaunchesOfFivePoses();
  // A pose's image is 1.95 pieces, so pieces end inside images and launches.
  ASSERT_GT(sizeof(float) * s.rays.height * s.rays.width * 2,
            3 * kStagingPieceBytes);

  auto on_cpu = testing::MakeResident(*cpu_, volume_, labels_.data(), kShape);
  auto on_gpu = testing::MakeResident(*cuda_, volume_, labels_.data(), kShape);
  std::unique_ptr<Workspace> workspace = testing::MakeWorkspace(*cuda_);
  auto expect_renders = [&](const std::vector<PoseGeometry>& poses,
                            const RenderSettings& settings,
                            const std::vector<float>& expected) {
    std::vector<float> actual(expected.size(), -1.0f);
    testing::CheckOk(cuda_->Render(*on_gpu, poses.data(),
                                   static_cast<int>(poses.size()), settings,
                                   *workspace, actual.data()));
    for (size_t i = 0; i < expected.size(); ++i) {
      ASSERT_NEAR(actual[i], expected[i],
                  2e-5f * std::fabs(expected[i]) + 1e-6f)
          << "value " << i << " of " << poses.size() << " poses";
    }
  };
  const std::vector<PoseGeometry> five = TurningPoses(5, 1000, 1024);
  const std::vector<float> five_on_cpu =
      testing::RenderImages(*cpu_, *on_cpu, five, s);
  expect_renders(five, s, five_on_cpu);

  RenderSettings small = s;
  small.rays = RaySettings{37, 53, 200};
  small.channels = 11;
  const std::vector<PoseGeometry> two = TurningPoses(2, 37, 53);
  expect_renders(two, small, testing::RenderImages(*cpu_, *on_cpu, two, small));

  // Asked before the second launch and the third: stopped before the second,
  // and before the third with the first launch's last pieces in flight and
  // the second queued. Each time the next call on the workspace is whole.
  std::vector<float> unused(five_on_cpu.size());
  for (int stop_at : {1, 2}) {
    int asked = 0;
    workspace->set_stop_check([&asked, stop_at] { return ++asked == stop_at; });
    EXPECT_EQ(
        cuda_->Render(*on_gpu, five.data(), 5, s, *workspace, unused.data())
            .code(),
        KernelCode::kCancelled);
    EXPECT_EQ(asked, stop_at);
    workspace->set_stop_check(nullptr);
    expect_renders(five, s, five_on_cpu);
  }

  // One pose's Jacobian: 47 MiB, 23.4 pieces.
  const std::vector<PoseGeometry> one = {five[1]};
  const std::vector<float> expected =
      testing::PoseJacobians(*cpu_, *on_cpu, one, s);
  std::vector<float> actual(expected.size(), -1.0f);
  testing::CheckOk(cuda_->PoseJacobian(*on_gpu, one.data(), 1, s, *workspace,
                                       actual.data()));
  ExpectJacobiansNear(actual, expected, "one pose in many pieces");
}

// A pose gradient goes in launches too, each uploading its poses' upstream
// images into the buffer the last one read (three launches here), and stops
// between them; the next call on the workspace is whole.
TEST_F(CudaExecutorTest, PoseGradientOfManyLaunchesMatchesTheCpuExecutor) {
  const RenderSettings s = ThreeLaunchesOfFivePoses();
  const std::vector<PoseGeometry> five = TurningPoses(5, 1000, 1024);
  std::vector<float> upstream(five.size() * s.rays.height * s.rays.width);
  for (size_t i = 0; i < upstream.size(); ++i)
    upstream[i] = std::sin(0.37f * i);
  auto on_cpu = testing::MakeResident(*cpu_, volume_, labels_.data(), kShape);
  auto on_gpu = testing::MakeResident(*cuda_, volume_, labels_.data(), kShape);
  const std::vector<double> expected =
      testing::PoseGradients(*cpu_, *on_cpu, five, s, upstream);
  double scale = 0;
  for (double g : expected) scale = std::max(scale, std::fabs(g));

  std::unique_ptr<Workspace> workspace = testing::MakeWorkspace(*cuda_);
  std::vector<PoseMapGradient> grad = testing::UnwrittenGradients(five.size());
  int asked = 0;
  workspace->set_stop_check([&asked] { return ++asked == 2; });
  EXPECT_EQ(cuda_
                ->PoseGradient(*on_gpu, five.data(), 5, s, upstream.data(),
                               *workspace, grad.data())
                .code(),
            KernelCode::kCancelled);
  EXPECT_EQ(asked, 2);
  workspace->set_stop_check(nullptr);
  testing::CheckOk(cuda_->PoseGradient(
      *on_gpu, five.data(), 5, s, upstream.data(), *workspace, grad.data()));
  for (size_t pose = 0; pose < five.size(); ++pose) {
    for (int k = 0; k < kPoseMapEntries; ++k) {
      EXPECT_NEAR(grad[pose].d[k], expected[pose * kPoseMapEntries + k],
                  1e-4 * scale)
          << "pose " << pose << " entry " << k;
    }
  }
}

TEST_F(CudaExecutorTest, TextureSamplerStaysWithinItsDocumentedError) {
  RenderSettings s;
  s.rays = RaySettings{37, 53, 500};
  const std::vector<float> exact = Render(*cuda_, StorageType::kFloat32, s);
  s.sampler = Sampler::kTexture;
  const std::vector<float> texture = Render(*cuda_, StorageType::kFloat32, s);
  double worst = 0, peak = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    worst =
        std::max(worst, static_cast<double>(std::fabs(texture[i] - exact[i])));
    peak = std::max(peak, static_cast<double>(std::fabs(exact[i])));
  }
  // 8-bit interpolation weights: at most 2⁻⁹ of the local voxel contrast per
  // sample, which averages down along a ray (docs/renderer.md).
  EXPECT_LT(worst / peak, 2e-3) << "max relative error " << worst / peak;
}

TEST_F(CudaExecutorTest, QuadsBuiltOnTheDeviceGiveTheExactSamplersBits) {
  // Four views of every storage type through a larger volume than the
  // conformance test's, 500 samples a ray: most cells are sampled.
  for (StorageType storage :
       {StorageType::kFloat32, StorageType::kFloat16, StorageType::kBFloat16}) {
    for (int channels : {1, 11}) {
      RenderSettings s;
      s.rays = RaySettings{37, 53, 500};
      s.channels = channels;
      const std::vector<float> exact = Render(*cuda_, storage, s);
      s.sampler = Sampler::kQuads;
      EXPECT_EQ(Render(*cuda_, storage, s), exact)
          << "storage " << static_cast<int>(storage) << ", " << channels
          << " channels";
      // And the CPU's per-ray bodies on the quads it builds, within the
      // bound of MatchesTheCpuExecutorForEveryModeAndStorage.
      const std::vector<float> host = Render(*cpu_, storage, s);
      for (size_t i = 0; i < exact.size(); ++i)
        ASSERT_NEAR(exact[i], host[i], 2e-5f * std::fabs(host[i]) + 1e-6f)
            << i << " storage " << static_cast<int>(storage);
    }
  }
}

TEST_F(CudaExecutorTest, AnotherDeviceRendersAsDeviceZeroAndFreesOnItsOwn) {
  if (ProbeCuda().device_count < 2) GTEST_SKIP() << "fewer than two devices";
  std::unique_ptr<Executor> second;
  ASSERT_TRUE(MakeCudaExecutor(&second, 1).ok());
  RenderSettings s;
  s.rays = RaySettings{37, 53, 500};
  for (bool texture : {false, true}) {
    s.sampler = texture ? Sampler::kTexture : Sampler::kExact;
    std::shared_ptr<const ResidentVolume> on_second =
        testing::MakeResident(*second, volume_, labels_.data(), kShape,
                              StorageType::kFloat32, texture);
    const std::vector<float> other =
        testing::RenderImages(*second, *on_second, poses_, s);
    // Device 0 current again: the volume (and its texture) made on device 1
    // is freed from here, on its own device.
    const std::vector<float> first = Render(*cuda_, StorageType::kFloat32, s);
    on_second.reset();
    ASSERT_EQ(first.size(), other.size());
    for (size_t i = 0; i < first.size(); ++i) {
      ASSERT_NEAR(other[i], first[i], 1e-6f * std::fabs(first[i]) + 1e-7f)
          << "texture " << texture << " pixel " << i;
    }
    // Device 1 still renders the same after the free from device 0.
    EXPECT_EQ(Render(*second, StorageType::kFloat32, s), other);
  }
}

TEST_F(CudaExecutorTest, ADeviceThatIsNotThereIsUnavailable) {
  std::unique_ptr<Executor> missing;
  const KernelStatus status = MakeCudaExecutor(&missing, 1000);
  EXPECT_EQ(status.code(), KernelCode::kUnavailable);
  EXPECT_NE(status.message().find("no CUDA device 1000"), std::string::npos)
      << status.message();
}

}  // namespace
}  // namespace drr::kernels
