// What every executor must do, run against each executor present (the CPU
// everywhere, CUDA where a device is usable): render batches with the shared
// per-ray bodies, split label channels, reduce to a maximum, store half
// precision within its rounding, give the same bits every time and with any
// number of concurrent workspaces, and refuse what it cannot do.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "geometry/pose.h"
#include "gtest/gtest.h"
#include "kernels/executor.h"
#include "kernels/volume_view.h"
#include "tests/kernels/executor_testing.h"
#include "tests/kernels/test_volumes.h"

namespace drr::kernels {
namespace {

using ::drr::geometry::EulerToMatrix;
using ::drr::geometry::Intrinsics;
using ::drr::geometry::MakeRtInv;
using ::drr::geometry::Mat4d;
using ::drr::geometry::Orientation;
using testing::MakeResident;
using testing::MakeWorkspace;
using testing::RenderImages;

constexpr VolumeShape kShape{17, 19, 21};

std::vector<PoseGeometry> ThreeViews() {
  Intrinsics in;
  in.sdd = 200.0;
  in.delx = in.dely = 0.8;
  in.height = 20;
  in.width = 24;
  std::vector<PoseGeometry> poses;
  for (double angle : {0.0, 30.0, -75.0}) {
    const Mat4d rt_inv = MakeRtInv(EulerToMatrix("ZXY", {angle, 10, 0}, true),
                                   {0, 120, 0}, Orientation::kAP, {8, 9, 10});
    poses.push_back(MakePoseGeometry(Mat4d::Identity(), rt_inv, in));
  }
  return poses;
}

// Classes 0..4 in slabs along x.
std::vector<uint16_t> SlabLabels() {
  std::vector<uint16_t> labels(kShape.voxels());
  for (size_t v = 0; v < labels.size(); ++v) labels[v] = (v % kShape.nx) / 4;
  return labels;
}

RenderSettings Settings(Projector projector, Reduce reduce, int channels) {
  RenderSettings s;
  s.rays = RaySettings{20, 24, 200};
  s.projector = projector;
  s.reduce = reduce;
  s.channels = channels;
  return s;
}

// Fails unless the 10 channels per pose of `split` (20×24 images) hold no
// negative value, leave classes 5..9 (which SlabLabels does not use) empty
// and add up to the one channel per pose of `total`.
void ExpectChannelsSumTo(const std::vector<float>& split,
                         const std::vector<float>& total) {
  const size_t plane = 20 * 24;
  ASSERT_EQ(split.size(), 10 * total.size());
  for (size_t p = 0; p < total.size() / plane; ++p) {
    for (size_t px = 0; px < plane; ++px) {
      float sum = 0;
      for (int c = 0; c < 10; ++c) {
        const float value = split[(p * 10 + c) * plane + px];
        EXPECT_GE(value, 0.0f);
        if (c >= 5) {
          EXPECT_EQ(value, 0.0f);
        }
        sum += value;
      }
      EXPECT_NEAR(sum, total[p * plane + px],
                  1e-5f * total[p * plane + px] + 1e-7f);
    }
  }
}

class ExecutorConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { executor_ = testing::MakeExecutor(GetParam()); }

  // How far this executor may be from the host's scalar ray body: the CPU
  // runs it as is, or in SIMD lanes with the same arithmetic; the GPU adds a
  // trilinear ray's samples in eight lanes rather than in order.
  float Tolerance(float expected) const {
    return GetParam() != "cuda" ? 0.0f : 2e-5f * std::fabs(expected) + 1e-6f;
  }

