// Incremental SHA-256 (OpenSSL), for content-addressed volume ids.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace drr {

// Hashes bytes fed in any number of pieces.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  // Feeds `bytes` into the hash.
  void Update(std::string_view bytes);
  // The digest of everything fed so far as 64 lower-case hex digits; the hash
  // must not be updated afterwards.
  std::string HexDigest();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

}  // namespace drr
