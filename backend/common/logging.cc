#include "backend/common/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace dfs {

Status initLogging(const std::string& process, const std::string& level, bool json) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return Status::error(Code::INVALID, "unknown log level '" + level + "'");
  }
  auto logger = spdlog::stderr_logger_mt(process);
  if (json) {
    logger->set_pattern(
        "{\"time\":\"%Y-%m-%dT%H:%M:%S.%f%z\",\"process\":\"%n\",\"pid\":%P,\"level\":\"%l\","
        "\"message\":\"%v\"}");
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %n[%P] %^%l%$: %v");
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  return {};
}

}  // namespace dfs