  std::unique_ptr<Executor> executor_;
};

TEST_P(ExecutorConformanceTest, RendersEveryPoseOfABatchWithTheSharedRayBody) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<PoseGeometry> poses = ThreeViews();
  auto resident = MakeResident(*executor_, volume, nullptr, kShape);
  for (auto [projector, sampling] :
       {std::pair{Projector::kTrilinear, Sampling::kSegment},
        std::pair{Projector::kTrilinear, Sampling::kClipped},
        std::pair{Projector::kSiddon, Sampling::kSegment}}) {
    RenderSettings s = Settings(projector, Reduce::kSum, 1);
    s.rays.sampling = sampling;
    const std::vector<float> out =
        RenderImages(*executor_, *resident, poses, s);
    const VolumeView<float> view{volume.data(), kShape.nx, kShape.ny,
                                 kShape.nz};
    for (size_t p = 0; p < poses.size(); ++p) {
      for (int v = 0; v < 20; ++v) {
        for (int u = 0; u < 24; ++u) {
          const float expected =
              projector == Projector::kSiddon
                  ? testing::SiddonIntegral(view, poses[p], v, u)
                  : testing::LineIntegral(view, poses[p], s.rays, v, u);
          ASSERT_NEAR(out[(p * 20 + v) * 24 + u], expected, Tolerance(expected))
              << p << " " << v << "," << u;
        }
      }
    }
  }
}

TEST_P(ExecutorConformanceTest, LabelChannelsSumToTheUnlabelledImage) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<uint16_t> labels = SlabLabels();  // classes 0..4
  const std::vector<PoseGeometry> poses = ThreeViews();
  auto resident = MakeResident(*executor_, volume, labels.data(), kShape);
  for (Projector projector : {Projector::kTrilinear, Projector::kSiddon}) {
    // 10 channels: two passes of 8; classes 5..9 are empty.
    const std::vector<float> split = RenderImages(
        *executor_, *resident, poses, Settings(projector, Reduce::kSum, 10));
    const std::vector<float> total = RenderImages(
        *executor_, *resident, poses, Settings(projector, Reduce::kSum, 1));
    ExpectChannelsSumTo(split, total);
  }
}

TEST_P(ExecutorConformanceTest,
       WithoutLabelsChannelZeroIsTheImageAndTheRestZero) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<PoseGeometry> poses = ThreeViews();
  auto resident = MakeResident(*executor_, volume, nullptr, kShape);
  for (Projector projector : {Projector::kTrilinear, Projector::kSiddon}) {
    for (Reduce reduce : {Reduce::kSum, Reduce::kMax}) {
      // 19 × 23 of the views' 20 × 24 pixels: no multiple of any tile, so
      // that a GPU's edge tiles hold pixels outside the image.
      RenderSettings s = Settings(projector, reduce, 1);
      s.rays.height = 19;
      s.rays.width = 23;
      const size_t plane = 19 * 23;
      const std::vector<float> image =
          RenderImages(*executor_, *resident, poses, s);
      s.channels = 3;
      const std::vector<float> split =
          RenderImages(*executor_, *resident, poses, s);
      ASSERT_EQ(split.size(), 3 * image.size());
      for (size_t p = 0; p < poses.size(); ++p) {
        for (size_t px = 0; px < plane; ++px) {
          ASSERT_EQ(split[(p * 3) * plane + px], image[p * plane + px])
              << p << " " << px;
          ASSERT_EQ(split[(p * 3 + 1) * plane + px], 0.0f) << p << " " << px;
          ASSERT_EQ(split[(p * 3 + 2) * plane + px], 0.0f) << p << " " << px;
        }
      }
    }
  }
}

