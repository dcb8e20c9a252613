#include "backend/common/options.h"

#include <fstream>
#include <sstream>

namespace dfs {

namespace {
std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}
}  // namespace

Result<uint64_t> parseSize(const std::string& text) {
  if (text.empty()) return Status::error(Code::INVALID, "empty size");
  size_t pos = 0;
  unsigned long long value;
  try {
    value = std::stoull(text, &pos);
  } catch (...) {
    return Status::error(Code::INVALID, "not a size: '" + text + "'");
  }
  std::string suffix = text.substr(pos);
  uint64_t mult = 1;
  if (suffix == "" || suffix == "B") mult = 1;
  else if (suffix == "K" || suffix == "KiB" || suffix == "k") mult = 1ull << 10;
  else if (suffix == "M" || suffix == "MiB") mult = 1ull << 20;
  else if (suffix == "G" || suffix == "GiB") mult = 1ull << 30;
  else if (suffix == "T" || suffix == "TiB") mult = 1ull << 40;
  else return Status::error(Code::INVALID, "bad size suffix in '" + text + "'");
  return uint64_t(value) * mult;
}

Status Options::set(const std::string& key, const std::string& value, const std::string& origin) {
  for (const auto& spec : specs_) {
    if (spec.name == key) {
      values_[key] = value;
      explicit_[key] = true;
      return {};
    }
  }
  return Status::error(Code::INVALID, "unknown option '" + key + "' in " + origin);
}

Status Options::loadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::error(Code::NOT_FOUND, "cannot read config file " + path);
  std::string line;
  int lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    line = trim(line);
    if (line.empty()) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) {
      return Status::error(Code::INVALID,
                           path + ":" + std::to_string(lineNo) + ": expected 'key = value'");
    }
    auto status = set(trim(line.substr(0, eq)), trim(line.substr(eq + 1)),
                      path + ":" + std::to_string(lineNo));
    if (!status.ok()) return status;
  }
  return {};
}

Result<Options> Options::parse(int argc, const char* const* argv, std::vector<OptionSpec> specs) {
  Options options;
  options.specs_ = std::move(specs);
  for (const auto& spec : options.specs_) options.values_[spec.name] = spec.defaultValue;
  // The config file is read first so that flags override it wherever they stand.
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string path;
    if (arg.rfind("--config=", 0) == 0) path = arg.substr(9);
    else if (arg == "--config" && i + 1 < argc) path = argv[i + 1];
    else continue;
    auto status = options.loadFile(path);
    if (!status.ok()) return status;
  }
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      options.help_ = true;
      continue;
    }
    if (arg.rfind("--config", 0) == 0) {
      if (arg == "--config") ++i;
      continue;
    }
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      options.positional_.push_back(arg);
      continue;
    }
    std::string key = arg.substr(2), value;
    auto eq = key.find('=');
    const OptionSpec* spec = nullptr;
    std::string name = eq == std::string::npos ? key : key.substr(0, eq);
    for (const auto& s : options.specs_) if (s.name == name) spec = &s;
    if (!spec) return Status::error(Code::INVALID, "unknown option --" + name);
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
    } else if (spec->isFlag) {
      value = "true";
    } else {
      if (i + 1 >= argc) return Status::error(Code::INVALID, "option --" + name + " needs a value");
      value = argv[++i];
    }
    auto status = options.set(name, value, "command line");
    if (!status.ok()) return status;
  }
  return options;
}

std::string Options::usage(const std::string& program, const std::string& summary,
                           const std::vector<OptionSpec>& specs) {
  std::ostringstream out;
  out << "Usage: " << program << " [--config FILE] [--option=value ...]\n" << summary << "\n\nOptions:\n";
  out << "  --config FILE            read `key = value` lines from FILE (flags override)\n";
  for (const auto& spec : specs) {
    std::string left = "  --" + spec.name + (spec.isFlag ? "" : "=VALUE");
    if (left.size() < 25) left.resize(25, ' ');
    out << left << " " << spec.help;
    if (!spec.defaultValue.empty()) out << " (default: " << spec.defaultValue << ")";
    out << "\n";
  }
  return out.str();
}

const std::string& Options::get(const std::string& key) const {
  static const std::string kEmpty;
  auto it = values_.find(key);
  return it == values_.end() ? kEmpty : it->second;
}

Result<int64_t> Options::getInt(const std::string& key) const {
  const std::string& text = get(key);
  try {
    size_t pos = 0;
    long long v = std::stoll(text, &pos);
    if (pos != text.size()) throw std::invalid_argument(text);
    return int64_t(v);
  } catch (...) {
    return Status::error(Code::INVALID, "option " + key + ": not an integer: '" + text + "'");
  }
}

Result<uint64_t> Options::getSize(const std::string& key) const {
  auto r = parseSize(get(key));
  if (!r.ok()) return Status::error(Code::INVALID, "option " + key + ": " + r.status().message);
  return r;
}

bool Options::getBool(const std::string& key) const {
  const std::string& v = get(key);
  return v == "true" || v == "1" || v == "yes" || v == "on";
}

bool Options::isSet(const std::string& key) const { return explicit_.count(key) > 0; }

}  // namespace dfs
