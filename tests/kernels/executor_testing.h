// Running the executors from tests: which executors this machine has, and
// short calls that fail the test when an executor refuses. A refusal throws
// (GoogleTest reports it as a failure of the test with the message) rather
// than return something the test would then dereference.
#pragma once

#include <algorithm>
#include <iterator>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/executor.h"

namespace drr::kernels::testing {

// Fails the test with `status`'s message unless it is OK.
inline void CheckOk(const KernelStatus& status) {
  if (!status.ok()) throw std::runtime_error(status.message());
}

// The executors present here: "cpu" (vectorised where this build can) and
// "cpu_scalar" always, "cuda" where a device is usable.
inline std::vector<std::string> AvailableExecutors() {
  std::vector<std::string> names = {"cpu", "cpu_scalar"};
  if (ProbeCuda().device_count > 0) names.push_back("cuda");
  return names;
}

// The executor called `name` ("cpu" or "cpu_scalar" with two threads, or
// "cuda").
inline std::unique_ptr<Executor> MakeExecutor(const std::string& name) {
  if (name == "cpu") return MakeCpuExecutor(2);
  if (name == "cpu_scalar") return MakeScalarCpuExecutor(2);
  std::unique_ptr<Executor> cuda;
  CheckOk(MakeCudaExecutor(&cuda));
  return cuda;
}

// `mu` (and `labels`, or nullptr) of `shape` made resident on `executor` as
// `residency` asks.
inline std::shared_ptr<const ResidentVolume> MakeResident(
    Executor& executor, const std::vector<float>& mu, const uint16_t* labels,
    VolumeShape shape, const Residency& residency) {
  std::shared_ptr<const ResidentVolume> resident;
  CheckOk(
      executor.MakeResident(mu.data(), labels, shape, residency, &resident));
  return resident;
}

// `mu` (and `labels`, or nullptr) of `shape` made resident on `executor` in
// `storage`, with a texture when asked.
inline std::shared_ptr<const ResidentVolume> MakeResident(
    Executor& executor, const std::vector<float>& mu, const uint16_t* labels,
    VolumeShape shape, StorageType storage = StorageType::kFloat32,
    bool texture = false) {
  return MakeResident(executor, mu, labels, shape, Residency{storage, texture});
}

// A new workspace of `executor`.
inline std::unique_ptr<Workspace> MakeWorkspace(Executor& executor) {
  std::unique_ptr<Workspace> workspace;
  CheckOk(executor.MakeWorkspace(nullptr, &workspace));
  return workspace;
}

// What the calls below fill their output with before the executor writes
// it: a value an executor leaves unwritten is near no expected value.
inline constexpr float kUnwritten = std::numeric_limits<float>::quiet_NaN();

// `count` pose gradients of kUnwritten entries.
inline std::vector<PoseMapGradient> UnwrittenGradients(size_t count) {
  PoseMapGradient unwritten;
  std::fill(std::begin(unwritten.d), std::end(unwritten.d), kUnwritten);
  return std::vector<PoseMapGradient>(count, unwritten);
}

// The images of `poses` rendered from `volume` with `settings`.
inline std::vector<float> RenderImages(Executor& executor,
                                       const ResidentVolume& volume,
                                       const std::vector<PoseGeometry>& poses,
                                       const RenderSettings& settings) {
  std::vector<float> out(poses.size() * settings.channels *
                             settings.rays.height * settings.rays.width,
                         kUnwritten);
  std::unique_ptr<Workspace> workspace = MakeWorkspace(executor);
  CheckOk(executor.Render(volume, poses.data(), static_cast<int>(poses.size()),
                          settings, *workspace, out.data()));
  return out;
}

// dΣ(upstream·image)/dM of every pose, flattened (kPoseMapEntries a pose).
inline std::vector<double> PoseGradients(Executor& executor,
                                         const ResidentVolume& volume,
                                         const std::vector<PoseGeometry>& poses,
                                         const RenderSettings& settings,
                                         const std::vector<float>& upstream) {
  std::vector<PoseMapGradient> grad = UnwrittenGradients(poses.size());
  std::unique_ptr<Workspace> workspace = MakeWorkspace(executor);
  CheckOk(executor.PoseGradient(volume, poses.data(),
                                static_cast<int>(poses.size()), settings,
                                upstream.data(), *workspace, grad.data()));
  std::vector<double> flat;
  for (const PoseMapGradient& g : grad)
    flat.insert(flat.end(), g.d, g.d + kPoseMapEntries);
  return flat;
}

// dI/dM of every pose, channel and pixel (Executor::PoseJacobian's layout).
inline std::vector<float> PoseJacobians(Executor& executor,
                                        const ResidentVolume& volume,
                                        const std::vector<PoseGeometry>& poses,
                                        const RenderSettings& settings) {
  std::vector<float> out(poses.size() * settings.channels *
                             settings.rays.height * settings.rays.width *
                             kPoseMapEntries,
                         kUnwritten);
  std::unique_ptr<Workspace> workspace = MakeWorkspace(executor);
  CheckOk(executor.PoseJacobian(volume, poses.data(),
                                static_cast<int>(poses.size()), settings,
                                *workspace, out.data()));
  return out;
}

}  // namespace drr::kernels::testing
