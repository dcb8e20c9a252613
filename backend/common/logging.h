#pragma once

#include <string>

#include "backend/common/status.h"

namespace dfs {

// Configures spdlog for a process: level (trace, debug, info, warn, error), output
// to stderr (journald under systemd), as plain text or JSON lines.
Status initLogging(const std::string& process, const std::string& level, bool json);

}  // namespace dfs
