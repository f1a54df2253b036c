// drrctl: command-line client of drrserve.
//
//   drrctl upload FILE.nii.gz [--labels MASK.nii.gz]    prints the volume id
//   drrctl render VOLUME_ID|FILE [-o NAME] [options]     writes NAME.png, .npy
//   drrctl sweep VOLUME_ID|FILE --from A --to B --count N [-o NAME]
//                                  a pose sweep: NAME.png (contact sheet), .npy
//   drrctl register VOLUME_ID|FILE --target IMAGE.npy [-o NAME]
//                      registers with Adam; NAME-overlay.png, NAME-loss.png
//   drrctl list                                          prints stored volumes
//
// On a terminal, uploads and registrations show a progress bar.
//
// Pose and camera flags are named after nanodrr's parameters. A flag left out
// is left out of the request, and the server takes its default
// (defaults/defaults.h): nanodrr's reference camera and pose.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cpp/drr_client.h"
#include "defaults/defaults.h"
#include "geometry/pose.h"
#include "io/figures.h"
#include "io/labels.h"
#include "io/npy.h"
#include "io/png.h"
#include "io/volume_file.h"
#include "status/status_macros.h"
#include "wire/enum_names.h"

namespace drr::client {
namespace {

// The flags of a render request (render and register).
struct RenderFlags {
  std::string source;
  std::string labels;
  std::optional<std::string> parameterization;
  std::optional<std::string> convention;
  bool radians = false;
  std::vector<double> rotation;
  std::vector<double> translation;
  std::vector<double> isocenter;
  std::optional<std::string> orientation;
  std::optional<double> sdd, delx, dely, x0, y0;
  std::optional<int> height, width;
  bool orthographic = false;
  std::optional<int> samples;
  std::optional<std::string> renderer, output, image_dtype, volume_storage,
      sampler, sampling;
  bool soft_labels = false;
  std::optional<double> mu_water, mu_bone, hu_bone;
  bool sum_channels = false;
  std::vector<int> classes;
};

// The flags of register beyond the render flags.
struct RegisterFlags {
  std::string target;
  // Writes NAME-overlay.png and NAME-loss.png when not empty.
  std::string out;
  std::optional<std::string> loss;
  std::vector<int> patch_sizes;
  // Most iterations (per scale, on the server).
  int iterations = 100;
  double lr_rotation = 0.05;
  double lr_translation = 10;
  double stop_at = 0.999;
  // Detector downsampling factors, coarsest first (on the server).
  std::vector<int> scales{1};
  // Iterations without improvement before the steps shrink (on the server);
  // unset: as many as the iterations (no plateau, the client loop's steps).
  std::optional<int> patience;
  // Each iteration one loss call from here, not the server's loop.
  bool client_loop = false;

