// Pose gradients through the engine: dL/dθ in each parameterization and
// dL/d rt_inv against central differences of the rendered loss.
#include <cmath>
#include <cstring>
#include <random>

#include "gtest/gtest.h"
#include "server/engine/render_engine.h"
#include "tests/status_matchers.h"

namespace drr::server {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::StatusIs;

// A smooth attenuation volume (a blob), so that the loss is smooth in the pose.
HostVolume Blob() {
  HostVolume v;
  v.header.voxel_type = VoxelType::kFloat32;
  v.header.value_kind = ValueKind::kAttenuation;
  v.header.width = 40;
  v.header.height = 36;
  v.header.depth = 32;
  v.header.affine = geometry::Mat4d::FromAffine(
      geometry::Mat3d{{{-2.0, 0, 0}, {0, -2.0, 0}, {0, 0, 2.5}}},
      {40, 36, -40});
  std::vector<float> mu(v.header.voxels());
  for (int k = 0; k < 32; ++k)
    for (int j = 0; j < 36; ++j)
      for (int i = 0; i < 40; ++i) {
        const double r2 = (i - 17.0) * (i - 17.0) +
                          (j - 19.0) * (j - 19.0) / 1.5 +
                          (k - 15.0) * (k - 15.0) * 1.3;
        mu[(k * 36 + j) * 40 + i] =
            static_cast<float>(0.03 * std::exp(-r2 / 60.0));
      }
  v.voxels.assign(reinterpret_cast<const char*>(mu.data()), mu.size() * 4);
  return v;
}

class PoseGradientEngineTest : public ::testing::Test {
 protected:
  PoseGradientEngineTest()
      : executor_(kernels::MakeCpuExecutor(2)), store_(executor_.get(), 2) {
    HostVolume blob = Blob();
    id_ = ContentDigest(blob.header, blob.voxels);
    EXPECT_THAT(store_.Insert(id_, std::move(blob)), IsOk());
  }

  RenderCall Call(PoseSpec pose, OutputKind output) const {
    RenderCall call;
    call.volume_id = id_;
    call.poses = {std::move(pose)};
    call.intrinsics[0].sdd = 300;
    call.intrinsics[0].delx = call.intrinsics[0].dely = 2.0;
    call.intrinsics[0].height = 16;
    call.intrinsics[0].width = 18;
    call.n_samples = 1500;
    call.output = output;
    return call;
  }

  // Σ upstream · images of `call`.
  double Loss(const RenderCall& call,
              const std::vector<float>& upstream) const {
    RenderEngine engine(executor_.get(), &store_, nullptr, Limits{});
    absl::StatusOr<RenderResult> result = engine.Render(call);
    EXPECT_THAT(result, IsOk());
    double loss = 0;
    for (size_t i = 0; i < upstream.size(); ++i)
      loss += double{upstream[i]} * result->images[i];
    return loss;
  }

  std::unique_ptr<kernels::Executor> executor_;
  VolumeStore store_;
  std::string id_;
};

TEST_F(PoseGradientEngineTest, ParameterGradientsMatchCentralDifferences) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> weight(0.0f, 1.0f);
  std::vector<float> upstream(16 * 18);
  for (float& w : upstream) w = weight(rng);
  struct Case {
    geometry::Parameterization parameterization;
    std::vector<double> rotation;
    geometry::Vec3d translation;
    double rotation_step;
  };
  const std::vector<Case> cases = {
      {geometry::Parameterization::kEuler, {10, -5, 8}, {3, 250, -2}, 0.05},
      {geometry::Parameterization::kQuaternion,
       {0.05, -0.1, 0.02, 1.0},
       {3, 250, -2},
       1e-3},
      {geometry::Parameterization::kSo3Log,
       {0.1, -0.05, 0.2},
       {3, 250, -2},
       1e-3},
      {geometry::Parameterization::kSe3Log,
       {0.05, 0.03, -0.04},
       {-1, 246, 3},
       1e-3},
      {geometry::Parameterization::kQuaternionAdjugate,
       {2.0, 0.1, -0.2, 0.05, 0.01, -0.01, 0.0, 0.02, 0.0, 0.01},
       {3, 250, -2},
       1e-3},
      {geometry::Parameterization::kRotation9d,
       {0.99, -0.1, 0.04, 0.11, 0.98, -0.07, -0.03, 0.08, 1.01},
       {3, 250, -2},
       1e-3},
  };
  for (OutputKind output : {OutputKind::kLineIntegral, OutputKind::kExp}) {
    for (const Case& c : cases) {
      ParameterizedPoseSpec pose;
      pose.parameterization = c.parameterization;
      pose.rotation = c.rotation;
      pose.translation = c.translation;
      RenderCall call = Call(pose, output);
      call.kind = GradientRequest{upstream};
      RenderEngine engine(executor_.get(), &store_, nullptr, Limits{});
      absl::StatusOr<RenderResult> result = engine.Render(call);
      ASSERT_THAT(result, IsOk());
      ASSERT_EQ(result->gradients.size(), 1u);
      const std::vector<double>& grad = result->gradients[0].parameters;
      ASSERT_EQ(grad.size(), c.rotation.size() + 3);
      double scale = 0;
      for (double g : grad) scale = std::max(scale, std::fabs(g));
      call.kind = ImagesRequest{};
      for (size_t k = 0; k < grad.size(); ++k) {
        ParameterizedPoseSpec moved = pose;
        const bool rotation = k < c.rotation.size();
        double& value = rotation ? moved.rotation[k]
                                 : moved.translation[k - c.rotation.size()];
        const double h = rotation ? c.rotation_step : 0.2;
        value += h;
        call.poses[0] = moved;
        const double up = Loss(call, upstream);
        value -= 2 * h;
        call.poses[0] = moved;
        const double down = Loss(call, upstream);
        EXPECT_NEAR(grad[k], (up - down) / (2 * h), 0.02 * scale)
            << "parameterization " << int(c.parameterization) << " value " << k
            << " output " << int(output);
      }
    }
  }
}

