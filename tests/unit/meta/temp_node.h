// Test fixture: a metadata node in a fresh temporary directory, with a clock
// the test moves by hand and without fsync per commit.
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "backend/meta/meta_node.h"

namespace dfs::meta::testing {

struct TempNode {
  std::string dir;
  int64_t clock = int64_t(1700000000) * 1000000000;
  std::unique_ptr<MetaNode> node;
  bool groupCommit = false;  // REQUIRES a KJ event loop when set (then reopen())

  explicit TempNode(std::string defaultVolume = "default") : defaultVolume_(std::move(defaultVolume)) {
    char tmpl[] = "/tmp/dfs-meta-test-XXXXXX";
    dir = mkdtemp(tmpl);
    reopen();
  }
  ~TempNode() {
    node.reset();
    std::filesystem::remove_all(dir);
  }
  void reopen() {
    node.reset();
    MetaConfig config;
    config.dataDir = dir;
    config.mapSize = size_t(512) << 20;
    config.durable = false;
    config.defaultVolume = defaultVolume_;
    config.clock = [this]() { return clock; };
    config.groupCommit = groupCommit;
    auto opened = MetaNode::open(config);
    REQUIRE(opened.ok());
    node = std::move(opened).value();
  }
  uint64_t root() { return node->volumes().find("default").value().rootIno; }
  Namespace& ns() { return node->names(); }

 private:
  std::string defaultVolume_;
};

// A chunk description as a client would send it: id = 32 x `seed`, 4+2 on nodes 1..6.
inline ChunkRecord makeChunk(char seed, uint32_t plainSize, uint32_t storedSize = 0) {
  ChunkRecord c;
  c.id = std::string(32, seed);
  c.plainSize = plainSize;
  c.storedSize = storedSize ? storedSize : plainSize;
  c.k = 4;
  c.m = 2;
  c.fragmentSize = (c.storedSize + 3) / 4;
  c.nodes = {1, 2, 3, 4, 5, 6};
  c.fragmentChecksums = {11, 12, 13, 14, 15, 16};
  return c;
}

inline ExtentRecord chunkExtent(uint64_t offset, uint64_t length, char seed, uint32_t chunkOffset = 0) {
  ExtentRecord e;
  e.fileOffset = offset;
  e.length = length;
  e.kind = ExtentRecord::Kind::kChunk;
  e.chunkId = std::string(32, seed);
  e.chunkOffset = chunkOffset;
  return e;
}

inline ExtentRecord inlineExtent(uint64_t offset, std::string data) {
  ExtentRecord e;
  e.fileOffset = offset;
  e.length = data.size();
  e.kind = ExtentRecord::Kind::kInline;
  e.inlineData = std::move(data);
  return e;
}

}  // namespace dfs::meta::testing