  // Iterations at most, over every scale.
  int total() const { return iterations * static_cast<int>(scales.size()); }
};

// The flags of sweep beyond the render flags: `count` poses whose Euler
// angle `axis` (0, 1, 2: the first, second, third of --convention) runs
// evenly from `from` to `to`, the other angles those of --rotation.
struct SweepFlags {
  int axis = 0;
  double from = -90;
  double to = 90;
  int count = 9;
  int columns = 0;
};

// Draws `done` of `total` as a bar on `out` (a terminal), in place; a new
// line once done reaches total.
void ProgressBar(std::FILE* out, const std::string& what, int64_t done,
                 int64_t total, const std::string& detail = "") {
  constexpr int kWidth = 30;
  const double fraction =
      total > 0 ? std::min(1.0, double(done) / double(total)) : 1.0;
  const int filled = static_cast<int>(fraction * kWidth);
  std::fprintf(out, "\r%s [%s%s] %3d%% %s", what.c_str(),
               std::string(filled, '#').c_str(),
               std::string(kWidth - filled, ' ').c_str(),
               static_cast<int>(fraction * 100), detail.c_str());
  if (done >= total) std::fprintf(out, "\n");
  std::fflush(out);
}

// Help text of a flag the server defaults: "what (default: value)".
template <typename T>
std::string WithDefault(const std::string& what, T value) {
  return absl::StrCat(what, " (default: ", value, ")");
}

// Help text of an enum flag: its spellings, from the proto descriptor; the
// server takes the first when the flag is left out.
template <typename E>
std::string OneOf(const std::string& what) {
  const std::vector<std::string> spellings =
      EnumSpellings(*google::protobuf::GetEnumDescriptor<E>());
  return absl::StrCat(what, ", one of: ", absl::StrJoin(spellings, ", "),
                      " (default: ", spellings.front(), ")");
}

void AddRenderFlags(CLI::App& command, RenderFlags& f) {
  command
      .add_option("source", f.source,
                  "volume id, or a volume to upload: NIfTI, NRRD, MetaImage "
                  "or DICOM (a directory of one series)")
      ->required();
  command.add_option("--labels", f.labels,
                     "label volume of the same shape, with a volume to upload");
  command.add_option("--parameterization", f.parameterization,
                     OneOf<v1::Parameterization>("how --rotation is given"));
  command.add_option("--convention", f.convention,
                     WithDefault("Euler convention (upper case intrinsic)",
                                 defaults::kEulerConvention));
  command.add_flag("--radians", f.radians, "Euler angles in radians");
  command
      .add_option("--rotation", f.rotation,
                  "rotation values (default: the identity)")
      ->expected(1, 16);
  command
      .add_option("--translation", f.translation,
                  WithDefault("camera centre TX TY TZ from the isocenter, mm",
                              absl::StrJoin(defaults::kTranslation, " ")))
      ->expected(3);
  command
      .add_option("--isocenter", f.isocenter,
                  "rotation centre, world mm (default: volume centre)")
      ->expected(3);
  command.add_option("--orientation", f.orientation,
                     OneOf<v1::Orientation>("reorientation"));
  command.add_option(
      "--sdd", f.sdd,
      WithDefault("source-to-detector distance, mm", defaults::kSdd));
  command.add_option("--delx", f.delx,
                     WithDefault("pixel spacing along x, mm", defaults::kDelx));
  command.add_option("--dely", f.dely,
                     WithDefault("pixel spacing along y, mm", defaults::kDely));
  command.add_option(
      "--x0", f.x0,
      WithDefault("principal point offset along x, mm", defaults::kX0));
  command.add_option(
      "--y0", f.y0,
      WithDefault("principal point offset along y, mm", defaults::kY0));
  command.add_option("--height", f.height,
                     WithDefault("image height, pixels", defaults::kHeight));
  command.add_option("--width", f.width,
                     WithDefault("image width, pixels", defaults::kWidth));
  command.add_flag("--orthographic", f.orthographic, "parallel rays");
  command.add_option("--samples", f.samples,
                     WithDefault("samples per ray", defaults::kSamples));
  command.add_option("--renderer", f.renderer,
                     OneOf<v1::RendererKind>("ray integral"));
  command.add_option("--output", f.output, OneOf<v1::Output>("pixel values"));
  command.add_option("--image-dtype", f.image_dtype,
                     OneOf<v1::DType>("image type on the wire"));
  command.add_option("--volume-storage", f.volume_storage,
                     OneOf<v1::DType>("volume type on the device"));
  command.add_option("--sampler", f.sampler,
                     OneOf<v1::SamplerKind>("trilinear sampler"));
  command.add_option("--sampling", f.sampling,
                     OneOf<v1::Sampling>("where trilinear samples lie"));
  command.add_flag("--soft-labels", f.soft_labels,
                   "each trilinear neighbour to its own class's channel");
  command.add_option("--mu-water", f.mu_water,
                     WithDefault("mu of water, per mm", defaults::kMuWater));
  command.add_option("--mu-bone", f.mu_bone,
                     WithDefault("mu of bone, per mm", defaults::kMuBone));
  command.add_option("--hu-bone", f.hu_bone,
                     WithDefault("HU of bone", defaults::kHuBone));
  command.add_flag("--sum-channels", f.sum_channels,
                   "one channel summing every label class");
  command.add_option("--classes", f.classes, "only these label classes")
      ->expected(1, 1 << 16);
}

// Adam (Kingma & Ba) over a parameter vector with per-entry learning rates.
class Adam {
 public:
  explicit Adam(std::vector<double> learning_rates)
      : lr_(std::move(learning_rates)), m_(lr_.size()), v_(lr_.size()) {}

