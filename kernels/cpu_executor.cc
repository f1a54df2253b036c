// The CPU executor: runs the shared per-ray bodies over a thread pool.
#include <memory>
#include <new>
#include <vector>

#include "kernels/executor.h"
#include "kernels/pose_gradient.h"
#include "kernels/render_pixel.h"
#include "kernels/thread_pool.h"
#include "kernels/volume_view.h"

namespace drr::kernels {
namespace {

// A μ volume (in its storage type) and optional labels in host memory.
class HostVolume final : public ResidentVolume {
 public:
  HostVolume(std::vector<char> mu, std::vector<uint16_t> labels,
             VolumeShape shape, StorageType storage)
      : mu_(std::move(mu)),
        labels_(std::move(labels)),
        shape_(shape),
        storage_(storage) {}

  VolumeShape shape() const override { return shape_; }
  StorageType storage() const override { return storage_; }
  bool has_labels() const override { return !labels_.empty(); }
  long long resident_bytes() const override {
    return static_cast<long long>(mu_.size() +
                                  labels_.size() * sizeof(uint16_t));
  }

  template <typename T>
  VolumeView<T> view() const {
    return VolumeView<T>{reinterpret_cast<const T*>(mu_.data()), shape_.nx,
                         shape_.ny, shape_.nz};
  }
  LabelView labels() const {
    return LabelView{labels_.data(), shape_.nx, shape_.ny, shape_.nz};
  }

 private:
  std::vector<char> mu_;
  std::vector<uint16_t> labels_;
  VolumeShape shape_;
  StorageType storage_;
};

template <typename T, typename Convert>
void StoreAs(const float* mu, size_t count, char* out, Convert convert) {
  T* typed = reinterpret_cast<T*>(out);
  for (size_t i = 0; i < count; ++i) typed[i] = convert(mu[i]);
}

// Rows of one pose are the unit of parallel work: long enough to amortise
// scheduling, short enough to balance 200-row images over a few cores.
class CpuExecutor final : public Executor {
 public:
  explicit CpuExecutor(int threads) : pool_(threads) {}

  std::string name() const override { return "cpu"; }

  KernelStatus MakeResident(const float* mu, const uint16_t* labels,
                            VolumeShape shape, StorageType storage,
                            std::shared_ptr<ResidentVolume>* out) override {
    const size_t count = static_cast<size_t>(shape.voxels());
    std::vector<char> stored;
    std::vector<uint16_t> label_copy;
    try {
      stored.resize(count * StorageBytes(storage));
      if (labels != nullptr) label_copy.assign(labels, labels + count);
    } catch (const std::bad_alloc&) {
      return KernelStatus::Error(KernelCode::kResourceExhausted,
                                 "out of host memory for the volume");
    }
    switch (storage) {
      case StorageType::kFloat32:
        StoreAs<float>(mu, count, stored.data(), [](float v) { return v; });
        break;
      case StorageType::kFloat16:
        StoreAs<Half>(mu, count, stored.data(), ToHalf);
        break;
      case StorageType::kBFloat16:
        StoreAs<BFloat16>(mu, count, stored.data(), ToBFloat16);
        break;
    }
    *out = std::make_shared<HostVolume>(std::move(stored),
                                        std::move(label_copy), shape, storage);
    return KernelStatus::Ok();
  }

  KernelStatus Render(const ResidentVolume& volume, const PoseGeometry* poses,
                      int n_poses, const RenderSettings& settings,
                      float* out) override {
    const HostVolume* host;
    KernelStatus status = AsHost(volume, &host);
    if (!status.ok()) return status;
    if (settings.sampler == Sampler::kTexture) {
      return KernelStatus::Error(KernelCode::kInvalidArgument,
                                 "the texture sampler needs the CUDA executor");
    }
    Visit(*host, settings, [&](const auto& view, const auto& labels) {
      RenderRows(view, labels, poses, n_poses, settings, out);
    });
    return KernelStatus::Ok();
  }

  KernelStatus PoseGradient(const ResidentVolume& volume,
                            const PoseGeometry* poses, int n_poses,
                            const RenderSettings& settings,
                            const float* upstream, double* grad) override {
    const HostVolume* host;
    KernelStatus status = AsHost(volume, &host);
    if (status.ok()) status = CheckDifferentiable(settings);
    if (!status.ok()) return status;
    Visit(*host, settings, [&](const auto& view, const auto& labels) {
      GradientRows(view, labels, poses, n_poses, settings, upstream, grad);
    });
    return KernelStatus::Ok();
  }

