// Times the renderer on design.md §8's reference case: the LIDC-IDRI-0001
// chest CT, 200×200 pixels, sdd 1020, delx = dely 2.0, ZXY (0,0,0),
// translation (0, 850, 0), AP, 500 samples. Reports the median time per
// launch for batches of 1, 8 and 64 poses, the pose gradient, trilinear and
// Siddon (and, when asked, the per-pixel pose Jacobian), on every executor
// available here (the CPU's vectorised path, its scalar per-ray bodies, CUDA):
// one tab-separated line per measurement. Flags change the case for scaling
// curves (bench/scaling_curves.py): the pixel count over the same detector
// extent, samples, batches, threads; and the trilinear sampling (whole
// segments, or nanodrr 0.1.7's clipped ones).
// --spread turns the poses of a batch apart (by default every pose of a
// batch is the reference pose); --storage keeps the volume in float16 or
// bfloat16 instead of float32; --labels tissue splits every render into three
// channels by tissue class: air and lung, soft tissue, bone (tissue-soft: the
// same classes as soft labels, each trilinear neighbour of a sample adding
// its share to its own class, as nanodrr 0.1.7's). trilinear-texture renders
// the trilinear line integrals through the GPU's texture units (the API's
// sampler TEXTURE: CUDA only, float32 or float16 storage), beside the exact
// sampler's `trilinear`; trilinear-quads, the exact sampler's arithmetic read
// from a copy of the volume in quads (Sampler::kQuads: the same images, two
// loads per sample on the GPU where `trilinear` issues eight; the CPU runs
// it on its per-ray bodies), and its pose gradient and Jacobian
// (trilinear-quads-gradient, trilinear-quads-jacobian).
// Needs only the kernels library, so it also builds in the kernels-only
// configuration on GPU hosts; bench/export_volume.py writes its inputs (raw
// float32 voxels, and a text file with the shape and the affine).
//
//   render_bench MU.f32 MU.txt [--repeats N] [--side PIXELS] [--samples N]
//       [--sampling segment|clipped] [--spread DEGREES] [--spread-axis x|z]
//       [--storage float32|float16|bfloat16]
//       [--labels none|tissue|tissue-soft]
//       [--batches 1,8,64] [--threads N] [--executors cpu,cpu_scalar,cuda]
//       [--renderers trilinear-gradient,trilinear,siddon,siddon-gradient,
//                    trilinear-jacobian,siddon-jacobian,trilinear-mip,
//                    siddon-mip,trilinear-texture,trilinear-quads,
//                    trilinear-quads-gradient,trilinear-quads-jacobian]
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "defaults/defaults.h"
#include "geometry/pose.h"
#include "kernels/cpu_simd.h"
#include "kernels/executor.h"
#include "kernels/pose_geometry.h"

