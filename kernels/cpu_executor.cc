// The CPU executor: marches rays with the shared per-ray body over a thread
// pool.
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "kernels/executor.h"
#include "kernels/thread_pool.h"
#include "kernels/trilinear_sampler.h"

namespace drr::kernels {
namespace {

// A μ volume held in host memory.
class HostVolume final : public ResidentVolume {
 public:
  HostVolume(std::vector<float> mu, VolumeShape shape)
      : mu_(std::move(mu)), shape_(shape) {}

  VolumeShape shape() const override { return shape_; }
  long long resident_bytes() const override {
    return static_cast<long long>(mu_.size() * sizeof(float));
  }
  TrilinearSampler sampler() const {
    return TrilinearSampler{mu_.data(), shape_.nx, shape_.ny, shape_.nz};
  }

 private:
  std::vector<float> mu_;
  VolumeShape shape_;
};

// Rows of one pose are the unit of parallel work: long enough to amortise
// scheduling, short enough to balance 200-row images over a few cores.
class CpuExecutor final : public Executor {
 public:
  explicit CpuExecutor(int threads) : pool_(threads) {}

  std::string name() const override { return "cpu"; }

  KernelStatus MakeResident(const float* mu, VolumeShape shape,
                            std::shared_ptr<ResidentVolume>* out) override {
    std::vector<float> copy;
    try {
      copy.assign(mu, mu + shape.voxels());
    } catch (const std::bad_alloc&) {
      return KernelStatus::Error(KernelCode::kResourceExhausted,
                                 "out of host memory for the volume");
    }
    *out = std::make_shared<HostVolume>(std::move(copy), shape);
    return KernelStatus::Ok();
  }

  KernelStatus Render(const ResidentVolume& volume, const PoseGeometry* poses,
                      int n_poses, const RaySettings& settings,
                      float* out) override {
    const auto* host = dynamic_cast<const HostVolume*>(&volume);
    if (host == nullptr) {
      return KernelStatus::Error(KernelCode::kInternal,
                                 "volume is not resident on the CPU executor");
    }
    const TrilinearSampler sampler = host->sampler();
    const int rows = settings.height;
    pool_.ParallelFor(n_poses * rows, [&](int task) {
      const int pose = task / rows;
      const int row = task % rows;
      float* line =
          out + (static_cast<long long>(pose) * rows + row) * settings.width;
      for (int col = 0; col < settings.width; ++col) {
        line[col] = MarchRay(sampler, poses[pose], settings, row, col);
      }
    });
    return KernelStatus::Ok();
  }

 private:
  ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Executor> MakeCpuExecutor(int threads) {
  return std::make_unique<CpuExecutor>(threads);
}

}  // namespace drr::kernels