  // Moves `params` one step down `gradient`.
  void Step(const std::vector<double>& gradient, std::vector<double>* params) {
    ++t_;
    for (size_t i = 0; i < lr_.size(); ++i) {
      m_[i] = 0.9 * m_[i] + 0.1 * gradient[i];
      v_[i] = 0.999 * v_[i] + 0.001 * gradient[i] * gradient[i];
      const double m_hat = m_[i] / (1 - std::pow(0.9, t_));
      const double v_hat = v_[i] / (1 - std::pow(0.999, t_));
      (*params)[i] -= lr_[i] * m_hat / (std::sqrt(v_hat) + 1e-8);
    }
  }

 private:
  std::vector<double> lr_, m_, v_;
  int t_ = 0;
};

// Whether `path` names a file or directory (a volume to upload, not an id).
bool Exists(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 &&
         (S_ISREG(info.st_mode) || S_ISDIR(info.st_mode));
}

// The volume of the file or DICOM series directory `path` (any format
// io/volume_file reads) with the labels of `labels_path`, if not empty.
absl::StatusOr<HostVolume> ReadVolume(const std::string& path,
                                      const std::string& labels_path) {
  DRR_ASSIGN_OR_RETURN(HostVolume volume, ReadVolumeFile(path));
  if (!labels_path.empty()) {
    DRR_ASSIGN_OR_RETURN(HostVolume labels, ReadVolumeFile(labels_path));
    DRR_RETURN_IF_ERROR(AttachLabels(labels, &volume));
  }
  return volume;
}

// Uploads the volume of `path` (and `labels_path`); the client reads the
// files again should a replica not have the volume later.
absl::StatusOr<std::string> UploadFile(DrrClient& client,
                                       const std::string& path,
                                       const std::string& labels_path) {
  DRR_ASSIGN_OR_RETURN(HostVolume volume, ReadVolume(path, labels_path));
  UploadProgress progress;
  if (isatty(STDERR_FILENO)) {
    progress = [](int64_t sent, int64_t total) {
      ProgressBar(stderr, "upload", sent, total,
                  absl::StrCat(sent >> 20, " of ", total >> 20, " MiB"));
    };
  }
  DRR_ASSIGN_OR_RETURN(
      v1::VolumeInfo info,
      client.Upload(
          volume, [path, labels_path] { return ReadVolume(path, labels_path); },
          progress));
  return info.volume_id();
}

// The volume id of `f.source`, uploading it first when it is a file or a
// DICOM series directory.
absl::StatusOr<std::string> VolumeId(DrrClient& client, const RenderFlags& f) {
  if (!Exists(f.source)) return f.source;
  return UploadFile(client, f.source, f.labels);
}

// Sets `*out` to the value spelled `text` when the flag was given.
template <typename E>
absl::Status SetEnum(const std::optional<std::string>& text,
                     const std::string& flag, void (v1::RenderOptions::*set)(E),
                     v1::RenderOptions* out) {
  if (!text) return absl::OkStatus();
  DRR_ASSIGN_OR_RETURN(E value, ParseEnum<E>(*text, flag));
  (out->*set)(value);
  return absl::OkStatus();
}

absl::StatusOr<v1::RenderRequest> RequestFromFlags(const RenderFlags& f,
                                                   const std::string& id) {
  v1::RenderRequest request;
  request.set_volume_id(id);
  v1::ParameterizedPose* p = request.add_poses()->mutable_parameterized();
  if (f.parameterization) {
    DRR_ASSIGN_OR_RETURN(v1::Parameterization parameterization,
                         ParseEnum<v1::Parameterization>(*f.parameterization,
                                                         "--parameterization"));
    p->set_parameterization(parameterization);
  }
  if (f.convention) p->set_convention(*f.convention);
  p->set_radians(f.radians);
  for (double r : f.rotation) p->add_rotation(r);
  for (double t : f.translation) p->add_translation(t);
  for (double c : f.isocenter) p->add_isocenter(c);
  if (f.orientation) {
    DRR_ASSIGN_OR_RETURN(
        v1::Orientation orientation,
        ParseEnum<v1::Orientation>(*f.orientation, "--orientation"));
    p->set_orientation(orientation);
  }

  v1::Intrinsics* in = request.mutable_intrinsics();
  if (f.sdd) in->set_sdd(*f.sdd);
  if (f.delx) in->set_delx(*f.delx);
  if (f.dely) in->set_dely(*f.dely);
  if (f.x0) in->set_x0(*f.x0);
  if (f.y0) in->set_y0(*f.y0);
  if (f.height) in->set_height(*f.height);
  if (f.width) in->set_width(*f.width);
  in->set_orthographic(f.orthographic);

  v1::RenderOptions* options = request.mutable_options();
  if (f.samples) options->set_n_samples(*f.samples);
  DRR_RETURN_IF_ERROR(SetEnum(f.renderer, "--renderer",
                              &v1::RenderOptions::set_renderer, options));
  DRR_RETURN_IF_ERROR(
      SetEnum(f.output, "--output", &v1::RenderOptions::set_output, options));
  DRR_RETURN_IF_ERROR(SetEnum(f.image_dtype, "--image-dtype",
                              &v1::RenderOptions::set_image_dtype, options));
  DRR_RETURN_IF_ERROR(SetEnum(f.volume_storage, "--volume-storage",
                              &v1::RenderOptions::set_volume_storage, options));
  DRR_RETURN_IF_ERROR(SetEnum(f.sampler, "--sampler",
                              &v1::RenderOptions::set_sampler, options));
  DRR_RETURN_IF_ERROR(SetEnum(f.sampling, "--sampling",
                              &v1::RenderOptions::set_sampling, options));
  options->set_soft_labels(f.soft_labels);
  v1::Attenuation* attenuation = options->mutable_attenuation();
  if (f.mu_water) attenuation->set_mu_water(*f.mu_water);
  if (f.mu_bone) attenuation->set_mu_bone(*f.mu_bone);
  if (f.hu_bone) attenuation->set_hu_bone(*f.hu_bone);
  options->mutable_channels()->set_sum(f.sum_channels);
  for (int c : f.classes) options->mutable_channels()->add_classes(c);
  return request;
}

// The images of every pose of a render, each summed over its channels.
std::vector<float> ChannelSums(const Images& images) {
  const size_t plane = static_cast<size_t>(images.height) * images.width;
  std::vector<float> sums(images.batch * plane, 0.0f);
  for (int b = 0; b < images.batch; ++b) {
    for (int c = 0; c < images.channels; ++c) {
      const float* channel =
          images.data.data() + (size_t(b) * images.channels + c) * plane;
      for (size_t i = 0; i < plane; ++i) sums[b * plane + i] += channel[i];
    }
  }
  return sums;
}

absl::Status Render(DrrClient& client, const RenderFlags& f,
                    const std::string& name) {
  DRR_ASSIGN_OR_RETURN(const std::string volume_id, VolumeId(client, f));
  DRR_ASSIGN_OR_RETURN(v1::RenderRequest request,
                       RequestFromFlags(f, volume_id));
  DRR_ASSIGN_OR_RETURN(Images images, client.Render(request));
  // One channel: (H, W); several: (C, H, W), and the PNG shows their sum.
  std::vector<int64_t> shape = {images.height, images.width};
  if (images.channels > 1) shape.insert(shape.begin(), images.channels);
  DRR_RETURN_IF_ERROR(WriteNpy(name + ".npy", images.data.data(), shape));
  DRR_RETURN_IF_ERROR(WritePng(name + ".png", ChannelSums(images).data(),
                               images.height, images.width));
  std::printf("%s.png %s.npy (%d channel(s) of %dx%d) from volume %s\n",
              name.c_str(), name.c_str(), images.channels, images.height,
              images.width, volume_id.c_str());
  return absl::OkStatus();
}

// The Euler angles --rotation gives (the identity without it), or
// INVALID_ARGUMENT when the flags give the pose another way; `what` names the
// command.
absl::StatusOr<std::vector<double>> EulerAngles(const RenderFlags& f,
                                                const std::string& what) {
  const bool euler = !f.parameterization ||
                     absl::AsciiStrToLower(*f.parameterization) == "euler";
  if (!euler || (f.rotation.size() != 0 && f.rotation.size() != 3)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " takes an Euler pose (--rotation A B C)"));
  }
  return f.rotation.empty() ? std::vector<double>{0, 0, 0} : f.rotation;
}