namespace drr {
namespace {

// The tissue classes of --labels tissue, by μ (bench/export_volume.py's map,
// μ of water 0.0192 /mm): air and lung below −500 HU, soft tissue up to
// 300 HU, bone above.
constexpr float kLungBelowMu = 0.0096f;
constexpr float kBoneAboveMu = 0.03063f;
constexpr int kTissueClasses = 3;

// The tissue class of each voxel of `mu`.
std::vector<uint16_t> TissueLabels(const std::vector<float>& mu) {
  std::vector<uint16_t> labels(mu.size());
  for (size_t v = 0; v < mu.size(); ++v)
    labels[v] = mu[v] < kLungBelowMu ? 0 : mu[v] <= kBoneAboveMu ? 1 : 2;
  return labels;
}

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

// Whether `text` ends with `end`.
bool EndsWith(const std::string& text, const std::string& end) {
  return text.size() >= end.size() &&
         text.compare(text.size() - end.size(), end.size(), end) == 0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// What to time: by default design.md §8's reference case on every executor.
struct BenchOptions {
  int repeats = 5;
  kernels::RaySettings rays{defaults::kHeight, defaults::kWidth,
                            defaults::kSamples};
  std::vector<int> batches = {1, 8, 64};
  // The poses of a batch: the reference pose turned about the x or z axis
  // through the volume's centre (ZXY's second or first angle) by angles
  // spaced evenly over [−spread, +spread] degrees (a batch of 1: the
  // reference pose).
  double spread = 0.0;
  char spread_axis = 'x';
  // How the volume is stored, and that type's name.
  kernels::StorageType storage = kernels::StorageType::kFloat32;
  std::string storage_name = "float32";
  // Channels a render splits into by tissue class (--labels tissue), or 1.
  int channels = 1;
  int threads = 0;  // CPU executors: 0 = one per hardware thread
  std::vector<std::string> executors = {"cpu", "cpu_scalar", "cuda"};
  std::vector<std::string> renderers = {"trilinear-gradient", "trilinear",
                                        "siddon", "siddon-gradient"};
};

// The settings of `renderer` ("trilinear" or "siddon", or either with
// "-gradient", the pose gradient for upstream 1 everywhere, with "-jacobian",
// the pose Jacobian of every pixel, or with "-mip", the maximum intensity
// projection; or "trilinear-texture"; with "-quads" after "trilinear", the
// exact interpolation read from the volume's quads) in `channels` channels.
kernels::RenderSettings SettingsOf(const std::string& renderer,
                                   const kernels::RaySettings& rays,
                                   int channels) {
  kernels::RenderSettings settings;
  settings.rays = rays;
  settings.channels = channels;
  settings.projector = renderer.rfind("siddon", 0) == 0
                           ? kernels::Projector::kSiddon
                           : kernels::Projector::kTrilinear;
  if (EndsWith(renderer, "-mip")) settings.reduce = kernels::Reduce::kMax;
  if (EndsWith(renderer, "-texture"))
    settings.sampler = kernels::Sampler::kTexture;
  if (renderer.find("-quads") != std::string::npos)
    settings.sampler = kernels::Sampler::kQuads;
  return settings;
}

// Whether the CPU executor runs `renderer` (SettingsOf) on its vectorised
// path.
bool Vectorised(const std::string& renderer,
                const kernels::RenderSettings& settings) {
  return EndsWith(renderer, "-gradient") || EndsWith(renderer, "-jacobian")
             ? kernels::SimdDifferentiates(settings)
             : kernels::SimdRenders(settings);
}

// Times `renderer` (SettingsOf) for `poses` in `channels` channels: once to
// warm up, then `repeats` times; the median milliseconds per launch (results
// copied back to host memory included).
double TimeLaunch(kernels::Executor& executor, kernels::Workspace& workspace,
                  const kernels::ResidentVolume& volume,
                  const std::vector<kernels::PoseGeometry>& poses,
                  const std::string& renderer, const kernels::RaySettings& rays,
                  int channels, int repeats) {
  const kernels::RenderSettings settings = SettingsOf(renderer, rays, channels);
  const bool gradient = EndsWith(renderer, "-gradient");
  const bool jacobian = EndsWith(renderer, "-jacobian");
  const int n = static_cast<int>(poses.size());
  const size_t pixels = static_cast<size_t>(rays.height) * rays.width *
                        static_cast<size_t>(channels);
  std::vector<float> out(poses.size() * pixels *
                         (jacobian ? kernels::kPoseMapEntries : 1));
  const std::vector<float> upstream(poses.size() * pixels, 1.0f);
  std::vector<kernels::PoseMapGradient> grad(poses.size());
  std::vector<double> times;
  for (int r = 0; r <= repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    const kernels::KernelStatus status =
        gradient
            ? executor.PoseGradient(volume, poses.data(), n, settings,
                                    upstream.data(), workspace, grad.data())
        : jacobian ? executor.PoseJacobian(volume, poses.data(), n, settings,
                                           workspace, out.data())
                   : executor.Render(volume, poses.data(), n, settings,
                                     workspace, out.data());
    const auto stop = std::chrono::steady_clock::now();
    if (!status.ok()) {
      std::fprintf(stderr, "%s failed: %s\n", renderer.c_str(),
                   status.message().c_str());
      std::exit(1);
    }
    if (r > 0)
      times.push_back(
          std::chrono::duration<double, std::milli>(stop - start).count());
  }
  return Median(times);
}

// The comma-separated items of `list`.
std::vector<std::string> Split(const std::string& list) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) items.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return items;
}

// `text`, whole, as a decimal integer in [low, high] into `out`; false for
// anything else (no digits, trailing characters, out of range).
bool ParseInt(const char* text, int low, int high, int* out) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno == ERANGE || value < low ||
      value > high)
    return false;
  *out = static_cast<int>(value);
  return true;
}

// `text`, whole, as a number in [low, high] into `out`; false for anything
// else (NaN included).
bool ParseNumber(const char* text, double low, double high, double* out) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text, &end);
  if (end == text || *end != '\0' || errno == ERANGE ||
      !(value >= low && value <= high))
    return false;
  *out = value;
  return true;
}

