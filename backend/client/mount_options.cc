#include "backend/client/mount_options.h"

#include <cctype>
#include <cstdio>
#include <set>
#include <sstream>

namespace dfs {

Result<MountSource> parseMountSource(const std::string& source) {
  auto pos = source.rfind(":/");
  if (pos == std::string::npos || pos == 0) {
    return Status::error(Code::INVALID,
                         "bad source '" + source + "': expected META_HOST:PORT:/VOLUME");
  }
  MountSource out;
  out.metaAddress = source.substr(0, pos);
  out.volume = source.substr(pos + 2);
  while (!out.volume.empty() && out.volume.back() == '/') out.volume.pop_back();
  if (out.volume.empty() || out.volume.find('/') != std::string::npos) {
    return Status::error(Code::INVALID, "bad volume name in '" + source + "'");
  }
  auto colon = out.metaAddress.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == out.metaAddress.size()) {
    return Status::error(Code::INVALID, "bad metadata address '" + out.metaAddress +
                                            "' in '" + source + "': expected HOST:PORT");
  }
  for (size_t i = colon + 1; i < out.metaAddress.size(); ++i) {
    if (!isdigit(static_cast<unsigned char>(out.metaAddress[i]))) {
      return Status::error(Code::INVALID, "bad port in '" + out.metaAddress + "'");
    }
  }
  return out;
}

Result<uint64_t> parseBytes(const std::string& key, const std::string& value) {
  size_t pos = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(value, &pos);
  } catch (...) {
    pos = 0;
  }
  if (pos == 0) return Status::error(Code::INVALID, "option " + key + ": not a byte count: '" + value + "'");
  std::string unit = value.substr(pos);
  int shift = unit.empty() ? 0 : unit == "K" || unit == "k" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : unit == "T" ? 40 : -1;
  if (shift < 0) return Status::error(Code::INVALID, "option " + key + ": unknown unit '" + unit + "' (K, M, G, T)");
  if (v > (UINT64_MAX >> shift)) return Status::error(Code::INVALID, "option " + key + ": too large");
  return uint64_t(v) << shift;
}

std::string defaultCacheDir(const std::string& base, const MountSource& source,
                            const std::string& mountpoint) {
  std::string key = source.metaAddress + "/" + source.volume + "@" + mountpoint;
  std::string name;
  for (char c : key) name += isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
  if (name.size() > 200) name = name.substr(name.size() - 200);
  uint64_t h = 1469598103934665603ull;  // FNV-1a: tells apart keys that sanitize alike
  for (char c : key) h = (h ^ uint8_t(c)) * 1099511628211ull;
  char suffix[18];
  snprintf(suffix, sizeof suffix, "-%08x", unsigned(h ^ (h >> 32)));
  return base + "/" + name + suffix;
}

namespace {

Result<double> parseSeconds(const std::string& key, const std::string& value) {
  try {
    size_t pos = 0;
    double v = std::stod(value, &pos);
    if (pos != value.size() || v < 0) throw std::invalid_argument(value);
    return v;
  } catch (...) {
    return Status::error(Code::INVALID, "option " + key + ": not a number of seconds: '" + value + "'");
  }
}

// Options that mount(8)/mount.fuse3 may add and FUSE itself understands or
// ignores; everything not dfs-specific is passed through.
Status applyOption(MountOptions& o, const std::string& opt) {
  auto eq = opt.find('=');
  std::string key = eq == std::string::npos ? opt : opt.substr(0, eq);
  std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
  static const std::set<std::string> kValued = {"op_timeout",    "entry_timeout",    "attr_timeout",
                                                "log_level",     "metrics_listen",   "cache_dir",
                                                "dirty_limit",   "absorb",           "read_ahead",
                                                "direct_writes", "delegated_timeout"};
  if (kValued.count(key) && eq == std::string::npos) {
    return Status::error(Code::INVALID, "option " + key + " needs a value (" + key + "=...)");
  }
  if (key == "op_timeout") {
    auto v = parseSeconds(key, value);
    if (!v.ok()) return v.status();
    if (v.value() <= 0) return Status::error(Code::INVALID, "op_timeout must be > 0");
    o.opTimeoutMs = int64_t(v.value() * 1000);
  } else if (key == "entry_timeout") {
    auto v = parseSeconds(key, value);
    if (!v.ok()) return v.status();
    o.entryTimeoutSec = v.value();
  } else if (key == "delegated_timeout") {
    auto v = parseSeconds(key, value);
    if (!v.ok()) return v.status();
    o.delegatedTimeoutSec = v.value();
  } else if (key == "attr_timeout") {
    auto v = parseSeconds(key, value);
    if (!v.ok()) return v.status();
    o.attrTimeoutSec = v.value();
  } else if (key == "log_level") {
    static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "off"};
    if (!kLevels.count(value)) {
      return Status::error(Code::INVALID, "option log_level: unknown level '" + value +
                                              "' (trace, debug, info, warn, error, off)");
    }
    o.logLevel = value;
  } else if (key == "metrics_listen") {
    o.metricsListen = value;
  } else if (key == "cache_dir") {
    o.cacheDir = value;
  } else if (key == "dirty_limit") {
    auto v = parseBytes(key, value);
    if (!v.ok()) return v.status();
    if (v.value() < (4ull << 20)) return Status::error(Code::INVALID, "dirty_limit must be >= 4M");
    o.dirtyLimitBytes = v.value();
  } else if (key == "read_ahead") {
    auto v = parseBytes(key, value);
    if (!v.ok()) return v.status();
    if (v.value() > (64ull << 20)) return Status::error(Code::INVALID, "read_ahead must be <= 64M");
    o.readAheadBytes = v.value();
  } else if (key == "direct_writes") {
    if (value != "0" && value != "1") {
      return Status::error(Code::INVALID, "option direct_writes is 0 or 1");
    }
    o.directWrites = value == "1";
  } else if (key == "absorb") {
    if (value != "0" && value != "1") return Status::error(Code::INVALID, "option absorb is 0 or 1");
    o.absorb = value == "1";
  } else if (key == "log_json") {
    o.logJson = value.empty() || value == "1" || value == "true" || value == "yes";
  } else if (key.rfind("dfs_", 0) == 0 || key.rfind("dfs.", 0) == 0) {
    return Status::error(Code::INVALID, "unknown dfs option '" + key + "'");
  } else if (key == "defaults" || key == "_netdev" || key == "nofail" || key == "auto" ||
             key == "noauto" || key == "user" || key == "users" || key == "nouser" ||
             key.rfind("x-", 0) == 0 || key.rfind("comment=", 0) == 0) {
    // fstab-only options: meaningless to FUSE.
  } else if (!opt.empty()) {
    o.fuseOptions.push_back(opt);
  }
  return {};
}

