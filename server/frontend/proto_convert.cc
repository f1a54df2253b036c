#include "server/frontend/proto_convert.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "status/status_macros.h"
#include "wire/volume_proto.h"

namespace drr::server {
namespace {

absl::Status WrongLength(absl::string_view field, int want, int got) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " needs ", want, " values, got ", got));
}

template <typename Repeated>
absl::StatusOr<geometry::Vec3d> Vec3FromProto(const Repeated& values,
                                              absl::string_view field) {
  if (values.size() != 3) return WrongLength(field, 3, values.size());
  return geometry::Vec3d{values[0], values[1], values[2]};
}

template <typename Repeated>
absl::StatusOr<geometry::Mat4d> Mat4FromProto(const Repeated& values,
                                              absl::string_view field) {
  if (values.size() != 16) return WrongLength(field, 16, values.size());
  geometry::Mat4d m;
  for (int i = 0; i < 16; ++i) m.m[i / 4][i % 4] = values[i];
  return m;
}

absl::StatusOr<geometry::Orientation> OrientationFromProto(
    v1::Orientation o, absl::string_view field) {
  switch (o) {
    case v1::ORIENTATION_UNSPECIFIED:
    case v1::ORIENTATION_AP:
      return geometry::Orientation::kAP;
    case v1::ORIENTATION_PA:
      return geometry::Orientation::kPA;
    case v1::ORIENTATION_NONE:
      return geometry::Orientation::kNone;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, " has unknown value ", o));
  }
}

absl::StatusOr<geometry::Parameterization> ParameterizationFromProto(
    v1::Parameterization p, absl::string_view field) {
  switch (p) {
    case v1::PARAMETERIZATION_UNSPECIFIED:
    case v1::PARAMETERIZATION_EULER:
      return geometry::Parameterization::kEuler;
    case v1::PARAMETERIZATION_QUATERNION:
      return geometry::Parameterization::kQuaternion;
    case v1::PARAMETERIZATION_QUATERNION_ADJUGATE:
      return geometry::Parameterization::kQuaternionAdjugate;
    case v1::PARAMETERIZATION_ROTATION_9D:
      return geometry::Parameterization::kRotation9d;
    case v1::PARAMETERIZATION_SO3_LOG:
      return geometry::Parameterization::kSo3Log;
    case v1::PARAMETERIZATION_SE3_LOG:
      return geometry::Parameterization::kSe3Log;
    case v1::PARAMETERIZATION_MATRIX:
      return geometry::Parameterization::kMatrix;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, " has unknown value ", p));
  }
}

absl::StatusOr<PoseSpec> PoseFromProto(const v1::Pose& pose, int index) {
  const std::string prefix = absl::StrCat("poses[", index, "]");
  switch (pose.kind_case()) {
    case v1::Pose::kRtInv:
      return Mat4FromProto(pose.rt_inv().values(), prefix + ".rt_inv.values");
    case v1::Pose::kParameterized: {
      const v1::ParameterizedPose& p = pose.parameterized();
      const std::string field = prefix + ".parameterized";
      ParameterizedPoseSpec spec;
      DRR_ASSIGN_OR_RETURN(
          spec.parameterization,
          ParameterizationFromProto(p.parameterization(),
                                    field + ".parameterization"));
      if (p.has_convention()) spec.convention = p.convention();
      spec.degrees = !p.radians();
      if (p.rotation().empty()) {
        spec.rotation = geometry::IdentityRotation(spec.parameterization);
      } else {
        spec.rotation.assign(p.rotation().begin(), p.rotation().end());
      }
      if (!p.translation().empty()) {
        DRR_ASSIGN_OR_RETURN(
            spec.translation,
            Vec3FromProto(p.translation(), field + ".translation"));
      }
      DRR_ASSIGN_OR_RETURN(
          spec.orientation,
          OrientationFromProto(p.orientation(), field + ".orientation"));
      if (!p.isocenter().empty()) {
        DRR_ASSIGN_OR_RETURN(
            spec.isocenter, Vec3FromProto(p.isocenter(), field + ".isocenter"));
      }
      return spec;
    }
    case v1::Pose::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(prefix, " sets neither rt_inv nor parameterized"));
}

absl::StatusOr<kernels::StorageType> DTypeFromProto(v1::DType dtype,
                                                    absl::string_view field) {
  switch (dtype) {
    case v1::DTYPE_UNSPECIFIED:
    case v1::DTYPE_FLOAT32:
      return kernels::StorageType::kFloat32;
    case v1::DTYPE_FLOAT16:
      return kernels::StorageType::kFloat16;
    case v1::DTYPE_BFLOAT16:
      return kernels::StorageType::kBFloat16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, " has unknown value ", dtype));
  }
}

