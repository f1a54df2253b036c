// The CPU executor: runs the shared per-ray bodies over a thread pool.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "kernels/cpu_simd.h"
#include "kernels/executor.h"
#include "kernels/host_scratch.h"
#include "kernels/ordered_sum.h"
#include "kernels/pose_gradient.h"
#include "kernels/render_pixel.h"
#include "kernels/thread_pool.h"
#include "kernels/volume_dispatch.h"

namespace drr::kernels {
namespace {

// The host memory of a resident volume: μ in its storage type (readable
// kSimdVoxelPadding bytes past the last voxel), and labels (kSimdLabelPadding
// past the last voxel's).
struct HostVolumeMemory {
  std::vector<char> voxels;
  std::vector<uint16_t> labels;
  // The quads, when asked for: uninitialised until StoreQuads writes every
  // one, aligned for the widest (Quad<float>).
  std::unique_ptr<void, decltype(&std::free)> quads{nullptr, &std::free};
};

// The CPU executor's scratch: per-row partial sums of pose gradients.
class CpuWorkspace final : public Workspace {
 public:
  MemorySpace space() const override { return MemorySpace::kHost; }

  HostScratch<double> row_sums;
};

template <typename T, typename Convert>
void StoreAs(const float* mu, size_t count, char* out, Convert convert) {
  T* typed = reinterpret_cast<T*>(out);
  for (size_t i = 0; i < count; ++i) typed[i] = convert(mu[i]);
}

// Ends a call's parallel loop early once its workspace's stop check fires:
// every task asks before each group of kPixelsPerCheck pixels.
class EarlyStop {
 public:
  // Sparse enough to cost nothing, dense enough to stop a 2000-sample ray
  // march within about a millisecond per thread.
  static constexpr int kPixelsPerCheck = 8;

  explicit EarlyStop(const Workspace& workspace) : workspace_(workspace) {}

  // True once the call should stop; asks the stop check when `pixel` starts
  // a group.
  bool Before(int pixel) {
    if (stopped_.load(std::memory_order_relaxed)) return true;
    if (pixel % kPixelsPerCheck != 0 || !workspace_.ShouldStop()) return false;
    stopped_.store(true, std::memory_order_relaxed);
    return true;
  }

  // kCancelled when the call stopped early, else kOk.
  KernelStatus Outcome() const {
    if (!stopped_.load()) return KernelStatus::Ok();
    return KernelStatus::Error(KernelCode::kCancelled,
                               "stopped by the caller before it finished");
  }

 private:
  const Workspace& workspace_;
  std::atomic<bool> stopped_{false};
};

// One row of one pose is the unit of parallel work (ForEachRow orders them):
// long enough to amortise scheduling, short enough to balance 200-row images
// over a few cores.
class CpuExecutor final : public Executor {
 public:
  // `vectorised`: whether renders SimdRenders accepts take the SIMD path.
  CpuExecutor(int threads, bool vectorised)
      : vectorised_(vectorised), pool_(threads) {}

  std::string name() const override {
    return vectorised_ ? "cpu" : "cpu_scalar";
  }
  MemorySpace space() const override { return MemorySpace::kHost; }

