// The CPU executor's vectorised path against the per-ray bodies it must
// reproduce bit for bit (kernels/cpu_simd.h), trilinear and Siddon renders,
// pose gradients and Jacobians, one channel or split by hard or soft labels,
// and MIPs: every storage type, rays that
// graze the volume's faces or miss it, rows on its outermost voxel centres
// (where the trilinear interior run ends), widths that leave lanes idle,
// thin volumes, Siddon segments that begin and end inside the volume, a pose
// far outside the range any lane can index, a volume of more than 2³⁰
// voxels, and non-finite weights and voxels.
#include "kernels/cpu_simd.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "geometry/pose.h"
#include "gtest/gtest.h"
#include "kernels/executor.h"
#include "kernels/siddon.h"
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
using testing::RenderImages;

// Views of a volume of `shape` (voxels_per_unit voxels to a unit of the
// world along each axis, centred near the isocentre): perspective from
// several angles, close enough that rays enter and leave through every face
// (at 1 voxel to the unit), one shifted so that half the detector misses, and
// an orthographic one.
std::vector<PoseGeometry> ViewsOf(VolumeShape shape, int height, int width,
                                  double voxels_per_unit = 1.0) {
  Intrinsics in;
  in.sdd = 90.0;
  in.delx = in.dely = 0.9;
  in.height = height;
  in.width = width;
  const geometry::Vec3d centre{shape.nx / 2.0 / voxels_per_unit,
                               shape.ny / 2.0 / voxels_per_unit,
                               shape.nz / 2.0 / voxels_per_unit};
  Mat4d world_to_voxel = Mat4d::Identity();
  for (int axis = 0; axis < 3; ++axis)
    world_to_voxel.m[axis][axis] = voxels_per_unit;
  std::vector<PoseGeometry> poses;
  for (auto [alpha, beta, shift] :
       {std::tuple{0.0, 0.0, 0.0}, std::tuple{33.0, 12.0, 0.0},
        std::tuple{-71.0, 48.0, 0.0}, std::tuple{90.0, 0.0, 0.0},
        std::tuple{15.0, -20.0, 11.0}}) {
    const Mat4d rt_inv = MakeRtInv(EulerToMatrix("ZXY", {alpha, beta, 0}, true),
                                   {shift, 45, 0}, Orientation::kAP, centre);
    poses.push_back(MakePoseGeometry(world_to_voxel, rt_inv, in));
  }
  in.orthographic = true;
  poses.push_back(
      MakePoseGeometry(world_to_voxel,
                       MakeRtInv(EulerToMatrix("ZXY", {20, 5, 0}, true),
                                 {0, 45, 0}, Orientation::kAP, centre),
                       in));
  return poses;
}

// An orthographic detector of height × width pixels `spacing` apart, its
// plane `sdd` from the source's.
Intrinsics Orthographic(int height, int width, double spacing, double sdd) {
  Intrinsics in;
  in.sdd = sdd;
  in.delx = in.dely = spacing;
  in.height = height;
  in.width = width;
  in.orthographic = true;
  return in;
}

// A volume whose every voxel differs, so that a wrong corner shows: voxel v
// holds a value of (v · 2654435761) mod 2²⁰, a bijection on the 2²⁰ indices
// a test volume may have, scaled into [0.001, 0.021). (Stored as float16 or
// bfloat16, they round onto fewer levels, about 4400 and 550.)
std::vector<float> DistinctVoxels(VolumeShape shape) {
  constexpr size_t kLevels = size_t{1} << 20;
  EXPECT_LE(shape.voxels(), static_cast<long long>(kLevels));
  std::vector<float> mu(static_cast<size_t>(shape.voxels()));
  for (size_t v = 0; v < mu.size(); ++v)
    mu[v] = 0.001f + 0.02f * static_cast<float>((v * 2654435761u) % kLevels) /
                         static_cast<float>(kLevels);
  return mu;
}

// A label volume of `classes` classes scattered so that neighbouring voxels
// mostly differ, and a sample given a voxel other than its nearest shows.
std::vector<uint16_t> ScatteredLabels(VolumeShape shape, int classes) {
  std::vector<uint16_t> labels(static_cast<size_t>(shape.voxels()));
  for (size_t v = 0; v < labels.size(); ++v)
    labels[v] = static_cast<uint16_t>(((v * 2246822519u) >> 13) % classes);
  return labels;
}

// An anonymous mapping of `bytes` that commits memory only for the pages
// written (where the kernel overcommits; pages read before being written
// read as zeros); unmapped when it goes.
class SparseMapping {
 public:
  explicit SparseMapping(size_t bytes) : bytes_(bytes) {
    void* at = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (at == MAP_FAILED) {
      error_ = std::strerror(errno);
    } else {
      data_ = at;
    }
  }
  ~SparseMapping() {
    if (data_ != nullptr) munmap(data_, bytes_);
  }
  SparseMapping(const SparseMapping&) = delete;
  SparseMapping& operator=(const SparseMapping&) = delete;

  // The mapping's first byte, or nullptr where it could not be mapped.
  void* data() const { return data_; }
  // Why it could not be mapped, or "".
  const std::string& error() const { return error_; }

 private:
  const size_t bytes_;
  void* data_ = nullptr;
  std::string error_;
};

// What `run(executor, resident volume)` returns on the vectorised CPU
// executor and on the scalar one, for `mu` stored as `storage` (and
// `labels`, or nullptr).
template <class Run>
auto OnBothCpuExecutors(const std::vector<float>& mu, VolumeShape shape,
                        StorageType storage, Run run,
                        const uint16_t* labels = nullptr) {
  std::unique_ptr<Executor> simd = MakeCpuExecutor(2);
  std::unique_ptr<Executor> scalar = MakeScalarCpuExecutor(2);
  return std::pair{
      run(*simd, *MakeResident(*simd, mu, labels, shape, storage)),
      run(*scalar, *MakeResident(*scalar, mu, labels, shape, storage))};
}

// Fails unless `fast` holds the bits of `spec` (a NaN where `spec` has one).
template <typename T>
void ExpectSameBitsAs(const std::vector<T>& fast, const std::vector<T>& spec) {
  EXPECT_EQ(fast.size(), spec.size());
  for (size_t i = 0; i < fast.size() && i < spec.size(); ++i) {
    if (std::isnan(spec[i])) {
      EXPECT_TRUE(std::isnan(fast[i])) << "entry " << i;
    } else {
      EXPECT_EQ(std::memcmp(&fast[i], &spec[i], sizeof(T)), 0)
          << "entry " << i << ": " << fast[i] << " vs " << spec[i];
    }
  }
}

// The fraction of `values` that are not zero: of the pixels, gradient or
// Jacobian entries a comparison saw (callers check it, or the comparison
// proves little).
template <typename T>
double NonzeroFraction(const std::vector<T>& values) {
  int nonzero = 0;
  for (T value : values) nonzero += value != T{0};
  return static_cast<double>(nonzero) / static_cast<double>(values.size());
}

// The renders of `poses` by the vectorised and the scalar CPU executors
// (with `labels`, or without), which must hold the same bits; returns them.
std::vector<float> ExpectSameImageBits(const std::vector<float>& mu,
                                       VolumeShape shape, StorageType storage,
                                       const std::vector<PoseGeometry>& poses,
                                       const RenderSettings& settings,
                                       const uint16_t* labels = nullptr) {
  auto [fast, spec] = OnBothCpuExecutors(
      mu, shape, storage,
      [&](Executor& executor, const ResidentVolume& v) {
        return RenderImages(executor, v, poses, settings);
      },
      labels);
  ExpectSameBitsAs(fast, spec);
  return spec;
}

// ExpectSameImageBits without labels; returns the fraction of pixels that
// saw the volume.
double ExpectSameBits(const std::vector<float>& mu, VolumeShape shape,
                      StorageType storage,
                      const std::vector<PoseGeometry>& poses,
                      const RenderSettings& settings) {
  return NonzeroFraction(
      ExpectSameImageBits(mu, shape, storage, poses, settings));
}

