// The real server on 127.0.0.1:0, driven through the C++ client and raw stubs.
#include "server/frontend/server.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "client/cpp/drr_client.h"
#include "defaults/defaults.h"
#include "gtest/gtest.h"
#include "io/phantom.h"
#include "server/engine/render_engine.h"
#include "tests/status_matchers.h"
#include "wire/volume_proto.h"

namespace drr::server {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::StatusIs;

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Server::Options options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    options.device = DeviceMode::kCpu;
    options.cpu_threads = 2;
    options.limits.max_volume_voxels = 2'000'000;
    absl::StatusOr<Server> server = Server::Start(options);
    ASSERT_THAT(server, IsOk());
    server_ = new Server(*std::move(server));
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    target_ = "127.0.0.1:" + std::to_string(server_->port());
    client_ = std::make_unique<client::DrrClient>(target_);
    channel_ = grpc::CreateChannel(target_, grpc::InsecureChannelCredentials());
  }

  std::string UploadPhantom() {
    absl::StatusOr<v1::VolumeInfo> info = client_->Upload(MakeThoraxPhantom());
    EXPECT_THAT(info, IsOk());
    return info.ok() ? info->volume_id() : "";
  }

  static v1::RenderRequest ReferenceRequest(const std::string& id, int size) {
    v1::RenderRequest request;
    request.set_volume_id(id);
    v1::ParameterizedPose* pose = request.add_poses()->mutable_parameterized();
    for (double r : {0.0, 0.0, 0.0}) pose->add_rotation(r);
    for (double t : {0.0, 850.0, 0.0}) pose->add_translation(t);
    v1::Intrinsics* in = request.mutable_intrinsics();
    in->set_sdd(1020);
    in->set_delx(2.0 * 200 / size);
    in->set_dely(2.0 * 200 / size);
    in->set_height(size);
    in->set_width(size);
    return request;
  }

  // Streams an upload and returns its final status.
  absl::Status RawUpload(const std::vector<v1::UploadVolumeChunk>& chunks) {
    auto stub = v1::Volumes::NewStub(channel_);
    grpc::ClientContext context;
    v1::VolumeInfo info;
    auto writer = stub->Upload(&context, &info);
    for (const auto& chunk : chunks) {
      if (!writer->Write(chunk)) break;
    }
    writer->WritesDone();
    return client::FromGrpcStatus(writer->Finish());
  }

  static Server* server_;
  std::string target_;
  std::unique_ptr<client::DrrClient> client_;
  std::shared_ptr<grpc::Channel> channel_;
};

Server* ServerTest::server_ = nullptr;

std::vector<v1::UploadVolumeChunk> PhantomChunks(
    std::string digest_override = "") {
  const HostVolume phantom = MakeThoraxPhantom();
  std::vector<v1::UploadVolumeChunk> chunks(1);
  VolumeHeaderToProto(phantom.header, chunks[0].mutable_header());
  for (size_t off = 0; off < phantom.voxels.size(); off += 1 << 20) {
    chunks.emplace_back().set_data(phantom.voxels.substr(off, 1 << 20));
  }
  chunks.emplace_back().set_digest(
      digest_override.empty() ? ContentDigest(phantom.header, phantom.voxels)
                              : digest_override);
  return chunks;
}

TEST_F(ServerTest, UploadIsContentAddressedAndDeduplicated) {
  const HostVolume phantom = MakeThoraxPhantom();
  const std::string id = UploadPhantom();
  EXPECT_EQ(id, ContentDigest(phantom.header, phantom.voxels));
  EXPECT_EQ(UploadPhantom(), id);
  absl::StatusOr<std::vector<v1::VolumeInfo>> list = client_->List();
  ASSERT_THAT(list, IsOk());
  EXPECT_EQ(std::count_if(
                list->begin(), list->end(),
                [&](const v1::VolumeInfo& v) { return v.volume_id() == id; }),
            1);
  absl::StatusOr<v1::VolumeInfo> info = client_->Get(id);
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->voxel_bytes(), static_cast<int64_t>(phantom.voxels.size()));
  EXPECT_NEAR(info->isocenter(0), 0.0, 1e-9);
}