TEST_P(ExecutorConformanceTest, ClippedAndWholeSegmentsApproachOneIntegral) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  std::vector<PoseGeometry> poses = ThreeViews();
  // And a view beside the volume, whose rays all miss it.
  Intrinsics in;
  in.sdd = 200.0;
  in.delx = in.dely = 0.8;
  in.height = 20;
  in.width = 24;
  poses.push_back(
      MakePoseGeometry(Mat4d::Identity(),
                       MakeRtInv(EulerToMatrix("ZXY", {0, 0, 0}, true),
                                 {0, 120, 0}, Orientation::kAP, {508, 9, 10}),
                       in));
  auto resident = MakeResident(*executor_, volume, nullptr, kShape);
  RenderSettings s = Settings(Projector::kTrilinear, Reduce::kSum, 1);
  // ~0.5 voxel between samples on whole segments, ~0.1 on clipped ones.
  s.rays.n_samples = 400;
  s.rays.sampling = Sampling::kClipped;
  const std::vector<float> clipped =
      RenderImages(*executor_, *resident, poses, s);
  s.rays.n_samples = 4000;
  s.rays.sampling = Sampling::kSegment;
  const std::vector<float> whole =
      RenderImages(*executor_, *resident, poses, s);
  const float peak = *std::max_element(whole.begin(), whole.end());
  ASSERT_GT(peak, 0.0f);
  int missed = 0;
  for (size_t i = 0; i < whole.size(); ++i) {
    ASSERT_NEAR(clipped[i], whole[i], 1e-3f * peak) << i;
    // A ray that misses the volume's support has no samples: exactly zero.
    if (whole[i] == 0.0f) {
      EXPECT_EQ(clipped[i], 0.0f) << i;
      ++missed;
    }
  }
  EXPECT_GE(missed, 20 * 24);  // the view beside the volume
}

TEST_P(ExecutorConformanceTest, SoftLabelChannelsSumToTheUnlabelledImage) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<uint16_t> labels = SlabLabels();  // classes 0..4
  const std::vector<PoseGeometry> poses = ThreeViews();
  auto resident = MakeResident(*executor_, volume, labels.data(), kShape);
  for (Sampling sampling : {Sampling::kSegment, Sampling::kClipped}) {
    RenderSettings s = Settings(Projector::kTrilinear, Reduce::kSum, 10);
    s.rays.sampling = sampling;
    s.rays.soft_labels = true;
    const std::vector<float> soft =
        RenderImages(*executor_, *resident, poses, s);
    s.rays.soft_labels = false;
    const std::vector<float> hard =
        RenderImages(*executor_, *resident, poses, s);
    s.channels = 1;
    const std::vector<float> total =
        RenderImages(*executor_, *resident, poses, s);
    ExpectChannelsSumTo(soft, total);
    // Rays cross the slabs' faces, where a sample's neighbours split: there
    // the soft channels differ from the nearest label's.
    const int plane = 20 * 24;
    int split = 0;
    for (size_t p = 0; p < poses.size(); ++p) {
      for (int px = 0; px < plane; ++px) {
        bool differs = false;
        for (int c = 0; c < 5; ++c) {
          const size_t i = (p * 10 + c) * plane + px;
          differs |=
              std::fabs(soft[i] - hard[i]) > 1e-4f * total[p * plane + px];
        }
        split += differs;
      }
    }
    EXPECT_GT(split, plane / 4);
  }
}

TEST_P(ExecutorConformanceTest, SoftLabelsOfOneClassAreTheWholeImage) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<uint16_t> labels(kShape.voxels(), 1);
  const std::vector<PoseGeometry> poses = ThreeViews();
  auto resident = MakeResident(*executor_, volume, labels.data(), kShape);
  RenderSettings s = Settings(Projector::kTrilinear, Reduce::kSum, 2);
  s.rays.soft_labels = true;
  const std::vector<float> soft = RenderImages(*executor_, *resident, poses, s);
  s.channels = 1;
  const std::vector<float> total =
      RenderImages(*executor_, *resident, poses, s);
  const int plane = 20 * 24;
  for (size_t p = 0; p < poses.size(); ++p) {
    for (int px = 0; px < plane; ++px) {
      EXPECT_EQ(soft[(p * 2) * plane + px], 0.0f);
      EXPECT_NEAR(soft[(p * 2 + 1) * plane + px], total[p * plane + px],
                  1e-5f * total[p * plane + px] + 1e-7f);
    }
  }
}