  KernelStatus MakeResident(
      const float* mu, const uint16_t* labels, VolumeShape shape,
      const Residency& residency,
      std::shared_ptr<const ResidentVolume>* out) override {
    if (residency.texture) {
      return KernelStatus::Error(KernelCode::kInvalidArgument,
                                 "the texture sampler needs the CUDA executor");
    }
    const size_t count = static_cast<size_t>(shape.voxels());
    const size_t voxel_bytes = count * StorageBytes(residency.storage);
    const size_t quad_bytes = residency.quads ? 4 * voxel_bytes : 0;
    auto memory = std::make_shared<HostVolumeMemory>();
    try {
      memory->voxels.resize(voxel_bytes + kSimdVoxelPadding);
      if (labels != nullptr) {
        memory->labels.resize(count + kSimdLabelPadding);
        std::copy(labels, labels + count, memory->labels.begin());
      }
    } catch (const std::bad_alloc&) {
      return KernelStatus::Error(KernelCode::kResourceExhausted,
                                 "out of host memory for the volume");
    }
    switch (residency.storage) {
      case StorageType::kFloat32:
        StoreAs<float>(mu, count, memory->voxels.data(),
                       [](float v) { return v; });
        break;
      case StorageType::kFloat16:
        StoreAs<Half>(mu, count, memory->voxels.data(), ToHalfSaturating);
        break;
      case StorageType::kBFloat16:
        StoreAs<BFloat16>(mu, count, memory->voxels.data(), ToBFloat16);
        break;
    }
    VolumeBuffers buffers{MemorySpace::kHost,
                          shape,
                          residency.storage,
                          memory->voxels.data(),
                          labels != nullptr ? memory->labels.data() : nullptr,
                          /*texture=*/0,
                          /*quads=*/nullptr};
    if (residency.quads) {
      // aligned_alloc takes a whole number of alignments, at least one.
      constexpr size_t kAlign = alignof(Quad<float>);
      memory->quads.reset(
          std::aligned_alloc(kAlign, (quad_bytes + kAlign) / kAlign * kAlign));
      if (memory->quads == nullptr) {
        return KernelStatus::Error(KernelCode::kResourceExhausted,
                                   "out of host memory for the volume's quads");
      }
      WithVoxelView(buffers, [&](const auto& view) {
        using T = typename std::decay_t<decltype(view)>::Element;
        StoreQuads(view, static_cast<Quad<T>*>(memory->quads.get()));
      });
      buffers.quads = memory->quads.get();
    }
    const size_t bytes = voxel_bytes + quad_bytes +
                         (labels != nullptr ? count * sizeof(uint16_t) : 0);
    *out = std::make_shared<const ResidentVolume>(
        buffers, static_cast<long long>(bytes), std::move(memory));
    return KernelStatus::Ok();
  }

  KernelStatus MakeWorkspace(void* /*cuda_stream*/,
                             std::unique_ptr<Workspace>* out) override {
    *out = std::make_unique<CpuWorkspace>();
    return KernelStatus::Ok();
  }

  KernelStatus Render(const ResidentVolume& volume, const PoseGeometry* poses,
                      int n_poses, const RenderSettings& settings,
                      Workspace& workspace, float* out) override {
    DRR_KERNEL_RETURN_IF_ERROR(
        CheckLaunch(space(), volume, settings, workspace));
    EarlyStop stop(workspace);
    if (vectorised_ && SimdRenders(settings)) {
      RenderSpans(volume.buffers(), poses, n_poses, settings, stop, out);
      return stop.Outcome();
    }
    VisitRender(
        volume.buffers(), settings,
        [&](const auto& view, const auto& labels, auto projector) {
          WithReduce(settings, [&](auto reduce) {
            RenderRows<decltype(projector)::value, decltype(reduce)::value>(
                view, labels, poses, n_poses, settings, stop, out);
          });
        });
    return stop.Outcome();
  }

  KernelStatus PoseGradient(const ResidentVolume& volume,
                            const PoseGeometry* poses, int n_poses,
                            const RenderSettings& settings,
                            const float* upstream, Workspace& workspace,
                            PoseMapGradient* grad) override {
    DRR_KERNEL_RETURN_IF_ERROR(
        CheckGradientLaunch(space(), volume, settings, workspace));
    auto& scratch = static_cast<CpuWorkspace&>(workspace);
    const int rows = settings.rays.height;
    DRR_KERNEL_RETURN_IF_ERROR(scratch.row_sums.Reserve(
        static_cast<size_t>(n_poses) * rows * kPoseMapEntries,
        "gradient partials"));
    EarlyStop stop(workspace);
    if (vectorised_ && SimdDifferentiates(settings)) {
      GradientSpans(volume.buffers(), poses, n_poses, settings, upstream, stop,
                    scratch.row_sums.data());
    } else {
      VisitRender(volume.buffers(), settings,
                  [&](const auto& view, const auto& labels, auto projector) {
                    GradientRows<decltype(projector)::value>(
                        view, labels, poses, n_poses, settings, upstream, stop,
                        scratch.row_sums.data());
                  });
    }
    DRR_KERNEL_RETURN_IF_ERROR(stop.Outcome());
    SumPartialsInOrder(scratch.row_sums.data(), n_poses, rows, grad);
    return KernelStatus::Ok();
  }