// ExpectSameImageBits for a render split by `labels`; returns the smallest
// fraction of any channel's pixels that saw its class.
double ExpectSameChannelBits(const std::vector<float>& mu, VolumeShape shape,
                             StorageType storage,
                             const std::vector<PoseGeometry>& poses,
                             const RenderSettings& settings,
                             const std::vector<uint16_t>& labels) {
  const std::vector<float> images =
      ExpectSameImageBits(mu, shape, storage, poses, settings, labels.data());
  const size_t plane =
      static_cast<size_t>(settings.rays.height) * settings.rays.width;
  double least = 1.0;
  for (int c = 0; c < settings.channels; ++c) {
    std::vector<float> channel;
    for (size_t pose = 0; pose < poses.size(); ++pose) {
      const auto at = images.begin() + (pose * settings.channels + c) * plane;
      channel.insert(channel.end(), at, at + plane);
    }
    least = std::min(least, NonzeroFraction(channel));
  }
  return least;
}

// The MIP of `settings`' rays: each ray's largest sample.
RenderSettings Mip(RenderSettings settings) {
  settings.reduce = Reduce::kMax;
  return settings;
}

// A render of `settings` split into `channels` channels.
RenderSettings WithChannels(RenderSettings settings, int channels) {
  settings.channels = channels;
  return settings;
}

// `settings` split into `channels` channels by soft labels (nanodrr 0.1.7's:
// each trilinear corner of a sample to its own class).
RenderSettings SoftLabelled(RenderSettings settings, int channels) {
  settings.channels = channels;
  settings.rays.soft_labels = true;
  return settings;
}

RenderSettings Trilinear(int height, int width, int samples) {
  RenderSettings s;
  s.rays = RaySettings{height, width, samples};
  return s;
}

// nanodrr 0.1.7's sampling: the segment clipped to the volume's support.
RenderSettings Clipped(int height, int width, int samples) {
  RenderSettings s = Trilinear(height, width, samples);
  s.rays.sampling = Sampling::kClipped;
  return s;
}

RenderSettings Siddon(int height, int width) {
  RenderSettings s;
  s.rays = RaySettings{height, width, 2};
  s.projector = Projector::kSiddon;
  return s;
}

// Every differentiable render the vectorised path takes, of height × width
// pixels: trilinear, clipped (few samples: large derivatives through the
// clipped ends) and Siddon.
std::vector<RenderSettings> Differentiable(int height, int width) {
  return {Trilinear(height, width, 150), Clipped(height, width, 150),
          Clipped(height, width, 7), Siddon(height, width)};
}

// Runs every test on each instruction set the vectorised path has here
// (AVX-512, AVX2, SSE4, SSSE3, the portable fallback), and skips where
// there is none (a build without Highway).
class CpuSimdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (SimdTargets().empty()) GTEST_SKIP() << "no vectorised path here";
  }
  void TearDown() override { UseSimdTarget(""); }

  // Runs `check` once per instruction set.
  template <class F>
  void OnEveryTarget(F check) {
    for (const std::string& target : SimdTargets()) {
      SCOPED_TRACE(target);
      UseSimdTarget(target);
      ASSERT_STREQ(SimdTargetName(), target.c_str());
      check();
    }
  }
};

TEST(CpuSimdDispatchTest, VectorisedPathTakesTheSums) {
  const bool simd = std::string(SimdTargetName()) != "none";
  RenderSettings s = Trilinear(4, 4, 10);
  EXPECT_EQ(SimdRenders(s), simd);
  EXPECT_EQ(SimdDifferentiates(s), simd);
  // Renders split by label take it, and so do their gradients and Jacobians.
  s.channels = 2;
  EXPECT_EQ(SimdRenders(s), simd);
  EXPECT_EQ(SimdDifferentiates(s), simd);
  // MIPs take it too, split by label or not, without gradients.
  s.reduce = Reduce::kMax;
  EXPECT_EQ(SimdRenders(s), simd);
  EXPECT_FALSE(SimdDifferentiates(s));
  s.channels = 1;
  EXPECT_EQ(SimdRenders(s), simd);
  EXPECT_FALSE(SimdDifferentiates(s));
  s.reduce = Reduce::kSum;
  s.rays.sampling = Sampling::kClipped;
  EXPECT_EQ(SimdRenders(s), simd);
  EXPECT_EQ(SimdDifferentiates(s), simd);
  s.rays.sampling = Sampling::kSegment;
  // Soft labels too.
  s.rays.soft_labels = true;
  EXPECT_EQ(SimdRenders(s), simd);
  EXPECT_EQ(SimdDifferentiates(s), simd);
  s.rays.soft_labels = false;
  // The quads sampler runs the per-ray bodies on the quads (the vectorised
  // path reads the voxels), but for Siddon and soft labels, which read the
  // voxels under every sampler.
  s.sampler = Sampler::kQuads;
  EXPECT_FALSE(SimdRenders(s));
  EXPECT_FALSE(SimdDifferentiates(s));
  s.rays.soft_labels = true;
  EXPECT_EQ(SimdRenders(s), simd);
  EXPECT_EQ(SimdDifferentiates(s), simd);
  s.rays.soft_labels = false;
  s.projector = Projector::kSiddon;
  EXPECT_EQ(SimdRenders(s), simd);
  EXPECT_EQ(SimdDifferentiates(s), simd);
  s.projector = Projector::kTrilinear;
  s.sampler = Sampler::kExact;
  s.projector = Projector::kSiddon;
  EXPECT_EQ(SimdRenders(s), simd);
  EXPECT_EQ(SimdDifferentiates(s), simd);
}

TEST_F(CpuSimdTest, RendersGiveTheScalarBodysBitsInEveryStorageType) {
  OnEveryTarget([&] {
    const VolumeShape shape{23, 19, 17};
    const std::vector<float> mu = DistinctVoxels(shape);
    // 37 columns: a full span of 32 and 5 pixels that leave lanes idle.
    const std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 37);
    for (const RenderSettings& s :
         {Trilinear(9, 37, 150), Clipped(9, 37, 150), Siddon(9, 37),
          Mip(Trilinear(9, 37, 150)), Mip(Clipped(9, 37, 150)),
          Mip(Siddon(9, 37))}) {
      for (StorageType storage : {StorageType::kFloat32, StorageType::kFloat16,
                                  StorageType::kBFloat16}) {
        SCOPED_TRACE(static_cast<int>(storage));
        EXPECT_GT(ExpectSameBits(mu, shape, storage, poses, s), 0.5);
      }
    }
  });
}

// Renders split by `labels` into 3 and 5 channels (`three`, `five`) in
// every storage type, and `unlabelled` (2 channels) without labels, which
// must hold the scalar body's bits and see most pixels.
void ExpectSplitImageBits(const std::vector<float>& mu, VolumeShape shape,
                          const std::vector<PoseGeometry>& poses,
                          const std::vector<uint16_t>& labels,
                          const RenderSettings& three,
                          const RenderSettings& five,
                          const RenderSettings& unlabelled) {
  for (StorageType storage :
       {StorageType::kFloat32, StorageType::kFloat16, StorageType::kBFloat16}) {
    SCOPED_TRACE(static_cast<int>(storage));
    for (const RenderSettings& split : {three, five}) {
      EXPECT_GT(ExpectSameChannelBits(mu, shape, storage, poses, split, labels),
                0.5);
    }
  }
  EXPECT_GT(NonzeroFraction(ExpectSameImageBits(
                mu, shape, StorageType::kFloat32, poses, unlabelled)),
            0.25);
}

// Renders split by label: five classes scattered voxel by voxel, in three
// channels (classes 3 and 4 counted by none) and in five; and two channels
// of a volume without labels (the second zero).
TEST_F(CpuSimdTest, RendersSplitByLabelGiveTheScalarBodysBits) {
  OnEveryTarget([&] {
    const VolumeShape shape{23, 19, 17};
    const std::vector<float> mu = DistinctVoxels(shape);
    const std::vector<uint16_t> labels = ScatteredLabels(shape, 5);
    const std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 37);
    for (const RenderSettings& s :
         {Trilinear(9, 37, 150), Clipped(9, 37, 150), Siddon(9, 37)}) {
      ExpectSplitImageBits(mu, shape, poses, labels, WithChannels(s, 3),
                           WithChannels(s, 5), WithChannels(s, 2));
    }
  });
}

