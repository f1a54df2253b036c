#include "cli/cli.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace drr {

void CommandLine::Add(std::string name, int arity,
                      const std::string& default_value, std::string help) {
  Option option;
  option.arity = arity;
  if (arity != 0) {
    option.defaults = absl::StrSplit(default_value, ' ', absl::SkipEmpty());
  }
  option.help = std::move(help);
  order_.push_back(name);
  options_[std::move(name)] = std::move(option);
}

absl::Status CommandLine::Parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg.size() == 2 && arg[0] == '-' && aliases_.count(arg[1])) {
      arg = "--" + aliases_[arg[1]];
    }
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::vector<std::string> inline_value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      inline_value.push_back(name.substr(eq + 1));
      name.resize(eq);
    }
    auto it = options_.find(name);
    if (it == options_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option --", name));
    }
    Option& option = it->second;
    if (option.given) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " is given twice"));
    }
    option.given = true;
    if (option.arity == 0) {
      if (!inline_value.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes no value"));
      }
      continue;
    }
    if (!inline_value.empty()) {
      if (option.arity != 1 && option.arity != kVariadic) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes ", option.arity, " values: --",
                         name, " A B ..."));
      }
      option.values = inline_value;
      continue;
    }
    if (option.arity == kVariadic) {
      while (i + 1 < args.size() && args[i + 1].compare(0, 2, "--") != 0) {
        option.values.push_back(args[++i]);
      }
      if (option.values.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " needs at least one value"));
      }
      continue;
    }
    for (int k = 0; k < option.arity; ++k) {
      if (++i >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " needs ", option.arity, " value(s)"));
      }
      option.values.push_back(args[i]);
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> CommandLine::Values(const std::string& name) const {
  const Option& option = options_.at(name);
  return option.given ? option.values : option.defaults;
}

std::string CommandLine::Value(const std::string& name) const {
  const std::vector<std::string> values = Values(name);
  return values.empty() ? "" : values.front();
}

bool CommandLine::Given(const std::string& name) const {
  return options_.at(name).given;
}

absl::StatusOr<double> CommandLine::Double(const std::string& name,
                                           int index) const {
  const std::vector<std::string> values = Values(name);
  const std::string text =
      index < static_cast<int>(values.size()) ? values[index] : "";
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": \"", text, "\" is not a finite number"));
  }
  return v;
}

absl::StatusOr<int> CommandLine::Int(const std::string& name) const {
  const std::string text = Value(name);
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < -(1L << 31) ||
      v >= (1L << 31)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": \"", text, "\" is not an integer"));
  }
  return static_cast<int>(v);
}

std::string CommandLine::Usage() const {
  std::string out;
  for (const std::string& name : order_) {
    const Option& o = options_.at(name);
    std::string values = o.arity == kVariadic ? " V..." : "";
    for (int k = 0; k < o.arity; ++k) absl::StrAppend(&values, " V");
    absl::StrAppend(&out, "  --", name, values, "  ", o.help);
    if (!o.defaults.empty())
      absl::StrAppend(&out, " [", absl::StrJoin(o.defaults, " "), "]");
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace drr