  KernelStatus PoseJacobian(const ResidentVolume& volume,
                            const PoseGeometry* poses, int n_poses,
                            const RenderSettings& settings,
                            Workspace& workspace, float* out) override {
    DRR_KERNEL_RETURN_IF_ERROR(
        CheckGradientLaunch(space(), volume, settings, workspace));
    EarlyStop stop(workspace);
    if (vectorised_ && SimdDifferentiates(settings)) {
      JacobianSpans(volume.buffers(), poses, n_poses, settings, stop, out);
      return stop.Outcome();
    }
    VisitRender(volume.buffers(), settings,
                [&](const auto& view, const auto& labels, auto projector) {
                  JacobianRows<decltype(projector)::value>(
                      view, labels, poses, n_poses, settings, stop, out);
                });
    return stop.Outcome();
  }

 private:
  // Calls body(pose, row) on the pool for every row of every pose of a
  // batch: row by row, each row through every pose in turn. The poses of a
  // batch mostly look through the volume alike (a registration's candidate
  // poses, a sweep), so the next pose finds much of a row's voxels still in
  // cache, where pose by pose each image streams the volume through the
  // cache again (docs/renderer.md, "Batches").
  template <class Body>
  void ForEachRow(int n_poses, int rows, const Body& body) {
    pool_.ParallelFor(n_poses * rows, [&](int task) {
      body(/*pose=*/task % n_poses, /*row=*/task / n_poses);
    });
  }

  // Where `row` of `pose` lies among the rows of a batch's images, pose by
  // pose (the layout of images, upstream weights and gradient partials).
  static size_t PoseMajorRow(int pose, int row, int rows) {
    return static_cast<size_t>(pose) * rows + row;
  }

  template <Projector kProjector, class Volume, class Labels>
  void JacobianRows(const Volume& view, const Labels& labels,
                    const PoseGeometry* poses, int n_poses,
                    const RenderSettings& s, EarlyStop& stop, float* out) {
    const int rows = s.rays.height, cols = s.rays.width;
    const float one = 1.0f;
    ForEachRow(n_poses, rows, [&](int pose, int row) {
      for (int c = 0; c < s.channels; ++c) {
        const SingleClass<Labels> only{labels, c};
        float* line =
            out +
            (((static_cast<long long>(pose) * s.channels + c) * rows + row) *
             cols) *
                kPoseMapEntries;
        for (int col = 0; col < cols; ++col) {
          if (stop.Before(col)) return;
          float* d = line + col * kPoseMapEntries;
          for (int k = 0; k < kPoseMapEntries; ++k) d[k] = 0.0f;
          MarchPoseVjp<kProjector>(view, only, poses[pose], s.rays, row, col,
                                   &one, 0, 1, d);
        }
      }
    });
  }

  // Each row sums its rays left to right into its own partial (pose-major,
  // rows top to bottom), for SumPartialsInOrder.
  template <Projector kProjector, class Volume, class Labels>
  void GradientRows(const Volume& view, const Labels& labels,
                    const PoseGeometry* poses, int n_poses,
                    const RenderSettings& s, const float* upstream,
                    EarlyStop& stop, double* row_sums) {
    const int rows = s.rays.height, cols = s.rays.width;
    const long long plane = static_cast<long long>(rows) * cols;
    ForEachRow(n_poses, rows, [&](int pose, int row) {
      const float* weights =
          upstream + static_cast<long long>(pose) * s.channels * plane;
      double sum[kPoseMapEntries] = {};
      for (int col = 0; col < cols; ++col) {
        if (stop.Before(col)) return;
        float ray[kPoseMapEntries] = {};
        MarchPoseVjp<kProjector>(view, labels, poses[pose], s.rays, row, col,
                                 weights + row * cols + col, plane, s.channels,
                                 ray);
        for (int k = 0; k < kPoseMapEntries; ++k) sum[k] += ray[k];
      }
      double* partial =
          row_sums + PoseMajorRow(pose, row, rows) * kPoseMapEntries;
      for (int k = 0; k < kPoseMapEntries; ++k) partial[k] = sum[k];
    });
  }