// MIPs split by label: five classes scattered voxel by voxel, in three
// channels (classes 3 and 4 in none: their samples join every channel's
// maximum as zeros) and in five, two channels of a volume without labels
// (the second zero), and twelve channels of twelve classes (two marches).
TEST_F(CpuSimdTest, MipsSplitByLabelGiveTheScalarBodysBits) {
  OnEveryTarget([&] {
    const VolumeShape shape{23, 19, 17};
    const std::vector<float> mu = DistinctVoxels(shape);
    const std::vector<uint16_t> labels = ScatteredLabels(shape, 5);
    const std::vector<uint16_t> twelve = ScatteredLabels(shape, 12);
    const std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 37);
    for (const RenderSettings& s :
         {Mip(Trilinear(9, 37, 150)), Mip(Clipped(9, 37, 150)),
          Mip(Siddon(9, 37))}) {
      ExpectSplitImageBits(mu, shape, poses, labels, WithChannels(s, 3),
                           WithChannels(s, 5), WithChannels(s, 2));
      EXPECT_GT(ExpectSameChannelBits(mu, shape, StorageType::kFloat32, poses,
                                      WithChannels(s, 12), twelve),
                0.5);
    }
  });
}

// More classes than one march of the vectorised path sums (256): 300
// channels take two, each of its own classes.
TEST_F(CpuSimdTest, RendersOfMoreClassesThanAMarchSumsGiveTheScalarBodysBits) {
  OnEveryTarget([&] {
    const VolumeShape shape{23, 19, 17};
    const std::vector<float> mu = DistinctVoxels(shape);
    const std::vector<uint16_t> labels = ScatteredLabels(shape, 300);
    const std::vector<PoseGeometry> poses = ViewsOf(shape, 3, 37);
    for (const RenderSettings& s :
         {Trilinear(3, 37, 150), Clipped(3, 37, 150), Siddon(3, 37)}) {
      for (StorageType storage :
           {StorageType::kFloat32, StorageType::kFloat16}) {
        SCOPED_TRACE(static_cast<int>(storage));
        const std::vector<float> images =
            ExpectSameImageBits(mu, shape, storage, {poses[0]},
                                WithChannels(s, 300), labels.data());
        // Classes on both sides of the passes' boundary were met.
        const size_t plane = 3 * 37;
        auto met = [&](int c) {
          const auto at = images.begin() + c * plane;
          return std::any_of(at, at + plane, [](float v) { return v != 0; });
        };
        EXPECT_TRUE(met(0) && met(255) && met(256) && met(299));
      }
    }
  });
}

// Renders split by soft labels (nanodrr 0.1.7's: each trilinear corner's
// share to its own class), five classes scattered voxel by voxel so that
// most cells hold several: in three channels (classes 3 and 4 counted by
// none), in five, and in 300 of 300 classes (two marches); and without
// labels (every share to channel 0, one at a time, which rounds otherwise
// than the interpolated sample).
TEST_F(CpuSimdTest, RendersSplitBySoftLabelsGiveTheScalarBodysBits) {
  OnEveryTarget([&] {
    const VolumeShape shape{23, 19, 17};
    const std::vector<float> mu = DistinctVoxels(shape);
    const std::vector<uint16_t> labels = ScatteredLabels(shape, 5);
    const std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 37);
    for (const RenderSettings& s :
         {Trilinear(9, 37, 150), Clipped(9, 37, 150), Clipped(9, 37, 7)}) {
      ExpectSplitImageBits(mu, shape, poses, labels, SoftLabelled(s, 3),
                           SoftLabelled(s, 5), SoftLabelled(s, 2));
      // One channel: no labels, the shares summed one at a time.
      ExpectSameImageBits(mu, shape, StorageType::kFloat32, poses,
                          SoftLabelled(s, 1), labels.data());
    }
    const std::vector<uint16_t> many = ScatteredLabels(shape, 300);
    const std::vector<float> images = ExpectSameImageBits(
        mu, shape, StorageType::kFloat16, {poses[0]},
        SoftLabelled(Trilinear(9, 37, 150), 300), many.data());
    // Classes on both sides of the marches' boundary were met.
    const size_t plane = 9 * 37;
    auto met = [&](int c) {
      const auto at = images.begin() + c * plane;
      return std::any_of(at, at + plane, [](float v) { return v != 0; });
    };
    EXPECT_TRUE(met(0) && met(255) && met(256) && met(299));
  });
}

// MIPs of a volume of negative μ, where a zero joining the maximum shows:
// rays from outside start at zero, rays wholly inside the volume at −∞.
// Columns of voxels −0 then +0, or +0 then −0, along the rays: the body
// keeps the first of two equal values, and skips NaN samples (one NaN
// voxel, whose trilinear neighbours' samples are NaN), and so must the
// lanes.
TEST_F(CpuSimdTest, MipsGiveTheScalarBodysBitsAtZerosNaNsAndFromInside) {
  const VolumeShape shape{16, 16, 16};
  std::vector<float> mu = DistinctVoxels(shape);
  for (int z = 0; z < shape.nz; ++z)
    for (int y = 0; y < shape.ny; ++y)
      for (int x = 0; x < shape.nx; ++x) {
        float& v = mu[(z * shape.ny + y) * shape.nx + x];
        v = -v;
        if (x % 3 == 2 || y % 4 > 1) continue;
        v = (x % 3 == 0) == (y % 4 == 0) ? -0.0f : 0.0f;
      }
  mu[(8 * shape.ny + 8) * shape.nx + 8] = NAN;
  std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 20);
  // Orthographic rays along y from y = 5 to 11, inside the volume.
  poses.push_back(
      MakePoseGeometry(Mat4d::Identity(),
                       MakeRtInv(EulerToMatrix("ZXY", {0, 0, 0}, true),
                                 {0, 3, 0}, Orientation::kAP, {8.0, 8.0, 8.0}),
                       Orthographic(9, 20, 0.6, 6.0)));
  const std::vector<uint16_t> labels = ScatteredLabels(shape, 4);
  // The same volume with the NaN voxel large instead, which some rays meet.
  std::vector<float> lit = mu;
  lit[(8 * shape.ny + 8) * shape.nx + 8] = 1.0f;
  OnEveryTarget([&] {
    for (const RenderSettings& s :
         {Mip(Trilinear(9, 20, 100)), Mip(Clipped(9, 20, 100)),
          Mip(Siddon(9, 20))}) {
      const std::vector<float> images =
          ExpectSameImageBits(mu, shape, StorageType::kFloat32, poses, s);
      EXPECT_NE(images, ExpectSameImageBits(lit, shape, StorageType::kFloat32,
                                            poses, s));
      // Split by label: each sample joins the other classes' maxima as a
      // zero, which a negative maximum or −0 keeps or does not; the NaN
      // voxel is skipped in its class's channel, the large one is not.
      const RenderSettings split = WithChannels(s, 3);
      EXPECT_NE(ExpectSameImageBits(mu, shape, StorageType::kFloat32, poses,
                                    split, labels.data()),
                ExpectSameImageBits(lit, shape, StorageType::kFloat32, poses,
                                    split, labels.data()));
      // Inside rays met negative maxima; Siddon's met −0 first in some
      // (trilinear samples between zeros are +0).
      const auto inside = images.end() - 9 * 20;
      EXPECT_TRUE(
          std::any_of(inside, images.end(), [](float v) { return v < 0.0f; }));
      if (s.projector == Projector::kSiddon) {
        EXPECT_TRUE(std::any_of(inside, images.end(), [](float v) {
          return v == 0.0f && std::signbit(v);
        }));
      }
    }
  });
}

