// One spelling for every drr.v1 enum value, derived from the proto
// descriptors so that drrctl, the Python client and the docs cannot drift:
// the value's name without the prefix its enum's values share, in lower case
// (RENDERER_KIND_SIDDON → "siddon", OUTPUT_LINE_INTEGRAL → "line_integral",
// DTYPE_BFLOAT16 → "bfloat16"). drrclient/_enums.py applies the same rule.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/generated_enum_reflection.h"

namespace drr {

// The spelling of `value`.
std::string EnumSpelling(const google::protobuf::EnumValueDescriptor& value);

// The spellings of every value of `type` but the UNSPECIFIED one, in the
// order the proto declares them.
std::vector<std::string> EnumSpellings(
    const google::protobuf::EnumDescriptor& type);

// The number of the value of `type` spelled `text` (any case);
// INVALID_ARGUMENT naming `what` and listing the spellings otherwise.
absl::StatusOr<int> ParseEnumSpelling(
    const google::protobuf::EnumDescriptor& type, absl::string_view text,
    absl::string_view what);

// ParseEnumSpelling for the generated enum type E (v1::Output, ...).
template <typename E>
absl::StatusOr<E> ParseEnum(absl::string_view text, absl::string_view what) {
  absl::StatusOr<int> number =
      ParseEnumSpelling(*google::protobuf::GetEnumDescriptor<E>(), text, what);
  if (!number.ok()) return number.status();
  return static_cast<E>(*number);
}

}  // namespace drr