TEST_F(PoseGradientEngineTest, BiplaneGradientsMatchCentralDifferences) {
  ParameterizedPoseSpec a, b;
  a.rotation = {8, -3, 5};
  a.translation = {2, 250, -1};
  b.rotation = {95, 2, -4};
  b.translation = {-3, 255, 2};
  RenderCall call = Call(a, OutputKind::kLineIntegral);
  call.poses.push_back(b);
  geometry::Intrinsics second = call.intrinsics[0];
  second.sdd = 280;
  second.x0 = 4;
  call.intrinsics.push_back(second);
  std::vector<float> upstream(2 * 16 * 18);
  for (size_t i = 0; i < upstream.size(); ++i)
    upstream[i] = std::sin(0.05 * i) + 1.0f;
  call.kind = GradientRequest{upstream};
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{});
  absl::StatusOr<RenderResult> result = engine.Render(call);
  ASSERT_THAT(result, IsOk());
  call.kind = ImagesRequest{};
  for (int pose = 0; pose < 2; ++pose) {
    const std::vector<double>& grad = result->gradients[pose].parameters;
    double scale = 0;
    for (double g : grad) scale = std::max(scale, std::fabs(g));
    for (size_t k = 0; k < 6; ++k) {
      RenderCall moved = call;
      auto& spec = std::get<ParameterizedPoseSpec>(moved.poses[pose]);
      double& value = k < 3 ? spec.rotation[k] : spec.translation[k - 3];
      const double h = k < 3 ? 0.05 : 0.2;
      value += h;
      const double up = Loss(moved, upstream);
      value -= 2 * h;
      const double down = Loss(moved, upstream);
      EXPECT_NEAR(grad[k], (up - down) / (2 * h), 0.02 * scale)
          << "pose " << pose << " " << k;
    }
  }
}

TEST_F(PoseGradientEngineTest,
       LabelChannelsWithOneUpstreamGiveTheSummedGradient) {
  // Class boundaries carry no gradient (nearest lookup, as in nanodrr), so
  // per-channel images are only piecewise differentiable; with the same
  // upstream in every channel the gradient is that of the summed image.
  HostVolume blob = Blob();
  blob.header.label_type = VoxelType::kUInt8;
  blob.labels.resize(blob.header.voxels());
  for (size_t v = 0; v < blob.labels.size(); ++v)
    blob.labels[v] = static_cast<char>((v % 40) / 14);
  const std::string id = ContentDigest(blob.header, blob.voxels, blob.labels);
  ASSERT_THAT(store_.Insert(id, std::move(blob)), IsOk());
  ParameterizedPoseSpec pose;
  pose.rotation = {8, -3, 5};
  pose.translation = {2, 250, -1};
  RenderCall split = Call(pose, OutputKind::kLineIntegral);
  split.volume_id = id;
  std::vector<float> upstream(16 * 18);
  for (size_t i = 0; i < upstream.size(); ++i) upstream[i] = std::cos(0.07 * i);
  std::vector<float> per_channel;
  for (int c = 0; c < 3; ++c)
    per_channel.insert(per_channel.end(), upstream.begin(), upstream.end());
  split.kind = GradientRequest{per_channel};
  RenderCall summed = split;
  summed.channels.sum = true;
  summed.kind = GradientRequest{upstream};
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{});
  absl::StatusOr<RenderResult> a = engine.Render(split);
  absl::StatusOr<RenderResult> b = engine.Render(summed);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  ASSERT_EQ(a->channels, 3);
  for (size_t k = 0; k < 6; ++k) {
    EXPECT_NEAR(a->gradients[0].parameters[k], b->gradients[0].parameters[k],
                1e-4 * std::fabs(b->gradients[0].parameters[k]) + 1e-7);
  }
}