TEST_F(CpuSimdTest, GivesTheScalarBodysBitsForFewAndManySamples) {
  OnEveryTarget([&] {
    const VolumeShape shape{20, 24, 18};
    const std::vector<float> mu = DistinctVoxels(shape);
    // Two samples: the segment's ends, both outside the volume (planned,
    // though their support misses it: the MIP takes in their zeros).
    EXPECT_EQ(ExpectSameBits(mu, shape, StorageType::kFloat32,
                             ViewsOf(shape, 7, 50), Trilinear(7, 50, 2)),
              0.0);
    EXPECT_EQ(ExpectSameBits(mu, shape, StorageType::kFloat32,
                             ViewsOf(shape, 7, 50), Mip(Trilinear(7, 50, 2))),
              0.0);
    // Split by label, every channel takes them in too: +0, not its −∞ start.
    const std::vector<uint16_t> labels = ScatteredLabels(shape, 5);
    for (float v : ExpectSameImageBits(
             mu, shape, StorageType::kFloat32, ViewsOf(shape, 7, 50),
             WithChannels(Mip(Trilinear(7, 50, 2)), 3), labels.data())) {
      ASSERT_TRUE(v == 0.0f && !std::signbit(v)) << v;
    }
    for (int samples : {3, 1000}) {
      SCOPED_TRACE(samples);
      EXPECT_GT(
          ExpectSameBits(mu, shape, StorageType::kFloat32,
                         ViewsOf(shape, 7, 50), Trilinear(7, 50, samples)),
          0.5);
      EXPECT_GT(
          ExpectSameBits(mu, shape, StorageType::kFloat32,
                         ViewsOf(shape, 7, 50), Mip(Trilinear(7, 50, samples))),
          0.5);
    }
    // Clipped: every sample lands in the volume, two or a thousand.
    for (int samples : {2, 1000}) {
      SCOPED_TRACE(samples);
      EXPECT_GT(ExpectSameBits(mu, shape, StorageType::kFloat32,
                               ViewsOf(shape, 7, 50), Clipped(7, 50, samples)),
                0.5);
    }
  });
}

// Ties: orthographic rays 1 mm apart through a volume of 1 mm voxels, about
// a voxel's centre, so that columns of rays lie on voxel faces (Siddon's
// planes), rows through voxel centres (where trilinear cells begin and end;
// 17 rows from the volume's first centre to past its last), rays run
// parallel to two axes' planes (never crossing them), or cross two or three
// axes' planes at once on diagonals.
TEST_F(CpuSimdTest, GivesTheScalarBitsOnFacesAxesAndDiagonals) {
  OnEveryTarget([&] {
    const VolumeShape shape{16, 16, 16};
    const Intrinsics in = Orthographic(17, 20, 1.0, 90.0);
    const geometry::Vec3d centre{8.0, 8.0, 8.0};
    std::vector<PoseGeometry> poses;
    for (geometry::Vec3d angles :
         {geometry::Vec3d{0, 0, 0}, geometry::Vec3d{45, 0, 0},
          geometry::Vec3d{0, 45, 0}, geometry::Vec3d{45, 35.26438968, 0}}) {
      poses.push_back(
          MakePoseGeometry(Mat4d::Identity(),
                           MakeRtInv(EulerToMatrix("ZXY", angles, true),
                                     {0, 45, 0}, Orientation::kAP, centre),
                           in));
    }
    for (const RenderSettings& s :
         {Siddon(17, 20), Trilinear(17, 20, 300), Clipped(17, 20, 300)}) {
      EXPECT_GT(ExpectSameBits(DistinctVoxels(shape), shape,
                               StorageType::kFloat32, poses, s),
                0.5);
      EXPECT_GT(ExpectSameBits(DistinctVoxels(shape), shape,
                               StorageType::kFloat32, poses, Mip(s)),
                0.5);
      // Samples halfway between voxel centres take the even one's class.
      EXPECT_GT(ExpectSameChannelBits(
                    DistinctVoxels(shape), shape, StorageType::kFloat32, poses,
                    WithChannels(s, 4), ScatteredLabels(shape, 4)),
                0.25);
      // Soft labels: samples on voxel centres have corners of weight zero,
      // whose shares still go to their classes.
      if (s.projector == Projector::kTrilinear) {
        EXPECT_GT(ExpectSameChannelBits(
                      DistinctVoxels(shape), shape, StorageType::kFloat32,
                      poses, SoftLabelled(s, 4), ScatteredLabels(shape, 4)),
                  0.25);
      }
    }
  });
}

// The pose gradients of `poses` for `upstream` by the vectorised and the
// scalar CPU executors (with `labels`, or without), which must hold the
// same bits; returns them.
std::vector<double> ExpectSameGradientBits(
    const std::vector<float>& mu, VolumeShape shape, StorageType storage,
    const std::vector<PoseGeometry>& poses, const RenderSettings& settings,
    const std::vector<float>& upstream, const uint16_t* labels = nullptr) {
  const auto [fast, spec] = OnBothCpuExecutors(
      mu, shape, storage,
      [&](Executor& executor, const ResidentVolume& v) {
        return testing::PoseGradients(executor, v, poses, settings, upstream);
      },
      labels);
  ExpectSameBitsAs(fast, spec);
  return spec;
}

// The pose Jacobians of `poses` by the vectorised and the scalar CPU
// executors (with `labels`, or without), which must hold the same bits;
// returns them.
std::vector<float> ExpectSameJacobianBits(
    const std::vector<float>& mu, VolumeShape shape, StorageType storage,
    const std::vector<PoseGeometry>& poses, const RenderSettings& settings,
    const uint16_t* labels = nullptr) {
  const auto [fast, spec] = OnBothCpuExecutors(
      mu, shape, storage,
      [&](Executor& executor, const ResidentVolume& v) {
        return testing::PoseJacobians(executor, v, poses, settings);
      },
      labels);
  ExpectSameBitsAs(fast, spec);
  return spec;
}

// The smallest fraction of nonzero entries of any channel of `jacobians`
// (PoseJacobians of `poses` in `channels` channels of `pixels` pixels).
double LeastNonzeroChannel(const std::vector<float>& jacobians, size_t poses,
                           int channels, size_t pixels) {
  const size_t block = pixels * kPoseMapEntries;
  double least = 1.0;
  for (int c = 0; c < channels; ++c) {
    std::vector<float> channel;
    for (size_t pose = 0; pose < poses; ++pose) {
      const auto at = jacobians.begin() + (pose * channels + c) * block;
      channel.insert(channel.end(), at, at + block);
    }
    least = std::min(least, NonzeroFraction(channel));
  }
  return least;
}

// Siddon's lanes walk in chunks of 64 crossings (kernels/cpu_simd.cc): rays
// through a volume of 4 voxels to the unit, as large in the world as the
// ones above, visit up to about 160 voxels, so that their walks span two or
// three chunks and end within one; orthographic rays along y through 64 and
// 128 voxels end exactly where a chunk does.
TEST_F(CpuSimdTest, SiddonWalksOfManyChunksGiveTheScalarBodysBits) {
  OnEveryTarget([&] {
    const VolumeShape shape{92, 76, 68};
    const std::vector<float> mu = DistinctVoxels(shape);
    for (StorageType storage : {StorageType::kFloat32, StorageType::kFloat16,
                                StorageType::kBFloat16}) {
      SCOPED_TRACE(static_cast<int>(storage));
      const std::vector<PoseGeometry> poses = ViewsOf(shape, 7, 21, 4.0);
      EXPECT_GT(ExpectSameBits(mu, shape, storage, poses, Siddon(7, 21)), 0.5);
      // The gradient's sums run across the chunks too.
      std::vector<float> upstream(poses.size() * 7 * 21);
      for (size_t i = 0; i < upstream.size(); ++i)
        upstream[i] = 0.25f - static_cast<float>(i % 5) / 8.0f;
      ExpectSameGradientBits(mu, shape, storage, poses, Siddon(7, 21),
                             upstream);
      ExpectSameJacobianBits(mu, shape, storage, poses, Siddon(7, 21));
    }
    for (int along_y : {64, 128}) {
      SCOPED_TRACE(along_y);
      const VolumeShape through{12, along_y, 10};
      const PoseGeometry pose = MakePoseGeometry(
          Mat4d::Identity(),
          MakeRtInv(EulerToMatrix("ZXY", {0, 0, 0}, true), {0, 150, 0},
                    Orientation::kAP, {6.0, along_y / 2.0, 5.0}),
          Orthographic(7, 9, 0.9, 300.0));
      EXPECT_EQ(ExpectSameBits(DistinctVoxels(through), through,
                               StorageType::kFloat32, {pose}, Siddon(7, 9)),
                1.0);
      ExpectSameJacobianBits(DistinctVoxels(through), through,
                             StorageType::kFloat32, {pose}, Siddon(7, 9));
    }
  });
}

