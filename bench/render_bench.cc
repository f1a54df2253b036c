// Times the renderer on design.md §8's reference case: the LIDC-IDRI-0001
// chest CT, 200×200 pixels, sdd 1020, delx = dely 2.0, ZXY (0,0,0),
// translation (0, 850, 0), AP, 500 samples. Reports the median time per
// launch for batches of 1, 8 and 64 poses, trilinear and Siddon, on every
// executor available here: one tab-separated line per measurement. Needs
// only the kernels library, so it also builds in the kernels-only
// configuration on GPU hosts; bench/export_volume.py writes its inputs (raw
// float32 voxels, and a text file with the shape and the affine).
//
//   render_bench MU.f32 MU.txt [--repeats N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "defaults/defaults.h"
#include "geometry/pose.h"
#include "kernels/cpu_simd.h"
#include "kernels/executor.h"
#include "kernels/pose_geometry.h"

namespace drr {
namespace {

// A μ volume as bench/export_volume.py writes it.
struct BenchVolume {
  kernels::VolumeShape shape;
  geometry::Mat4d affine;
  std::vector<float> mu;
};

// Reads `voxels_path` (raw little-endian float32, x fastest) with the shape
// "D H W" and 16 affine values from `geometry_path`; false with a message on
// stderr when either does not fit.
bool ReadBenchVolume(const std::string& voxels_path,
                     const std::string& geometry_path, BenchVolume* out) {
  std::ifstream geometry(geometry_path);
  long long d = 0, h = 0, w = 0;
  geometry >> d >> h >> w;
  for (auto& row : out->affine.m)
    for (double& v : row) geometry >> v;
  if (!geometry || d <= 0 || h <= 0 || w <= 0 || d * h * w > (1LL << 31)) {
    std::fprintf(stderr, "%s: need \"D H W\" and 16 affine values\n",
                 geometry_path.c_str());
    return false;
  }
  out->shape = {static_cast<int>(w), static_cast<int>(h), static_cast<int>(d)};
  out->mu.resize(static_cast<size_t>(d * h * w));
  std::ifstream voxels(voxels_path, std::ios::binary);
  voxels.read(reinterpret_cast<char*>(out->mu.data()),
              static_cast<std::streamsize>(out->mu.size() * sizeof(float)));
  if (!voxels || voxels.peek() != std::ifstream::traits_type::eof()) {
    std::fprintf(stderr, "%s: need exactly %lld float32 values\n",
                 voxels_path.c_str(), d * h * w);
    return false;
  }
  return true;
}

// The reference case's detector and samples (defaults/defaults.h).
constexpr kernels::RaySettings kReferenceRays{
    defaults::kHeight, defaults::kWidth, defaults::kSamples};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Renders `poses` once to warm up, then `repeats` times; returns the median
// milliseconds per launch (images copied back to host memory included).
double TimeLaunch(kernels::Executor& executor, kernels::Workspace& workspace,
                  const kernels::ResidentVolume& volume,
                  const std::vector<kernels::PoseGeometry>& poses,
                  kernels::Projector projector, int repeats) {
  kernels::RenderSettings settings;
  settings.rays = kReferenceRays;
  settings.projector = projector;
  std::vector<float> out(poses.size() * kReferenceRays.height *
                         kReferenceRays.width);
  std::vector<double> times;
  for (int r = 0; r <= repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    const kernels::KernelStatus status =
        executor.Render(volume, poses.data(), static_cast<int>(poses.size()),
                        settings, workspace, out.data());
    const auto stop = std::chrono::steady_clock::now();
    if (!status.ok()) {
      std::fprintf(stderr, "render failed: %s\n", status.message().c_str());
      std::exit(1);
    }
    if (r > 0)
      times.push_back(
          std::chrono::duration<double, std::milli>(stop - start).count());
  }
  return Median(times);
}

int Main(int argc, char** argv) {
  std::vector<std::string> paths;
  int repeats = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--repeats" && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else {
      paths.push_back(arg);
    }
  }
  if (paths.size() != 2) {
    std::fprintf(stderr, "usage: render_bench MU.f32 MU.txt [--repeats N]\n");
    return 2;
  }
  BenchVolume volume_in;
  if (!ReadBenchVolume(paths[0], paths[1], &volume_in)) return 1;
  const kernels::VolumeShape shape = volume_in.shape;
  const geometry::Mat4d& affine = volume_in.affine;
  const std::vector<float>& mu = volume_in.mu;
  const geometry::Vec3d center = geometry::TransformPoint(
      affine,
      {(shape.nx - 1) / 2.0, (shape.ny - 1) / 2.0, (shape.nz - 1) / 2.0});
  const geometry::Mat4d rt_inv =
      geometry::MakeRtInv(geometry::Mat3d::Identity(),
                          {defaults::kTranslation[0], defaults::kTranslation[1],
                           defaults::kTranslation[2]},
                          geometry::Orientation::kAP, center);
  const kernels::PoseGeometry reference = kernels::MakePoseGeometry(
      *geometry::InvertAffine(affine), rt_inv, geometry::Intrinsics{});

