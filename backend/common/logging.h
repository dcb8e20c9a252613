#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>

#include "backend/common/status.h"

namespace dfs {

// Configures spdlog for a process: level (trace, debug, info, warn, error), output
// to stderr (journald under systemd), as plain text or JSON lines.
Status initLogging(const std::string& process, const std::string& level, bool json);

// The JSON-lines formatter: one object per line, the message escaped so that every
// line is valid JSON whatever it contains.
std::unique_ptr<spdlog::formatter> makeJsonLogFormatter();

}  // namespace dfs