TEST_F(CpuSimdTest, RendersGiveTheScalarBodysBitsInVolumesOneOrTwoVoxelsThin) {
  OnEveryTarget([&] {
    for (VolumeShape shape : {VolumeShape{1, 16, 16}, VolumeShape{16, 2, 16},
                              VolumeShape{2, 16, 16}, VolumeShape{16, 16, 1},
                              VolumeShape{2, 1, 3}}) {
      SCOPED_TRACE(std::to_string(shape.nx) + "x" + std::to_string(shape.ny) +
                   "x" + std::to_string(shape.nz));
      for (const RenderSettings& s :
           {Trilinear(6, 40, 300), Siddon(6, 40), Mip(Trilinear(6, 40, 300)),
            Mip(Siddon(6, 40))}) {
        // The interior run reads float32 voxels as 64-bit pairs and 16-bit
        // ones as 32-bit words; outside it they are gathered one by one.
        for (StorageType storage :
             {StorageType::kFloat32, StorageType::kFloat16,
              StorageType::kBFloat16}) {
          EXPECT_GT(ExpectSameBits(DistinctVoxels(shape), shape, storage,
                                   ViewsOf(shape, 6, 40), s),
                    0.05);
          if (s.reduce == Reduce::kSum) {
            EXPECT_GT(
                ExpectSameChannelBits(DistinctVoxels(shape), shape, storage,
                                      ViewsOf(shape, 6, 40), WithChannels(s, 3),
                                      ScatteredLabels(shape, 3)),
                0.0);
          }
          if (s.reduce == Reduce::kSum &&
              s.projector == Projector::kTrilinear) {
            // Soft labels read every corner's label: none past the volume.
            EXPECT_GT(
                ExpectSameChannelBits(DistinctVoxels(shape), shape, storage,
                                      ViewsOf(shape, 6, 40), SoftLabelled(s, 3),
                                      ScatteredLabels(shape, 3)),
                0.0);
          }
        }
      }
    }
  });
}

TEST_F(CpuSimdTest, PoseGradientGivesTheScalarBodysBitsInEveryStorageType) {
  OnEveryTarget([&] {
    const VolumeShape shape{23, 19, 17};
    const std::vector<float> mu = DistinctVoxels(shape);
    const std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 37);
    // Upstream weights of both signs; zero (a skipped ray) in every third
    // row and in column 11, so that other rows' spans march their interior
    // runs with every lane weighted.
    std::vector<float> upstream(poses.size() * 9 * 37);
    for (size_t i = 0; i < upstream.size(); ++i) {
      const bool skipped = (i / 37) % 3 == 1 || i % 37 == 11;
      upstream[i] = skipped ? 0.0f : 0.5f - static_cast<float>(i % 7) / 6.0f;
    }
    for (StorageType storage : {StorageType::kFloat32, StorageType::kFloat16,
                                StorageType::kBFloat16}) {
      SCOPED_TRACE(static_cast<int>(storage));
      for (const RenderSettings& s : Differentiable(9, 37)) {
        EXPECT_GT(NonzeroFraction(ExpectSameGradientBits(mu, shape, storage,
                                                         poses, s, upstream)),
                  0.5);
      }
    }
  });
}

// Upstream weights of `channels` channels of `pixels` pixels for each of
// `poses` poses, of both signs, and zero in every fifth pixel of each
// channel, at other pixels in each (a class whose samples the body skips
// where another class's count).
std::vector<float> ChannelWeights(size_t poses, int channels, size_t pixels) {
  std::vector<float> upstream(poses * channels * pixels);
  for (size_t i = 0; i < upstream.size(); ++i) {
    const size_t channel = i / pixels % channels;
    const bool skipped = (i % pixels + channel) % 5 == 0;
    upstream[i] = skipped ? 0.0f : 0.75f - static_cast<float>(i % 11) / 7.0f;
  }
  return upstream;
}

TEST_F(CpuSimdTest, PoseGradientGivesTheScalarBodysBitsInThinVolumes) {
  OnEveryTarget([&] {
    for (VolumeShape shape : {VolumeShape{1, 16, 16}, VolumeShape{16, 2, 16},
                              VolumeShape{2, 16, 16}, VolumeShape{2, 1, 3}}) {
      SCOPED_TRACE(std::to_string(shape.nx) + "x" + std::to_string(shape.ny) +
                   "x" + std::to_string(shape.nz));
      const std::vector<PoseGeometry> poses = ViewsOf(shape, 6, 40);
      for (const RenderSettings& s :
           {Trilinear(6, 40, 300), Clipped(6, 40, 300), Siddon(6, 40)}) {
        EXPECT_GT(
            NonzeroFraction(ExpectSameGradientBits(
                DistinctVoxels(shape), shape, StorageType::kFloat32, poses, s,
                std::vector<float>(poses.size() * 6 * 40, 1.0f))),
            0.25);
        if (s.projector == Projector::kSiddon) continue;
        const std::vector<uint16_t> labels = ScatteredLabels(shape, 3);
        EXPECT_GT(NonzeroFraction(ExpectSameGradientBits(
                      DistinctVoxels(shape), shape, StorageType::kFloat32,
                      poses, SoftLabelled(s, 3),
                      ChannelWeights(poses.size(), 3, 6 * 40), labels.data())),
                  0.25);
      }
    }
  });
}

TEST_F(CpuSimdTest, PoseJacobianGivesTheScalarBodysBitsInEveryStorageType) {
  OnEveryTarget([&] {
    for (VolumeShape shape :
         {VolumeShape{23, 19, 17}, VolumeShape{2, 16, 16}}) {
      SCOPED_TRACE(shape.nx);
      const std::vector<float> mu = DistinctVoxels(shape);
      const std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 37);
      for (StorageType storage : {StorageType::kFloat32, StorageType::kFloat16,
                                  StorageType::kBFloat16}) {
        SCOPED_TRACE(static_cast<int>(storage));
        for (const RenderSettings& s : Differentiable(9, 37)) {
          EXPECT_GT(NonzeroFraction(
                        ExpectSameJacobianBits(mu, shape, storage, poses, s)),
                    0.25);
        }
      }
    }
  });
}

// Spans that start and end anywhere in a row (idle lanes at both ends of
// the row's groups) write each pixel's entries where the executor's rows
// have them.
TEST_F(CpuSimdTest, JacobianSpansAnywhereInARowGiveTheScalarBodysBits) {
  const VolumeShape shape{23, 19, 17};
  const std::vector<float> mu = DistinctVoxels(shape);
  const std::vector<PoseGeometry> poses = ViewsOf(shape, 5, 41);
  std::unique_ptr<Executor> scalar = MakeScalarCpuExecutor(1);
  std::unique_ptr<Executor> simd = MakeCpuExecutor(1);
  const std::shared_ptr<const ResidentVolume> volume =
      MakeResident(*simd, mu, nullptr, shape, StorageType::kFloat32);
  for (const RenderSettings& s : {Clipped(5, 41, 120), Siddon(5, 41)}) {
    const std::vector<float> spec = testing::PoseJacobians(
        *scalar,
        *MakeResident(*scalar, mu, nullptr, shape, StorageType::kFloat32),
        poses, s);
    OnEveryTarget([&] {
      for (auto [begin, end] : {std::pair{0, 41}, std::pair{3, 40},
                                std::pair{17, 18}, std::pair{29, 41}}) {
        SCOPED_TRACE(std::to_string(begin) + ".." + std::to_string(end));
        const size_t entries =
            static_cast<size_t>(end - begin) * kPoseMapEntries;
        for (size_t pose = 0; pose < poses.size(); ++pose) {
          for (int row = 0; row < 5; ++row) {
            std::vector<float> span(entries);
            WriteJacobianSimdSpan(volume->buffers(), poses[pose], s, row, begin,
                                  end, span.data(), /*channel_stride=*/0);
            const auto from =
                spec.begin() +
                static_cast<std::ptrdiff_t>(((pose * 5 + row) * 41 + begin) *
                                            kPoseMapEntries);
            ExpectSameBitsAs(span, std::vector<float>(from, from + entries));
          }
        }
      }
    });
  }
}