TEST_P(ExecutorConformanceTest, MaximumIntensityIsTheLargestSample) {
  std::vector<float> volume(kShape.voxels(), 0.01f);
  volume[(10 * kShape.ny + 9) * kShape.nx + 8] =
      0.5f;  // one bright voxel at (8, 9, 10)
  const std::vector<PoseGeometry> poses = ThreeViews();
  auto resident = MakeResident(*executor_, volume, nullptr, kShape);
  for (Projector projector : {Projector::kTrilinear, Projector::kSiddon}) {
    const std::vector<float> mip = RenderImages(
        *executor_, *resident, poses, Settings(projector, Reduce::kMax, 1));
    float brightest = 0;
    for (float v : mip) {
      EXPECT_GE(v, 0.0f);
      EXPECT_LE(v, 0.5f + 1e-6f);
      brightest = std::max(brightest, v);
    }
    EXPECT_GT(brightest, 0.1f);  // some ray passes near the bright voxel
  }
}

TEST_P(ExecutorConformanceTest,
       MaximumIntensityPerClassCountsOtherClassesAsZero) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<uint16_t> labels = SlabLabels();  // classes 0..4
  const std::vector<PoseGeometry> poses = ThreeViews();
  auto resident = MakeResident(*executor_, volume, labels.data(), kShape);
  for (Projector projector : {Projector::kTrilinear, Projector::kSiddon}) {
    // Two samples (the segment's ends, outside the volume) meet one class at
    // most: every other channel must be 0, not the -inf of an empty maximum.
    for (int samples : {2, 200}) {
      RenderSettings s = Settings(projector, Reduce::kMax, 10);
      s.rays.n_samples = samples;
      const std::vector<float> split =
          RenderImages(*executor_, *resident, poses, s);
      s.channels = 1;
      const std::vector<float> whole =
          RenderImages(*executor_, *resident, poses, s);
      const size_t plane = 20 * 24;
      for (size_t p = 0; p < poses.size(); ++p) {
        for (size_t px = 0; px < plane; ++px) {
          float largest = 0;
          for (int c = 0; c < 10; ++c) {
            const float value = split[(p * 10 + c) * plane + px];
            ASSERT_TRUE(std::isfinite(value)) << samples << " " << c;
            if (c >= 5) {
              EXPECT_EQ(value, 0.0f);
            }
            largest = std::max(largest, value);
          }
          EXPECT_EQ(largest, whole[p * plane + px]);
        }
      }
    }
  }
}

TEST_P(ExecutorConformanceTest, HalfPrecisionStorageStaysWithinItsRounding) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<PoseGeometry> poses = ThreeViews();
  const RenderSettings s = Settings(Projector::kTrilinear, Reduce::kSum, 1);
  const std::vector<float> exact = RenderImages(
      *executor_, *MakeResident(*executor_, volume, nullptr, kShape), poses, s);
  // Relative rounding of one stored value: 2⁻¹¹ (float16), 2⁻⁸ (bfloat16).
  for (auto [storage, bound] :
       {std::pair{StorageType::kFloat16, 1.0f / 2048},
        std::pair{StorageType::kBFloat16, 1.0f / 256}}) {
    auto resident = MakeResident(*executor_, volume, nullptr, kShape, storage);
    EXPECT_EQ(resident->storage(), storage);
    const std::vector<float> half =
        RenderImages(*executor_, *resident, poses, s);
    for (size_t i = 0; i < exact.size(); ++i) {
      ASSERT_NEAR(half[i], exact[i], bound * exact[i] + 1e-7f) << i;
    }
  }
}