TEST_F(ServerTest, RendersWhatTheEngineRenders) {
  const std::string id = UploadPhantom();
  absl::StatusOr<client::Images> images =
      client_->Render(ReferenceRequest(id, 64));
  ASSERT_THAT(images, IsOk());
  EXPECT_EQ(images->batch, 1);
  EXPECT_EQ(images->channels, 1);
  ASSERT_EQ(images->data.size(), 64u * 64);

  std::unique_ptr<kernels::Executor> cpu = kernels::MakeCpuExecutor(1);
  VolumeStore store(cpu.get(), 1);
  ASSERT_THAT(store.Insert(id, MakeThoraxPhantom()), IsOk());
  RenderEngine engine(cpu.get(), &store, nullptr, Limits{});
  RenderCall call;
  call.volume_id = id;
  ParameterizedPoseSpec pose;
  pose.translation = {0, 850, 0};
  call.poses.push_back(pose);
  call.intrinsics[0].delx = call.intrinsics[0].dely = 2.0 * 200 / 64;
  call.intrinsics[0].height = call.intrinsics[0].width = 64;
  absl::StatusOr<RenderResult> expected = engine.Render(call);
  ASSERT_THAT(expected, IsOk());
  EXPECT_EQ(images->data, expected->images);
}

TEST_F(ServerTest, UnsetFieldsTakeTheDefaults) {
  const std::string id = UploadPhantom();
  // Only a volume and a rotation: the default camera, pose translation,
  // samples and HU → μ map.
  v1::RenderRequest bare;
  bare.set_volume_id(id);
  v1::ParameterizedPose* rotated = bare.add_poses()->mutable_parameterized();
  for (double r : {10.0, 0.0, 0.0}) rotated->add_rotation(r);
  v1::RenderRequest spelled_out = bare;
  v1::ParameterizedPose* pose =
      spelled_out.mutable_poses(0)->mutable_parameterized();
  pose->set_convention(defaults::kEulerConvention);
  for (double t : defaults::kTranslation) pose->add_translation(t);
  v1::Intrinsics* in = spelled_out.mutable_intrinsics();
  in->set_sdd(defaults::kSdd);
  in->set_delx(defaults::kDelx);
  in->set_dely(defaults::kDely);
  in->set_x0(defaults::kX0);
  in->set_y0(defaults::kY0);
  in->set_height(defaults::kHeight);
  in->set_width(defaults::kWidth);
  v1::RenderOptions* options = spelled_out.mutable_options();
  options->set_n_samples(defaults::kSamples);
  options->mutable_attenuation()->set_mu_water(defaults::kMuWater);
  options->mutable_attenuation()->set_mu_bone(defaults::kMuBone);
  options->mutable_attenuation()->set_hu_bone(defaults::kHuBone);
  absl::StatusOr<client::Images> a = client_->Render(bare);
  absl::StatusOr<client::Images> b = client_->Render(spelled_out);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(a->height, defaults::kHeight);
  EXPECT_EQ(a->width, defaults::kWidth);
  EXPECT_EQ(a->data, b->data);
}

TEST_F(ServerTest, UnknownVolumeIsNotFoundNamingTheId) {
  const std::string id(64, 'a');
  absl::StatusOr<client::Images> images =
      client_->Render(ReferenceRequest(id, 8));
  EXPECT_THAT(images, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_NE(images.status().message().find(id), absl::string_view::npos);
  EXPECT_THAT(client_->Get(id), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ServerTest, BadRenderRequestsAreInvalidAndTheServerKeepsServing) {
  const std::string id = UploadPhantom();
  struct Case {
    std::function<void(v1::RenderRequest&)> mutate;
    absl::StatusCode code;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](auto& r) { r.mutable_intrinsics()->set_height(0); },
       absl::StatusCode::kInvalidArgument, "intrinsics.height"},
      {[](auto& r) { r.mutable_intrinsics()->set_width(-3); },
       absl::StatusCode::kInvalidArgument, "intrinsics.width"},
      {[](auto& r) { r.mutable_intrinsics()->set_width(1 << 20); },
       absl::StatusCode::kResourceExhausted, "intrinsics.width"},
      {[](auto& r) { r.mutable_options()->set_n_samples(-1); },
       absl::StatusCode::kInvalidArgument, "options.n_samples"},
      {[](auto& r) { r.mutable_options()->set_n_samples(1 << 24); },
       absl::StatusCode::kResourceExhausted, "options.n_samples"},
      {[](auto& r) {
         r.mutable_poses(0)->mutable_parameterized()->set_rotation(2, NAN);
       },
       absl::StatusCode::kInvalidArgument,
       "poses[0].parameterized.rotation[2]"},
      {[](auto& r) {
         r.mutable_poses(0)->mutable_parameterized()->set_translation(1,
                                                                      INFINITY);
       },
       absl::StatusCode::kInvalidArgument,
       "poses[0].parameterized.translation[1]"},
      {[](auto& r) { r.mutable_intrinsics()->set_sdd(NAN); },
       absl::StatusCode::kInvalidArgument, "intrinsics.sdd"},
      {[](auto& r) { r.mutable_intrinsics()->set_x0(-INFINITY); },
       absl::StatusCode::kInvalidArgument, "intrinsics.x0"},
      {[](auto& r) {
         r.mutable_poses(0)->mutable_parameterized()->add_rotation(1);
       },
       absl::StatusCode::kInvalidArgument, "poses[0].parameterized.rotation"},
      {[](auto& r) { r.add_poses(); }, absl::StatusCode::kInvalidArgument,
       "poses[1]"},
      {[](auto& r) { r.mutable_options()->set_n_samples(0); },
       absl::StatusCode::kInvalidArgument, "options.n_samples"},
      {[](auto& r) { r.mutable_intrinsics()->set_delx(0); },
       absl::StatusCode::kInvalidArgument, "intrinsics.delx"},
  };
  for (const Case& c : cases) {
    v1::RenderRequest request = ReferenceRequest(id, 16);
    c.mutate(request);
    const absl::Status s = client_->Render(request).status();
    EXPECT_EQ(s.code(), c.code) << c.field << ": " << s;
    EXPECT_NE(s.message().find(c.field), absl::string_view::npos) << s;
  }
  EXPECT_THAT(client_->Render(ReferenceRequest(id, 16)), IsOk());
}

