#include "server/frontend/auth.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "volume/sha256.h"

namespace drr::server {
namespace {

bool IsTenantName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsHexDigest(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

// Applies the quota `field` ("name=value") to `quota`; false when it is not
// one.
bool ApplyQuota(absl::string_view field, TenantQuota* quota) {
  std::pair<absl::string_view, absl::string_view> kv =
      absl::StrSplit(field, absl::MaxSplits('=', 1));
  const absl::string_view name = kv.first;
  absl::string_view value = kv.second;
  if (name == "rps") {
    return absl::SimpleAtod(value, &quota->requests_per_second) &&
           quota->requests_per_second >= 0;
  }
  if (name == "streams") {
    return absl::SimpleAtoi(value, &quota->streams) && quota->streams >= 0;
  }
  if (name == "uploads") {
    return absl::SimpleAtoi(value, &quota->uploads) && quota->uploads >= 0;
  }
  if (name != "stored" || value.empty()) return false;
  int64_t scale = 1;
  const char suffix = value.back();
  const std::string units = "KMGT";
  if (const size_t power = units.find(suffix); power != std::string::npos) {
    scale = int64_t{1} << (10 * (power + 1));
    value.remove_suffix(1);
  }
  int64_t count;
  if (!absl::SimpleAtoi(value, &count) || count < 0 ||
      count > (int64_t{1} << 62) / scale) {
    return false;
  }
  quota->stored_bytes = count * scale;
  return true;
}

absl::StatusOr<TokenTable> ReadTokenFile(const std::string& path,
                                         const TenantQuota& defaults) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tokens ", path, ": cannot read it"));
  }
  TokenTable table;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.empty() || absl::StartsWith(fields[0], "#")) continue;
    const auto wrong = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tokens ", path, " line ", number, ": ", why,
                       " (expected TENANT ROLE SHA256-OF-TOKEN)"));
    };
    if (fields.size() < 3) return wrong("fewer than three fields");
    if (!IsTenantName(fields[0])) {
      return wrong("a tenant is 1 to 64 letters, digits, '.', '_' or '-'");
    }
    if (fields[1] != "user" && fields[1] != "admin") {
      return wrong("the role is user or admin");
    }
    if (!IsHexDigest(fields[2])) {
      return wrong("the token's SHA-256 is 64 lower-case hex digits");
    }
    const std::string tenant(fields[0]);
    if (!table.callers
             .emplace(std::string(fields[2]),
                      Caller{tenant, fields[1] == "admin"})
             .second) {
      return wrong("the same token twice");
    }
    TenantQuota& quota =
        table.quotas.try_emplace(tenant, defaults).first->second;
    for (size_t i = 3; i < fields.size(); ++i) {
      if (!ApplyQuota(fields[i], &quota)) {
        return wrong(absl::StrCat(
            "\"", fields[i].substr(0, 40),
            "\" is not a quota (stored=BYTES[K|M|G|T], streams=N, uploads=N, "
            "rps=R)"));
      }
    }
  }
  return table;
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Open(
    const std::string& tokens_path, const TenantQuota& defaults) {
  TokenTable table;
  if (!tokens_path.empty()) {
    absl::StatusOr<TokenTable> read = ReadTokenFile(tokens_path, defaults);
    if (!read.ok()) return read.status();
    table = *std::move(read);
  }
  return std::unique_ptr<Authenticator>(
      new Authenticator(tokens_path, defaults, std::move(table)));
}

absl::StatusOr<int> Authenticator::Reload() {
  if (!enabled()) return 0;
  absl::StatusOr<TokenTable> read = ReadTokenFile(path_, defaults_);
  if (!read.ok()) return read.status();
  const int count = static_cast<int>(read->callers.size());
  absl::MutexLock lock(&mutex_);
  table_ = *std::move(read);
  return count;
}

absl::StatusOr<Caller> Authenticator::Authenticate(
    const grpc::ServerContextBase& context) const {
  if (!enabled()) return Caller{"", true};
  const auto& metadata = context.client_metadata();
  auto header = metadata.find("authorization");
  constexpr absl::string_view kBearer = "Bearer ";
  if (header != metadata.end()) {
    const absl::string_view value(header->second.data(), header->second.size());
    if (absl::StartsWith(value, kBearer)) {
      Sha256 hash;
      hash.Update(std::string_view(value.data() + kBearer.size(),
                                   value.size() - kBearer.size()));
      const std::string digest = hash.HexDigest();
      absl::MutexLock lock(&mutex_);
      auto caller = table_.callers.find(digest);
      if (caller != table_.callers.end()) return caller->second;
    }
  }
  return absl::UnauthenticatedError(
      "this server needs a valid token: send the metadata "
      "\"authorization: Bearer TOKEN\"");
}

TenantQuota Authenticator::QuotaOf(const std::string& tenant) const {
  absl::MutexLock lock(&mutex_);
  auto it = table_.quotas.find(tenant);
  return it == table_.quotas.end() ? defaults_ : it->second;
}

}  // namespace drr::server