v1::DType DTypeToProto(kernels::StorageType type) {
  switch (type) {
    case kernels::StorageType::kFloat16:
      return v1::DTYPE_FLOAT16;
    case kernels::StorageType::kBFloat16:
      return v1::DTYPE_BFLOAT16;
    case kernels::StorageType::kFloat32:
      break;
  }
  return v1::DTYPE_FLOAT32;
}

// The fields of `in` that are set, over the defaults.
geometry::Intrinsics IntrinsicsFromProto(const v1::Intrinsics& in) {
  geometry::Intrinsics out;
  if (in.has_sdd()) out.sdd = in.sdd();
  if (in.has_delx()) out.delx = in.delx();
  if (in.has_dely()) out.dely = in.dely();
  if (in.has_x0()) out.x0 = in.x0();
  if (in.has_y0()) out.y0 = in.y0();
  if (in.has_height()) out.height = in.height();
  if (in.has_width()) out.width = in.width();
  out.orthographic = in.orthographic();
  return out;
}

// Fills the options of `call` from `options` (unset fields keep the call's
// defaults).
absl::Status OptionsFromProto(const v1::RenderOptions& options,
                              RenderCall* call) {
  if (options.has_n_samples()) call->n_samples = options.n_samples();
  switch (options.renderer()) {
    case v1::RENDERER_KIND_UNSPECIFIED:
    case v1::RENDERER_KIND_TRILINEAR:
      call->projector = kernels::Projector::kTrilinear;
      break;
    case v1::RENDERER_KIND_SIDDON:
      call->projector = kernels::Projector::kSiddon;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "options.renderer has unknown value ", options.renderer()));
  }
  switch (options.output()) {
    case v1::OUTPUT_UNSPECIFIED:
    case v1::OUTPUT_LINE_INTEGRAL:
      call->output = OutputKind::kLineIntegral;
      break;
    case v1::OUTPUT_EXP:
      call->output = OutputKind::kExp;
      break;
    case v1::OUTPUT_MIP:
      call->output = OutputKind::kMip;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("options.output has unknown value ", options.output()));
  }
  switch (options.sampler()) {
    case v1::SAMPLER_UNSPECIFIED:
    case v1::SAMPLER_EXACT:
      call->sampler = kernels::Sampler::kExact;
      break;
    case v1::SAMPLER_TEXTURE:
      call->sampler = kernels::Sampler::kTexture;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "options.sampler has unknown value ", options.sampler()));
  }
  switch (options.sampling()) {
    case v1::SAMPLING_UNSPECIFIED:
    case v1::SAMPLING_SEGMENT:
      call->sampling = kernels::Sampling::kSegment;
      break;
    case v1::SAMPLING_CLIPPED:
      call->sampling = kernels::Sampling::kClipped;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "options.sampling has unknown value ", options.sampling()));
  }
  call->soft_labels = options.soft_labels();
  DRR_ASSIGN_OR_RETURN(
      call->image_dtype,
      DTypeFromProto(options.image_dtype(), "options.image_dtype"));
  DRR_ASSIGN_OR_RETURN(
      call->volume_storage,
      DTypeFromProto(options.volume_storage(), "options.volume_storage"));
  const v1::Attenuation& a = options.attenuation();
  if (a.has_mu_water())
    call->attenuation.mu_water = static_cast<float>(a.mu_water());
  if (a.has_mu_bone())
    call->attenuation.mu_bone = static_cast<float>(a.mu_bone());
  if (a.has_hu_bone())
    call->attenuation.hu_bone = static_cast<float>(a.hu_bone());
  call->channels.sum = options.channels().sum();
  call->channels.classes.assign(options.channels().classes().begin(),
                                options.channels().classes().end());
  return absl::OkStatus();
}

}  // namespace

void ToProto(const VolumeSummary& volume, v1::VolumeInfo* out) {
  const VolumeHeader& header = volume.header;
  out->set_volume_id(volume.id);
  VolumeHeaderToProto(header, out->mutable_header());
  out->set_voxel_bytes(header.voxel_bytes() + header.label_bytes());
  out->clear_isocenter();
  for (double v : VolumeCenter(header)) out->add_isocenter(v);
  out->set_classes(volume.classes);
}