TEST_F(CpuSimdTest, LanesFarOutsideBesideALaneInsideGiveTheScalarBits) {
  const VolumeShape shape{12, 12, 12};
  const std::vector<float> mu = DistinctVoxels(shape);
  // Column 0 looks through the volume; every other column of its span lies
  // about 10²⁷ mm away, where each coordinate saturates.
  PoseGeometry far = ViewsOf(shape, 5, 20)[0];
  far.k_inv[0][0] = 1e25f;
  far.k_inv[0][1] = 0.0f;
  far.k_inv[0][2] = -0.5f * 1e25f;
  OnEveryTarget([&] {
    for (const RenderSettings& s :
         {Trilinear(5, 20, 100), Siddon(5, 20), Mip(Trilinear(5, 20, 100)),
          Mip(Siddon(5, 20))}) {
      EXPECT_GT(ExpectSameBits(mu, shape, StorageType::kFloat32, {far}, s),
                0.0);
    }
    // Split by label: the lanes far outside look their samples' classes up
    // at saturated coordinates.
    for (const RenderSettings& s : {Trilinear(5, 20, 100), Siddon(5, 20)}) {
      ExpectSameChannelBits(mu, shape, StorageType::kFloat32, {far},
                            WithChannels(s, 3), ScatteredLabels(shape, 3));
    }
    for (const RenderSettings& s :
         {Trilinear(5, 20, 100), Clipped(5, 20, 100), Siddon(5, 20)}) {
      ExpectSameGradientBits(mu, shape, StorageType::kFloat32, {far}, s,
                             std::vector<float>(5 * 20, 1.0f));
    }
    // Soft labels read every corner's class at saturated coordinates. The
    // far lanes' step is not finite (their length overflows a float):
    // without labels the channels past the first are the body's zeros, not
    // 0·∞.
    for (const RenderSettings& s :
         {Trilinear(5, 20, 100), Clipped(5, 20, 100)}) {
      const std::vector<uint16_t> labels = ScatteredLabels(shape, 3);
      ExpectSameChannelBits(mu, shape, StorageType::kFloat32, {far},
                            SoftLabelled(s, 3), labels);
      ExpectSameImageBits(mu, shape, StorageType::kFloat32, {far},
                          SoftLabelled(s, 2));
      ExpectSameGradientBits(mu, shape, StorageType::kFloat32, {far},
                             SoftLabelled(s, 3), ChannelWeights(1, 3, 5 * 20),
                             labels.data());
    }
  });
}

// A float16 volume and label grid of more than 2³⁰ voxels, mapped but
// written only in their last 8 slices, where rays along x run: the cells
// they meet lie past voxel 2³⁰, where twice the index passes a gather's
// signed 32-bit byte offsets (the AVX-512 targets' GatherWordsAt, for 16-bit
// corner pairs and label words). Renders, pose gradients and Jacobians, with
// and without labels, must give the scalar body's bits on every target.
TEST_F(CpuSimdTest, VolumesOfMoreThan2To30VoxelsGiveTheScalarBodysBits) {
  const VolumeShape shape{1024, 1024, 1032};
  const long long slice = 1024LL * 1024;
  ASSERT_GE(1026 * slice, 1LL << 30) << "the rays' first cells lie past 2³⁰";
  const auto voxels = static_cast<size_t>(shape.voxels());
  SparseMapping mu(voxels * sizeof(Half) + kSimdVoxelPadding);
  SparseMapping labels((voxels + kSimdLabelPadding) * sizeof(uint16_t));
  if (mu.data() == nullptr || labels.data() == nullptr)
    GTEST_SKIP() << "could not map 4 GiB: " << mu.error() << labels.error();
  auto* half = static_cast<Half*>(mu.data());
  auto* label = static_cast<uint16_t*>(labels.data());
  // μ and classes that differ from voxel to voxel in every direction: the
  // top bits of a product that every bit of v feeds.
  for (auto v = static_cast<size_t>(1024 * slice); v < voxels; ++v) {
    const uint64_t mixed = v * 0x9E3779B97F4A7C15ull;
    half[v] =
        ToHalf(0.001f + 0.02f * static_cast<float>(mixed >> 54) / 1024.0f);
    label[v] = static_cast<uint16_t>((mixed >> 40) % 3);
  }
  const VolumeBuffers buffers{
      MemorySpace::kHost, shape, StorageType::kFloat16, half, label, 0};
  const ResidentVolume volume(buffers, 0, nullptr);
  // Rays along x, 4 rows through slices 1026.5 to 1029.5, 20 columns across
  // y.
  const PoseGeometry along_x = MakePoseGeometry(
      Mat4d::Identity(),
      MakeRtInv(EulerToMatrix("ZXY", {90, 0, 0}, true), {0, 700, 0},
                Orientation::kAP, {512.0, 512.0, 1028.0}),
      Orthographic(4, 20, 1.0, 1400.0));
  // The camera's z axis (an orthographic camera's rays) in voxels: along x.
  ASSERT_NEAR(std::fabs(along_x.camera_to_voxel.m[0][2]), 1.0f, 1e-6f);
  std::unique_ptr<Executor> simd = MakeCpuExecutor(2);
  std::unique_ptr<Executor> scalar = MakeScalarCpuExecutor(2);
  const std::vector<RenderSettings> cases = {
      Trilinear(4, 20, 2000), WithChannels(Trilinear(4, 20, 2000), 3),
      SoftLabelled(Trilinear(4, 20, 2000), 3), WithChannels(Siddon(4, 20), 3)};
  OnEveryTarget([&] {
    for (size_t c = 0; c < cases.size(); ++c) {
      SCOPED_TRACE(c);
      const RenderSettings& s = cases[c];
      const std::vector<float> spec =
          RenderImages(*scalar, volume, {along_x}, s);
      ExpectSameBitsAs(RenderImages(*simd, volume, {along_x}, s), spec);
      EXPECT_EQ(NonzeroFraction(spec), 1.0);
      const std::vector<float> upstream = ChannelWeights(1, s.channels, 80);
      ExpectSameBitsAs(
          testing::PoseGradients(*simd, volume, {along_x}, s, upstream),
          testing::PoseGradients(*scalar, volume, {along_x}, s, upstream));
      ExpectSameBitsAs(testing::PoseJacobians(*simd, volume, {along_x}, s),
                       testing::PoseJacobians(*scalar, volume, {along_x}, s));
    }
  });
}

// One infinite voxel makes the rays whose samples touch it non-finite; the
// body skips those rays once their upstream weight is zero, and so must
// every lane beside a weighted one.
TEST_F(CpuSimdTest, PoseGradientSkipsUnweightedRaysThroughAnInfiniteVoxel) {
  const VolumeShape shape{14, 15, 16};
  std::vector<float> mu = DistinctVoxels(shape);
  mu[(8 * 15 + 7) * 14 + 7] = INFINITY;
  const std::vector<PoseGeometry> poses = ViewsOf(shape, 4, 21);
  std::unique_ptr<Executor> scalar = MakeScalarCpuExecutor(1);
  OnEveryTarget([&] {
    for (const RenderSettings& s : {Trilinear(4, 21, 60), Clipped(4, 21, 60)}) {
      const std::vector<float> image = RenderImages(
          *scalar,
          *MakeResident(*scalar, mu, nullptr, shape, StorageType::kFloat32),
          poses, s);
      std::vector<float> upstream(image.size(), 1.0f);
      int skipped = 0;
      for (size_t i = 0; i < image.size(); ++i) {
        if (std::isfinite(image[i])) continue;
        upstream[i] = 0.0f;
        ++skipped;
      }
      EXPECT_GT(skipped, 0);
      for (double d : ExpectSameGradientBits(mu, shape, StorageType::kFloat32,
                                             poses, s, upstream))
        EXPECT_TRUE(std::isfinite(d));
    }
    // Siddon's body skips no ray: w·μ of the infinite voxel is NaN or
    // infinite whatever the weight, in every lane as in the body.
    std::vector<float> upstream(poses.size() * 4 * 21, 1.0f);
    for (size_t i = 0; i < upstream.size(); i += 3) upstream[i] = 0.0f;
    int non_finite = 0;
    for (double d : ExpectSameGradientBits(mu, shape, StorageType::kFloat32,
                                           poses, Siddon(4, 21), upstream))
      non_finite += !std::isfinite(d);
    EXPECT_GT(non_finite, 0);
    ExpectSameJacobianBits(mu, shape, StorageType::kFloat32, poses,
                           Siddon(4, 21));
  });
}

