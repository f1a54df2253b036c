// Client text quoted in error messages, bounded: a message must never grow
// with what a client sent (gRPC refuses trailers over its metadata limit and
// would replace the real error).
#pragma once

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace drr {

// Most characters of client text an error message quotes.
inline constexpr size_t kMaxQuotedChars = 128;

// `text` as a message may quote it: whole when at most kMaxQuotedChars
// bytes, else its first kMaxQuotedChars bytes (fewer, not to cut a UTF-8
// character) and how many were left out.
inline std::string Quoted(absl::string_view text) {
  if (text.size() <= kMaxQuotedChars) return std::string(text);
  size_t kept = kMaxQuotedChars;
  // A UTF-8 continuation byte is 10xxxxxx: back up to a character's start.
  while (kept > 0 && (static_cast<unsigned char>(text[kept]) & 0xC0) == 0x80) {
    --kept;
  }
  return absl::StrCat(text.substr(0, kept), "... (", text.size() - kept,
                      " more bytes)");
}

}  // namespace drr
