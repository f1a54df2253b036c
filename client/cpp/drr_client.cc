#include "client/cpp/drr_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "numeric/float16.h"
#include "wire/routing.h"
#include "wire/volume_proto.h"

namespace drr::client {
namespace {

constexpr size_t kChunkBytes = size_t{1} << 20;

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const TlsOptions& tls) {
  if (tls.ca.empty() && tls.cert.empty() && tls.key.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  if (tls.cert.empty() != tls.key.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate and its key go together");
  }
  grpc::SslCredentialsOptions options;
  for (auto [path, pem] : {std::pair{&tls.ca, &options.pem_root_certs},
                           std::pair{&tls.cert, &options.pem_cert_chain},
                           std::pair{&tls.key, &options.pem_private_key}}) {
    if (path->empty()) continue;
    std::ifstream in(*path, std::ios::binary);
    std::ostringstream contents;
    contents << in.rdbuf();
    if (!in || contents.str().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read the PEM file ", *path));
    }
    *pem = contents.str();
  }
  return grpc::SslCredentials(options);
}

DrrClient::DrrClient(
    const std::string& target,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    std::string token, RetryPolicy retry)
    : token_(std::move(token)), retry_(retry) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  channel_ = grpc::CreateCustomChannel(target, credentials, args);
  volumes_ = v1::Volumes::NewStub(channel_);
  renderer_ = v1::Renderer::NewStub(channel_);
  targets_ = v1::Targets::NewStub(channel_);
  registrations_ = v1::Registrations::NewStub(channel_);
}

void DrrClient::Prepare(grpc::ClientContext& context,
                        const std::string& volume_id) const {
  if (!token_.empty()) context.AddMetadata("authorization", "Bearer " + token_);
  if (!volume_id.empty()) context.AddMetadata(kVolumeHeader, volume_id);
}

absl::Status DrrClient::Retrying(const std::string& volume_id,
                                 const std::string& target_id,
                                 const std::function<absl::Status()>& attempt) {
  std::chrono::milliseconds backoff = retry_.initial_backoff;
  std::set<Missing> resent;
  for (int failures = 0;;) {
    absl::Status status = attempt();
    if (status.ok()) return status;
    if (const Missing missing = MissingIn(status);
        missing != Missing::kNothing) {
      if (!resent.insert(missing).second ||
          !ResendMissing(missing, volume_id, target_id)) {
        return status;
      }
      continue;
    }
    if (!absl::IsUnavailable(status) && !absl::IsCancelled(status)) {
      return status;
    }
    if (++failures >= retry_.attempts) return status;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(2 * backoff, retry_.max_backoff);
  }
}

DrrClient::Missing DrrClient::MissingIn(const absl::Status& status) {
  if (!absl::IsNotFound(status)) return Missing::kNothing;
  if (absl::StartsWith(status.message(), "volume ")) return Missing::kVolume;
  if (absl::StartsWith(status.message(), "target ")) return Missing::kTarget;
  return Missing::kNothing;
}

bool DrrClient::ResendMissing(Missing missing, const std::string& volume_id,
                              const std::string& target_id) {
  if (missing == Missing::kVolume) {
    VolumeSource source;
    {
      absl::MutexLock lock(&mutex_);
      auto it = sources_.find(volume_id);
      if (it == sources_.end()) return false;
      source = it->second;
    }
    absl::StatusOr<HostVolume> volume = source();
    return volume.ok() && Upload(*volume).ok();
  }
  std::shared_ptr<const KeptTarget> target;
  {
    absl::MutexLock lock(&mutex_);
    auto it = targets_kept_.find(target_id);
    if (it == targets_kept_.end()) return false;
    target = it->second;
  }
  std::string id;
  return Retrying(volume_id, "",
                  [&] { return UploadTargetOnce(*target, volume_id, &id); })
      .ok();
}

absl::StatusOr<v1::VolumeInfo> DrrClient::Upload(
    const HostVolume& volume, VolumeSource source,
    const UploadProgress& progress) {
  const std::string digest =
      ContentDigest(volume.header, volume.voxels, volume.labels);
  v1::VolumeInfo info;
  const absl::Status status = Retrying(
      digest, "", [&] { return UploadOnce(volume, digest, progress, &info); });
  if (!status.ok()) return status;
  if (source != nullptr) {
    absl::MutexLock lock(&mutex_);
    sources_[digest] = std::move(source);
  }
  return info;
}

absl::Status DrrClient::UploadOnce(const HostVolume& volume,
                                   const std::string& digest,
                                   const UploadProgress& progress,
                                   v1::VolumeInfo* info) {
  grpc::ClientContext context;
  Prepare(context, digest);
  std::unique_ptr<grpc::ClientWriter<v1::UploadVolumeChunk>> writer =
      volumes_->Upload(&context, info);
  v1::UploadVolumeChunk chunk;
  VolumeHeaderToProto(volume.header, chunk.mutable_header());
  bool sent = writer->Write(chunk);
  // The voxels, then the labels (if any).
  const int64_t total =
      static_cast<int64_t>(volume.voxels.size() + volume.labels.size());
  int64_t done = 0;
  for (const std::string* part : {&volume.voxels, &volume.labels}) {
    for (size_t offset = 0; sent && offset < part->size();
         offset += kChunkBytes) {
      const size_t bytes = std::min(kChunkBytes, part->size() - offset);
      chunk.set_data(part->data() + offset, bytes);
      sent = writer->Write(chunk);
      done += static_cast<int64_t>(bytes);
      if (sent && progress) progress(done, total);
    }
  }
  if (sent) {
    chunk.set_digest(digest);
    writer->Write(chunk);
  }
  writer->WritesDone();
  return FromGrpcStatus(writer->Finish());
}

absl::StatusOr<v1::VolumeInfo> DrrClient::Get(const std::string& volume_id) {
  v1::GetVolumeRequest request;
  request.set_volume_id(volume_id);
  v1::VolumeInfo info;
  const absl::Status status = Retrying(volume_id, "", [&] {
    grpc::ClientContext context;
    Prepare(context, volume_id);
    return FromGrpcStatus(volumes_->Get(&context, request, &info));
  });
  if (!status.ok()) return status;
  return info;
}

absl::StatusOr<std::vector<v1::VolumeInfo>> DrrClient::List() {
  grpc::ClientContext context;
  Prepare(context, "");
  v1::ListVolumesResponse response;
  absl::Status status = FromGrpcStatus(
      volumes_->List(&context, v1::ListVolumesRequest(), &response));
  if (!status.ok()) return status;
  return std::vector<v1::VolumeInfo>(response.volumes().begin(),
                                     response.volumes().end());
}

absl::StatusOr<Images> DrrClient::Render(const v1::RenderRequest& request) {
  absl::StatusOr<v1::RenderResponse> response = Send(request);
  if (!response.ok()) return response.status();
  return DecodeImages(response->images());
}

absl::StatusOr<v1::RenderResponse> DrrClient::Send(
    const v1::RenderRequest& request) {
  v1::RenderResponse response;
  const absl::Status status = Retrying(
      request.volume_id(), request.has_loss() ? request.loss().target_id() : "",
      [&] {
        grpc::ClientContext context;
        Prepare(context, request.volume_id());
        return FromGrpcStatus(renderer_->Render(&context, request, &response));
      });
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<v1::RegisterResult> DrrClient::Register(
    const v1::RegisterRequest& request,
    const std::function<void(const v1::RegisterStep&)>& on_step) {
  std::optional<v1::RegisterResult> result;
  bool heard = false;
  absl::Status status =
      Retrying(request.volume_id(), request.loss().target_id(), [&] {
        grpc::ClientContext context;
        Prepare(context, request.volume_id());
        std::unique_ptr<grpc::ClientReader<v1::RegisterProgress>> reader =
            registrations_->Register(&context, request);
        v1::RegisterProgress message;
        while (reader->Read(&message)) {
          if (message.has_result()) {
            result = std::move(*message.mutable_result());
          } else {
            heard = true;
            if (on_step) on_step(message.step());
          }
        }
        absl::Status finished = FromGrpcStatus(reader->Finish());
        if (finished.ok() && !result) {
          finished = absl::InternalError(
              "the registration stream ended without a result");
        }
        // Iterations were delivered: not run again from the start (what
        // Retrying would retry is reported as ABORTED).
        if (heard &&
            (absl::IsUnavailable(finished) || absl::IsCancelled(finished) ||
             absl::IsNotFound(finished))) {
          return absl::AbortedError(
              absl::StrCat("the registration failed after iterations were "
                           "heard: ",
                           finished.ToString()));
        }
        return finished;
      });
  if (!status.ok()) return status;
  return *std::move(result);
}

absl::StatusOr<std::string> DrrClient::UploadTarget(
    int height, int width, const std::vector<float>& pixels,
    const std::string& volume_id) {
  auto target =
      std::make_shared<const KeptTarget>(KeptTarget{height, width, pixels});
  std::string target_id;
  const absl::Status status = Retrying(volume_id, "", [&] {
    return UploadTargetOnce(*target, volume_id, &target_id);
  });
  if (!status.ok()) return status;
  absl::MutexLock lock(&mutex_);
  targets_kept_[target_id] = std::move(target);
  return target_id;
}

absl::Status DrrClient::UploadTargetOnce(const KeptTarget& target,
                                         const std::string& volume_id,
                                         std::string* target_id) {
  grpc::ClientContext context;
  Prepare(context, volume_id);
  v1::UploadTargetRequest request;
  request.set_height(target.height);
  request.set_width(target.width);
  request.set_pixels(reinterpret_cast<const char*>(target.pixels.data()),
                     target.pixels.size() * sizeof(float));
  v1::TargetInfo info;
  const absl::Status status =
      FromGrpcStatus(targets_->Upload(&context, request, &info));
  if (status.ok()) *target_id = info.target_id();
  return status;
}

absl::StatusOr<Images> DecodeImages(const v1::ImageTensor& tensor) {
  if (tensor.shape_size() != 4) {
    return absl::InternalError(
        "the server returned images that are not [B,C,H,W]");
  }
  Images images;
  images.batch = static_cast<int>(tensor.shape(0));
  images.channels = static_cast<int>(tensor.shape(1));
  images.height = static_cast<int>(tensor.shape(2));
  images.width = static_cast<int>(tensor.shape(3));
  const size_t count = static_cast<size_t>(images.batch) * images.channels *
                       images.height * images.width;
  const size_t element = tensor.dtype() == v1::DTYPE_FLOAT32 ? 4 : 2;
  if (tensor.data().size() != count * element) {
    return absl::InternalError(
        absl::StrCat("the server returned ", tensor.data().size(),
                     " image bytes for ", count, " pixels"));
  }
  images.data.resize(count);
  const char* bytes = tensor.data().data();
  switch (tensor.dtype()) {
    case v1::DTYPE_FLOAT32:
      if (count > 0) std::memcpy(images.data.data(), bytes, count * 4);
      break;
    case v1::DTYPE_FLOAT16:
    case v1::DTYPE_BFLOAT16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, bytes + 2 * i, 2);
        images.data[i] = tensor.dtype() == v1::DTYPE_FLOAT16
                             ? ToFloat(Half{bits})
                             : ToFloat(BFloat16{bits});
      }
      break;
    default:
      return absl::InternalError(
          absl::StrCat("unknown image dtype ", tensor.dtype()));
  }
  return images;
}

}  // namespace drr::client