// Sources and detectors inside the volume (0.2 voxels to the unit: the
// volume is 5 times the size in the world of the ones above, and the source
// and detector lie 9 voxels from its centre): Siddon's walks begin and end
// inside it, where the segment's own ends (no plane: axis −1) bound them.
TEST_F(CpuSimdTest, SiddonSegmentsEndingInsideTheVolumeGiveTheScalarBodysBits) {
  const VolumeShape shape{23, 19, 17};
  const std::vector<float> mu = DistinctVoxels(shape);
  const std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 37, 0.2);
  // The premise: some walks start, and some end, at the segment's own end.
  int starting = 0, ending = 0;
  for (const PoseGeometry& pose : poses) {
    for (int row = 0; row < 9; ++row) {
      for (int col = 0; col < 37; ++col) {
        const SiddonRay r = PlanSiddon(shape, pose, row, col);
        if (!(r.inside.t0 < r.inside.t1)) continue;
        starting += r.inside.axis0 == -1;
        ending += r.inside.axis1 == -1;
      }
    }
  }
  EXPECT_GT(starting, 0);
  EXPECT_GT(ending, 0);
  std::vector<float> upstream(poses.size() * 9 * 37);
  for (size_t i = 0; i < upstream.size(); ++i)
    upstream[i] = 0.5f - static_cast<float>(i % 7) / 6.0f;
  OnEveryTarget([&] {
    EXPECT_GT(
        ExpectSameBits(mu, shape, StorageType::kFloat32, poses, Siddon(9, 37)),
        0.5);
    EXPECT_GT(
        NonzeroFraction(ExpectSameGradientBits(mu, shape, StorageType::kFloat32,
                                               poses, Siddon(9, 37), upstream)),
        0.5);
    EXPECT_GT(NonzeroFraction(ExpectSameJacobianBits(
                  mu, shape, StorageType::kFloat32, poses, Siddon(9, 37))),
              0.25);
  });
}

TEST_F(CpuSimdTest, PoseGradientKeepsTheScalarBodysNonFiniteWeights) {
  // Two samples per ray: the segment's ends, whose support misses the
  // volume; the body still multiplies their zero gradient by the weight.
  const VolumeShape shape{14, 15, 16};
  const std::vector<float> mu = DistinctVoxels(shape);
  const std::vector<PoseGeometry> poses = ViewsOf(shape, 4, 21);
  // NaN weights in the first pose's image, infinite ones in the others'
  // (either makes its pose's sums NaN, so each must show on its own).
  std::vector<float> upstream(poses.size() * 4 * 21, 1.0f);
  for (size_t i = 0; i < upstream.size(); i += 7)
    upstream[i] = i < 4 * 21 ? NAN : INFINITY;
  // The weights reach the sums on both paths.
  const auto expect_nans = [&](const RenderSettings& s) {
    const std::vector<double> gradient = ExpectSameGradientBits(
        mu, shape, StorageType::kFloat32, poses, s, upstream);
    EXPECT_TRUE(std::isnan(gradient[0]));
    int nan = 0;
    for (double d : gradient) nan += std::isnan(d);
    EXPECT_GT(nan, kPoseMapEntries);
  };
  OnEveryTarget([&] {
    for (int samples : {2, 60}) {
      SCOPED_TRACE(samples);
      expect_nans(Trilinear(4, 21, samples));
      expect_nans(Clipped(4, 21, samples));
    }
    expect_nans(Siddon(4, 21));
  });
}

// The pose gradients of `three` and `five` (a render split into 3 and 5
// channels by `labels`) and the Jacobians of `three`, in every storage type,
// which must hold the scalar body's bits and see most entries.
void ExpectSplitVjpBits(const std::vector<float>& mu, VolumeShape shape,
                        const std::vector<PoseGeometry>& poses,
                        const std::vector<uint16_t>& labels,
                        const RenderSettings& three,
                        const RenderSettings& five) {
  const size_t pixels =
      static_cast<size_t>(three.rays.height) * three.rays.width;
  for (StorageType storage :
       {StorageType::kFloat32, StorageType::kFloat16, StorageType::kBFloat16}) {
    SCOPED_TRACE(static_cast<int>(storage));
    for (const RenderSettings& split : {three, five}) {
      EXPECT_GT(NonzeroFraction(ExpectSameGradientBits(
                    mu, shape, storage, poses, split,
                    ChannelWeights(poses.size(), split.channels, pixels),
                    labels.data())),
                0.5);
    }
    EXPECT_GT(
        LeastNonzeroChannel(ExpectSameJacobianBits(mu, shape, storage, poses,
                                                   three, labels.data()),
                            poses.size(), 3, pixels),
        0.25);
  }
}

// The pose gradients of renders split by label weigh each sample by the
// upstream weight of its class, and each channel of their Jacobians is its
// class's alone: five classes scattered voxel by voxel, in 3 channels
// (classes 3 and 4 weighed by none) and in 5 for the gradient, every
// storage type; and two channels without labels (every sample class 0:
// the second channel's Jacobian skips every sample).
TEST_F(CpuSimdTest, GradientsAndJacobiansSplitByLabelGiveTheScalarBodysBits) {
  OnEveryTarget([&] {
    const VolumeShape shape{23, 19, 17};
    const std::vector<float> mu = DistinctVoxels(shape);
    const std::vector<uint16_t> labels = ScatteredLabels(shape, 5);
    const std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 37);
    const size_t pixels = 9 * 37;
    for (const RenderSettings& s : Differentiable(9, 37)) {
      ExpectSplitVjpBits(mu, shape, poses, labels, WithChannels(s, 3),
                         WithChannels(s, 5));
      EXPECT_GT(NonzeroFraction(ExpectSameGradientBits(
                    mu, shape, StorageType::kFloat32, poses, WithChannels(s, 2),
                    ChannelWeights(poses.size(), 2, pixels))),
                0.5);
      EXPECT_GT(
          NonzeroFraction(ExpectSameJacobianBits(
              mu, shape, StorageType::kFloat32, poses, WithChannels(s, 2))),
          0.1);
    }
  });
}

// Upstream weights of renders split by label that are NaN (in the first
// pose's images), infinite (in the second's), which the body does not skip
// and which make their pose's sums NaN, or −0 (in the others'), which it
// skips as zero; and 300 channels, whose weights the lanes gather rather
// than select.
TEST_F(CpuSimdTest, SplitGradientsKeepOddWeightsAndGatherThoseOfManyClasses) {
  OnEveryTarget([&] {
    const VolumeShape shape{23, 19, 17};
    const std::vector<float> mu = DistinctVoxels(shape);
    const std::vector<PoseGeometry> poses = ViewsOf(shape, 3, 37);
    const size_t pixels = 3 * 37;
    const std::vector<uint16_t> five = ScatteredLabels(shape, 5);
    std::vector<float> odd = ChannelWeights(poses.size(), 3, pixels);
    for (size_t i = 0; i < odd.size(); i += 11) {
      const size_t pose = i / (3 * pixels);
      odd[i] = pose == 0 ? NAN : pose == 1 ? INFINITY : -0.0f;
    }
    const std::vector<uint16_t> many = ScatteredLabels(shape, 300);
    for (const RenderSettings& s : Differentiable(3, 37)) {
      const std::vector<double> gradient =
          ExpectSameGradientBits(mu, shape, StorageType::kFloat32, poses,
                                 WithChannels(s, 3), odd, five.data());
      // The first pose's NaN weights reach its sums.
      EXPECT_TRUE(std::isnan(gradient[0]));
      EXPECT_GT(NonzeroFraction(ExpectSameGradientBits(
                    mu, shape, StorageType::kFloat32, {poses[0]},
                    WithChannels(s, 300), ChannelWeights(1, 300, pixels),
                    many.data())),
                0.5);
    }
  });
}

