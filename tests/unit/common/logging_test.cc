#include "backend/common/logging.h"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>
#include <sstream>

TEST_CASE("JSON log lines stay valid JSON whatever the message holds") {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("jsontest", sink);
  logger.set_formatter(dfs::makeJsonLogFormatter());
  logger.info("quote \" backslash \\ newline \n tab \t bell \x07 end");
  logger.flush();
  std::string line = out.str();
  REQUIRE(!line.empty());
  CHECK(line.back() == '\n');
  line.pop_back();
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find(R"("message":"quote \" backslash \\ newline \n tab \t bell \u0007 end")") != std::string::npos);
  CHECK(line.find(R"("level":"info")") != std::string::npos);
  CHECK(line.front() == '{');
  CHECK(line.back() == '}');
}
