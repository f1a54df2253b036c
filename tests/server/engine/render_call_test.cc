#include "server/engine/render_call.h"

#include <cmath>
#include <cstring>

#include "gtest/gtest.h"
#include "tests/status_matchers.h"

namespace drr::server {
namespace {

using ::drr::testing::StatusIs;

using ::drr::testing::IsOk;

RenderCall GoodCall() {
  RenderCall call;
  call.volume_id = "abc";
  call.poses.push_back(ParameterizedPoseSpec{});
  return call;
}

ParameterizedPoseSpec& FirstPose(RenderCall& call) {
  return std::get<ParameterizedPoseSpec>(call.poses[0]);
}

void ExpectRejected(const RenderCall& call, absl::StatusCode code,
                    absl::string_view field) {
  const absl::Status s = ValidateRenderCall(call, Limits{});
  EXPECT_THAT(s, StatusIs(code, ::testing::HasSubstr(std::string(field))));
}

TEST(ValidateRenderCallTest, AcceptsTheReferenceCall) {
  EXPECT_THAT(ValidateRenderCall(GoodCall(), Limits{}), IsOk());
}

TEST(ValidateRenderCallTest, RejectsBadSizesNamingTheField) {
  RenderCall call = GoodCall();
  call.intrinsics[0].height = 0;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.height");
  call = GoodCall();
  call.intrinsics[0].width = -5;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.width");
  call = GoodCall();
  call.intrinsics[0].width = 100000;
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
  call.poses.assign(Limits{}.max_batch + 1, ParameterizedPoseSpec{});
  ExpectRejected(call, absl::StatusCode::kResourceExhausted, "poses");
}

TEST(ValidateRenderCallTest, PerPoseIntrinsicsMustMatchTheBatchAndShareASize) {
  RenderCall call = GoodCall();
  call.poses.push_back(ParameterizedPoseSpec{});
  call.intrinsics.assign(3, geometry::Intrinsics{});
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "per_pose_intrinsics");
  call.intrinsics.resize(2);
  call.intrinsics[1].sdd = 800;  // biplane: different cameras are fine
  EXPECT_THAT(ValidateRenderCall(call, Limits{}), IsOk());
  call.intrinsics[1].height = 100;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "per_pose_intrinsics[1]");
}

TEST(ValidateRenderCallTest, RejectsNonFiniteGeometryNamingTheField) {
  RenderCall call = GoodCall();
  call.intrinsics[0].sdd = NAN;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.sdd");
  call = GoodCall();
  call.intrinsics[0].delx = -2.0;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.delx");
  call = GoodCall();
  call.intrinsics[0].y0 = INFINITY;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.y0");
  call = GoodCall();
  FirstPose(call).rotation[1] = NAN;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "poses[0].parameterized.rotation[1]");
  call = GoodCall();
  FirstPose(call).convention = "ZZX";
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "poses[0].parameterized.convention");
  call = GoodCall();
  geometry::Mat4d m = geometry::Mat4d::Identity();
  m.m[1][3] = INFINITY;
  call.poses.push_back(m);
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "poses[1].rt_inv.values[7]");
}

TEST(ValidateRenderCallTest, RefusesValuesBeyondTheirMeaningfulRange) {
  // Each absurd but finite value that once rendered all-NaN images.
  for (double absurd : {1e30, 1e308}) {
    RenderCall call = GoodCall();
    call.intrinsics[0].sdd = absurd;
    ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.sdd");
    call = GoodCall();
    call.intrinsics[0].delx = absurd;
    ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.delx");
    call = GoodCall();
    call.intrinsics[0].dely = absurd;
    ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.dely");
    call = GoodCall();
    call.intrinsics[0].x0 = -absurd;
    ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.x0");
    call = GoodCall();
    call.intrinsics[0].y0 = absurd;
    ExpectRejected(call, absl::StatusCode::kInvalidArgument, "intrinsics.y0");
    call = GoodCall();
    FirstPose(call).translation[1] = absurd;
    ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                   "poses[0].parameterized.translation[1]");
    call = GoodCall();
    FirstPose(call).rotation[2] = absurd;
    ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                   "poses[0].parameterized.rotation[2]");
    call = GoodCall();
    call.attenuation.mu_bone = absurd;
    ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                   "options.attenuation.mu_bone");
    call = GoodCall();
    geometry::Mat4d rt_inv = geometry::Mat4d::Identity();
    rt_inv.m[0][3] = absurd;
    call.poses[0] = rt_inv;
    ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                   "poses[0].rt_inv.values[3]");
  }
  RenderCall call = GoodCall();
  call.intrinsics[0].delx = 1e-7;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "outside the meaningful range [1e-06, 1e+06]");
  // The range's ends are accepted.
  call = GoodCall();
  call.intrinsics[0].sdd = kMaxMillimetres;
  call.intrinsics[0].delx = kMinSpacingMillimetres;
  call.intrinsics[0].x0 = -kMaxMillimetres;
  FirstPose(call).translation = {kMaxMillimetres, -kMaxMillimetres, 0};
  EXPECT_THAT(ValidateRenderCall(call, Limits{}), IsOk());
}

