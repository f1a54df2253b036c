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

namespace drr::server {

// The tokens of a token file, by the hex SHA-256 of each token. One line per
// token: `TENANT ROLE SHA256-OF-TOKEN`, ROLE `user` or `admin`, TENANT of
// letters, digits, '.', '_' and '-' (at most 64); blank lines and lines
// starting with '#' are ignored.
using TokenTable = std::map<std::string, Caller>;

// The table of the token file at `path`, or INVALID_ARGUMENT naming the
// line that is wrong.
absl::StatusOr<TokenTable> ReadTokenFile(const std::string& path);

// Authenticates calls by their `authorization: Bearer TOKEN` metadata.
// Without a token file every call is the anonymous administrator. The table
// can be replaced while calls are served (SIGHUP). Thread-safe.
class Authenticator {
 public:
  // Reads `tokens_path` (empty: no tokens).
  static absl::StatusOr<std::unique_ptr<Authenticator>> Open(
      const std::string& tokens_path);

  // Whether calls need a token.
  bool enabled() const { return !path_.empty(); }

  // Reads the token file again; on an error the table in use stays.
  // Returns the number of tokens read.
  absl::StatusOr<int> Reload();

  // The caller of a call with `context`'s metadata: UNAUTHENTICATED when
  // tokens are enabled and it carries no valid one.
  absl::StatusOr<Caller> Authenticate(
      const grpc::ServerContextBase& context) const;

 private:
  Authenticator(std::string path, TokenTable table)
      : path_(std::move(path)), table_(std::move(table)) {}

  const std::string path_;
  mutable absl::Mutex mutex_;
  TokenTable table_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace drr::server