TEST_P(ExecutorConformanceTest, GivesTheSameBitsInConcurrentWorkspaces) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<uint16_t> labels = SlabLabels();
  const std::vector<PoseGeometry> poses = ThreeViews();
  auto resident = MakeResident(*executor_, volume, labels.data(), kShape);
  const RenderSettings s = Settings(Projector::kTrilinear, Reduce::kSum, 5);
  const std::vector<float> upstream(poses.size() * 5 * 20 * 24, 0.25f);
  const std::vector<float> images =
      RenderImages(*executor_, *resident, poses, s);
  const std::vector<double> gradient =
      testing::PoseGradients(*executor_, *resident, poses, s, upstream);
  // Four callers, each with its own workspace, at once.
  std::vector<std::vector<float>> images_seen(4);
  std::vector<std::vector<double>> gradients_seen(4);
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      images_seen[t] = RenderImages(*executor_, *resident, poses, s);
      gradients_seen[t] =
          testing::PoseGradients(*executor_, *resident, poses, s, upstream);
    });
  }
  for (std::thread& caller : callers) caller.join();
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(images_seen[t], images) << "caller " << t;
    EXPECT_EQ(gradients_seen[t], gradient) << "caller " << t;
  }
}

TEST_P(ExecutorConformanceTest, ResidentVolumeReportsWhatItHolds) {
  const std::vector<float> volume(kShape.voxels(), 1.0f);
  const std::vector<uint16_t> labels = SlabLabels();
  auto resident = MakeResident(*executor_, volume, labels.data(), kShape,
                               StorageType::kFloat16);
  EXPECT_EQ(resident->shape().voxels(), kShape.voxels());
  EXPECT_EQ(resident->resident_bytes(), kShape.voxels() * 4);
  EXPECT_TRUE(resident->has_labels());
  EXPECT_FALSE(resident->has_texture());
  EXPECT_FALSE(resident->has_quads());
  EXPECT_EQ(resident->storage(), StorageType::kFloat16);
  EXPECT_EQ(resident->buffers().space, executor_->space());
  EXPECT_EQ(executor_->name(), GetParam());
  // Quads hold four values of the storage type a voxel.
  auto with_quads = MakeResident(*executor_, volume, labels.data(), kShape,
                                 Residency{StorageType::kFloat16, false, true});
  EXPECT_TRUE(with_quads->has_quads());
  EXPECT_EQ(with_quads->resident_bytes(), kShape.voxels() * (2 + 2 + 8));
}

TEST_P(ExecutorConformanceTest, RefusesGradientsOfModesWithoutOne) {
  const std::vector<float> volume(kShape.voxels(), 0.01f);
  auto resident = MakeResident(*executor_, volume, nullptr, kShape);
  const std::vector<PoseGeometry> poses = ThreeViews();
  const std::vector<float> upstream(poses.size() * 20 * 24, 1.0f);
  std::vector<PoseMapGradient> grad(poses.size());
  std::vector<float> jacobian(upstream.size() * kPoseMapEntries);
  std::unique_ptr<Workspace> workspace = MakeWorkspace(*executor_);
  for (const RenderSettings& s :
       {Settings(Projector::kSiddon, Reduce::kMax, 1),
        Settings(Projector::kTrilinear, Reduce::kMax, 1)}) {
    EXPECT_EQ(executor_
                  ->PoseGradient(*resident, poses.data(), 3, s, upstream.data(),
                                 *workspace, grad.data())
                  .code(),
              KernelCode::kInvalidArgument);
    EXPECT_EQ(executor_
                  ->PoseJacobian(*resident, poses.data(), 3, s, *workspace,
                                 jacobian.data())
                  .code(),
              KernelCode::kInvalidArgument);
  }
}

TEST_P(ExecutorConformanceTest, RefusesSoftLabelsOnSiddonAndMaximum) {
  const std::vector<float> volume(kShape.voxels(), 0.01f);
  const std::vector<uint16_t> labels = SlabLabels();
  auto resident = MakeResident(*executor_, volume, labels.data(), kShape);
  const std::vector<PoseGeometry> poses = ThreeViews();
  std::vector<float> out(poses.size() * 5 * 20 * 24);
  std::unique_ptr<Workspace> workspace = MakeWorkspace(*executor_);
  for (RenderSettings s : {Settings(Projector::kSiddon, Reduce::kSum, 5),
                           Settings(Projector::kTrilinear, Reduce::kMax, 5)}) {
    s.rays.soft_labels = true;
    const KernelStatus status = executor_->Render(*resident, poses.data(), 3, s,
                                                  *workspace, out.data());
    EXPECT_EQ(status.code(), KernelCode::kInvalidArgument);
    EXPECT_EQ(status.message(),
              "soft labels need trilinear line integrals (not Siddon, not "
              "MIP)");
  }
}