absl::StatusOr<RenderCall> FromProto(const v1::RenderRequest& request) {
  RenderCall call;
  call.volume_id = request.volume_id();
  if (request.per_pose_intrinsics_size() > 0) {
    if (request.has_intrinsics()) {
      return absl::InvalidArgumentError(
          "set intrinsics or per_pose_intrinsics, not both");
    }
    call.intrinsics.clear();
    for (const v1::Intrinsics& in : request.per_pose_intrinsics()) {
      call.intrinsics.push_back(IntrinsicsFromProto(in));
    }
  } else {
    call.intrinsics = {IntrinsicsFromProto(request.intrinsics())};
  }
  DRR_RETURN_IF_ERROR(OptionsFromProto(request.options(), &call));
  switch (request.priority()) {
    case v1::PRIORITY_UNSPECIFIED:
    case v1::PRIORITY_INTERACTIVE:
      call.scheduling.priority = Priority::kInteractive;
      break;
    case v1::PRIORITY_BATCH:
      call.scheduling.priority = Priority::kBatch;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("priority has unknown value ", request.priority()));
  }
  call.scheduling.frame_id = request.frame_id();
  if (!v1::StreamMode_IsValid(request.stream_mode())) {
    return absl::InvalidArgumentError(
        absl::StrCat("stream_mode has unknown value ", request.stream_mode()));
  }
  if (int(request.has_gradient()) + int(request.has_loss()) +
          int(request.jacobian()) >
      1) {
    return absl::InvalidArgumentError(
        "gradient, loss and jacobian exclude each other: a request asks for "
        "one of them (or none, for images only)");
  }
  if (request.jacobian()) call.kind = JacobianRequest{};
  if (request.has_loss()) {
    const v1::Loss& loss = request.loss();
    LossRequest out;
    out.target_id = loss.target_id();
    out.return_images = loss.return_images();
    switch (loss.kind()) {
      case v1::LOSS_KIND_UNSPECIFIED:
      case v1::LOSS_KIND_NCC:
        out.spec.kind = LossSpec::Kind::kNcc;
        break;
      case v1::LOSS_KIND_MULTISCALE_NCC:
        out.spec.kind = LossSpec::Kind::kMultiscaleNcc;
        out.spec.eps = defaults::kMultiscaleNccEps;
        break;
      case v1::LOSS_KIND_GRADIENT_NCC:
        out.spec.kind = LossSpec::Kind::kGradientNcc;
        break;
      case v1::LOSS_KIND_MSE:
        out.spec.kind = LossSpec::Kind::kMse;
        break;
      case v1::LOSS_KIND_MUTUAL_INFORMATION:
        out.spec.kind = LossSpec::Kind::kMutualInformation;
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("loss.kind has unknown value ", loss.kind()));
    }
    if (loss.patch_sizes_size() > 0) {
      out.spec.patch_sizes.assign(loss.patch_sizes().begin(),
                                  loss.patch_sizes().end());
      out.spec.weights.assign(loss.patch_weights().begin(),
                              loss.patch_weights().end());
      if (out.spec.weights.empty())
        out.spec.weights.assign(out.spec.patch_sizes.size(), 1.0);
    }
    if (loss.has_sigma()) out.spec.sigma = loss.sigma();
    if (loss.has_eps()) out.spec.eps = loss.eps();
    if (loss.has_bins()) out.spec.bins = loss.bins();
    call.kind = std::move(out);
  }
  if (request.has_gradient()) {
    const std::string& bytes = request.gradient().upstream();
    if (bytes.size() % sizeof(float) != 0) {
      return absl::InvalidArgumentError(
          "gradient.upstream is not a whole number of float32s");
    }
    GradientRequest gradient;
    gradient.upstream.resize(bytes.size() / sizeof(float));
    if (!bytes.empty()) {  // (memcpy from an empty vector's nullptr is UB)
      std::memcpy(gradient.upstream.data(), bytes.data(), bytes.size());
    }
    call.kind = std::move(gradient);
  }
  call.poses.reserve(request.poses_size());
  for (int i = 0; i < request.poses_size(); ++i) {
    DRR_ASSIGN_OR_RETURN(PoseSpec pose, PoseFromProto(request.poses(i), i));
    call.poses.push_back(std::move(pose));
  }
  return call;
}

void ToProto(const RenderResult& result, v1::RenderResponse* out) {
  if (!result.images.empty()) {
    v1::ImageTensor* images = out->mutable_images();
    images->set_dtype(DTypeToProto(result.dtype));
    images->clear_shape();
    for (int64_t d :
         {result.batch, result.channels, result.height, result.width}) {
      images->add_shape(d);
    }
    images->set_data(EncodeImages(result));
  }
  for (double loss : result.losses) out->add_losses(loss);
  for (const PoseGradient& gradient : result.gradients) {
    v1::PoseGradient* proto = out->add_pose_gradients();
    for (double v : gradient.parameters) proto->add_parameters(v);
    if (!gradient.parameters.empty()) {
      for (const auto& row : gradient.rt_inv.m) {
        for (double v : row) proto->add_rt_inv(v);
      }
    }
    proto->set_jacobian(reinterpret_cast<const char*>(gradient.jacobian.data()),
                        gradient.jacobian.size() * sizeof(float));
  }
  out->mutable_timings()->set_queue_seconds(result.queue_seconds);
  out->mutable_timings()->set_render_seconds(result.render_seconds);
  out->mutable_timings()->set_batch_wait_seconds(result.batch_wait_seconds);
  out->mutable_timings()->set_post_seconds(result.post_seconds);
  out->mutable_timings()->set_launch_poses(result.launch_poses);
}

