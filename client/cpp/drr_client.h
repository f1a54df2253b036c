// The C++ client library of drrserve: connects to a server, uploads volumes
// in chunks, and renders.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
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

// A connection to one drrserve.
class DrrClient {
 public:
  // Connects (lazily) to `target` ("host:port") with `credentials`, by
  // default a plain connection; calls carry `token` (a server's --tokens)
  // as "authorization: Bearer TOKEN" when it is not empty.
  explicit DrrClient(const std::string& target,
                     const std::shared_ptr<grpc::ChannelCredentials>&
                         credentials = grpc::InsecureChannelCredentials(),
                     std::string token = "");

  // Every call that names a volume carries it as x-drr-volume-id, the key a
  // proxy in front of several replicas routes by (deploy/haproxy).

  // Uploads `volume` in chunks of 1 MiB; returns what the server stored.
  absl::StatusOr<v1::VolumeInfo> Upload(const HostVolume& volume);

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

 private:
  // Adds the token, if any, and `volume_id`, if not empty, as
  // x-drr-volume-id (what a proxy routes by) to a call's metadata.
  void Prepare(grpc::ClientContext& context,
               const std::string& volume_id) const;

  const std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Volumes::Stub> volumes_;
  std::unique_ptr<v1::Renderer::Stub> renderer_;
  std::unique_ptr<v1::Targets::Stub> targets_;
};

// The absl::Status with the same code and message as `status`.
absl::Status FromGrpcStatus(const grpc::Status& status);

// Decodes a response's float32 image tensor.
absl::StatusOr<Images> DecodeImages(const v1::ImageTensor& tensor);

}  // namespace drr::client