TEST_P(ExecutorConformanceTest, TextureSamplerNeedsATexturedVolume) {
  const std::vector<float> volume(kShape.voxels(), 1.0f);
  auto resident = MakeResident(*executor_, volume, nullptr, kShape);
  RenderSettings s = Settings(Projector::kTrilinear, Reduce::kSum, 1);
  s.sampler = Sampler::kTexture;
  std::vector<float> out(20 * 24);
  const PoseGeometry pose = ThreeViews()[0];
  std::unique_ptr<Workspace> workspace = MakeWorkspace(*executor_);
  const KernelStatus status =
      executor_->Render(*resident, &pose, 1, s, *workspace, out.data());
  EXPECT_EQ(status.code(), KernelCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            GetParam() != "cuda"
                ? "the texture sampler needs the CUDA executor"
                : "the texture sampler needs a volume made resident with a "
                  "texture");
  if (GetParam() != "cuda") return;
  // A textured volume renders through the texture, but has no gradient.
  auto textured = MakeResident(*executor_, volume, nullptr, kShape,
                               StorageType::kFloat32, /*texture=*/true);
  PoseMapGradient grad;
  const std::vector<float> upstream(out.size(), 1.0f);
  const KernelStatus gradient = executor_->PoseGradient(
      *textured, &pose, 1, s, upstream.data(), *workspace, &grad);
  EXPECT_EQ(gradient.code(), KernelCode::kInvalidArgument);
  EXPECT_EQ(gradient.message(),
            "pose gradients need the exact sampler (or its quads), not the "
            "texture");
}

TEST_P(ExecutorConformanceTest, QuadsSamplerGivesTheExactSamplersBits) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<uint16_t> labels = SlabLabels();
  const std::vector<PoseGeometry> poses = ThreeViews();
  for (StorageType storage :
       {StorageType::kFloat32, StorageType::kFloat16, StorageType::kBFloat16}) {
    auto resident = MakeResident(*executor_, volume, labels.data(), kShape,
                                 Residency{storage, false, /*quads=*/true});
    ASSERT_TRUE(resident->has_quads());
    for (int channels : {1, 5}) {
      for (Reduce reduce : {Reduce::kSum, Reduce::kMax}) {
        for (Sampling sampling : {Sampling::kSegment, Sampling::kClipped}) {
          for (bool soft : {false, true}) {
            if (soft && (reduce != Reduce::kSum || channels == 1)) continue;
            RenderSettings s =
                Settings(Projector::kTrilinear, reduce, channels);
            s.rays.sampling = sampling;
            s.rays.soft_labels = soft;
            const std::vector<float> exact =
                RenderImages(*executor_, *resident, poses, s);
            s.sampler = Sampler::kQuads;
            const std::vector<float> quads =
                RenderImages(*executor_, *resident, poses, s);
            ASSERT_EQ(std::memcmp(quads.data(), exact.data(),
                                  exact.size() * sizeof(float)),
                      0)
                << "storage " << static_cast<int>(storage) << ", " << channels
                << " channels, reduce " << static_cast<int>(reduce)
                << ", sampling " << static_cast<int>(sampling) << ", soft "
                << soft;
          }
        }
      }
    }
    // Pose gradients and Jacobians of line integrals, with hard and soft
    // labels.
    for (int channels : {1, 5}) {
      for (Sampling sampling : {Sampling::kSegment, Sampling::kClipped}) {
        for (bool soft : {false, true}) {
          if (soft && channels == 1) continue;
          RenderSettings s =
              Settings(Projector::kTrilinear, Reduce::kSum, channels);
          s.rays.sampling = sampling;
          s.rays.soft_labels = soft;
          std::vector<float> upstream(poses.size() * channels * 20 * 24);
          for (size_t i = 0; i < upstream.size(); ++i)
            upstream[i] = 0.5f + 0.25f * static_cast<float>(i % 7);
          const std::vector<double> gradient =
              testing::PoseGradients(*executor_, *resident, poses, s, upstream);
          const std::vector<float> jacobian =
              testing::PoseJacobians(*executor_, *resident, poses, s);
          s.sampler = Sampler::kQuads;
          EXPECT_EQ(
              testing::PoseGradients(*executor_, *resident, poses, s, upstream),
              gradient)
              << "storage " << static_cast<int>(storage) << ", " << channels
              << " channels, sampling " << static_cast<int>(sampling)
              << ", soft " << soft;
          const std::vector<float> from_quads =
              testing::PoseJacobians(*executor_, *resident, poses, s);
          ASSERT_EQ(std::memcmp(from_quads.data(), jacobian.data(),
                                jacobian.size() * sizeof(float)),
                    0)
              << "storage " << static_cast<int>(storage) << ", " << channels
              << " channels, sampling " << static_cast<int>(sampling)
              << ", soft " << soft;
        }
      }
    }
    // Siddon reads the voxels under every sampler.
    RenderSettings siddon = Settings(Projector::kSiddon, Reduce::kSum, 1);
    const std::vector<float> exact =
        RenderImages(*executor_, *resident, poses, siddon);
    siddon.sampler = Sampler::kQuads;
    EXPECT_EQ(RenderImages(*executor_, *resident, poses, siddon), exact);
  }
}

