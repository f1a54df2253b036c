#include "server/render_call.h"

#include <cmath>

#include "gtest/gtest.h"

namespace drr::server {
namespace {

RenderCall GoodCall() {
  RenderCall call;
  call.volume_id = "abc";
  call.poses.push_back(EulerPoseSpec{});
  return call;
}

void ExpectRejected(const RenderCall& call, absl::StatusCode code,
                    absl::string_view field) {
  const absl::Status s = ValidateRenderCall(call, Limits{});
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_NE(s.message().find(field), absl::string_view::npos) << s;
}

TEST(ValidateRenderCallTest, AcceptsTheReferenceCall) {
  EXPECT_TRUE(ValidateRenderCall(GoodCall(), Limits{}).ok());
}

TEST(ValidateRenderCallTest, RejectsBadSizesNamingTheField) {
  RenderCall call = GoodCall();
  call.intrinsics.height = 0;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.height");
  call = GoodCall();
  call.intrinsics.width = -5;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.width");
  call = GoodCall();
  call.intrinsics.width = 100000;
  ExpectRejected(call, absl::StatusCode::kResourceExhausted,
                 "intrinsics.width");
  call = GoodCall();
  call.n_samples = 1;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "options.n_samples");
  call = GoodCall();
  call.n_samples = 1 << 20;
  ExpectRejected(call, absl::StatusCode::kResourceExhausted,
                 "options.n_samples");
  call = GoodCall();
  call.poses.clear();
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "poses");
  call = GoodCall();
  call.poses.assign(Limits{}.max_batch + 1, EulerPoseSpec{});
  ExpectRejected(call, absl::StatusCode::kResourceExhausted, "poses");
}

TEST(ValidateRenderCallTest, RejectsNonFiniteGeometryNamingTheField) {
  RenderCall call = GoodCall();
  call.intrinsics.sdd = NAN;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.sdd");
  call = GoodCall();
  call.intrinsics.delx = -2.0;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.delx");
  call = GoodCall();
  call.intrinsics.y0 = INFINITY;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.y0");
  call = GoodCall();
  std::get<EulerPoseSpec>(call.poses[0]).rotation[1] = NAN;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "poses[0].euler.rotation[1]");
  call = GoodCall();
  std::get<EulerPoseSpec>(call.poses[0]).convention = "ZZX";
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "poses[0].euler.convention");
  call = GoodCall();
  kernels::Mat4d m = kernels::Mat4d::Identity();
  m.m[1][3] = INFINITY;
  call.poses.push_back(m);
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "poses[1].rt_inv.values[7]");
}

TEST(ResolvePoseTest, EulerPosesRotateAboutTheVolumeCentreByDefault) {
  const kernels::Mat4d rt_inv = ResolvePose(EulerPoseSpec{}, {1, 2, 3});
  // Default EulerPoseSpec: no rotation, no translation: source at the centre.
  EXPECT_EQ(rt_inv.m[0][3], 1.0);
  EXPECT_EQ(rt_inv.m[1][3], 2.0);
  EXPECT_EQ(rt_inv.m[2][3], 3.0);
}

}  // namespace
}  // namespace drr::server
