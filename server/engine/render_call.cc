#include "server/engine/render_call.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "status/status_macros.h"

namespace drr::server {
namespace {

// OK when `value` is within [lo, hi]; else (NaN too) INVALID_ARGUMENT naming
// `field` and the range.
absl::Status CheckBetween(double value, double lo, double hi,
                          absl::string_view field) {
  if (!(value >= lo && value <= hi)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value, ", outside the meaningful range [",
                     lo, ", ", hi, "]"));
  }
  return absl::OkStatus();
}

// OK when |value| ≤ `bound`, as CheckBetween.
absl::Status CheckMagnitude(double value, double bound,
                            absl::string_view field) {
  return CheckBetween(value, -bound, bound, field);
}

// A length in mm of a camera: at least the smallest spacing, at most the
// largest distance.
absl::Status CheckLength(double value, absl::string_view field) {
  return CheckBetween(value, kMinSpacingMillimetres, kMaxMillimetres, field);
}

// OK when `p.rotation` (finite, of the parameterization's count) is a valid
// rotation of its parameterization, as geometry::RotationMatrix requires:
// a known Euler convention, a nonzero quaternion or adjugate, a proper
// orthonormal matrix. Else INVALID_ARGUMENT naming `field`.
absl::Status CheckRotation(const ParameterizedPoseSpec& p,
                           const std::string& field) {
  const double* rotation = p.rotation.data();
  auto sum_of_squares = [&](int count) {
    double n2 = 0;
    for (int i = 0; i < count; ++i) n2 += rotation[i] * rotation[i];
    return n2;
  };
  switch (p.parameterization) {
    case geometry::Parameterization::kEuler:
      if (!geometry::IsEulerConvention(p.convention)) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ".convention: convention \"", p.convention.substr(0, 16),
            "\" is not three axis letters (e.g. ZXY intrinsic, zxy "
            "extrinsic)"));
      }
      return absl::OkStatus();
    case geometry::Parameterization::kQuaternion:
      if (sum_of_squares(4) > 1e-24) return absl::OkStatus();
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".rotation: quaternion is zero"));
    case geometry::Parameterization::kQuaternionAdjugate:
      if (sum_of_squares(10) > 1e-24) return absl::OkStatus();
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".rotation: quaternion adjugate is zero"));
    case geometry::Parameterization::kMatrix: {
      const double(*m)[3] = reinterpret_cast<const double(*)[3]>(rotation);
      for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 3; ++c) {
          const double dot =
              m[0][r] * m[0][c] + m[1][r] * m[1][c] + m[2][r] * m[2][c];
          if (std::fabs(dot - (r == c ? 1.0 : 0.0)) > 1e-6) {
            return absl::InvalidArgumentError(
                absl::StrCat(field, ".rotation: matrix is not orthonormal"));
          }
        }
      }
      const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                         m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                         m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
      if (det > 0) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".rotation: matrix is a reflection (determinant −1)"));
    }
    case geometry::Parameterization::kRotation9d:
    case geometry::Parameterization::kSo3Log:
    case geometry::Parameterization::kSe3Log:
      break;
  }
  return absl::OkStatus();
}

// A count must be at least `min` (else INVALID_ARGUMENT) and at most the
// server's `limit` (else RESOURCE_EXHAUSTED); both name the field.
absl::Status CheckCount(int64_t value, int64_t min, int64_t limit,
                        absl::string_view field) {
  if (value < min) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value, ", must be at least ", min));
  }
  if (value > limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        field, " is ", value, ", over the server's limit of ", limit));
  }
  return absl::OkStatus();
}

// A point or offset in mm.
absl::Status CheckVec(const geometry::Vec3d& v, absl::string_view field) {
  for (int i = 0; i < 3; ++i) {
    DRR_RETURN_IF_ERROR(CheckMagnitude(v[i], kMaxMillimetres,
                                       absl::StrCat(field, "[", i, "]")));
  }
  return absl::OkStatus();
}

