// Command-line flags and config files, parsed in one place for every binary.
// A config file holds `key = value` lines (`#` comments); flags `--key=value` or
// `--key value` override it; `--config FILE` names the file. Unknown keys and
// malformed values are errors with a clear message (DESIGN §2).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "backend/common/status.h"

namespace dfs {

struct OptionSpec {
  std::string name;
  std::string defaultValue;
  std::string help;
  bool isFlag = false;  // boolean switch: `--name` alone means true
};

class Options {
 public:
  // Parses argv (argv[0] skipped). `--help` sets helpRequested().
  static Result<Options> parse(int argc, const char* const* argv, std::vector<OptionSpec> specs);
  static std::string usage(const std::string& program, const std::string& summary,
                           const std::vector<OptionSpec>& specs);

  const std::string& get(const std::string& key) const;
  Result<int64_t> getInt(const std::string& key) const;
  Result<uint64_t> getSize(const std::string& key) const;  // accepts K, M, G, T suffixes
  bool getBool(const std::string& key) const;
  bool isSet(const std::string& key) const;  // given explicitly by file or flag
  const std::vector<std::string>& positional() const { return positional_; }
  bool helpRequested() const { return help_; }

 private:
  Status set(const std::string& key, const std::string& value, const std::string& origin);
  Status loadFile(const std::string& path);

  std::vector<OptionSpec> specs_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> explicit_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

// Parses "1G", "512M", "4096" into bytes.
Result<uint64_t> parseSize(const std::string& text);

}  // namespace dfs