// The pose gradients and Jacobians of renders split by soft labels: each
// corner of a sample weighed by its own class's weight before the
// interpolation (the gradient of ClassWeightedVolume, nanodrr 0.1.7's), no
// sample skipped. Five classes scattered voxel by voxel, in 3 channels
// (classes 3 and 4 weighed by none) and 5 for the gradient, every storage
// type; NaN, infinite and −0 weights (none skipped); 300 channels (weights
// gathered); two channels without labels (every corner class 0). An
// infinite voxel of a class no channel weighs: the class-weighted volume
// holds 0 there (not ∞·0), so every gradient and Jacobian stays finite. And
// an infinite weight on a class of one corner voxel only: corners outside
// the volume weigh nothing (not 0·∞), so poses whose rays pass far from
// that voxel stay finite.
TEST_F(CpuSimdTest, GradientsSplitBySoftLabelsGiveTheScalarBodysBits) {
  const VolumeShape shape{23, 19, 17};
  const std::vector<float> mu = DistinctVoxels(shape);
  const std::vector<uint16_t> labels = ScatteredLabels(shape, 5);
  const std::vector<uint16_t> many = ScatteredLabels(shape, 300);
  const std::vector<PoseGeometry> poses = ViewsOf(shape, 9, 37);
  const size_t pixels = 9 * 37;
  std::vector<float> odd = ChannelWeights(poses.size(), 3, pixels);
  for (size_t i = 0; i < odd.size(); i += 11) {
    const size_t pose = i / (3 * pixels);
    odd[i] = pose == 0 ? NAN : pose == 1 ? INFINITY : -0.0f;
  }
  // The infinite voxel, of class 4, amid others of every class.
  std::vector<float> infinite = mu;
  std::vector<uint16_t> infinite_labels = labels;
  const size_t centre = (8 * shape.ny + 9) * shape.nx + 11;
  infinite[centre] = INFINITY;
  infinite_labels[centre] = 4;
  const auto all_finite = [](const auto& values) {
    return std::all_of(values.begin(), values.end(),
                       [](auto v) { return std::isfinite(v); });
  };
  std::vector<uint16_t> corner_class(labels.size(), 0);
  corner_class[0] = 1;
  std::vector<float> infinite_weight = ChannelWeights(poses.size(), 2, pixels);
  for (size_t i = 0; i < infinite_weight.size(); ++i) {
    if (i / pixels % 2 == 1) infinite_weight[i] = INFINITY;
  }
  OnEveryTarget([&] {
    for (const RenderSettings& s :
         {Trilinear(9, 37, 150), Clipped(9, 37, 150), Clipped(9, 37, 7)}) {
      ExpectSplitVjpBits(mu, shape, poses, labels, SoftLabelled(s, 3),
                         SoftLabelled(s, 5));
      const std::vector<double> odd_gradient =
          ExpectSameGradientBits(mu, shape, StorageType::kFloat32, poses,
                                 SoftLabelled(s, 3), odd, labels.data());
      EXPECT_TRUE(std::isnan(odd_gradient[0]));
      EXPECT_GT(NonzeroFraction(ExpectSameGradientBits(
                    mu, shape, StorageType::kFloat32, {poses[0]},
                    SoftLabelled(s, 300), ChannelWeights(1, 300, pixels),
                    many.data())),
                0.5);
      EXPECT_GT(NonzeroFraction(ExpectSameGradientBits(
                    mu, shape, StorageType::kFloat32, poses, SoftLabelled(s, 2),
                    ChannelWeights(poses.size(), 2, pixels))),
                0.5);
      // One channel: no labels, every corner weighed by channel 0's weight.
      EXPECT_GT(NonzeroFraction(ExpectSameGradientBits(
                    mu, shape, StorageType::kFloat32, poses, SoftLabelled(s, 1),
                    ChannelWeights(poses.size(), 1, pixels), labels.data())),
                0.5);
      EXPECT_GT(
          NonzeroFraction(ExpectSameJacobianBits(
              mu, shape, StorageType::kFloat32, poses, SoftLabelled(s, 2))),
          0.1);
      const std::vector<double> gradient = ExpectSameGradientBits(
          infinite, shape, StorageType::kFloat32, poses, SoftLabelled(s, 3),
          ChannelWeights(poses.size(), 3, pixels), infinite_labels.data());
      EXPECT_TRUE(all_finite(gradient));
      EXPECT_GT(NonzeroFraction(gradient), 0.5);
      EXPECT_TRUE(all_finite(
          ExpectSameJacobianBits(infinite, shape, StorageType::kFloat32, poses,
                                 SoftLabelled(s, 3), infinite_labels.data())));
      const std::vector<double> far = ExpectSameGradientBits(
          mu, shape, StorageType::kFloat32, poses, SoftLabelled(s, 2),
          infinite_weight, corner_class.data());
      int finite_poses = 0;
      for (size_t pose = 0; pose < poses.size(); ++pose) {
        finite_poses += all_finite(
            std::vector<double>(far.begin() + pose * kPoseMapEntries,
                                far.begin() + (pose + 1) * kPoseMapEntries));
      }
      EXPECT_GT(finite_poses, 0);
    }
  });
}

// An infinite voxel amid a block of one class: samples of a class weighed
// by no channel (4 of 3 channels), or of one whose upstream weight is zero
// everywhere, are skipped by the trilinear body, and the lanes must skip
// them too: the gradients stay finite. Siddon's body weighs the voxel of a
// class weighed by no channel 0 (not ∞·0), so its gradients and every
// Jacobian stay finite there. Without labels, the Jacobian's second channel
// skips every sample.
TEST_F(CpuSimdTest, SplitGradientsSkipAnInfiniteVoxelOfAClassWeighingNothing) {
  const VolumeShape shape{14, 15, 16};
  std::vector<float> mu = DistinctVoxels(shape);
  const auto at = [&](int i, int j, int k) {
    return static_cast<size_t>((k * shape.ny + j) * shape.nx + i);
  };
  mu[at(7, 7, 8)] = INFINITY;
  const std::vector<PoseGeometry> poses = ViewsOf(shape, 4, 21);
  const size_t pixels = 4 * 21;
  const auto all_finite = [](const auto& values) {
    return std::all_of(values.begin(), values.end(),
                       [](auto v) { return std::isfinite(v); });
  };
  OnEveryTarget([&] {
    for (int block_class : {4, 1}) {
      SCOPED_TRACE(block_class);
      std::vector<uint16_t> labels = ScatteredLabels(shape, 3);
      for (int k = 6; k <= 10; ++k)
        for (int j = 5; j <= 9; ++j)
          for (int i = 5; i <= 9; ++i)
            labels[at(i, j, k)] = static_cast<uint16_t>(block_class);
      std::vector<float> upstream = ChannelWeights(poses.size(), 3, pixels);
      for (size_t i = 0; i < upstream.size(); ++i) {
        if (i / pixels % 3 == 1) upstream[i] = 0.0f;
      }
      for (const RenderSettings& s : Differentiable(4, 21)) {
        const RenderSettings split = WithChannels(s, 3);
        const std::vector<double> gradient =
            ExpectSameGradientBits(mu, shape, StorageType::kFloat32, poses,
                                   split, upstream, labels.data());
        // Siddon's body weighs a voxel of a class weighed zero by w·μ,
        // NaN here, as the lanes must.
        const bool siddon_nan =
            block_class == 1 && s.projector == Projector::kSiddon;
        EXPECT_EQ(all_finite(gradient), !siddon_nan);
        EXPECT_GT(NonzeroFraction(gradient), 0.5);
        if (block_class == 4) {
          EXPECT_TRUE(all_finite(ExpectSameJacobianBits(
              mu, shape, StorageType::kFloat32, poses, split, labels.data())));
        }
      }
    }
    // Without labels: the first channel meets the infinite voxel, the
    // second none.
    const std::vector<float> jacobians =
        ExpectSameJacobianBits(mu, shape, StorageType::kFloat32, poses,
                               WithChannels(Siddon(4, 21), 2));
    const size_t block = pixels * kPoseMapEntries;
    int non_finite = 0;
    for (size_t pose = 0; pose < poses.size(); ++pose) {
      const auto first = jacobians.begin() + pose * 2 * block;
      non_finite += !all_finite(std::vector<float>(first, first + block));
      EXPECT_TRUE(
          all_finite(std::vector<float>(first + block, first + 2 * block)));
    }
    EXPECT_GT(non_finite, 0);
  });
}

}  // namespace
}  // namespace drr::kernels