// The storage type called `name` ("float32", "float16" or "bfloat16") into
// `out`; false for any other name.
bool ParseStorage(const std::string& name, kernels::StorageType* out) {
  const std::pair<const char*, kernels::StorageType> kTypes[] = {
      {"float32", kernels::StorageType::kFloat32},
      {"float16", kernels::StorageType::kFloat16},
      {"bfloat16", kernels::StorageType::kBFloat16}};
  for (const auto& [type_name, type] : kTypes) {
    if (name != type_name) continue;
    *out = type;
    return true;
  }
  return false;
}

constexpr char kUsage[] =
    "usage: render_bench MU.f32 MU.txt [--repeats N] [--side PIXELS]\n"
    "       [--samples N] [--sampling segment|clipped]\n"
    "       [--spread DEGREES] [--spread-axis x|z]\n"
    "       [--storage float32|float16|bfloat16]\n"
    "       [--labels none|tissue|tissue-soft]\n"
    "       [--batches 1,8,64] [--threads N]\n"
    "       [--executors cpu,cpu_scalar,cuda]\n"
    "       [--renderers trilinear-gradient,trilinear,siddon,siddon-gradient,\n"
    "                    trilinear-jacobian,siddon-jacobian,trilinear-mip,\n"
    "                    siddon-mip,trilinear-texture,trilinear-quads,\n"
    "                    trilinear-quads-gradient,trilinear-quads-jacobian]\n";

// The flags' bounds: beyond them a run would not end or not fit in memory.
constexpr int kMostRepeats = 100000;
constexpr int kLargestSide = 8192;
constexpr int kMostSamples = 1 << 20;
constexpr int kMostThreads = 4096;
constexpr int kLargestBatch = 65536;
// Floats of one launch's results (its images, or its Jacobians: 12 a pixel)
// and, for the gradient, of its upstream values, 1 GiB each.
constexpr long long kMostFloatsPerLaunch = 1LL << 28;

// `x` in full (integers without a fraction).
std::string Number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.15g", x);
  return text;
}

// "FLAG: need WHAT in [low, high], not "TEXT"".
std::string OutOfRange(const std::string& flag, const char* what, double low,
                       double high, const char* text) {
  return flag + ": need " + what + " in [" + Number(low) + ", " + Number(high) +
         "], not \"" + text + "\"";
}

// Whether render_bench has a flag called `arg`.
bool IsFlag(const std::string& arg) {
  for (const char* flag :
       {"--repeats", "--side", "--samples", "--sampling", "--spread",
        "--spread-axis", "--storage", "--labels", "--threads", "--batches",
        "--executors", "--renderers"}) {
    if (arg == flag) return true;
  }
  return false;
}

// Why the comma-separated `names` of flag `flag` are not some of `known`, or
// "" where they are.
std::string UnknownName(const std::string& flag,
                        const std::vector<std::string>& names,
                        std::initializer_list<const char*> known) {
  if (names.empty()) return flag + ": need at least one name";
  for (const std::string& name : names) {
    if (std::find(known.begin(), known.end(), name) == known.end())
      return flag + ": no such name \"" + name + "\"";
  }
  return "";
}

