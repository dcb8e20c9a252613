// The kernel's read-ahead window of a FUSE mount. Linux starts every FUSE mount
// with 128 KiB (the bdi default, which the FUSE_INIT max_readahead can only
// lower); a sequential reader then costs one FUSE round trip per 128 KiB. The
// window is raised through the mount's /sys/class/bdi/MAJ:MIN/read_ahead_kb,
// which needs root (as mounting usually does); without it the default stays.
//
// Threads: any. No FUSE request is made (the mount's own daemon may not be
// serving yet): the device id comes from /proc/self/mountinfo.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "backend/common/status.h"

namespace dfs {

// The device id ("MAJ:MIN") of the mount at `mountpoint` (an absolute path, as
// mounted) in /proc/self/mountinfo text; the last match wins (it is on top).
std::optional<std::string> mountDeviceId(std::string_view mountinfo, const std::string& mountpoint);

// Sets the read-ahead window of the mount at `mountpoint` to `bytes` (rounded
// down to KiB). `sysfsRoot` is for tests.
Status setKernelReadAhead(const std::string& mountpoint, uint64_t bytes,
                          const std::string& procMountinfo = "/proc/self/mountinfo",
                          const std::string& sysfsRoot = "/sys");

}  // namespace dfs
