#include "server/proto_convert.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/volume_proto.h"

namespace drr::server {
namespace {

absl::Status WrongLength(absl::string_view field, int want, int got) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " needs ", want, " values, got ", got));
}

template <typename Repeated>
absl::StatusOr<kernels::Vec3d> Vec3FromProto(const Repeated& values,
                                             absl::string_view field) {
  if (values.size() != 3) return WrongLength(field, 3, values.size());
  return kernels::Vec3d{values[0], values[1], values[2]};
}

template <typename Repeated>
absl::StatusOr<kernels::Mat4d> Mat4FromProto(const Repeated& values,
                                             absl::string_view field) {
  if (values.size() != 16) return WrongLength(field, 16, values.size());
  kernels::Mat4d m;
  for (int i = 0; i < 16; ++i) m.m[i / 4][i % 4] = values[i];
  return m;
}

absl::StatusOr<kernels::Orientation> OrientationFromProto(
    v1::Orientation o, absl::string_view field) {
  switch (o) {
    case v1::ORIENTATION_UNSPECIFIED:
    case v1::ORIENTATION_AP:
      return kernels::Orientation::kAP;
    case v1::ORIENTATION_PA:
      return kernels::Orientation::kPA;
    case v1::ORIENTATION_NONE:
      return kernels::Orientation::kNone;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, " has unknown value ", o));
  }
}

absl::StatusOr<PoseSpec> PoseFromProto(const v1::Pose& pose, int index) {
  const std::string prefix = absl::StrCat("poses[", index, "]");
  switch (pose.kind_case()) {
    case v1::Pose::kRtInv:
      return Mat4FromProto(pose.rt_inv().values(), prefix + ".rt_inv.values");
    case v1::Pose::kEuler: {
      const v1::EulerPose& e = pose.euler();
      EulerPoseSpec spec;
      if (!e.convention().empty()) spec.convention = e.convention();
      spec.degrees = !e.radians();
      auto rotation = Vec3FromProto(e.rotation(), prefix + ".euler.rotation");
      if (!rotation.ok()) return rotation.status();
      spec.rotation = *rotation;
      auto translation =
          Vec3FromProto(e.translation(), prefix + ".euler.translation");
      if (!translation.ok()) return translation.status();
      spec.translation = *translation;
      auto orientation =
          OrientationFromProto(e.orientation(), prefix + ".euler.orientation");
      if (!orientation.ok()) return orientation.status();
      spec.orientation = *orientation;
      if (!e.isocenter().empty()) {
        auto isocenter =
            Vec3FromProto(e.isocenter(), prefix + ".euler.isocenter");
        if (!isocenter.ok()) return isocenter.status();
        spec.isocenter = *isocenter;
      }
      return spec;
    }
    case v1::Pose::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(prefix, " sets neither rt_inv nor euler"));
}

}  // namespace

void ToProto(const StoredVolume& volume, v1::VolumeInfo* out) {
  out->set_volume_id(volume.id);
  VolumeHeaderToProto(volume.header, out->mutable_header());
  out->set_voxel_bytes(static_cast<int64_t>(volume.raw_voxels.size()));
  out->clear_isocenter();
  for (double v : volume.isocenter) out->add_isocenter(v);
}

absl::StatusOr<RenderCall> FromProto(const v1::RenderRequest& request) {
  RenderCall call;
  call.volume_id = request.volume_id();
  if (!request.has_intrinsics())
    return absl::InvalidArgumentError("intrinsics is not set");
  const v1::Intrinsics& in = request.intrinsics();
  call.intrinsics =
      kernels::Intrinsics{in.sdd(), in.delx(),   in.dely(),  in.x0(),
                          in.y0(),  in.height(), in.width(), in.orthographic()};
  call.n_samples =
      request.options().n_samples() == 0 ? 500 : request.options().n_samples();
  call.poses.reserve(request.poses_size());
  for (int i = 0; i < request.poses_size(); ++i) {
    auto pose = PoseFromProto(request.poses(i), i);
    if (!pose.ok()) return pose.status();
    call.poses.push_back(*std::move(pose));
  }
  return call;
}

void ToProto(const RenderResult& result, v1::RenderResponse* out) {
  v1::ImageTensor* images = out->mutable_images();
  images->set_dtype(v1::IMAGE_DTYPE_FLOAT32);
  images->clear_shape();
  for (int64_t d :
       {result.batch, result.channels, result.height, result.width}) {
    images->add_shape(d);
  }
  images->set_data(reinterpret_cast<const char*>(result.images.data()),
                   result.images.size() * sizeof(float));
  out->mutable_timings()->set_queue_seconds(result.queue_seconds);
  out->mutable_timings()->set_render_seconds(result.render_seconds);
}

}  // namespace drr::server