  std::vector<std::unique_ptr<kernels::Executor>> executors;
  executors.push_back(kernels::MakeCpuExecutor(0));
  executors.push_back(kernels::MakeScalarCpuExecutor(0));
  std::printf("# CPU vectorised path: %s\n", kernels::SimdTargetName());
  std::unique_ptr<kernels::Executor> cuda;
  const kernels::KernelStatus cuda_status = kernels::MakeCudaExecutor(&cuda);
  if (cuda_status.ok()) {
    executors.push_back(std::move(cuda));
  } else {
    std::printf("# CUDA: %s\n", cuda_status.message().c_str());
  }
  std::printf("# %s, %dx%dx%d, 200x200, 500 samples, median of %d\n",
              paths[0].c_str(), shape.nx, shape.ny, shape.nz, repeats);
  std::printf(
      "executor\trenderer\tbatch\tms_per_launch\tms_per_drr\tdrr_per_s\n");
  for (auto& executor : executors) {
    std::shared_ptr<const kernels::ResidentVolume> volume;
    std::unique_ptr<kernels::Workspace> workspace;
    kernels::KernelStatus status = executor->MakeResident(
        mu.data(), nullptr, shape, kernels::Residency{}, &volume);
    if (status.ok()) status = executor->MakeWorkspace(nullptr, &workspace);
    if (!status.ok()) {
      std::fprintf(stderr, "%s: %s\n", executor->name().c_str(),
                   status.message().c_str());
      return 1;
    }
    // The pose gradient (one pose, upstream 1 everywhere) beside the forward.
    {
      kernels::RenderSettings settings;
      settings.rays = kReferenceRays;
      const std::vector<float> upstream(
          kReferenceRays.height * kReferenceRays.width, 1.0f);
      kernels::PoseMapGradient grad;
      std::vector<double> times;
      for (int r = 0; r <= repeats; ++r) {
        const auto start = std::chrono::steady_clock::now();
        status = executor->PoseGradient(*volume, &reference, 1, settings,
                                        upstream.data(), *workspace, &grad);
        const auto stop = std::chrono::steady_clock::now();
        if (!status.ok()) {
          std::fprintf(stderr, "gradient failed: %s\n",
                       status.message().c_str());
          return 1;
        }
        if (r > 0)
          times.push_back(
              std::chrono::duration<double, std::milli>(stop - start).count());
      }
      const double ms = Median(times);
      std::printf("%s\ttrilinear-gradient\t1\t%.3f\t%.3f\t%.1f\n",
                  executor->name().c_str(), ms, ms, 1000.0 / ms);
    }
    for (auto [projector, name] :
         {std::pair{kernels::Projector::kTrilinear, "trilinear"},
          std::pair{kernels::Projector::kSiddon, "siddon"}}) {
      for (int batch : {1, 8, 64}) {
        const std::vector<kernels::PoseGeometry> poses(batch, reference);
        const int runs = batch == 64 ? std::max(1, repeats / 3) : repeats;
        const double ms =
            TimeLaunch(*executor, *workspace, *volume, poses, projector, runs);
        std::printf("%s\t%s\t%d\t%.3f\t%.3f\t%.1f\n", executor->name().c_str(),
                    name, batch, ms, ms / batch, 1000.0 * batch / ms);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace drr

int main(int argc, char** argv) { return drr::Main(argc, argv); }