Status applyOptionList(MountOptions& o, const std::string& list) {
  std::string cur;
  std::stringstream in(list);
  while (std::getline(in, cur, ',')) {
    Status s = applyOption(o, cur);
    if (!s.ok()) return s;
  }
  return {};
}

}  // namespace

Result<MountOptions> parseMountOptions(int argc, const char* const* argv) {
  MountOptions o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      o.help = true;
    } else if (arg == "-V" || arg == "--version") {
      o.version = true;
    } else if (arg == "-f") {
      o.foreground = true;
    } else if (arg == "-d" || arg == "-odebug") {
      o.debug = true;
      o.foreground = true;
    } else if (arg == "-s") {
      // single-threaded: not supported, multi-threaded always; accepted for compatibility
    } else if (arg == "-o") {
      if (i + 1 >= argc) return Status::error(Code::INVALID, "-o needs an option list");
      Status s = applyOptionList(o, argv[++i]);
      if (!s.ok()) return s;
    } else if (arg.rfind("-o", 0) == 0) {
      Status s = applyOptionList(o, arg.substr(2));
      if (!s.ok()) return s;
    } else if (!arg.empty() && arg[0] == '-') {
      return Status::error(Code::INVALID, "unknown flag '" + arg + "' (see --help)");
    } else {
      positional.push_back(arg);
    }
  }
  if (o.help || o.version) return o;
  if (positional.size() != 2) {
    return Status::error(Code::INVALID,
                         "expected exactly two arguments: META_HOST:PORT:/VOLUME MOUNTPOINT");
  }
  auto source = parseMountSource(positional[0]);
  if (!source.ok()) return source.status();
  o.source = source.value();
  o.mountpoint = positional[1];
  return o;
}

std::string mountUsage(const std::string& program) {
  return "Usage: " + program +
         " META_HOST:PORT:/VOLUME MOUNTPOINT [-f] [-d] [-o opt[,opt...]]\n"
         "Mounts the DFS volume VOLUME served by the metadata node at META_HOST:PORT.\n"
         "Also works as a mount helper: mount -t fuse.dfs-fuse 127.0.0.1:7000:/default /mnt\n"
         "\n"
         "  -f                 stay in the foreground (default: daemonize once mounted)\n"
         "  -d                 FUSE debug output (implies -f)\n"
         "  -h, --help         this text\n"
         "  -V, --version      print the version\n"
         "\n"
         "DFS options (-o):\n"
         "  op_timeout=SEC     deadline of every metadata/storage operation; after it the\n"
         "                     operation fails with EIO (default 15)\n"
         "  entry_timeout=SEC  kernel cache time of names (default 1)\n"
         "  attr_timeout=SEC   kernel cache time of attributes (default 1)\n"
         "  delegated_timeout=SEC  kernel cache time of names in directories this mount\n"
         "                     made and no other client touched since (delegated; the\n"
         "                     delegation's end drops them; default 60; <= entry_timeout: off)\n"
         "  log_level=LEVEL    trace, debug, info, warn, error, off (default info)\n"
         "  log_json           log JSON lines instead of text\n"
         "  metrics_listen=HOST:PORT  serve Prometheus /metrics there (default: off)\n"
         "  cache_dir=DIR      write-back journal directory, replayed after a crash\n"
         "                     (default: /var/cache/dfs/<source>@<mountpoint>, or\n"
         "                     ~/.cache/dfs/... when not root)\n"
         "  dirty_limit=BYTES  written-but-uncommitted bytes before writers wait\n"
         "                     (K/M/G suffixes; default 256M)\n"
         "  read_ahead=BYTES   kernel read-ahead window of the mount (needs root; 0: the\n"
         "                     kernel's 128K; default 1M)\n"
         "  absorb=0|1         acknowledge changes inside directories this mount made\n"
         "                     before dfs-meta applies them (journaled; default 1)\n"
         "  direct_writes=0|1  write-only opens bypass the kernel's page cache (one copy\n"
         "                     less per byte; only on kernels that keep other opens'\n"
         "                     cached pages coherent, FUSE 7.39+; default 1)\n"
         "\n"
         "Other -o options are FUSE mount options and passed through (ro, allow_other,\n"
         "max_read=N, ...). default_permissions is always on; allow_other is on when\n"
         "running as root. See docs/mount-options.md.\n";
}

}  // namespace dfs