absl::Status ValidatePose(const PoseSpec& pose, int index) {
  const std::string prefix = absl::StrCat("poses[", index, "]");
  if (const auto* m = std::get_if<geometry::Mat4d>(&pose)) {
    for (int r = 0; r < 4; ++r) {
      for (int c = 0; c < 4; ++c) {
        DRR_RETURN_IF_ERROR(CheckMagnitude(
            m->m[r][c], kMaxMillimetres,
            absl::StrCat(prefix, ".rt_inv.values[", 4 * r + c, "]")));
      }
    }
    if (!geometry::InvertAffine(*m)) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix,
                       ".rt_inv is not an invertible affine transform (last "
                       "row must be 0 0 0 1)"));
    }
    return absl::OkStatus();
  }
  const auto& p = std::get<ParameterizedPoseSpec>(pose);
  const std::string field = prefix + ".parameterized";
  const int count = geometry::RotationParameterCount(p.parameterization);
  if (static_cast<int>(p.rotation.size()) != count) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".rotation needs ", count,
        " values for this parameterization, got ", p.rotation.size()));
  }
  for (int i = 0; i < count; ++i) {
    DRR_RETURN_IF_ERROR(
        CheckMagnitude(p.rotation[i], kMaxRotationParameter,
                       absl::StrCat(field, ".rotation[", i, "]")));
  }
  DRR_RETURN_IF_ERROR(CheckRotation(p, field));
  DRR_RETURN_IF_ERROR(CheckVec(p.translation, field + ".translation"));
  if (p.isocenter)
    DRR_RETURN_IF_ERROR(CheckVec(*p.isocenter, field + ".isocenter"));
  return absl::OkStatus();
}

absl::Status ValidateIntrinsics(const geometry::Intrinsics& in,
                                const std::string& field,
                                const Limits& limits) {
  DRR_RETURN_IF_ERROR(CheckLength(in.sdd, field + ".sdd"));
  DRR_RETURN_IF_ERROR(CheckLength(in.delx, field + ".delx"));
  DRR_RETURN_IF_ERROR(CheckLength(in.dely, field + ".dely"));
  DRR_RETURN_IF_ERROR(CheckMagnitude(in.x0, kMaxMillimetres, field + ".x0"));
  DRR_RETURN_IF_ERROR(CheckMagnitude(in.y0, kMaxMillimetres, field + ".y0"));
  DRR_RETURN_IF_ERROR(
      CheckCount(in.height, 1, limits.max_image_side, field + ".height"));
  DRR_RETURN_IF_ERROR(
      CheckCount(in.width, 1, limits.max_image_side, field + ".width"));
  return CheckCount(int64_t{in.height} * in.width, 1, limits.max_image_pixels,
                    field + ".height × " + field + ".width");
}

}  // namespace

