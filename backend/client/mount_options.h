// The dfs-fuse command line: `dfs-fuse META_HOST:PORT:/VOLUME MOUNTPOINT [-f] [-o opt,...]`,
// also as run by mount.fuse3 for `mount -t fuse.dfs-fuse SOURCE MNT -o opts`.
// dfs options inside -o are consumed here; every other -o option is passed on to
// FUSE unchanged (ro, allow_other, ...). Pure parsing, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/common/status.h"

namespace dfs {

struct MountSource {
  std::string metaAddress;  // host:port
  std::string volume;
};

// Everything before the last ":/" is the metadata address, after it the volume.
Result<MountSource> parseMountSource(const std::string& source);

struct MountOptions {
  MountSource source;
  std::string mountpoint;
  bool foreground = false;
  bool help = false;
  bool version = false;
  int64_t opTimeoutMs = 15000;
  double entryTimeoutSec = 1.0;
  double attrTimeoutSec = 1.0;
  double delegatedTimeoutSec = 60.0;  // kernel cache time of names in delegated directories
  std::string logLevel = "info";
  bool logJson = false;
  std::string metricsListen;  // host:port for /metrics; empty: no endpoint
  std::string cacheDir;       // write-back journal; empty: defaultCacheDir()
  uint64_t dirtyLimitBytes = 256ull << 20;  // buffered, uncommitted bytes before writers wait
  uint64_t readAheadBytes = 1ull << 20;  // kernel read-ahead window (0: the kernel's own)
  bool absorb = true;  // absorbed namespace changes in delegated directories (Absorber)
  bool directWrites = true;              // write-only opens in FUSE direct-I/O mode (fuse_ops.h)
  std::vector<std::string> fuseOptions;  // -o options passed through to FUSE
  bool debug = false;                    // -d: FUSE debug output (implies -f)
};

// argv as given to dfs-fuse. Unknown dfs-style options (op_timeout=x with a bad
// value, or `-x` flags) are errors with a clear message.
Result<MountOptions> parseMountOptions(int argc, const char* const* argv);
std::string mountUsage(const std::string& program);

// The cache directory of a mount when cache_dir= is not given: under `base`
// (/var/cache/dfs for root, ~/.cache/dfs otherwise), one directory per
// (metadata address, volume, mount point), so a crashed mount finds its
// journal when mounted again at the same place.
std::string defaultCacheDir(const std::string& base, const MountSource& source,
                            const std::string& mountpoint);
// Parses a byte count with an optional K/M/G/T suffix (powers of 1024).
Result<uint64_t> parseBytes(const std::string& key, const std::string& value);

}  // namespace dfs
