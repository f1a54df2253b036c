// GoogleTest matchers for absl::Status and absl::StatusOr (Debian's Abseil
// 20220623 has none): EXPECT_THAT(s, IsOk()),
// EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound, HasSubstr("id"))).
// A failed match prints the status.
#pragma once

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace drr::testing {

// The status of a Status or StatusOr.
inline const absl::Status& StatusOf(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// Matches an OK Status, or a StatusOr holding a value.
MATCHER(IsOk, "is OK") {
  const absl::Status& status = StatusOf(arg);
  if (status.ok()) return true;
  *result_listener << "whose status is " << status;
  return false;
}

// Matches a Status (or StatusOr) with `code` whose message matches
// `message_matcher` (any message when omitted).
MATCHER_P2(StatusIs, code, message_matcher,
           std::string("has code ") + absl::StatusCodeToString(code)) {
  const absl::Status& status = StatusOf(arg);
  *result_listener << "whose status is " << status;
  return status.code() == code &&
         ::testing::Matches(message_matcher)(std::string(status.message()));
}
MATCHER_P(StatusIs, code,
          std::string("has code ") + absl::StatusCodeToString(code)) {
  const absl::Status& status = StatusOf(arg);
  *result_listener << "whose status is " << status;
  return status.code() == code;
}

}  // namespace drr::testing