TEST_P(ExecutorConformanceTest, QuadsSamplerNeedsAVolumeWithQuads) {
  const std::vector<float> volume(kShape.voxels(), 1.0f);
  auto resident = MakeResident(*executor_, volume, nullptr, kShape);
  EXPECT_FALSE(resident->has_quads());
  RenderSettings s = Settings(Projector::kTrilinear, Reduce::kSum, 1);
  s.sampler = Sampler::kQuads;
  std::vector<float> out(20 * 24);
  const PoseGeometry pose = ThreeViews()[0];
  std::unique_ptr<Workspace> workspace = MakeWorkspace(*executor_);
  const KernelStatus status =
      executor_->Render(*resident, &pose, 1, s, *workspace, out.data());
  EXPECT_EQ(status.code(), KernelCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "the quads sampler needs a volume made resident with quads");
  // So do pose gradients and Jacobians.
  PoseMapGradient grad;
  const std::vector<float> upstream(out.size(), 1.0f);
  const KernelStatus gradient = executor_->PoseGradient(
      *resident, &pose, 1, s, upstream.data(), *workspace, &grad);
  EXPECT_EQ(gradient.code(), KernelCode::kInvalidArgument);
  EXPECT_EQ(gradient.message(), status.message());
  std::vector<float> jacobian(out.size() * kPoseMapEntries);
  const KernelStatus jacobians = executor_->PoseJacobian(
      *resident, &pose, 1, s, *workspace, jacobian.data());
  EXPECT_EQ(jacobians.code(), KernelCode::kInvalidArgument);
  EXPECT_EQ(jacobians.message(), status.message());
}

