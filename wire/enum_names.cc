#include "wire/enum_names.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace drr {
namespace {

// The prefix every value name of `type` starts with, up to and including its
// last '_' (RENDERER_KIND_ for RENDERER_KIND_UNSPECIFIED, ..._SIDDON).
std::string SharedPrefix(const google::protobuf::EnumDescriptor& type) {
  std::string prefix = type.value(0)->name();
  for (int i = 1; i < type.value_count(); ++i) {
    const std::string& name = type.value(i)->name();
    size_t n = 0;
    while (n < prefix.size() && n < name.size() && prefix[n] == name[n]) ++n;
    prefix.resize(n);
  }
  const size_t underscore = prefix.rfind('_');
  prefix.resize(underscore == std::string::npos ? 0 : underscore + 1);
  return prefix;
}

bool IsUnspecified(const google::protobuf::EnumValueDescriptor& value) {
  return value.number() == 0 && absl::EndsWith(value.name(), "_UNSPECIFIED");
}

}  // namespace

std::string EnumSpelling(const google::protobuf::EnumValueDescriptor& value) {
  const std::string prefix = SharedPrefix(*value.type());
  return absl::AsciiStrToLower(value.name().substr(prefix.size()));
}

std::vector<std::string> EnumSpellings(
    const google::protobuf::EnumDescriptor& type) {
  std::vector<std::string> spellings;
  for (int i = 0; i < type.value_count(); ++i) {
    if (!IsUnspecified(*type.value(i)))
      spellings.push_back(EnumSpelling(*type.value(i)));
  }
  return spellings;
}

absl::StatusOr<int> ParseEnumSpelling(
    const google::protobuf::EnumDescriptor& type, absl::string_view text,
    absl::string_view what) {
  for (int i = 0; i < type.value_count(); ++i) {
    const google::protobuf::EnumValueDescriptor& value = *type.value(i);
    if (!IsUnspecified(value) &&
        absl::EqualsIgnoreCase(EnumSpelling(value), text)) {
      return value.number();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      what, " must be one of ", absl::StrJoin(EnumSpellings(type), ", "),
      "; not \"", text.substr(0, 64), "\""));
}

}  // namespace drr