TEST_F(ServerTest, BadUploadsAreRefusedAndNothingIsStored) {
  const std::string real_id = PhantomChunks().back().digest();
  // The digest does not match the content.
  EXPECT_THAT(RawUpload(PhantomChunks(std::string(64, 'f'))),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Too few bytes.
  std::vector<v1::UploadVolumeChunk> short_upload = PhantomChunks();
  short_upload.erase(short_upload.end() - 2);
  EXPECT_THAT(RawUpload(short_upload),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Too many bytes.
  std::vector<v1::UploadVolumeChunk> long_upload = PhantomChunks();
  long_upload.insert(long_upload.end() - 1, long_upload[1]);
  EXPECT_THAT(RawUpload(long_upload),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // A shape over the server's limit (2,000,000 voxels in this test).
  std::vector<v1::UploadVolumeChunk> huge = PhantomChunks();
  huge[0].mutable_header()->set_shape(0, 1000);
  EXPECT_THAT(RawUpload({huge[0]}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  // A chunk after the digest (the server reads on to the client's
  // half-close, so it sees it).
  std::vector<v1::UploadVolumeChunk> after_digest = PhantomChunks();
  after_digest.push_back(after_digest[1]);
  EXPECT_THAT(RawUpload(after_digest),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("after its digest")));
  // No digest at all.
  std::vector<v1::UploadVolumeChunk> no_digest = PhantomChunks();
  no_digest.pop_back();
  EXPECT_THAT(RawUpload(no_digest),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // None of these stored anything (the phantom may be stored by other tests
  // only under its real id).
  absl::StatusOr<std::vector<v1::VolumeInfo>> list = client_->List();
  ASSERT_THAT(list, IsOk());
  for (const v1::VolumeInfo& v : *list) EXPECT_EQ(v.volume_id(), real_id);
}

TEST_F(ServerTest, ACallRoutedByAnotherVolumeIsRefused) {
  const std::string id = UploadPhantom();
  const std::string other(64, 'e');
  auto renderer = v1::Renderer::NewStub(channel_);
  grpc::ClientContext render_context;
  render_context.AddMetadata("x-drr-volume-id", other);
  v1::RenderResponse response;
  EXPECT_THAT(client::FromGrpcStatus(renderer->Render(
                  &render_context, ReferenceRequest(id, 8), &response)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::HasSubstr("x-drr-volume-id")));
  // An upload whose digest is not the volume it was routed by.
  auto volumes = v1::Volumes::NewStub(channel_);
  grpc::ClientContext upload_context;
  upload_context.AddMetadata("x-drr-volume-id", other);
  v1::VolumeInfo info;
  auto writer = volumes->Upload(&upload_context, &info);
  for (const auto& chunk : PhantomChunks()) ASSERT_TRUE(writer->Write(chunk));
  writer->WritesDone();
  EXPECT_THAT(client::FromGrpcStatus(writer->Finish()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // The client routes by the volume it names: served as ever.
  EXPECT_THAT(client_->Render(ReferenceRequest(id, 8)), IsOk());
}

TEST_F(ServerTest, TheClientUploadsAgainWhatTheServerNoLongerHas) {
  // A volume no other test uploads, which the client can read again.
  HostVolume volume = MakeThoraxPhantom();
  volume.voxels[1] ^= 1;
  int reads = 0;
  absl::StatusOr<v1::VolumeInfo> info =
      client_->Upload(volume, [&]() -> absl::StatusOr<HostVolume> {
        ++reads;
        return volume;
      });
  ASSERT_THAT(info, IsOk());
  const std::string id = info->volume_id();
  absl::StatusOr<std::string> target =
      client_->UploadTarget(8, 8, std::vector<float>(64, 1.0f), id);
  ASSERT_THAT(target, IsOk());
  // Both go (a replica that restarted without them, say).
  grpc::ClientContext volume_context, target_context;
  volume_context.AddMetadata("x-drr-volume-id", id);
  v1::DeleteVolumeRequest delete_volume;
  delete_volume.set_volume_id(id);
  v1::DeleteVolumeResponse volume_deleted;
  ASSERT_TRUE(v1::Volumes::NewStub(channel_)
                  ->Delete(&volume_context, delete_volume, &volume_deleted)
                  .ok());
  v1::DeleteTargetRequest delete_target;
  delete_target.set_target_id(*target);
  v1::DeleteTargetResponse target_deleted;
  ASSERT_TRUE(v1::Targets::NewStub(channel_)
                  ->Delete(&target_context, delete_target, &target_deleted)
                  .ok());
  // A loss against them: the client uploads both again and retries.
  v1::RenderRequest request = ReferenceRequest(id, 8);
  request.mutable_loss()->set_target_id(*target);
  absl::StatusOr<v1::RenderResponse> response = client_->Send(request);
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->losses_size(), 1);
  EXPECT_EQ(reads, 1);
  // What it cannot read again stays NOT_FOUND.
  EXPECT_THAT(client_->Render(ReferenceRequest(std::string(64, 'd'), 8)),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(DrrClientTest, RetriesUnavailableWithBackoffAsItsPolicySays) {
  // Nothing listens on this port: every attempt is UNAVAILABLE.
  int port = 0;
  {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    std::unique_ptr<grpc::Server> placeholder = builder.BuildAndStart();
    ASSERT_NE(placeholder, nullptr);
    placeholder->Shutdown();
  }
  client::RetryPolicy retry;
  retry.attempts = 4;
  retry.initial_backoff = std::chrono::milliseconds(100);
  retry.max_backoff = std::chrono::milliseconds(150);
  client::DrrClient client("127.0.0.1:" + std::to_string(port),
                           grpc::InsecureChannelCredentials(), "", retry);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(client.Get(std::string(64, 'a')),
              StatusIs(absl::StatusCode::kUnavailable));
  // Three waits between four attempts: 100 + 150 + 150 ms.
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(400));
}

TEST_F(ServerTest, AClientThatDisconnectsMidUploadLeavesNothingBehind) {
  ASSERT_THAT(client_->List(), IsOk());
  const size_t before = client_->List()->size();
  // A volume no other test uploads.
  HostVolume volume = MakeThoraxPhantom();
  volume.voxels[0] ^= 1;
  std::vector<v1::UploadVolumeChunk> chunks(2);
  VolumeHeaderToProto(volume.header, chunks[0].mutable_header());
  chunks[1].set_data(volume.voxels.substr(0, 1 << 20));
  {
    auto stub = v1::Volumes::NewStub(channel_);
    grpc::ClientContext context;
    v1::VolumeInfo info;
    auto writer = stub->Upload(&context, &info);
    ASSERT_TRUE(writer->Write(chunks[0]));
    ASSERT_TRUE(writer->Write(chunks[1]));
    context.TryCancel();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_EQ(client_->List()->size(), before);
  EXPECT_THAT(client_->Get(ContentDigest(volume.header, volume.voxels)),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(client_->Upload(volume), IsOk());  // still serving
  EXPECT_THAT(client_->Get(ContentDigest(volume.header, volume.voxels)),
              IsOk());
}

TEST_F(ServerTest, StreamAnswersEveryFrameInOrderWithErrorsInBand) {
  const std::string id = UploadPhantom();
  auto stub = v1::Renderer::NewStub(channel_);
  grpc::ClientContext context;
  auto stream = stub->RenderStream(&context);
  const std::vector<uint64_t> frame_ids = {10, 11, 12, 13, 14, 15,
                                           16, 17, 18, 19, 20, 21};
  for (uint64_t frame : frame_ids) {
    v1::RenderRequest request = ReferenceRequest(id, 16);
    request.set_frame_id(frame);
    if (frame == 12) request.mutable_intrinsics()->set_height(0);
    if (frame == 15) request.set_volume_id("nope");
    ASSERT_TRUE(stream->Write(request));
  }
  stream->WritesDone();
  v1::RenderResponse response;
  std::vector<uint64_t> seen;
  while (stream->Read(&response)) {
    seen.push_back(response.frame_id());
    if (response.frame_id() == 12) {
      EXPECT_EQ(response.status().code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_NE(response.status().message().find("intrinsics.height"),
                std::string::npos);
    } else if (response.frame_id() == 15) {
      EXPECT_EQ(response.status().code(), grpc::StatusCode::NOT_FOUND);
    } else {
      EXPECT_EQ(response.status().code(), 0);
      EXPECT_EQ(response.images().data().size(), 16u * 16 * 4);
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(seen, frame_ids);
}

}  // namespace
}  // namespace drr::server
