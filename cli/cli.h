// A small command-line parser for drrserve and drrctl: `--name value`,
// `--name=value`, flags taking several values (`--rotation 0 0 0`), boolean
// switches, and positional arguments. Dashes in names are kept as written.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace drr {

// The declared options of one command.
class CommandLine {
 public:
  static constexpr int kVariadic = -1;

  // Declares `--name` taking `arity` values (0 = a switch, kVariadic = one
  // or more, up to the next option), with `help` text and a default
  // (space-separated for several values; ignored for switches).
  void Add(std::string name, int arity, const std::string& default_value,
           std::string help);

  // Lets `-letter` stand for `--name`.
  void Alias(char letter, std::string name) {
    aliases_[letter] = std::move(name);
  }

  // Parses `args` (without the program name). Unknown options, missing
  // values and repeated options give INVALID_ARGUMENT.
  absl::Status Parse(const std::vector<std::string>& args);

  // The values of `--name` (its default when not given).
  std::vector<std::string> Values(const std::string& name) const;
  // The single value of `--name`.
  std::string Value(const std::string& name) const;
  // Whether the switch or option `--name` appeared.
  bool Given(const std::string& name) const;
  // `--name` as a double or int; INVALID_ARGUMENT naming the option otherwise.
  absl::StatusOr<double> Double(const std::string& name, int index = 0) const;
  absl::StatusOr<int> Int(const std::string& name) const;
  // Arguments that are not options, in order.
  const std::vector<std::string>& positional() const { return positional_; }

  // One line per option: name, values, default, help.
  std::string Usage() const;

 private:
  struct Option {
    int arity = 1;
    std::vector<std::string> defaults;
    std::string help;
    std::vector<std::string> values;
    bool given = false;
  };
  std::map<std::string, Option> options_;
  std::map<char, std::string> aliases_;
  std::vector<std::string> order_;
  std::vector<std::string> positional_;
};

}  // namespace drr
