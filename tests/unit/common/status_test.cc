#include "backend/common/status.h"

#include <catch2/catch.hpp>
#include <cerrno>

#include "backend/common/options.h"

TEST_CASE("status codes map to errno through the one table") {
  CHECK(dfs::toErrno(dfs::Code::NOT_FOUND) == ENOENT);
  CHECK(dfs::toErrno(dfs::Code::NAME_TOO_LONG) == ENAMETOOLONG);
  CHECK(dfs::toErrno(dfs::Code::MISSING_CHUNKS) == EIO);
  dfs::Result<int> r = dfs::Status::error(dfs::Code::EXISTS, "x");
  CHECK_FALSE(r.ok());
  CHECK(r.status().code == dfs::Code::EXISTS);
}

TEST_CASE("options parse flags, sizes and reject unknown keys") {
  std::vector<dfs::OptionSpec> specs = {{"listen", "127.0.0.1:7000", "address"},
                                        {"cache-size", "64M", "bytes"},
                                        {"foreground", "false", "stay", true}};
  const char* argv[] = {"prog", "--listen=0.0.0.0:1", "--cache-size", "2G", "--foreground", "pos"};
  auto parsed = dfs::Options::parse(6, argv, specs);
  REQUIRE(parsed.ok());
  CHECK(parsed.value().get("listen") == "0.0.0.0:1");
  CHECK(parsed.value().getSize("cache-size").value() == (2ull << 30));
  CHECK(parsed.value().getBool("foreground"));
  CHECK(parsed.value().positional().size() == 1);
  const char* bad[] = {"prog", "--nope=1"};
  CHECK_FALSE(dfs::Options::parse(2, bad, specs).ok());
  CHECK_FALSE(dfs::parseSize("12X").ok());
}