// Parses the command line into `options` and the two input paths; returns
// why it does not fit, or "" where it does.
std::string ParseArguments(int argc, char** argv, BenchOptions* options,
                           std::vector<std::string>* paths) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      paths->push_back(arg);
      continue;
    }
    if (!IsFlag(arg)) return "no flag " + arg;
    if (i + 1 == argc) return arg + ": needs a value";
    const char* value = argv[++i];
    std::string why;
    const auto whole = [&](int low, int high, int* out) {
      if (!ParseInt(value, low, high, out))
        why = OutOfRange(arg, "a whole number", low, high, value);
    };
    const auto one_of = [&](bool fits, const char* names) {
      if (!fits) why = arg + ": need " + names + ", not \"" + value + "\"";
    };
    if (arg == "--repeats") {
      whole(1, kMostRepeats, &options->repeats);
    } else if (arg == "--side") {
      whole(1, kLargestSide, &options->rays.height);
      options->rays.width = options->rays.height;
    } else if (arg == "--samples") {
      whole(2, kMostSamples, &options->rays.n_samples);
    } else if (arg == "--sampling") {
      const std::string sampling = value;
      one_of(sampling == "segment" || sampling == "clipped",
             "segment or clipped");
      options->rays.sampling = sampling == "clipped"
                                   ? kernels::Sampling::kClipped
                                   : kernels::Sampling::kSegment;
    } else if (arg == "--spread") {
      if (!ParseNumber(value, 0.0, 180.0, &options->spread))
        why = OutOfRange(arg, "a number", 0.0, 180.0, value);
    } else if (arg == "--spread-axis") {
      const std::string axis = value;
      one_of(axis == "x" || axis == "z", "x or z");
      options->spread_axis = axis[0];
    } else if (arg == "--storage") {
      options->storage_name = value;
      one_of(ParseStorage(options->storage_name, &options->storage),
             "float32, float16 or bfloat16");
    } else if (arg == "--labels") {
      const std::string labels = value;
      one_of(labels == "none" || labels == "tissue" || labels == "tissue-soft",
             "none, tissue or tissue-soft");
      options->channels = labels == "none" ? 1 : kTissueClasses;
      options->rays.soft_labels = labels == "tissue-soft";
    } else if (arg == "--threads") {
      whole(0, kMostThreads, &options->threads);
    } else if (arg == "--batches") {
      options->batches.clear();
      for (const std::string& b : Split(value)) {
        int batch = 0;
        if (!ParseInt(b.c_str(), 1, kLargestBatch, &batch)) {
          why = OutOfRange(arg, "whole numbers", 1, kLargestBatch, value);
          break;
        }
        options->batches.push_back(batch);
      }
      if (why.empty() && options->batches.empty())
        why = "--batches: need at least one batch";
    } else if (arg == "--executors") {
      options->executors = Split(value);
      why = UnknownName(arg, options->executors, {"cpu", "cpu_scalar", "cuda"});
    } else if (arg == "--renderers") {
      options->renderers = Split(value);
      why = UnknownName(
          arg, options->renderers,
          {"trilinear-gradient", "trilinear", "siddon", "siddon-gradient",
           "trilinear-jacobian", "siddon-jacobian", "trilinear-mip",
           "siddon-mip", "trilinear-texture", "trilinear-quads",
           "trilinear-quads-gradient", "trilinear-quads-jacobian"});
    }
    if (!why.empty()) return why;
  }
  if (paths->size() != 2) return "need the two paths MU.f32 and MU.txt";
  for (const std::string& renderer : options->renderers) {
    if (options->rays.soft_labels &&
        (renderer.rfind("siddon", 0) == 0 || EndsWith(renderer, "-mip") ||
         EndsWith(renderer, "-texture")))
      return "--labels tissue-soft: soft labels need trilinear line "
             "integrals of the exact sampler, not " +
             renderer;
    if (EndsWith(renderer, "-texture") &&
        options->storage == kernels::StorageType::kBFloat16)
      return renderer + ": the texture sampler needs --storage float32 or " +
             "float16, not bfloat16";
  }
  long long floats_per_pixel = 1;
  for (const std::string& renderer : options->renderers) {
    if (EndsWith(renderer, "-jacobian"))
      floats_per_pixel = kernels::kPoseMapEntries;
  }
  const long long floats = static_cast<long long>(options->rays.height) *
                           options->rays.width * options->channels *
                           floats_per_pixel;
  for (int b : options->batches) {
    if (b * floats > kMostFloatsPerLaunch)
      return "a batch of " + std::to_string(b) + " at --side " +
             std::to_string(options->rays.height) + " is more than " +
             std::to_string(kMostFloatsPerLaunch) +
             " floats a launch (images, Jacobians or upstream weights)";
  }
  return "";
}

// The executor called `name`, or nullptr (with the reason on stdout) when
// this machine has none.
std::unique_ptr<kernels::Executor> MakeExecutor(const std::string& name,
                                                int threads) {
  if (name == "cpu") return kernels::MakeCpuExecutor(threads);
  if (name == "cpu_scalar") return kernels::MakeScalarCpuExecutor(threads);
  std::unique_ptr<kernels::Executor> cuda;  // "cuda", the only other name
  const kernels::KernelStatus status = kernels::MakeCudaExecutor(&cuda);
  if (status.ok()) return cuda;
  std::printf("# cuda: %s\n", status.message().c_str());
  return nullptr;
}