// Renders a sweep of poses in one request: NAME.npy holds the images
// [count, C, H, W] (or [count, H, W]), NAME.png a contact sheet of them.
absl::Status Sweep(DrrClient& client, const RenderFlags& f, const SweepFlags& s,
                   const std::string& name) {
  DRR_ASSIGN_OR_RETURN(const std::vector<double> angles,
                       EulerAngles(f, "sweep"));
  if (s.axis < 0 || s.axis > 2 || s.count < 1) {
    return absl::InvalidArgumentError(
        "sweep needs --axis 0, 1 or 2 and a --count of at least 1");
  }
  DRR_ASSIGN_OR_RETURN(const std::string volume_id, VolumeId(client, f));
  DRR_ASSIGN_OR_RETURN(v1::RenderRequest request,
                       RequestFromFlags(f, volume_id));
  const v1::Pose first = request.poses(0);
  request.clear_poses();
  for (int i = 0; i < s.count; ++i) {
    v1::ParameterizedPose* pose = request.add_poses()->mutable_parameterized();
    *pose = first.parameterized();
    pose->clear_rotation();
    for (int a = 0; a < 3; ++a) {
      pose->add_rotation(a != s.axis    ? angles[a]
                         : s.count == 1 ? s.from
                                        : s.from + (s.to - s.from) * i /
                                                       double(s.count - 1));
    }
  }
  DRR_ASSIGN_OR_RETURN(Images images, client.Render(request));
  std::vector<int64_t> shape = {images.batch, images.height, images.width};
  if (images.channels > 1) shape.insert(shape.begin() + 1, images.channels);
  DRR_RETURN_IF_ERROR(WriteNpy(name + ".npy", images.data.data(), shape));
  const int columns =
      s.columns > 0 ? s.columns
                    : static_cast<int>(std::ceil(std::sqrt(images.batch)));
  DRR_RETURN_IF_ERROR(WriteRgbPng(
      name + ".png", ContactSheet(ChannelSums(images).data(), images.batch,
                                  images.height, images.width, columns)));
  std::printf(
      "%s.png %s.npy (%d poses, angle %d from %g to %g) from volume %s\n",
      name.c_str(), name.c_str(), images.batch, s.axis, s.from, s.to,
      volume_id.c_str());
  return absl::OkStatus();
}

