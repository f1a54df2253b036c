// drrctl: command-line client of drrserve.
//
//   drrctl upload FILE.nii.gz [--labels MASK.nii.gz]   prints the volume id
//   drrctl render VOLUME_ID|FILE -o NAME                writes NAME.png,
//   NAME.npy drrctl register VOLUME_ID|FILE --target IMAGE.npy   registers with
//   Adam drrctl list                                        prints the stored
//   volumes
//
// Pose and camera flags are named after nanodrr's parameters; their defaults
// are the reference camera of design.md §8.
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cli.h"
#include "client/cpp/drr_client.h"
#include "geometry/pose.h"
#include "io/labels.h"
#include "io/nifti.h"
#include "io/npy.h"
#include "io/png.h"
#include "status/status_macros.h"

namespace drr::client {
namespace {

constexpr char kUsage[] =
    "usage: drrctl upload FILE.nii.gz [--labels MASK.nii.gz] [--server "
    "HOST:PORT]\n"
    "       drrctl render VOLUME_ID|FILE.nii.gz -o NAME [options]\n"
    "       drrctl register VOLUME_ID|FILE.nii.gz --target IMAGE.npy "
    "[options]\n"
    "       drrctl list [--server HOST:PORT]\n";

void DeclareFlags(CommandLine& cli) {
  cli.Add("server", 1, "127.0.0.1:50051", "drrserve address");
  cli.Add("out", 1, "drr", "render: write OUT.png and OUT.npy");
  cli.Alias('o', "out");
  cli.Add("labels", 1, "",
          "upload, render FILE: label volume (NIfTI) of the same shape");
  cli.Add("parameterization", 1, "euler",
          "render: euler, quaternion, quaternion_adjugate, rotation_9d, "
          "so3_log, se3_log or "
          "matrix");
  cli.Add("convention", 1, "ZXY",
          "render: Euler convention (upper case intrinsic)");
  cli.Add("radians", 0, "", "render: Euler angles in radians");
  cli.Add("rotation", CommandLine::kVariadic, "0 0 0",
          "render: rotation values (ZXY Euler RZ RX RY, degrees, by default)");
  cli.Add("translation", 3, "0 850 0",
          "render: camera centre TX TY TZ from the isocenter, mm");
  cli.Add("orientation", 1, "AP", "render: AP, PA or none");
  cli.Add("isocenter", 3, "",
          "render: rotation centre, world mm (default: volume centre)");
  cli.Add("sdd", 1, "1020", "render: source-to-detector distance, mm");
  cli.Add("delx", 1, "2.0", "render: pixel spacing along x, mm");
  cli.Add("dely", 1, "2.0", "render: pixel spacing along y, mm");
  cli.Add("x0", 1, "0", "render: principal point offset along x, mm");
  cli.Add("y0", 1, "0", "render: principal point offset along y, mm");
  cli.Add("height", 1, "200", "render: image height, pixels");
  cli.Add("width", 1, "200", "render: image width, pixels");
  cli.Add("orthographic", 0, "", "render: parallel rays");
  cli.Add("samples", 1, "500", "render: samples per ray");
  cli.Add("renderer", 1, "trilinear", "render: trilinear or siddon");
  cli.Add("output", 1, "line-integral", "render: line-integral, exp or mip");
  cli.Add("image-dtype", 1, "float32",
          "render: float32, float16 or bfloat16 on the wire");
  cli.Add("volume-storage", 1, "float32",
          "render: float32, float16 or bfloat16 on the device");
  cli.Add("sampler", 1, "exact", "render: exact or texture (CUDA only)");
  cli.Add("mu-water", 1, "0.0192", "render: mu of water, per mm");
  cli.Add("mu-bone", 1, "0.0573", "render: mu of bone, per mm");
  cli.Add("hu-bone", 1, "1000", "render: HU of bone");
  cli.Add("sum-channels", 0, "",
          "render: one channel summing every label class");
  cli.Add("classes", CommandLine::kVariadic, "",
          "render: only these label classes");
  cli.Add("target", 1, "",
          "register: the target image, a float32 (H, W) .npy file");
  cli.Add("loss", 1, "ncc",
          "register: ncc, multiscale_ncc, gradient_ncc or mse");
  cli.Add("patch-sizes", CommandLine::kVariadic, "0",
          "register: NCC patch sizes (0 = whole image)");
  cli.Add("iterations", 1, "100", "register: most Adam iterations");
  cli.Add("lr-rotation", 1, "0.05",
          "register: Adam learning rate of the rotation vector");
  cli.Add("lr-translation", 1, "10",
          "register: Adam learning rate of the translation");
  cli.Add("stop-at", 1, "0.999",
          "register: stop once the similarity reaches this");
  cli.Add("help", 0, "", "print this help");
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

bool IsFile(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

// Uploads the NIfTI volume at `path`, with the label volume at `labels_path`
// when that is not empty; returns the volume id.
absl::StatusOr<std::string> UploadFile(DrrClient& client,
                                       const std::string& path,
                                       const std::string& labels_path) {
  DRR_ASSIGN_OR_RETURN(HostVolume volume, ReadNiftiFile(path));
  if (!labels_path.empty()) {
    DRR_ASSIGN_OR_RETURN(HostVolume labels, ReadNiftiFile(labels_path));
    DRR_RETURN_IF_ERROR(AttachLabels(labels, &volume));
  }
  DRR_ASSIGN_OR_RETURN(v1::VolumeInfo info, client.Upload(volume));
  return info.volume_id();
}

// Looks `text` up among `names` (flag spellings) and returns the matching
// value.
template <typename Enum>
absl::StatusOr<Enum> Choose(
    const CommandLine& cli, const std::string& flag,
    std::initializer_list<std::pair<const char*, Enum>> names) {
  const std::string text = cli.Value(flag);
  std::string known;
  for (const auto& [name, value] : names) {
    if (text == name) return value;
    absl::StrAppend(&known, known.empty() ? "" : ", ", name);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--", flag, " must be one of ", known, ", not \"", text, "\""));
}

absl::StatusOr<v1::Intrinsics> IntrinsicsFromFlags(const CommandLine& cli) {
  v1::Intrinsics in;
  DRR_ASSIGN_OR_RETURN(double sdd, cli.Double("sdd"));
  DRR_ASSIGN_OR_RETURN(double delx, cli.Double("delx"));
  DRR_ASSIGN_OR_RETURN(double dely, cli.Double("dely"));
  DRR_ASSIGN_OR_RETURN(double x0, cli.Double("x0"));
  DRR_ASSIGN_OR_RETURN(double y0, cli.Double("y0"));
  DRR_ASSIGN_OR_RETURN(int height, cli.Int("height"));
  DRR_ASSIGN_OR_RETURN(int width, cli.Int("width"));
  in.set_sdd(sdd);
  in.set_delx(delx);
  in.set_dely(dely);
  in.set_x0(x0);
  in.set_y0(y0);
  in.set_height(height);
  in.set_width(width);
  in.set_orthographic(cli.Given("orthographic"));
  return in;
}

absl::StatusOr<v1::Pose> PoseFromFlags(const CommandLine& cli) {
  v1::Pose pose;
  v1::ParameterizedPose* p = pose.mutable_parameterized();
  DRR_ASSIGN_OR_RETURN(
      v1::Parameterization parameterization,
      Choose<v1::Parameterization>(
          cli, "parameterization",
          {{"euler", v1::PARAMETERIZATION_EULER},
           {"quaternion", v1::PARAMETERIZATION_QUATERNION},
           {"quaternion_adjugate", v1::PARAMETERIZATION_QUATERNION_ADJUGATE},
           {"rotation_9d", v1::PARAMETERIZATION_ROTATION_9D},
           {"so3_log", v1::PARAMETERIZATION_SO3_LOG},
           {"se3_log", v1::PARAMETERIZATION_SE3_LOG},
           {"matrix", v1::PARAMETERIZATION_MATRIX}}));
  p->set_parameterization(parameterization);
  p->set_convention(cli.Value("convention"));
  p->set_radians(cli.Given("radians"));
  for (size_t i = 0; i < cli.Values("rotation").size(); ++i) {
    DRR_ASSIGN_OR_RETURN(double r, cli.Double("rotation", static_cast<int>(i)));
    p->add_rotation(r);
  }
  for (int i = 0; i < 3; ++i) {
    DRR_ASSIGN_OR_RETURN(double t, cli.Double("translation", i));
    p->add_translation(t);
    if (cli.Given("isocenter")) {
      DRR_ASSIGN_OR_RETURN(double c, cli.Double("isocenter", i));
      p->add_isocenter(c);
    }
  }
  DRR_ASSIGN_OR_RETURN(
      v1::Orientation orientation,
      Choose<v1::Orientation>(cli, "orientation",
                              {{"AP", v1::ORIENTATION_AP},
                               {"PA", v1::ORIENTATION_PA},
                               {"none", v1::ORIENTATION_NONE}}));
  p->set_orientation(orientation);
  return pose;
}

absl::StatusOr<v1::RenderOptions> OptionsFromFlags(const CommandLine& cli) {
  v1::RenderOptions options;
  DRR_ASSIGN_OR_RETURN(int samples, cli.Int("samples"));
  options.set_n_samples(samples);
  DRR_ASSIGN_OR_RETURN(
      v1::RendererKind renderer,
      Choose<v1::RendererKind>(cli, "renderer",
                               {{"trilinear", v1::RENDERER_KIND_TRILINEAR},
                                {"siddon", v1::RENDERER_KIND_SIDDON}}));
  options.set_renderer(renderer);
  DRR_ASSIGN_OR_RETURN(
      v1::Output output,
      Choose<v1::Output>(cli, "output",
                         {{"line-integral", v1::OUTPUT_LINE_INTEGRAL},
                          {"exp", v1::OUTPUT_EXP},
                          {"mip", v1::OUTPUT_MIP}}));
  options.set_output(output);
  const std::initializer_list<std::pair<const char*, v1::DType>> dtypes = {
      {"float32", v1::DTYPE_FLOAT32},
      {"float16", v1::DTYPE_FLOAT16},
      {"bfloat16", v1::DTYPE_BFLOAT16}};
  DRR_ASSIGN_OR_RETURN(v1::DType image_dtype,
                       Choose<v1::DType>(cli, "image-dtype", dtypes));
  options.set_image_dtype(image_dtype);
  DRR_ASSIGN_OR_RETURN(v1::DType storage,
                       Choose<v1::DType>(cli, "volume-storage", dtypes));
  options.set_volume_storage(storage);
  DRR_ASSIGN_OR_RETURN(
      v1::SamplerKind sampler,
      Choose<v1::SamplerKind>(
          cli, "sampler",
          {{"exact", v1::SAMPLER_EXACT}, {"texture", v1::SAMPLER_TEXTURE}}));
  options.set_sampler(sampler);
  DRR_ASSIGN_OR_RETURN(double mu_water, cli.Double("mu-water"));
  DRR_ASSIGN_OR_RETURN(double mu_bone, cli.Double("mu-bone"));
  DRR_ASSIGN_OR_RETURN(double hu_bone, cli.Double("hu-bone"));
  options.mutable_attenuation()->set_mu_water(mu_water);
  options.mutable_attenuation()->set_mu_bone(mu_bone);
  options.mutable_attenuation()->set_hu_bone(hu_bone);
  options.mutable_channels()->set_sum(cli.Given("sum-channels"));
  for (size_t i = 0; i < cli.Values("classes").size(); ++i) {
    DRR_ASSIGN_OR_RETURN(double c, cli.Double("classes", static_cast<int>(i)));
    options.mutable_channels()->add_classes(static_cast<int>(c));
  }
  return options;
}

absl::StatusOr<v1::RenderRequest> RequestFromFlags(
    const CommandLine& cli, const std::string& volume_id) {
  v1::RenderRequest request;
  request.set_volume_id(volume_id);
  DRR_ASSIGN_OR_RETURN(*request.add_poses(), PoseFromFlags(cli));
  DRR_ASSIGN_OR_RETURN(*request.mutable_intrinsics(), IntrinsicsFromFlags(cli));
  DRR_ASSIGN_OR_RETURN(*request.mutable_options(), OptionsFromFlags(cli));
  return request;
}

absl::Status Render(const CommandLine& cli, DrrClient& client,
                    const std::string& source) {
  std::string volume_id = source;
  if (IsFile(source)) {
    DRR_ASSIGN_OR_RETURN(volume_id,
                         UploadFile(client, source, cli.Value("labels")));
  }
  DRR_ASSIGN_OR_RETURN(v1::RenderRequest request,
                       RequestFromFlags(cli, volume_id));
  DRR_ASSIGN_OR_RETURN(Images images, client.Render(request));
  const std::string name = cli.Value("out");
  // One channel: (H, W); several: (C, H, W), and the PNG shows their sum.
  std::vector<int64_t> shape = {images.height, images.width};
  if (images.channels > 1) shape.insert(shape.begin(), images.channels);
  DRR_RETURN_IF_ERROR(WriteNpy(name + ".npy", images.data.data(), shape));
  const size_t plane = static_cast<size_t>(images.height) * images.width;
  std::vector<float> total(images.data.begin(), images.data.begin() + plane);
  for (int c = 1; c < images.channels; ++c) {
    for (size_t i = 0; i < plane; ++i) total[i] += images.data[c * plane + i];
  }
  DRR_RETURN_IF_ERROR(
      WritePng(name + ".png", total.data(), images.height, images.width));
  std::printf("%s.png %s.npy (%d channel(s) of %dx%d) from volume %s\n",
              name.c_str(), name.c_str(), images.channels, images.height,
              images.width, volume_id.c_str());
  return absl::OkStatus();
}

// Registers the volume to the target image: Adam on a rotation vector
// (so3_log) and translation, starting from the pose flags, maximising the
// similarity (minimising MSE); prints each iteration and the final pose.
absl::Status Register(const CommandLine& cli, DrrClient& client,
                      const std::string& source) {
  std::string volume_id = source;
  if (IsFile(source)) {
    DRR_ASSIGN_OR_RETURN(volume_id,
                         UploadFile(client, source, cli.Value("labels")));
  }
  if (cli.Value("target").empty())
    return absl::InvalidArgumentError("register needs --target");
  DRR_ASSIGN_OR_RETURN(const NpyArray target, ReadNpy(cli.Value("target")));
  DRR_ASSIGN_OR_RETURN(v1::RenderRequest request,
                       RequestFromFlags(cli, volume_id));
  const v1::Intrinsics& in = request.intrinsics();
  if (target.shape.size() != 2 || target.shape[0] != in.height() ||
      target.shape[1] != in.width()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--target must be a (", in.height(), ", ", in.width(),
                     ") image, as --height and --width say"));
  }
  DRR_ASSIGN_OR_RETURN(
      std::string target_id,
      client.UploadTarget(
          in.height(), in.width(),
          std::vector<float>(target.values.begin(), target.values.end())));
  DRR_ASSIGN_OR_RETURN(
      v1::LossKind kind,
      Choose<v1::LossKind>(cli, "loss",
                           {{"ncc", v1::LOSS_KIND_NCC},
                            {"multiscale_ncc", v1::LOSS_KIND_MULTISCALE_NCC},
                            {"gradient_ncc", v1::LOSS_KIND_GRADIENT_NCC},
                            {"mse", v1::LOSS_KIND_MSE}}));
  v1::Loss* loss = request.mutable_loss();
  loss->set_target_id(target_id);
  loss->set_kind(kind);
  for (size_t i = 0; i < cli.Values("patch-sizes").size(); ++i) {
    DRR_ASSIGN_OR_RETURN(double p,
                         cli.Double("patch-sizes", static_cast<int>(i)));
    loss->add_patch_sizes(static_cast<int>(p));
  }
  // Start: the flags' pose as a rotation vector and translation.
  v1::ParameterizedPose* pose =
      request.mutable_poses(0)->mutable_parameterized();
  if (pose->parameterization() != v1::PARAMETERIZATION_EULER ||
      pose->rotation_size() != 3) {
    return absl::InvalidArgumentError(
        "register starts from an Euler pose (--rotation A B C)");
  }
  const geometry::Vec3d start =
      geometry::RotationVector(geometry::EulerToMatrix(
          pose->convention(),
          {pose->rotation(0), pose->rotation(1), pose->rotation(2)},
          !pose->radians()));
  std::vector<double> params = {start[0],
                                start[1],
                                start[2],
                                pose->translation(0),
                                pose->translation(1),
                                pose->translation(2)};
  pose->set_parameterization(v1::PARAMETERIZATION_SO3_LOG);
  DRR_ASSIGN_OR_RETURN(double lr_rotation, cli.Double("lr-rotation"));
  DRR_ASSIGN_OR_RETURN(double lr_translation, cli.Double("lr-translation"));
  DRR_ASSIGN_OR_RETURN(int iterations, cli.Int("iterations"));
  DRR_ASSIGN_OR_RETURN(double stop_at, cli.Double("stop-at"));
  Adam adam({lr_rotation, lr_rotation, lr_rotation, lr_translation,
             lr_translation, lr_translation});
  const bool maximise = kind != v1::LOSS_KIND_MSE;
  double value = 0;
  int iteration = 0;
  for (; iteration < iterations; ++iteration) {
    for (int i = 0; i < 3; ++i) {
      pose->set_rotation(i, params[i]);
      pose->set_translation(i, params[3 + i]);
    }
    DRR_ASSIGN_OR_RETURN(v1::RenderResponse response, client.Send(request));
    value = response.losses(0);
    std::printf("iteration %d loss %.6f\n", iteration, value);
    if (maximise && value >= stop_at) break;
    std::vector<double> gradient(
        response.pose_gradients(0).parameters().begin(),
        response.pose_gradients(0).parameters().end());
    if (maximise) {
      for (double& g : gradient) g = -g;
    }
    adam.Step(gradient, &params);
  }
  std::printf("final loss %.6f after %d iteration(s)\n", value,
              iteration + (iteration < iterations));
  std::printf(
      "rotation (so3_log, rad) %.6f %.6f %.6f\ntranslation (mm) %.4f %.4f "
      "%.4f\n",
      params[0], params[1], params[2], params[3], params[4], params[5]);
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

absl::Status Run(const CommandLine& cli) {
  const std::vector<std::string>& args = cli.positional();
  DrrClient client(cli.Value("server"));
  if (args.size() == 2 && args[0] == "upload") {
    DRR_ASSIGN_OR_RETURN(std::string id,
                         UploadFile(client, args[1], cli.Value("labels")));
    std::printf("%s\n", id.c_str());
    return absl::OkStatus();
  }
  if (args.size() == 2 && args[0] == "render")
    return Render(cli, client, args[1]);
  if (args.size() == 2 && args[0] == "register")
    return Register(cli, client, args[1]);
  if (args.size() == 1 && args[0] == "list") return List(client);
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown command \"", absl::StrJoin(args, " "), "\"\n", kUsage));
}

}  // namespace
}  // namespace drr::client

int main(int argc, char** argv) {
  drr::CommandLine cli;
  drr::client::DeclareFlags(cli);
  absl::Status status =
      cli.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (status.ok() && cli.Given("help")) {
    std::printf("%s\noptions:\n%s", drr::client::kUsage, cli.Usage().c_str());
    return 0;
  }
  if (status.ok()) status = drr::client::Run(cli);
  if (!status.ok()) {
    std::fprintf(stderr, "drrctl: %s: %s\n",
                 absl::StatusCodeToString(status.code()).c_str(),
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