INSTANTIATE_TEST_SUITE_P(Executors, ExecutorConformanceTest,
                         ::testing::ValuesIn(testing::AvailableExecutors()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(CpuExecutorTest, ResultsDoNotDependOnTheThreadCount) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  const std::vector<PoseGeometry> poses = ThreeViews();
  const RenderSettings s = Settings(Projector::kTrilinear, Reduce::kSum, 1);
  std::unique_ptr<Executor> one = MakeCpuExecutor(1),
                            three = MakeCpuExecutor(3);
  EXPECT_EQ(RenderImages(*one, *MakeResident(*one, volume, nullptr, kShape),
                         poses, s),
            RenderImages(*three, *MakeResident(*three, volume, nullptr, kShape),
                         poses, s));
}

TEST(CpuExecutorTest, RefusesTexturesAndVolumesOfOtherMemorySpaces) {
  std::unique_ptr<Executor> cpu = MakeCpuExecutor(1);
  const std::vector<float> volume(kShape.voxels(), 1.0f);
  std::shared_ptr<const ResidentVolume> resident;
  EXPECT_EQ(cpu->MakeResident(volume.data(), nullptr, kShape,
                              Residency{StorageType::kFloat32, true}, &resident)
                .code(),
            KernelCode::kInvalidArgument);
  // A handle that claims device memory is refused before anything reads it.
  VolumeBuffers device;
  device.space = MemorySpace::kCuda;
  device.shape = kShape;
  device.voxels = volume.data();
  const ResidentVolume foreign(device, 0, nullptr);
  const PoseGeometry pose = ThreeViews()[0];
  std::vector<float> out(20 * 24);
  std::unique_ptr<Workspace> workspace = MakeWorkspace(*cpu);
  const KernelStatus status = cpu->Render(
      foreign, &pose, 1, Settings(Projector::kTrilinear, Reduce::kSum, 1),
      *workspace, out.data());
  EXPECT_EQ(status.code(), KernelCode::kInternal);
  EXPECT_NE(status.message().find("CUDA memory"), std::string::npos)
      << status.message();
}

// A stop check that fires after `calls` questions stops each kind of call
// within a few pixels per thread, fails it with kCancelled, and leaves the
// workspace fit for the next call: on the vectorised path and the per-ray
// bodies alike, each over kStopTestThreads threads.
constexpr int kStopTestThreads = 2;
void ExpectStopsSoonAfterTheStopCheckFires(std::unique_ptr<Executor> cpu) {
  const std::vector<float> volume =
      testing::WavyVolume(kShape.nx, kShape.ny, kShape.nz);
  auto resident = MakeResident(*cpu, volume, nullptr, kShape);
  const std::vector<PoseGeometry> poses = ThreeViews();
  const RenderSettings s = Settings(Projector::kTrilinear, Reduce::kSum, 1);
  const size_t pixels = poses.size() * 20 * 24;
  std::vector<float> out(pixels * kPoseMapEntries);
  std::vector<PoseMapGradient> grad(poses.size());
  const std::vector<float> upstream(pixels, 1.0f);
  std::unique_ptr<Workspace> workspace = MakeWorkspace(*cpu);
  std::atomic<int> asked{0};
  workspace->set_stop_check([&asked] { return ++asked > 3; });

  EXPECT_EQ(
      cpu->Render(*resident, poses.data(), 3, s, *workspace, out.data()).code(),
      KernelCode::kCancelled);
  // Every question after the first "stop" comes from a thread that had not
  // yet seen it: at most one per thread.
  EXPECT_LE(asked.load(), 3 + kStopTestThreads);
  asked = 0;
  EXPECT_EQ(cpu->PoseGradient(*resident, poses.data(), 3, s, upstream.data(),
                              *workspace, grad.data())
                .code(),
            KernelCode::kCancelled);
  asked = 0;
  EXPECT_EQ(
      cpu->PoseJacobian(*resident, poses.data(), 3, s, *workspace, out.data())
          .code(),
      KernelCode::kCancelled);

  workspace->set_stop_check(nullptr);
  const std::vector<float> whole = RenderImages(*cpu, *resident, poses, s);
  std::vector<float> again(pixels);
  EXPECT_TRUE(
      cpu->Render(*resident, poses.data(), 3, s, *workspace, again.data())
          .ok());
  EXPECT_EQ(again, whole);
}

TEST(CpuExecutorTest, StopsACallSoonAfterItsStopCheckFires) {
  ExpectStopsSoonAfterTheStopCheckFires(MakeCpuExecutor(kStopTestThreads));
  ExpectStopsSoonAfterTheStopCheckFires(
      MakeScalarCpuExecutor(kStopTestThreads));
}

}  // namespace
}  // namespace drr::kernels