absl::StatusOr<RegistrationSpec> FromProto(const v1::RegisterRequest& request) {
  v1::RenderRequest render;
  render.set_volume_id(request.volume_id());
  for (const v1::ParameterizedPose& start : request.starts()) {
    *render.add_poses()->mutable_parameterized() = start;
  }
  if (request.has_intrinsics()) {
    *render.mutable_intrinsics() = request.intrinsics();
  }
  if (request.has_options()) *render.mutable_options() = request.options();
  if (request.has_loss()) *render.mutable_loss() = request.loss();
  render.set_priority(request.priority() == v1::PRIORITY_UNSPECIFIED
                          ? v1::PRIORITY_BATCH
                          : request.priority());
  absl::StatusOr<RenderCall> call = FromProto(render);
  if (!call.ok()) return NamedForRegistration(call.status());
  RegistrationSpec spec;
  spec.call = *std::move(call);
  const v1::Optimizer& o = request.optimizer();
  OptimizerSpec& out = spec.optimizer;
  if (o.has_lr_rotation()) out.lr_rotation = o.lr_rotation();
  if (o.has_lr_translation()) out.lr_translation = o.lr_translation();
  if (o.has_iterations()) out.iterations = o.iterations();
  if (o.has_stop_at()) out.stop_at = o.stop_at();
  if (o.has_patience()) out.patience = o.patience();
  if (o.has_plateau_factor()) out.plateau_factor = o.plateau_factor();
  if (o.has_tolerance()) out.tolerance = o.tolerance();
  if (o.has_max_reductions()) out.max_reductions = o.max_reductions();
  if (!request.scales().empty()) {
    spec.scales.assign(request.scales().begin(), request.scales().end());
  }
  return spec;
}

absl::Status NamedForRegistration(const absl::Status& status) {
  if (!absl::StrContains(status.message(), "poses")) return status;
  return absl::Status(
      status.code(),
      absl::StrReplaceAll(status.message(), {{"poses[", "starts["},
                                             {"].parameterized", "]"},
                                             {"poses ×", "starts ×"}}));
}

namespace {

// The request's start `index` with `parameters` (rotation values then
// translation) in place of its own.
void PoseWith(const v1::RegisterRequest& request, int index,
              const std::vector<double>& parameters,
              v1::ParameterizedPose* out) {
  *out = request.starts(index);
  out->clear_rotation();
  out->clear_translation();
  const size_t rotation_values = parameters.size() - 3;
  for (size_t i = 0; i < parameters.size(); ++i) {
    if (i < rotation_values) {
      out->add_rotation(parameters[i]);
    } else {
      out->add_translation(parameters[i]);
    }
  }
}

v1::RegisterStop StopToProto(RegistrationStop stop) {
  switch (stop) {
    case RegistrationStop::kReachedStopAt:
      return v1::REGISTER_STOP_REACHED_STOP_AT;
    case RegistrationStop::kPlateau:
      return v1::REGISTER_STOP_PLATEAU;
    case RegistrationStop::kIterations:
      break;
  }
  return v1::REGISTER_STOP_ITERATIONS;
}

}  // namespace

void ToProto(const RegistrationStep& step, const v1::RegisterRequest& request,
             v1::RegisterStep* out) {
  out->set_iteration(step.iteration);
  out->set_scale(step.scale);
  out->mutable_losses()->Assign(step.losses.begin(), step.losses.end());
  out->set_best_start(step.best_start);
  out->set_best_loss(step.best_loss);
  PoseWith(request, step.best_start, step.best_parameters,
           out->mutable_best_pose());
}

void ToProto(const RegistrationOutcome& outcome,
             const v1::RegisterRequest& request, v1::RegisterResult* out) {
  out->set_start(outcome.start);
  out->set_loss(outcome.loss);
  PoseWith(request, outcome.start, outcome.parameters, out->mutable_pose());
  out->set_iterations(outcome.iterations);
  out->set_stopped_by(StopToProto(outcome.stopped_by));
  for (const RegistrationStep& step : outcome.trajectory) {
    ToProto(step, request, out->add_trajectory());
  }
}

}  // namespace drr::server
