// Times the renderer on design.md §8's reference case: the LIDC-IDRI-0001
// chest CT, 200×200 pixels, sdd 1020, delx = dely 2.0, ZXY (0,0,0),
// translation (0, 850, 0), AP, 500 samples. Reports the median time per
// launch for batches of 1, 8 and 64 poses, trilinear and Siddon, on every
// executor available here: one tab-separated line per measurement. Needs
// only the kernels library, so it also builds in the kernels-only
// configuration on GPU hosts; bench/export_volume.py writes its inputs.
//
//   render_bench MU.npy AFFINE.npy [--repeats N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "geometry/pose.h"
#include "io/npy_reader.h"
#include "kernels/executor.h"
#include "kernels/pose_geometry.h"

namespace drr {
namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Renders `poses` once to warm up, then `repeats` times; returns the median
// milliseconds per launch (images copied back to host memory included).
double TimeLaunch(kernels::Executor& executor,
                  const kernels::ResidentVolume& volume,
                  const std::vector<kernels::PoseGeometry>& poses,
                  kernels::Renderer renderer, int repeats) {
  kernels::RenderSettings settings;
  settings.rays = {200, 200, 500};
  settings.renderer = renderer;
  std::vector<float> out(poses.size() * 200 * 200);
  std::vector<double> times;
  for (int r = 0; r <= repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    const kernels::KernelStatus status =
        executor.Render(volume, poses.data(), static_cast<int>(poses.size()),
                        settings, out.data());
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
    std::fprintf(stderr,
                 "usage: render_bench MU.npy AFFINE.npy [--repeats N]\n");
    return 2;
  }
  NpyArray mu_array, affine_array;
  try {
    mu_array = ReadNpy(paths[0]);
    affine_array = ReadNpy(paths[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  if (mu_array.shape.size() != 3 || affine_array.values.size() != 16) {
    std::fprintf(stderr, "need a (D, H, W) volume and a 4x4 affine\n");
    return 1;
  }
  const std::vector<float> mu(mu_array.values.begin(), mu_array.values.end());
  const kernels::VolumeShape shape{static_cast<int>(mu_array.shape[2]),
                                   static_cast<int>(mu_array.shape[1]),
                                   static_cast<int>(mu_array.shape[0])};
  geometry::Mat4d affine;
  for (int i = 0; i < 16; ++i) affine.m[i / 4][i % 4] = affine_array.values[i];
  const geometry::Vec3d center = geometry::TransformPoint(
      affine,
      {(shape.nx - 1) / 2.0, (shape.ny - 1) / 2.0, (shape.nz - 1) / 2.0});
  const geometry::Mat4d rt_inv =
      geometry::MakeRtInv(geometry::Mat3d::Identity(), {0, 850, 0},
                          geometry::Orientation::kAP, center);
  const kernels::PoseGeometry reference = kernels::MakePoseGeometry(
      *geometry::InvertAffine(affine), rt_inv, geometry::Intrinsics{});

  std::vector<std::unique_ptr<kernels::Executor>> executors;
  executors.push_back(kernels::MakeCpuExecutor(0));
  std::string why;
  if (auto cuda = kernels::MakeCudaExecutor(&why)) {
    executors.push_back(std::move(cuda));
  } else {
    std::printf("# CUDA: %s\n", why.c_str());
  }
  std::printf("# %s, %dx%dx%d, 200x200, 500 samples, median of %d\n",
              paths[0].c_str(), shape.nx, shape.ny, shape.nz, repeats);
  std::printf(
      "executor\trenderer\tbatch\tms_per_launch\tms_per_drr\tdrr_per_s\n");
  for (auto& executor : executors) {
    std::shared_ptr<kernels::ResidentVolume> volume;
    if (!executor
             ->MakeResident(mu.data(), nullptr, shape,
                            kernels::StorageType::kFloat32, &volume)
             .ok()) {
      return 1;
    }
    // The pose gradient (one pose, upstream 1 everywhere) beside the forward.
    {
      kernels::RenderSettings settings;
      settings.rays = {200, 200, 500};
      const std::vector<float> upstream(200 * 200, 1.0f);
      double grad[12];
      std::vector<double> times;
      for (int r = 0; r <= repeats; ++r) {
        const auto start = std::chrono::steady_clock::now();
        const kernels::KernelStatus status = executor->PoseGradient(
            *volume, &reference, 1, settings, upstream.data(), grad);
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
    for (auto [renderer, name] :
         {std::pair{kernels::Renderer::kTrilinear, "trilinear"},
          std::pair{kernels::Renderer::kSiddon, "siddon"}}) {
      for (int batch : {1, 8, 64}) {
        const std::vector<kernels::PoseGeometry> poses(batch, reference);
        const int runs = batch == 64 ? std::max(1, repeats / 3) : repeats;
        const double ms = TimeLaunch(*executor, *volume, poses, renderer, runs);
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