  template <Projector kProjector, Reduce R, class Volume, class Labels>
  void RenderRows(const Volume& view, const Labels& labels,
                  const PoseGeometry* poses, int n_poses,
                  const RenderSettings& s, EarlyStop& stop, float* out) {
    const int rows = s.rays.height, cols = s.rays.width;
    const long long plane = static_cast<long long>(rows) * cols;
    ForEachRow(n_poses, rows, [&](int pose, int row) {
      float* image = out + static_cast<long long>(pose) * s.channels * plane;
      for (int col = 0; col < cols; ++col) {
        if (stop.Before(col)) return;
        RenderPixelAs<kProjector, R>(view, labels, poses[pose], s, row, col,
                                     image + row * cols + col, plane);
      }
    });
  }

  // A row per task in spans of kSpanPixels pixels: a multiple of the x86
  // SIMD targets' lanes and of EarlyStop's check interval.
  static constexpr int kSpanPixels = 32;
  static_assert(kSpanPixels % EarlyStop::kPixelsPerCheck == 0);

  // Calls span(pose, row, col, col_end) for every span of kSpanPixels pixels
  // of every row of every pose, a row per task in ForEachRow's order, left
  // to right, until `stop` fires.
  template <class Span>
  void ForEachSpan(int n_poses, const RaySettings& rays, EarlyStop& stop,
                   const Span& span) {
    const int cols = rays.width;
    ForEachRow(n_poses, rays.height, [&](int pose, int row) {
      for (int col = 0; col < cols; col += kSpanPixels) {
        if (stop.Before(col)) return;
        span(pose, row, col, std::min(col + kSpanPixels, cols));
      }
    });
  }

  // The vectorised pose gradient: GradientRows's partials, span by span.
  void GradientSpans(const VolumeBuffers& volume, const PoseGeometry* poses,
                     int n_poses, const RenderSettings& s,
                     const float* upstream, EarlyStop& stop, double* row_sums) {
    const int rows = s.rays.height, cols = s.rays.width;
    const long long plane = static_cast<long long>(rows) * cols;
    std::fill(row_sums,
              row_sums + static_cast<size_t>(n_poses) * rows * kPoseMapEntries,
              0.0);
    ForEachSpan(
        n_poses, s.rays, stop, [&](int pose, int row, int col, int end) {
          const float* weights =
              upstream + static_cast<long long>(pose) * s.channels * plane;
          AddVjpSimdSpan(
              volume, poses[pose], s, row, col, end,
              weights + static_cast<long long>(row) * cols + col, plane,
              row_sums + PoseMajorRow(pose, row, rows) * kPoseMapEntries);
        });
  }

  // The vectorised Jacobian of JacobianRows.
  void JacobianSpans(const VolumeBuffers& volume, const PoseGeometry* poses,
                     int n_poses, const RenderSettings& s, EarlyStop& stop,
                     float* out) {
    const int rows = s.rays.height, cols = s.rays.width;
    const long long plane = static_cast<long long>(rows) * cols;
    ForEachSpan(
        n_poses, s.rays, stop, [&](int pose, int row, int col, int end) {
          float* image = out + static_cast<long long>(pose) * s.channels *
                                   plane * kPoseMapEntries;
          WriteJacobianSimdSpan(
              volume, poses[pose], s, row, col, end,
              image +
                  (static_cast<long long>(row) * cols + col) * kPoseMapEntries,
              plane * kPoseMapEntries);
        });
  }

  // The vectorised render of RenderRows.
  void RenderSpans(const VolumeBuffers& volume, const PoseGeometry* poses,
                   int n_poses, const RenderSettings& s, EarlyStop& stop,
                   float* out) {
    const int rows = s.rays.height, cols = s.rays.width;
    const long long plane = static_cast<long long>(rows) * cols;
    ForEachSpan(
        n_poses, s.rays, stop, [&](int pose, int row, int col, int end) {
          float* image =
              out + static_cast<long long>(pose) * s.channels * plane;
          RenderSimdSpan(volume, poses[pose], s, row, col, end,
                         image + static_cast<long long>(row) * cols + col,
                         plane);
        });
  }

  const bool vectorised_;
  ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Executor> MakeCpuExecutor(int threads) {
  return std::make_unique<CpuExecutor>(threads, /*vectorised=*/true);
}

std::unique_ptr<Executor> MakeScalarCpuExecutor(int threads) {
  return std::make_unique<CpuExecutor>(threads, /*vectorised=*/false);
}

}  // namespace drr::kernels