TEST_F(PoseGradientEngineTest, JacobianContractedWithTheUpstreamIsTheGradient) {
  ParameterizedPoseSpec pose;
  pose.parameterization = geometry::Parameterization::kQuaternion;
  pose.rotation = {0.05, -0.1, 0.02, 1.0};
  pose.translation = {3, 250, -2};
  std::vector<float> upstream(16 * 18);
  for (size_t i = 0; i < upstream.size(); ++i) upstream[i] = std::cos(0.3 * i);
  RenderCall call = Call(pose, OutputKind::kExp);
  call.kind = GradientRequest{upstream};
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{});
  absl::StatusOr<RenderResult> vjp = engine.Render(call);
  ASSERT_THAT(vjp, IsOk());
  call.kind = JacobianRequest{};
  absl::StatusOr<RenderResult> full = engine.Render(call);
  ASSERT_THAT(full, IsOk());
  const std::vector<double>& gradient = vjp->gradients[0].parameters;
  const std::vector<float>& jacobian = full->gradients[0].jacobian;
  ASSERT_EQ(jacobian.size(), upstream.size() * 7);
  for (size_t k = 0; k < 7; ++k) {
    double sum = 0;
    for (size_t px = 0; px < upstream.size(); ++px)
      sum += double{upstream[px]} * jacobian[px * 7 + k];
    EXPECT_NEAR(sum, gradient[k], 1e-4 * std::fabs(gradient[k]) + 1e-6) << k;
  }
}

TEST_F(PoseGradientEngineTest,
       MatrixPosesGetTheRtInvGradientAndRequestsAreChecked) {
  ParameterizedPoseSpec pose;
  pose.rotation = {15, 0, 5};
  pose.translation = {0, 250, 0};
  const geometry::Mat4d rt_inv = ResolvePose(pose, VolumeCenter(Blob().header));
  std::vector<float> upstream(16 * 18, 1.0f);
  RenderCall by_matrix = Call(rt_inv, OutputKind::kLineIntegral);
  by_matrix.kind = GradientRequest{upstream};
  RenderCall by_euler = Call(pose, OutputKind::kLineIntegral);
  by_euler.kind = GradientRequest{upstream};
  RenderEngine engine(executor_.get(), &store_, nullptr, Limits{});
  absl::StatusOr<RenderResult> a = engine.Render(by_matrix);
  absl::StatusOr<RenderResult> b = engine.Render(by_euler);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  ASSERT_EQ(a->gradients[0].parameters.size(), 16u);
  for (int e = 0; e < 16; ++e) {
    EXPECT_DOUBLE_EQ(a->gradients[0].parameters[e],
                     a->gradients[0].rt_inv.m[e / 4][e % 4]);
    EXPECT_NEAR(
        a->gradients[0].rt_inv.m[e / 4][e % 4],
        b->gradients[0].rt_inv.m[e / 4][e % 4],
        1e-9 + 1e-6 * std::fabs(b->gradients[0].rt_inv.m[e / 4][e % 4]));
  }
  // The same request gives the same bits.
  absl::StatusOr<RenderResult> again = engine.Render(by_euler);
  EXPECT_EQ(again->gradients[0].parameters, b->gradients[0].parameters);

  std::get<GradientRequest>(by_euler.kind).upstream.pop_back();
  EXPECT_THAT(engine.Render(by_euler),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::get<GradientRequest>(by_euler.kind).upstream.push_back(NAN);
  EXPECT_THAT(engine.Render(by_euler),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::get<GradientRequest>(by_euler.kind).upstream.back() = 1.0f;
  by_euler.output = OutputKind::kMip;
  EXPECT_THAT(engine.Render(by_euler),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace drr::server
