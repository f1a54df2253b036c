#include "server/render_call.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace drr::server {
namespace {

absl::Status CheckFinite(double value, absl::string_view field) {
  if (!std::isfinite(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is not finite (", value, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckPositive(double value, absl::string_view field) {
  DRR_RETURN_IF_ERROR(CheckFinite(value, field));
  if (value <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be > 0, got ", value));
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

absl::Status CheckVec(const kernels::Vec3d& v, absl::string_view field) {
  for (int i = 0; i < 3; ++i) {
    DRR_RETURN_IF_ERROR(CheckFinite(v[i], absl::StrCat(field, "[", i, "]")));
  }
  return absl::OkStatus();
}

absl::Status ValidatePose(const PoseSpec& pose, int index) {
  const std::string prefix = absl::StrCat("poses[", index, "]");
  if (const auto* m = std::get_if<kernels::Mat4d>(&pose)) {
    for (int r = 0; r < 4; ++r) {
      for (int c = 0; c < 4; ++c) {
        DRR_RETURN_IF_ERROR(CheckFinite(
            m->m[r][c],
            absl::StrCat(prefix, ".rt_inv.values[", 4 * r + c, "]")));
      }
    }
    if (!kernels::InvertAffine(*m)) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix,
                       ".rt_inv is not an invertible affine transform (last "
                       "row must be 0 0 0 1)"));
    }
    return absl::OkStatus();
  }
  const auto& euler = std::get<EulerPoseSpec>(pose);
  if (!kernels::IsEulerConvention(euler.convention)) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, ".euler.convention \"", euler.convention,
        "\" is not three axis letters (e.g. ZXY intrinsic, zxy extrinsic)"));
  }
  DRR_RETURN_IF_ERROR(CheckVec(euler.rotation, prefix + ".euler.rotation"));
  DRR_RETURN_IF_ERROR(
      CheckVec(euler.translation, prefix + ".euler.translation"));
  if (euler.isocenter) {
    DRR_RETURN_IF_ERROR(
        CheckVec(*euler.isocenter, prefix + ".euler.isocenter"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRenderCall(const RenderCall& call, const Limits& limits) {
  if (call.volume_id.empty())
    return absl::InvalidArgumentError("volume_id is empty");
  const int batch = static_cast<int>(call.poses.size());
  DRR_RETURN_IF_ERROR(CheckCount(batch, 1, limits.max_batch, "poses (count)"));
  const kernels::Intrinsics& in = call.intrinsics;
  DRR_RETURN_IF_ERROR(CheckPositive(in.sdd, "intrinsics.sdd"));
  DRR_RETURN_IF_ERROR(CheckPositive(in.delx, "intrinsics.delx"));
  DRR_RETURN_IF_ERROR(CheckPositive(in.dely, "intrinsics.dely"));
  DRR_RETURN_IF_ERROR(CheckFinite(in.x0, "intrinsics.x0"));
  DRR_RETURN_IF_ERROR(CheckFinite(in.y0, "intrinsics.y0"));
  DRR_RETURN_IF_ERROR(
      CheckCount(in.height, 1, limits.max_image_side, "intrinsics.height"));
  DRR_RETURN_IF_ERROR(
      CheckCount(in.width, 1, limits.max_image_side, "intrinsics.width"));
  const int64_t pixels = int64_t{in.height} * in.width;
  DRR_RETURN_IF_ERROR(CheckCount(pixels, 1, limits.max_image_pixels,
                                 "intrinsics.height × intrinsics.width"));
  DRR_RETURN_IF_ERROR(CheckCount(pixels * batch, 1, limits.max_output_pixels,
                                 "poses × height × width (pixels returned)"));
  DRR_RETURN_IF_ERROR(
      CheckCount(call.n_samples, 2, limits.max_samples, "options.n_samples"));
  for (int i = 0; i < batch; ++i)
    DRR_RETURN_IF_ERROR(ValidatePose(call.poses[i], i));
  return absl::OkStatus();
}

kernels::Mat4d ResolvePose(const PoseSpec& pose,
                           const kernels::Vec3d& volume_center) {
  if (const auto* m = std::get_if<kernels::Mat4d>(&pose)) return *m;
  const auto& euler = std::get<EulerPoseSpec>(pose);
  const kernels::Mat3d rotation =
      kernels::EulerToMatrix(euler.convention, euler.rotation, euler.degrees);
  return kernels::MakeRtInv(rotation, euler.translation, euler.orientation,
                            euler.isocenter.value_or(volume_center));
}

}  // namespace drr::server
