#include "backend/client/mount_options.h"

#include <catch2/catch.hpp>

using dfs::parseMountOptions;
using dfs::parseMountSource;

TEST_CASE("mount source splits at the last ':/'") {
  auto s = parseMountSource("127.0.0.1:7000:/default");
  REQUIRE(s.ok());
  CHECK(s.value().metaAddress == "127.0.0.1:7000");
  CHECK(s.value().volume == "default");
  auto v6 = parseMountSource("[::1]:7000:/vol2/");
  REQUIRE(v6.ok());
  CHECK(v6.value().metaAddress == "[::1]:7000");
  CHECK(v6.value().volume == "vol2");
  auto host = parseMountSource("meta.example:7000:/data");
  REQUIRE(host.ok());
  CHECK(host.value().metaAddress == "meta.example:7000");
  CHECK_FALSE(parseMountSource("127.0.0.1:7000").ok());
  CHECK_FALSE(parseMountSource("127.0.0.1:7000:/").ok());
  CHECK_FALSE(parseMountSource(":/default").ok());
  CHECK_FALSE(parseMountSource("127.0.0.1:/default").ok());  // no port
  CHECK_FALSE(parseMountSource("127.0.0.1:70x0:/default").ok());
  CHECK_FALSE(parseMountSource("127.0.0.1:7000:/a/b").ok());
}

TEST_CASE("mount options: dfs options are consumed, others pass through") {
  const char* argv[] = {"dfs-fuse",
                        "127.0.0.1:7000:/default",
                        "/mnt",
                        "-o",
                        "ro,op_timeout=2.5,entry_timeout=0,attr_timeout=3,log_level=debug,log_json,"
                        "allow_other,_netdev,max_read=131072,absorb=0,delegated_timeout=90,"
                        "direct_writes=0",
                        "-f"};
  auto r = parseMountOptions(6, argv);
  REQUIRE(r.ok());
  const auto& o = r.value();
  CHECK(o.source.volume == "default");
  CHECK(o.mountpoint == "/mnt");
  CHECK(o.foreground);
  CHECK(o.opTimeoutMs == 2500);
  CHECK(o.entryTimeoutSec == 0.0);
  CHECK(o.attrTimeoutSec == 3.0);
  CHECK(o.delegatedTimeoutSec == 90.0);
  CHECK(o.logLevel == "debug");
  CHECK(o.logJson);
  CHECK_FALSE(o.absorb);
  CHECK_FALSE(o.directWrites);
  CHECK(o.fuseOptions == std::vector<std::string>{"ro", "allow_other", "max_read=131072"});
}

TEST_CASE("mount options: bad values and unknown flags are clear errors") {
  {
    const char* argv[] = {"dfs-fuse", "h:1:/v", "/mnt", "-o", "op_timeout=soon"};
    auto r = parseMountOptions(5, argv);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message.find("op_timeout") != std::string::npos);
  }
  {
    const char* argv[] = {"dfs-fuse", "h:1:/v", "/mnt", "-o", "absorb=yes"};
    CHECK_FALSE(parseMountOptions(5, argv).ok());
  }
  {
    const char* argv[] = {"dfs-fuse", "h:1:/v", "/mnt", "-o", "direct_writes"};
    auto r = parseMountOptions(5, argv);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message.find("direct_writes") != std::string::npos);
  }
  {
    const char* argv[] = {"dfs-fuse", "h:1:/v", "/mnt", "-o", "log_level=loud"};
    CHECK_FALSE(parseMountOptions(5, argv).ok());
  }
  {
    const char* argv[] = {"dfs-fuse", "h:1:/v", "/mnt", "-o", "dfs_cache=1"};
    CHECK_FALSE(parseMountOptions(5, argv).ok());
  }
  {
    const char* argv[] = {"dfs-fuse", "h:1:/v", "/mnt", "-x"};
    CHECK_FALSE(parseMountOptions(4, argv).ok());
  }
  {
    const char* argv[] = {"dfs-fuse", "h:1:/v"};
    CHECK_FALSE(parseMountOptions(2, argv).ok());
  }
  {
    const char* argv[] = {"dfs-fuse", "--help"};
    auto r = parseMountOptions(2, argv);
    REQUIRE(r.ok());
    CHECK(r.value().help);
  }
  {
    // mount.fuse3 style: -o glued to its value
    const char* argv[] = {"dfs-fuse", "h:1:/v", "/mnt", "-orw,op_timeout=1"};
    auto r = parseMountOptions(4, argv);
    REQUIRE(r.ok());
    CHECK(r.value().opTimeoutMs == 1000);
    CHECK(r.value().fuseOptions == std::vector<std::string>{"rw"});
  }
}
