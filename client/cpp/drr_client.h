// The C++ client library of drrserve: connects to a server, uploads volumes
// in chunks, and renders.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "drr/v1/registrations.grpc.pb.h"
#include "drr/v1/renderer.grpc.pb.h"
#include "drr/v1/targets.grpc.pb.h"
#include "drr/v1/volumes.grpc.pb.h"
#include "grpcpp/security/credentials.h"
#include "volume/volume.h"

namespace drr::client {

// Images returned by a render: [batch, channels, height, width] float32.
struct Images {
  std::vector<float> data;
  int batch = 0;
  int channels = 0;
  int height = 0;
  int width = 0;
};

// PEM files of a TLS connection: the CA that signed the server's
// certificate and, for mutual TLS, the client's certificate chain and key.
// All empty: a plain connection.
struct TlsOptions {
  std::string ca;
  std::string cert;
  std::string key;
};

// The channel credentials of `tls`: insecure when it names nothing, else TLS
// with the files' contents; INVALID_ARGUMENT naming a file that cannot be
// read, or a certificate without its key.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const TlsOptions& tls);

// How a client rides out replicas that restart (docs/api.md, "Routing among
// replicas"): UNAVAILABLE, and a CANCELLED the client did not ask for (a
// proxy resets the calls of a replica that went away), are retried up to
// `attempts` calls in all, waiting `initial_backoff` after the first failure
// and twice as long after each next one, at most `max_backoff`.
struct RetryPolicy {
  int attempts = 8;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{2000};
};

// Reads an uploaded volume again (from its file, say), to upload it again
// where a replica answers NOT_FOUND for it.
using VolumeSource = std::function<absl::StatusOr<HostVolume>()>;

// Hears an upload's progress: bytes of voxels and labels sent so far, of
// `total`.
using UploadProgress = std::function<void(int64_t sent, int64_t total)>;

// A connection to one drrserve, or to replicas behind a proxy that routes by
// volume id. Every call that names a volume carries it as x-drr-volume-id;
// calls are retried as `retry` says, and a NOT_FOUND for a volume this
// client can read again (Upload's `source`) or a target it uploaded is
// answered by uploading it again and retrying, once. Thread-safe.
class DrrClient {
 public:
  // Connects (lazily) to `target` ("host:port") with `credentials`, by
  // default a plain connection; calls carry `token` (a server's --tokens)
  // as "authorization: Bearer TOKEN" when it is not empty.
  explicit DrrClient(const std::string& target,
                     const std::shared_ptr<grpc::ChannelCredentials>&
                         credentials = grpc::InsecureChannelCredentials(),
                     std::string token = "", RetryPolicy retry = {});

  // Uploads `volume` in chunks of 1 MiB; returns what the server stored.
  // `source`, when given, is kept to upload the volume again should a
  // replica not have it; `progress`, when given, hears each chunk sent.
  absl::StatusOr<v1::VolumeInfo> Upload(
      const HostVolume& volume, VolumeSource source = nullptr,
      const UploadProgress& progress = nullptr);

  // Metadata of a stored volume; NOT_FOUND when the server does not have it.
  absl::StatusOr<v1::VolumeInfo> Get(const std::string& volume_id);

  // Every volume the server stores.
  absl::StatusOr<std::vector<v1::VolumeInfo>> List();

  // Renders `request` and decodes the images.
  absl::StatusOr<Images> Render(const v1::RenderRequest& request);

  // Sends `request` and returns the whole response (losses, gradients).
  absl::StatusOr<v1::RenderResponse> Send(const v1::RenderRequest& request);

  // Stores a height × width float32 target image; returns its id. Behind a
  // proxy, `volume_id` (the volume it will be compared with) routes it to
  // that volume's replica.
  absl::StatusOr<std::string> UploadTarget(int height, int width,
                                           const std::vector<float>& pixels,
                                           const std::string& volume_id = "");

  // Runs the registration `request` on the server and returns its result;
  // `on_step`, when given, hears the iterations the server streams (the
  // latest whenever the client is ready). Retried as every call while no
  // iteration was heard; not after.
  absl::StatusOr<v1::RegisterResult> Register(
      const v1::RegisterRequest& request,
      const std::function<void(const v1::RegisterStep&)>& on_step = nullptr);

 private:
  // A target this client uploaded, to upload again.
  struct KeptTarget {
    int height = 0;
    int width = 0;
    std::vector<float> pixels;
  };

  // Adds the token, if any, and `volume_id`, if not empty, as
  // x-drr-volume-id (what a proxy routes by) to a call's metadata.
  void Prepare(grpc::ClientContext& context,
               const std::string& volume_id) const;
  // What a NOT_FOUND says is missing (docs/api.md), if it says.
  enum class Missing { kNothing, kVolume, kTarget };
  static Missing MissingIn(const absl::Status& status);

  // Runs `attempt` (one call) until it succeeds or fails for good, as the
  // class comment says; NOT_FOUND is answered for the volume `volume_id` and
  // the target `target_id` (either may be empty).
  absl::Status Retrying(const std::string& volume_id,
                        const std::string& target_id,
                        const std::function<absl::Status()>& attempt);
  // Uploads again the `missing` volume `volume_id` or target `target_id`,
  // if this client can; true when it did.
  bool ResendMissing(Missing missing, const std::string& volume_id,
                     const std::string& target_id);
  absl::Status UploadOnce(const HostVolume& volume, const std::string& digest,
                          const UploadProgress& progress, v1::VolumeInfo* info);
  absl::Status UploadTargetOnce(const KeptTarget& target,
                                const std::string& volume_id,
                                std::string* target_id);

  const std::string token_;
  const RetryPolicy retry_;
  absl::Mutex mutex_;
  std::map<std::string, VolumeSource> sources_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::shared_ptr<const KeptTarget>> targets_kept_
      ABSL_GUARDED_BY(mutex_);
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Volumes::Stub> volumes_;
  std::unique_ptr<v1::Renderer::Stub> renderer_;
  std::unique_ptr<v1::Targets::Stub> targets_;
  std::unique_ptr<v1::Registrations::Stub> registrations_;
};

// The absl::Status with the same code and message as `status`.
absl::Status FromGrpcStatus(const grpc::Status& status);

// Decodes a response's float32 image tensor.
absl::StatusOr<Images> DecodeImages(const v1::ImageTensor& tensor);

}  // namespace drr::client