  KernelStatus PoseJacobian(const ResidentVolume& volume,
                            const PoseGeometry* poses, int n_poses,
                            const RenderSettings& settings,
                            float* out) override {
    const HostVolume* host;
    KernelStatus status = AsHost(volume, &host);
    if (status.ok()) status = CheckDifferentiable(settings);
    if (!status.ok()) return status;
    Visit(*host, settings, [&](const auto& view, const auto& labels) {
      JacobianRows(view, labels, poses, n_poses, settings, out);
    });
    return KernelStatus::Ok();
  }

 private:
  static KernelStatus AsHost(const ResidentVolume& volume,
                             const HostVolume** host) {
    *host = dynamic_cast<const HostVolume*>(&volume);
    if (*host != nullptr) return KernelStatus::Ok();
    return KernelStatus::Error(KernelCode::kInternal,
                               "volume is not resident on the CPU executor");
  }

  // Calls f(view, labels) with the view of the volume's storage type and the
  // label view (NoLabels when one channel sums every class).
  template <class F>
  static void Visit(const HostVolume& host, const RenderSettings& settings,
                    F&& f) {
    const bool labelled = settings.channels > 1 && host.has_labels();
    auto with_labels = [&](const auto& view) {
      if (labelled) {
        f(view, host.labels());
      } else {
        f(view, NoLabels{});
      }
    };
    switch (host.storage()) {
      case StorageType::kFloat32:
        return with_labels(host.view<float>());
      case StorageType::kFloat16:
        return with_labels(host.view<Half>());
      case StorageType::kBFloat16:
        return with_labels(host.view<BFloat16>());
    }
  }

  template <class Volume, class Labels>
  void JacobianRows(const Volume& view, const Labels& labels,
                    const PoseGeometry* poses, int n_poses,
                    const RenderSettings& s, float* out) {
    const int rows = s.rays.height, cols = s.rays.width;
    const float one = 1.0f;
    pool_.ParallelFor(n_poses * rows, [&](int task) {
      const int pose = task / rows;
      const int row = task % rows;
      for (int c = 0; c < s.channels; ++c) {
        const SingleClass<Labels> only{labels, c};
        float* line =
            out +
            (((static_cast<long long>(pose) * s.channels + c) * rows + row) *
             cols) *
                12;
        for (int col = 0; col < cols; ++col) {
          float* d = line + col * 12;
          for (int k = 0; k < 12; ++k) d[k] = 0.0f;
          MarchTrilinearVjp(view, only, poses[pose], s.rays, row, col, &one, 0,
                            1, d);
        }
      }
    });
  }
  // Each row sums its rays left to right; rows are then summed top to bottom,
  // so the result does not depend on which thread took which row.
  template <class Volume, class Labels>
  void GradientRows(const Volume& view, const Labels& labels,
                    const PoseGeometry* poses, int n_poses,
                    const RenderSettings& s, const float* upstream,
                    double* grad) {
    const int rows = s.rays.height, cols = s.rays.width;
    const long long plane = static_cast<long long>(rows) * cols;
    std::vector<double> row_sums(static_cast<size_t>(n_poses) * rows * 12, 0.0);
    pool_.ParallelFor(n_poses * rows, [&](int task) {
      const int pose = task / rows;
      const int row = task % rows;
      const float* weights =
          upstream + static_cast<long long>(pose) * s.channels * plane;
      double* sum = row_sums.data() + static_cast<size_t>(task) * 12;
      for (int col = 0; col < cols; ++col) {
        float ray[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        MarchTrilinearVjp(view, labels, poses[pose], s.rays, row, col,
                          weights + row * cols + col, plane, s.channels, ray);
        for (int k = 0; k < 12; ++k) sum[k] += ray[k];
      }
    });
    for (int pose = 0; pose < n_poses; ++pose) {
      double* out = grad + static_cast<size_t>(pose) * 12;
      for (int k = 0; k < 12; ++k) out[k] = 0.0;
      for (int row = 0; row < rows; ++row) {
        const double* sum =
            row_sums.data() + (static_cast<size_t>(pose) * rows + row) * 12;
        for (int k = 0; k < 12; ++k) out[k] += sum[k];
      }
    }
  }

  template <class Volume, class Labels>
  void RenderRows(const Volume& view, const Labels& labels,
                  const PoseGeometry* poses, int n_poses,
                  const RenderSettings& s, float* out) {
    const int rows = s.rays.height, cols = s.rays.width;
    const long long plane = static_cast<long long>(rows) * cols;
    pool_.ParallelFor(n_poses * rows, [&](int task) {
      const int pose = task / rows;
      const int row = task % rows;
      float* image = out + static_cast<long long>(pose) * s.channels * plane;
      for (int col = 0; col < cols; ++col) {
        RenderPixel(view, labels, poses[pose], s, row, col,
                    image + row * cols + col, plane);
      }
    });
  }

  ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Executor> MakeCpuExecutor(int threads) {
  return std::make_unique<CpuExecutor>(threads);
}

}  // namespace drr::kernels