int Main(int argc, char** argv) {
  BenchOptions options;
  std::vector<std::string> paths;
  const std::string why = ParseArguments(argc, argv, &options, &paths);
  if (!why.empty()) {
    std::fprintf(stderr, "render_bench: %s\n%s", why.c_str(), kUsage);
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
  // The reference detector's physical extent, at any pixel count.
  geometry::Intrinsics intrinsics;
  const double scale = static_cast<double>(intrinsics.height) /
                       static_cast<double>(options.rays.height);
  intrinsics.delx *= scale;
  intrinsics.dely *= scale;
  intrinsics.height = intrinsics.width = options.rays.height;
  const geometry::Mat4d world_to_voxel = *geometry::InvertAffine(affine);
  // The reference pose turned `degrees` about the spread's axis through the
  // volume's centre.
  const auto turned = [&](double degrees) {
    const geometry::Vec3d angles = options.spread_axis == 'z'
                                       ? geometry::Vec3d{degrees, 0.0, 0.0}
                                       : geometry::Vec3d{0.0, degrees, 0.0};
    const geometry::Mat4d rt_inv = geometry::MakeRtInv(
        geometry::EulerToMatrix("ZXY", angles, /*degrees=*/true),
        {defaults::kTranslation[0], defaults::kTranslation[1],
         defaults::kTranslation[2]},
        geometry::Orientation::kAP, center);
    return kernels::MakePoseGeometry(world_to_voxel, rt_inv, intrinsics);
  };

  std::printf("# CPU vectorised path: %s\n", kernels::SimdTargetName());
  std::printf(
      "# %s, %dx%dx%d stored as %s, %dx%d, %d channel(s)%s, %d samples, "
      "batches over ±%g° about %c, median of %d\n",
      paths[0].c_str(), shape.nx, shape.ny, shape.nz,
      options.storage_name.c_str(), options.rays.width, options.rays.height,
      options.channels, options.rays.soft_labels ? " by soft labels" : "",
      options.rays.n_samples, options.spread, options.spread_axis,
      options.repeats);
  const std::vector<uint16_t> labels =
      options.channels > 1 ? TissueLabels(mu) : std::vector<uint16_t>();
  std::printf(
      "executor\trenderer\tbatch\tms_per_launch\tms_per_drr\tdrr_per_s\n");
  for (const std::string& name : options.executors) {
    std::unique_ptr<kernels::Executor> executor =
        MakeExecutor(name, options.threads);
    if (executor == nullptr) continue;
    // Only the GPU has texture units; a volume with a texture keeps its
    // linear copy for the exact sampler.
    const bool on_gpu = executor->space() == kernels::MemorySpace::kCuda;
    auto any_renderer = [&](const char* part) {
      return std::any_of(
          options.renderers.begin(), options.renderers.end(),
          [&](const auto& r) { return r.find(part) != std::string::npos; });
    };
    const kernels::Residency residency{options.storage,
                                       on_gpu && any_renderer("-texture"),
                                       any_renderer("-quads")};
    std::shared_ptr<const kernels::ResidentVolume> volume;
    std::unique_ptr<kernels::Workspace> workspace;
    kernels::KernelStatus status = executor->MakeResident(
        mu.data(), labels.empty() ? nullptr : labels.data(), shape, residency,
        &volume);
    if (status.ok()) status = executor->MakeWorkspace(nullptr, &workspace);
    if (!status.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), status.message().c_str());
      return 1;
    }
    for (const std::string& renderer : options.renderers) {
      if (!on_gpu && EndsWith(renderer, "-texture")) {
        std::printf("# %s: %s needs the CUDA executor\n", name.c_str(),
                    renderer.c_str());
        continue;
      }
      if (name == "cpu" &&
          !Vectorised(renderer,
                      SettingsOf(renderer, options.rays, options.channels))) {
        std::printf("# cpu: %s runs the per-ray bodies here\n",
                    renderer.c_str());
      }
      for (int batch : options.batches) {
        std::vector<kernels::PoseGeometry> poses;
        for (int k = 0; k < batch; ++k) {
          const double fraction = batch == 1 ? 0.5 : k / (batch - 1.0);
          // (+ 0.0: no −0 angles, so a spread of 0 gives the reference bits.)
          poses.push_back(
              turned(options.spread * (2.0 * fraction - 1.0) + 0.0));
        }
        const int runs =
            batch >= 64 ? std::max(1, options.repeats / 3) : options.repeats;
        const double ms =
            TimeLaunch(*executor, *workspace, *volume, poses, renderer,
                       options.rays, options.channels, runs);
        std::printf("%s\t%s\t%d\t%.6g\t%.6g\t%.1f\n", name.c_str(),
                    renderer.c_str(), batch, ms, ms / batch,
                    1000.0 * batch / ms);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace drr

int main(int argc, char** argv) { return drr::Main(argc, argv); }