TEST(ValidateRenderCallTest, ChecksEachParameterizationsValues) {
  RenderCall call = GoodCall();
  FirstPose(call).parameterization = geometry::Parameterization::kQuaternion;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "needs 4 values");
  FirstPose(call).rotation = {0, 0, 0, 0};
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "quaternion is zero");
  FirstPose(call).rotation = {0, 0, 0, 2};
  EXPECT_THAT(ValidateRenderCall(call, Limits{}), IsOk());
  FirstPose(call).parameterization = geometry::Parameterization::kMatrix;
  FirstPose(call).rotation = {1, 0, 0, 0, 1, 0, 0, 0, -1};
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "reflection");
  FirstPose(call).rotation = {1, 0, 0, 0, 2, 0, 0, 0, 1};
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "orthonormal");
  FirstPose(call).parameterization =
      geometry::Parameterization::kQuaternionAdjugate;
  FirstPose(call).rotation.assign(10, 0.0);
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "adjugate is zero");
}

TEST(ValidateRenderCallTest, RejectsBadOptions) {
  RenderCall call = GoodCall();
  call.attenuation.hu_bone = 0;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "options.attenuation.hu_bone");
  call = GoodCall();
  call.attenuation.mu_water = NAN;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "options.attenuation.mu_water");
  call = GoodCall();
  call.channels.classes = {2, -1};
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "options.channels.classes[1]");
  call = GoodCall();
  call.channels = {true, {1}};
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "options.channels");
  call = GoodCall();
  call.projector = kernels::Projector::kSiddon;
  call.sampler = kernels::Sampler::kTexture;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "options.sampler");
  call = GoodCall();
  call.projector = kernels::Projector::kSiddon;
  call.sampling = kernels::Sampling::kClipped;
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "options.sampling");
  for (auto spoil :
       {+[](RenderCall* c) { c->projector = kernels::Projector::kSiddon; },
        +[](RenderCall* c) { c->output = OutputKind::kMip; },
        +[](RenderCall* c) { c->sampler = kernels::Sampler::kTexture; }}) {
    call = GoodCall();
    call.soft_labels = true;
    EXPECT_TRUE(ValidateRenderCall(call, Limits{}).ok());
    spoil(&call);
    ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                   "options.soft_labels");
  }
  call = GoodCall();
  call.kind = LossRequest{"t", LossSpec{}, false, nullptr};
  call.channels.classes = {1};
  ExpectRejected(call, absl::StatusCode::kInvalidArgument,
                 "options.channels.classes");
  call.channels.classes.clear();
  call.projector = kernels::Projector::kSiddon;  // differentiable too
  EXPECT_TRUE(ValidateRenderCall(call, Limits{}).ok());
  call.output = OutputKind::kMip;  // a loss needs a gradient
  ExpectRejected(call, absl::StatusCode::kInvalidArgument, "line integral");
}

TEST(ResolvePoseTest, ParameterizedPosesRotateAboutTheVolumeCentreByDefault) {
  ParameterizedPoseSpec at_the_centre;
  at_the_centre.translation = {0, 0, 0};
  const geometry::Mat4d rt_inv = ResolvePose(at_the_centre, {1, 2, 3});
  EXPECT_EQ(rt_inv.m[0][3], 1.0);
  EXPECT_EQ(rt_inv.m[1][3], 2.0);
  EXPECT_EQ(rt_inv.m[2][3], 3.0);
}

TEST(EncodeImagesTest, EncodesEachDtype) {
  RenderResult result;
  result.images = {1.0f, -2.5f};
  EXPECT_EQ(EncodeImages(result).size(), 8u);
  result.dtype = kernels::StorageType::kFloat16;
  std::string half = EncodeImages(result);
  ASSERT_EQ(half.size(), 4u);
  uint16_t bits;
  std::memcpy(&bits, half.data() + 2, 2);
  EXPECT_EQ(bits, 0xc100);  // −2.5 in binary16
  result.dtype = kernels::StorageType::kBFloat16;
  std::memcpy(&bits, EncodeImages(result).data(), 2);
  EXPECT_EQ(bits, 0x3f80);  // 1.0 in bfloat16
}

}  // namespace
}  // namespace drr::server