absl::Status ValidateRenderCall(const RenderCall& call, const Limits& limits) {
  if (call.volume_id.empty())
    return absl::InvalidArgumentError("volume_id is empty");
  const int batch = static_cast<int>(call.poses.size());
  DRR_RETURN_IF_ERROR(CheckCount(batch, 1, limits.max_batch, "poses (count)"));
  const bool per_pose = call.intrinsics.size() != 1;
  if (per_pose && static_cast<int>(call.intrinsics.size()) != batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("per_pose_intrinsics has ", call.intrinsics.size(),
                     " entries for ", batch, " poses"));
  }
  for (size_t i = 0; i < call.intrinsics.size(); ++i) {
    const std::string field = per_pose
                                  ? absl::StrCat("per_pose_intrinsics[", i, "]")
                                  : std::string("intrinsics");
    DRR_RETURN_IF_ERROR(ValidateIntrinsics(call.intrinsics[i], field, limits));
    if (call.intrinsics[i].height != call.intrinsics[0].height ||
        call.intrinsics[i].width != call.intrinsics[0].width) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " is ", call.intrinsics[i].height, "×",
          call.intrinsics[i].width,
          ", but every image of a batch has the size of the first"));
    }
  }
  const int64_t pixels =
      int64_t{call.intrinsics[0].height} * call.intrinsics[0].width;
  DRR_RETURN_IF_ERROR(CheckCount(pixels * batch, 1, limits.max_output_pixels,
                                 "poses × height × width (pixels returned)"));
  DRR_RETURN_IF_ERROR(
      CheckCount(call.n_samples, 2, limits.max_samples, "options.n_samples"));
  if (call.sampler == kernels::Sampler::kTexture &&
      call.projector != kernels::Projector::kTrilinear) {
    return absl::InvalidArgumentError(
        "options.sampler TEXTURE applies to the trilinear renderer only");
  }
  if (call.sampling != kernels::Sampling::kSegment &&
      call.projector != kernels::Projector::kTrilinear) {
    return absl::InvalidArgumentError(
        "options.sampling applies to the trilinear renderer only");
  }
  if (call.soft_labels && (call.projector != kernels::Projector::kTrilinear ||
                           call.output == OutputKind::kMip ||
                           call.sampler != kernels::Sampler::kExact)) {
    return absl::InvalidArgumentError(
        "options.soft_labels needs the trilinear renderer, the exact sampler "
        "and a line integral or exp output");
  }
  const kernels::AttenuationParams& a = call.attenuation;
  DRR_RETURN_IF_ERROR(CheckMagnitude(a.mu_water, kMaxAttenuationPerMm,
                                     "options.attenuation.mu_water"));
  DRR_RETURN_IF_ERROR(CheckMagnitude(a.mu_bone, kMaxAttenuationPerMm,
                                     "options.attenuation.mu_bone"));
  DRR_RETURN_IF_ERROR(CheckBetween(a.hu_bone, 1.0, kMaxVoxelValue,
                                   "options.attenuation.hu_bone"));
  for (size_t i = 0; i < call.channels.classes.size(); ++i) {
    if (call.channels.classes[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("options.channels.classes[", i, "] is negative"));
    }
  }
  if (call.channels.sum && !call.channels.classes.empty()) {
    return absl::InvalidArgumentError(
        "options.channels: sum and classes exclude each other");
  }
  for (int i = 0; i < batch; ++i)
    DRR_RETURN_IF_ERROR(ValidatePose(call.poses[i], i));
  if (call.loss() && !call.channels.classes.empty()) {
    return absl::InvalidArgumentError(
        "options.channels.classes: a loss compares the summed image, not "
        "classes");
  }
  if (call.loss() && call.loss()->target_id.empty()) {
    return absl::InvalidArgumentError("loss.target_id is empty");
  }
  if (!std::holds_alternative<ImagesRequest>(call.kind)) {
    if (call.output == OutputKind::kMip ||
        call.sampler != kernels::Sampler::kExact) {
      return absl::InvalidArgumentError(
          "pose gradients (gradient, loss, jacobian) need the exact sampler "
          "and a line integral or exp output");
    }
    const size_t upstream =
        call.gradient() ? call.gradient()->upstream.size() : 0;
    for (size_t i = 0; i < upstream; ++i) {
      if (!std::isfinite(call.gradient()->upstream[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("gradient.upstream[", i, "] is not finite"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status StillWanted(const RenderCall& call, absl::string_view when) {
  if (call.deadline && std::chrono::steady_clock::now() >= *call.deadline) {
    return absl::DeadlineExceededError(
        absl::StrCat("the request's deadline passed ", when));
  }
  if (call.cancelled && call.cancelled->load(std::memory_order_relaxed)) {
    return absl::CancelledError(
        absl::StrCat("the client cancelled the request ", when));
  }
  return absl::OkStatus();
}

geometry::Mat4d ResolvePose(const PoseSpec& pose,
                            const geometry::Vec3d& volume_center) {
  if (const auto* m = std::get_if<geometry::Mat4d>(&pose)) return *m;
  const auto& p = std::get<ParameterizedPoseSpec>(pose);
  return geometry::PoseMatrix(
      p.parameterization, p.convention, p.rotation.data(), p.degrees,
      p.translation, p.orientation, p.isocenter.value_or(volume_center));
}

std::vector<double> PoseParameterJacobian(
    const PoseSpec& pose, const geometry::Vec3d& volume_center) {
  if (std::holds_alternative<geometry::Mat4d>(pose)) {
    std::vector<double> identity(16 * 16, 0.0);
    for (int i = 0; i < 16; ++i) identity[i * 16 + i] = 1.0;
    return identity;
  }
  ParameterizedPoseSpec p = std::get<ParameterizedPoseSpec>(pose);
  const int rotations = static_cast<int>(p.rotation.size());
  const int k = rotations + 3;
  std::vector<double> jacobian(16 * k);
  for (int column = 0; column < k; ++column) {
    double& value = column < rotations ? p.rotation[column]
                                       : p.translation[column - rotations];
    const double original = value;
    const double h = 1e-6 * std::max(1.0, std::fabs(original));
    value = original + h;
    const geometry::Mat4d up = ResolvePose(p, volume_center);
    value = original - h;
    const geometry::Mat4d down = ResolvePose(p, volume_center);
    value = original;
    for (int e = 0; e < 16; ++e) {
      jacobian[e * k + column] =
          (up.m[e / 4][e % 4] - down.m[e / 4][e % 4]) / (2 * h);
    }
  }
  return jacobian;
}

std::string EncodeImages(const RenderResult& result) {
  const std::vector<float>& v = result.images;
  if (result.dtype == kernels::StorageType::kFloat32) {
    return std::string(reinterpret_cast<const char*>(v.data()),
                       v.size() * sizeof(float));
  }
  std::string bytes(v.size() * 2, '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t bits = result.dtype == kernels::StorageType::kFloat16
                              ? ToHalf(v[i]).bits
                              : ToBFloat16(v[i]).bits;
    std::memcpy(bytes.data() + 2 * i, &bits, 2);
  }
  return bytes;
}

}  // namespace drr::server