// Hears a registration's iteration, its loss, and whether it is the last.
using IterationHeard = std::function<void(int, double, bool)>;

// The registration loop run from here: one loss call per iteration and Adam
// on its gradient, until r.iterations or r.stop_at; `request` (a loss call
// of one so3_log pose) ends at the pose of the last loss. Returns the losses.
absl::StatusOr<std::vector<double>> ClientLoop(DrrClient& client,
                                               const RegisterFlags& r,
                                               v1::RenderRequest& request,
                                               const IterationHeard& heard) {
  if (r.scales != std::vector<int>{1}) {
    return absl::InvalidArgumentError(
        "--client-loop registers at full scale only (--scales 1)");
  }
  v1::ParameterizedPose* pose =
      request.mutable_poses(0)->mutable_parameterized();
  std::vector<double> params(pose->rotation().begin(), pose->rotation().end());
  params.insert(params.end(), pose->translation().begin(),
                pose->translation().end());
  Adam adam({r.lr_rotation, r.lr_rotation, r.lr_rotation, r.lr_translation,
             r.lr_translation, r.lr_translation});
  const bool maximise = request.loss().kind() != v1::LOSS_KIND_MSE;
  std::vector<double> losses;
  for (int iteration = 0; iteration < r.iterations; ++iteration) {
    for (int i = 0; i < 3; ++i) {
      pose->set_rotation(i, params[i]);
      pose->set_translation(i, params[3 + i]);
    }
    DRR_ASSIGN_OR_RETURN(v1::RenderResponse response, client.Send(request));
    const double value = response.losses(0);
    losses.push_back(value);
    const bool reached = maximise && value >= r.stop_at;
    heard(iteration, value, reached || iteration + 1 == r.iterations);
    if (reached) break;
    std::vector<double> gradient(
        response.pose_gradients(0).parameters().begin(),
        response.pose_gradients(0).parameters().end());
    if (maximise) {
      for (double& g : gradient) g = -g;
    }
    adam.Step(gradient, &params);
  }
  return losses;
}

