// TLS for drrserve's gRPC port (--tls-cert, --tls-key, --tls-client-ca).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"

namespace drr::server {

// PEM files of the server's certificate chain and private key, and of the CA
// that must have signed every client's certificate (mutual TLS). All empty:
// no TLS.
struct TlsFiles {
  std::string cert;
  std::string key;
  std::string client_ca;
};

// How often the files are read again, so that renewed certificates are
// served without a restart.
inline constexpr unsigned kTlsRefreshSeconds = 5;

// Insecure credentials when `files` names nothing; else TLS credentials
// (requiring and verifying client certificates when a client CA is given)
// after checking that the files exist, hold PEM certificates and a key, and
// that the key is the certificate's. INVALID_ARGUMENT naming the flag
// otherwise: a server never starts with TLS it cannot serve.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const TlsFiles& files);

}  // namespace drr::server
