// Hidden benchmark ("[.]", run with `meta_tests "[bench]"`): what one durable
// LMDB write transaction per namespace operation costs on this disk.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "backend/meta/meta_node.h"

using namespace dfs::meta;

TEST_CASE("bench: durable namespace operations per second", "[.][bench]") {
  char tmpl[] = "/tmp/dfs-meta-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  for (bool durable : {true, false}) {
    std::filesystem::remove_all(dir);
    MetaConfig config;
    config.dataDir = dir;
    config.mapSize = size_t(256) << 20;
    config.durable = durable;
    auto node = MetaNode::open(config);
    REQUIRE(node.ok());
    auto& names = node.value()->names();
    constexpr int kOps = 300;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kOps; ++i) {
      REQUIRE(names.mknod(1, "f" + std::to_string(i), S_IFREG | 0644, 0, Caller{}).ok());
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s: %.0f creates/s (%.2f ms each)\n", durable ? "durable (fsync per commit)" : "no sync",
                kOps / seconds, seconds * 1000 / kOps);
  }
  std::filesystem::remove_all(dir);
}