// Registers the volume to the target image: Adam on a rotation vector
// (so3_log) and translation, starting from the pose flags, maximising the
// similarity (minimising MSE), on the server (coarse scales first; the best
// pose met) or from here (--client-loop; the last pose); prints each
// iteration and the final pose.
absl::Status Register(DrrClient& client, const RenderFlags& f,
                      const RegisterFlags& r) {
  DRR_ASSIGN_OR_RETURN(const std::vector<double> euler,
                       EulerAngles(f, "register"));
  DRR_ASSIGN_OR_RETURN(v1::RenderRequest request, RequestFromFlags(f, ""));
  v1::ParameterizedPose* pose =
      request.mutable_poses(0)->mutable_parameterized();
  const std::string convention =
      f.convention.value_or(defaults::kEulerConvention);
  if (!geometry::IsEulerConvention(convention)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--convention \"", convention.substr(0, 16),
        "\" is not three axis letters (e.g. ZXY intrinsic, zxy extrinsic)"));
  }
  const int height = f.height.value_or(defaults::kHeight);
  const int width = f.width.value_or(defaults::kWidth);
  if (r.iterations < 1) {
    return absl::InvalidArgumentError("--iterations must be at least 1");
  }
  DRR_ASSIGN_OR_RETURN(const NpyArray target, ReadNpy(r.target));
  if (target.shape.size() != 2 || target.shape[0] != height ||
      target.shape[1] != width) {
    return absl::InvalidArgumentError(
        absl::StrCat("--target must be a (", height, ", ", width,
                     ") image, as --height and --width say"));
  }
  DRR_ASSIGN_OR_RETURN(const std::string volume_id, VolumeId(client, f));
  request.set_volume_id(volume_id);
  DRR_ASSIGN_OR_RETURN(
      std::string target_id,
      client.UploadTarget(
          height, width,
          std::vector<float>(target.values.begin(), target.values.end()),
          volume_id));
  v1::Loss* loss = request.mutable_loss();
  loss->set_target_id(target_id);
  if (r.loss) {
    DRR_ASSIGN_OR_RETURN(v1::LossKind kind,
                         ParseEnum<v1::LossKind>(*r.loss, "--loss"));
    loss->set_kind(kind);
  }
  for (int p : r.patch_sizes) loss->add_patch_sizes(p);
  // Start: the flags' pose as a rotation vector and translation.
  const geometry::Vec3d start =
      geometry::RotationVector(geometry::EulerToMatrix(
          convention, {euler[0], euler[1], euler[2]}, !f.radians));
  const std::vector<double> translation =
      f.translation.empty()
          ? std::vector<double>(std::begin(defaults::kTranslation),
                                std::end(defaults::kTranslation))
          : f.translation;
  pose->set_parameterization(v1::PARAMETERIZATION_SO3_LOG);
  pose->clear_rotation();
  pose->clear_translation();
  for (int i = 0; i < 3; ++i) {
    pose->add_rotation(start[i]);
    pose->add_translation(translation[i]);
  }
  // On a terminal a bar; else a line per iteration.
  const bool bar = isatty(STDOUT_FILENO);
  auto heard = [&](int iteration, double value, bool last) {
    if (bar) {
      char detail[64];
      std::snprintf(detail, sizeof detail, "iteration %d loss %.6f", iteration,
                    value);
      ProgressBar(stdout, "register", last ? r.total() : iteration + 1,
                  r.total(), detail);
    } else {
      std::printf("iteration %d loss %.6f\n", iteration, value);
    }
  };
  std::vector<double> losses;
  int iterations = 0;
  double value = 0;
  if (r.client_loop) {
    DRR_ASSIGN_OR_RETURN(losses, ClientLoop(client, r, request, heard));
    iterations = static_cast<int>(losses.size());
    value = losses.back();
  } else {
    v1::RegisterRequest job;
    job.set_volume_id(volume_id);
    *job.mutable_loss() = *loss;
    *job.add_starts() = *pose;
    *job.mutable_intrinsics() = request.intrinsics();
    *job.mutable_options() = request.options();
    v1::Optimizer* o = job.mutable_optimizer();
    o->set_lr_rotation(r.lr_rotation);
    o->set_lr_translation(r.lr_translation);
    o->set_iterations(r.iterations);
    o->set_stop_at(r.stop_at);
    o->set_patience(r.patience.value_or(r.iterations));
    for (int f : r.scales) job.add_scales(f);
    DRR_ASSIGN_OR_RETURN(
        v1::RegisterResult result,
        client.Register(job, [&](const v1::RegisterStep& step) {
          heard(step.iteration(), step.losses(0), false);
        }));
    // (A bar ends full; lines were printed as the iterations came.)
    if (bar) {
      heard(result.iterations() - 1, result.trajectory().rbegin()->losses(0),
            true);
    }
    for (const v1::RegisterStep& step : result.trajectory()) {
      losses.push_back(step.losses(0));
    }
    *pose = result.pose();
    iterations = result.iterations();
    value = result.loss();
  }
  std::printf("final loss %.6f after %d iteration(s)\n", value, iterations);
  std::printf(
      "rotation (so3_log, rad) %.6f %.6f %.6f\ntranslation (mm) %.4f %.4f "
      "%.4f\n",
      pose->rotation(0), pose->rotation(1), pose->rotation(2),
      pose->translation(0), pose->translation(1), pose->translation(2));
  if (r.out.empty()) return absl::OkStatus();
  // The DRR at that pose, its edges over the target, and the loss.
  request.clear_loss();
  DRR_ASSIGN_OR_RETURN(Images images, client.Render(request));
  if (images.height != height || images.width != width) {
    return absl::InternalError(
        absl::StrCat("the server rendered ", images.height, "x", images.width,
                     " images for a ", height, "x", width, " target"));
  }
  const std::vector<float> drr = ChannelSums(images);
  const std::vector<float> pixels(target.values.begin(), target.values.end());
  DRR_RETURN_IF_ERROR(
      WriteRgbPng(r.out + "-overlay.png",
                  EdgeOverlay(pixels.data(), drr.data(), height, width)));
  DRR_RETURN_IF_ERROR(
      WriteRgbPng(r.out + "-loss.png", LinePlot(losses, 240, 400)));
  std::printf(
      "%s-overlay.png (the final DRR's edges over the target) "
      "%s-loss.png (loss per iteration, %.6f to %.6f)\n",
      r.out.c_str(), r.out.c_str(), losses.front(), losses.back());
  return absl::OkStatus();
}

