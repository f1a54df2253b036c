// Who is calling: bearer tokens of --tokens FILE mapped to tenants and
// roles.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server_context.h"
#include "server/engine/ownership.h"
#include "server/frontend/quotas.h"

namespace drr::server {

// A token file: one line per token, `TENANT ROLE SHA256-OF-TOKEN` and
// optional quotas `stored=BYTES` (a K, M, G or T suffix multiplies by 1024s),
// `streams=N`, `uploads=N`, `rps=R`; ROLE `user` or `admin`; TENANT of
// letters, digits, '.', '_' and '-' (at most 64). Blank lines and lines
// starting with '#' are ignored. A quota given on any line of a tenant's
// applies to the tenant; the defaults apply to the rest.
struct TokenTable {
  // The caller of each token, by the token's hex SHA-256.
  std::map<std::string, Caller> callers;
  // The quotas of each tenant of the file.
  std::map<std::string, TenantQuota> quotas;
};

// The table of the token file at `path`, quotas starting from `defaults`,
// or INVALID_ARGUMENT naming the line that is wrong.
absl::StatusOr<TokenTable> ReadTokenFile(const std::string& path,
                                         const TenantQuota& defaults);

// Authenticates calls by their `authorization: Bearer TOKEN` metadata.
// Without a token file every call is the anonymous administrator. The table
// can be replaced while calls are served (SIGHUP). Thread-safe.
class Authenticator {
 public:
  // Reads `tokens_path` (empty: no tokens); tenants without quotas of their
  // own get `defaults`.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Open(
      const std::string& tokens_path, const TenantQuota& defaults);

  // Whether calls need a token.
  bool enabled() const { return !path_.empty(); }

  // Reads the token file again; on an error the table in use stays.
  // Returns the number of tokens read.
  absl::StatusOr<int> Reload();

  // The caller of a call with `context`'s metadata: UNAUTHENTICATED when
  // tokens are enabled and it carries no valid one.
  absl::StatusOr<Caller> Authenticate(
      const grpc::ServerContextBase& context) const;

  // The quotas of `tenant`.
  TenantQuota QuotaOf(const std::string& tenant) const;

 private:
  Authenticator(std::string path, TenantQuota defaults, TokenTable table)
      : path_(std::move(path)), defaults_(defaults), table_(std::move(table)) {}

  const std::string path_;
  const TenantQuota defaults_;
  mutable absl::Mutex mutex_;
  TokenTable table_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace drr::server
