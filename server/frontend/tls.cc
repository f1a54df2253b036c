#include "server/frontend/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace drr::server {
namespace {

// Frees OpenSSL objects at scope exit.
struct BioCloser {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Freer {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFreer {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

// The first PEM certificate in `path`, or INVALID_ARGUMENT naming `flag`.
absl::StatusOr<std::unique_ptr<X509, X509Freer>> ReadCertificate(
    const std::string& path, const char* flag) {
  std::unique_ptr<BIO, BioCloser> bio(BIO_new_file(path.c_str(), "r"));
  std::unique_ptr<X509, X509Freer> cert(
      bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": not a readable PEM certificate file"));
  }
  return cert;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const TlsFiles& files) {
  if (files.cert.empty() && files.key.empty() && files.client_ca.empty()) {
    return grpc::InsecureServerCredentials();
  }
  if (files.cert.empty() || files.key.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key go together (and --tls-client-ca needs "
        "both)");
  }
  absl::StatusOr<std::unique_ptr<X509, X509Freer>> cert =
      ReadCertificate(files.cert, "--tls-cert");
  if (!cert.ok()) return cert.status();
  std::unique_ptr<BIO, BioCloser> key_bio(BIO_new_file(files.key.c_str(), "r"));
  // No passphrase callback may prompt: an encrypted key is refused.
  pem_password_cb* no_passphrase = [](char*, int, int, void*) { return 0; };
  std::unique_ptr<EVP_PKEY, KeyFreer> key(
      key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase,
                                        nullptr)
              : nullptr);
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-key ", files.key,
                     ": not a readable, unencrypted PEM private key"));
  }
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-key ", files.key, " is not the key of --tls-cert ", files.cert));
  }
  if (!files.client_ca.empty()) {
    absl::Status ca =
        ReadCertificate(files.client_ca, "--tls-client-ca").status();
    if (!ca.ok()) return ca;
  }
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          files.key, files.cert, files.client_ca, kTlsRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (files.client_ca.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace drr::server