absl::Status List(DrrClient& client) {
  DRR_ASSIGN_OR_RETURN(std::vector<v1::VolumeInfo> volumes, client.List());
  for (const v1::VolumeInfo& v : volumes) {
    std::printf("%s  shape %s  %lld bytes\n", v.volume_id().c_str(),
                absl::StrJoin(v.header().shape(), "x").c_str(),
                static_cast<long long>(v.voxel_bytes()));
  }
  return absl::OkStatus();
}

int Run(int argc, char** argv) {
  CLI::App app{"drrctl: command-line client of drrserve"};
  app.require_subcommand(1);
  app.fallthrough();
  std::string server = "127.0.0.1:50051";
  app.add_option("--server", server, "drrserve address host:port")
      ->capture_default_str();
  TlsOptions tls;
  app.add_option("--tls-ca", tls.ca,
                 "PEM CA of the server's certificate (TLS)");
  app.add_option("--tls-cert", tls.cert,
                 "PEM client certificate chain (mutual TLS)");
  app.add_option("--tls-key", tls.key, "PEM private key of --tls-cert");
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "file holding the bearer token of a server with --tokens "
                 "(default: $DRR_TOKEN)");

  std::string upload_file, upload_labels;
  CLI::App* upload =
      app.add_subcommand("upload", "upload a volume; prints its id");
  upload
      ->add_option("file", upload_file,
                   "NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage "
                   "(.mha, .mhd), or a directory of one DICOM series")
      ->required();
  upload->add_option("--labels", upload_labels,
                     "label volume of the same shape (any of those formats)");

  RenderFlags render_flags;
  std::string out = "drr";
  CLI::App* render =
      app.add_subcommand("render", "render one DRR to OUT.png and OUT.npy");
  AddRenderFlags(*render, render_flags);
  render->add_option("-o,--out", out, "output name")->capture_default_str();

  RenderFlags register_flags;
  RegisterFlags registration;
  CLI::App* reg = app.add_subcommand(
      "register",
      "register the volume to a target image (Adam, run on the server next"
      " to the renderer, or from here with --client-loop)");
  AddRenderFlags(*reg, register_flags);
  reg->add_option("--target", registration.target,
                  "the target image, a float32 (H, W) .npy file")
      ->required();
  reg->add_option("--loss", registration.loss,
                  OneOf<v1::LossKind>("similarity"));
  reg->add_option("--patch-sizes", registration.patch_sizes,
                  "NCC patch sizes (0 = the whole image)")
      ->expected(1, 16);
  reg->add_option("--iterations", registration.iterations,
                  "most Adam iterations")
      ->capture_default_str();
  reg->add_option("--lr-rotation", registration.lr_rotation,
                  "Adam learning rate of the rotation vector")
      ->capture_default_str();
  reg->add_option("--lr-translation", registration.lr_translation,
                  "Adam learning rate of the translation")
      ->capture_default_str();
  reg->add_option("--stop-at", registration.stop_at,
                  "stop once the similarity reaches this")
      ->capture_default_str();
  reg->add_option("--scales", registration.scales,
                  "detector downsampling factors, coarsest first (e.g. 4 2 1)")
      ->expected(1, 8)
      ->capture_default_str();
  reg->add_option("--patience", registration.patience,
                  "iterations without improvement before the steps halve "
                  "(default: no plateau)");
  reg->add_flag("--client-loop", registration.client_loop,
                "run the loop here, one loss call per iteration");
  reg->add_option("-o,--out", registration.out,
                  "write OUT-overlay.png (the final DRR's edges over the "
                  "target) and OUT-loss.png (the loss per iteration)");

  RenderFlags sweep_flags;
  SweepFlags sweep_options;
  std::string sweep_out = "sweep";
  CLI::App* sweep = app.add_subcommand(
      "sweep",
      "render a sweep of one Euler angle in one batch: OUT.png (a contact "
      "sheet) and OUT.npy");
  AddRenderFlags(*sweep, sweep_flags);
  sweep
      ->add_option("--axis", sweep_options.axis,
                   "which Euler angle sweeps: 0, 1 or 2 (the first, second "
                   "or third of --convention)")
      ->capture_default_str();
  sweep
      ->add_option("--from", sweep_options.from,
                   "first angle (degrees, or radians with --radians)")
      ->capture_default_str();
  sweep->add_option("--to", sweep_options.to, "last angle")
      ->capture_default_str();
  sweep->add_option("--count", sweep_options.count, "poses")
      ->capture_default_str();
  sweep->add_option("--columns", sweep_options.columns,
                    "images per row of the sheet (default: a square)");
  sweep->add_option("-o,--out", sweep_out, "output name")
      ->capture_default_str();

  CLI::App* list = app.add_subcommand("list", "list the stored volumes");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "drrctl: INVALID_ARGUMENT: %s\n(drrctl --help)\n",
                 e.what());
    return 1;
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentialsFor(tls);
  if (!credentials.ok()) {
    std::fprintf(stderr, "drrctl: %s\n",
                 credentials.status().ToString().c_str());
    return 1;
  }
  std::string token;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!std::getline(in, token) || token.empty()) {
      std::fprintf(stderr, "drrctl: INVALID_ARGUMENT: no token in %s\n",
                   token_file.c_str());
      return 1;
    }
  } else if (const char* from_env = std::getenv("DRR_TOKEN")) {
    token = from_env;
  }
  DrrClient client(server, *credentials, token);
  absl::Status status;
  if (upload->parsed()) {
    absl::StatusOr<std::string> id =
        UploadFile(client, upload_file, upload_labels);
    if (id.ok()) std::printf("%s\n", id->c_str());
    status = id.status();
  } else if (render->parsed()) {
    status = Render(client, render_flags, out);
  } else if (sweep->parsed()) {
    status = Sweep(client, sweep_flags, sweep_options, sweep_out);
  } else if (reg->parsed()) {
    status = Register(client, register_flags, registration);
  } else if (list->parsed()) {
    status = List(client);
  }
  if (!status.ok()) {
    std::fprintf(stderr, "drrctl: %s: %s\n",
                 absl::StatusCodeToString(status.code()).c_str(),
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace drr::client

int main(int argc, char** argv) { return drr::client::Run(argc, argv); }
