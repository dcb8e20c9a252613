#include "backend/meta/write_conflicts.h"

#include <catch2/catch.hpp>

#include "backend/meta/extent_map.h"
#include "tests/unit/meta/temp_node.h"

using namespace dfs;
using namespace dfs::meta;
using namespace dfs::meta::testing;

namespace {

constexpr int64_t kNow = int64_t(1700000000) * 1000000000;
constexpr uint64_t kIno = 42;
constexpr uint64_t kA = 1, kB = 2;  // sessions

}  // namespace

TEST_CASE("conflicts: non-overlapping commits of two sessions merge without conflict") {
  WriteConflicts w;
  std::vector<ExtentRecord> a = {chunkExtent(0, 1 << 20, 'A')};
  CHECK(w.resolve(kIno, kA, 5, 100, a, kNow).conflicts == 0);
  w.record(kIno, kA, 6, 100, a, kNow);
  std::vector<ExtentRecord> b = {chunkExtent(1 << 20, 1 << 20, 'B')};
  auto out = w.resolve(kIno, kB, 5, 101, b, kNow);
  CHECK(out.conflicts == 0);
  REQUIRE(b.size() == 1);
  CHECK(b[0].length == (1u << 20));
}

TEST_CASE("conflicts: an overlapping newer commit of another session wins; the older one is dropped") {
  WriteConflicts w;
  std::vector<ExtentRecord> a = {chunkExtent(0, 65536, 'A')};
  w.record(kIno, kA, 6, /*hlc=*/200, a, kNow);
  // B based its write on version 5 (did not see A's commit) and is older by HLC.
  std::vector<ExtentRecord> b = {chunkExtent(0, 65536, 'B')};
  auto out = w.resolve(kIno, kB, 5, /*hlc=*/150, b, kNow);
  CHECK(out.conflicts == 1);
  CHECK(out.droppedBytes == 65536);
  CHECK(b.empty());  // A's data stays entirely: never a mix
  CHECK(out.detail.find("session 1") != std::string::npos);
}

TEST_CASE("conflicts: an overlapping older commit of another session is overwritten by the newer writer") {
  WriteConflicts w;
  std::vector<ExtentRecord> a = {chunkExtent(0, 65536, 'A')};
  w.record(kIno, kA, 6, 200, a, kNow);
  std::vector<ExtentRecord> b = {chunkExtent(0, 65536, 'B')};
  auto out = w.resolve(kIno, kB, 5, 300, b, kNow);
  CHECK(out.conflicts == 1);
  CHECK(out.droppedBytes == 0);
  REQUIRE(b.size() == 1);
  CHECK(b[0].length == 65536);
  CHECK(w.total() == 0);  // counted only once the commit is applied
  w.count(out.conflicts);
  CHECK(w.total() == 1);
}

TEST_CASE("conflicts: partial overlap keeps the non-overlapping parts with the right chunk offsets") {
  WriteConflicts w;
  std::vector<ExtentRecord> a = {chunkExtent(100, 50, 'A')};
  w.record(kIno, kA, 6, 500, a, kNow);
  std::vector<ExtentRecord> b = {chunkExtent(0, 200, 'B', 10), inlineExtent(300, "xyz")};
  auto out = w.resolve(kIno, kB, 5, 400, b, kNow);
  CHECK(out.conflicts == 1);
  CHECK(out.droppedBytes == 50);
  REQUIRE(b.size() == 3);
  CHECK(b[0].fileOffset == 0);
  CHECK(b[0].length == 100);
  CHECK(b[0].chunkOffset == 10);
  CHECK(b[1].fileOffset == 150);
  CHECK(b[1].length == 50);
  CHECK(b[1].chunkOffset == 160);
  CHECK(b[2].inlineData == "xyz");
}

TEST_CASE("conflicts: holes are clipped too") {
  ExtentRecord hole;
  hole.kind = ExtentRecord::Kind::kHole;
  hole.fileOffset = 0;
  hole.length = 100;
  auto part = clipExtent(hole, 40, 60);
  CHECK(part.kind == ExtentRecord::Kind::kHole);
  CHECK(part.fileOffset == 40);
  CHECK(part.length == 20);
}

TEST_CASE("conflicts: own commits, commits already seen and old history never conflict") {
  WriteConflicts w;
  std::vector<ExtentRecord> a = {chunkExtent(0, 100, 'A')};
  w.record(kIno, kA, 6, 500, a, kNow);
  std::vector<ExtentRecord> mine = {chunkExtent(0, 100, 'C')};
  CHECK(w.resolve(kIno, kA, 1, 400, mine, kNow).conflicts == 0);  // same session
  CHECK(mine.size() == 1);
  std::vector<ExtentRecord> seen = {chunkExtent(0, 100, 'B')};
  CHECK(w.resolve(kIno, kB, 6, 400, seen, kNow).conflicts == 0);  // based on version 6
  CHECK(seen.size() == 1);
  std::vector<ExtentRecord> late = {chunkExtent(0, 100, 'B')};
  CHECK(w.resolve(kIno, kB, 5, 400, late, kNow + WriteConflicts::kMaxAgeNs + 1).conflicts == 0);
  std::vector<ExtentRecord> noClock = {chunkExtent(0, 100, 'B')};
  CHECK(w.resolve(kIno, kB, 5, 0, noClock, kNow).conflicts == 0);  // v1 client: not ordered
  w.forget(kIno);
  std::vector<ExtentRecord> forgotten = {chunkExtent(0, 100, 'B')};
  CHECK(w.resolve(kIno, kB, 5, 400, forgotten, kNow).conflicts == 0);
}

TEST_CASE("conflicts: history is bounded per inode") {
  WriteConflicts w;
  for (uint64_t v = 1; v <= 1000; ++v) {
    std::vector<ExtentRecord> e = {chunkExtent(v * 10, 5, 'A')};
    w.record(kIno, kA, v, v, e, kNow);
  }
  // Ranges of the first commits are gone; only recent ones can conflict.
  std::vector<ExtentRecord> early = {chunkExtent(10, 5, 'B')};
  CHECK(w.resolve(kIno, kB, 0, 5000, early, kNow).conflicts == 0);
  std::vector<ExtentRecord> recent = {chunkExtent(9990, 5, 'B')};
  CHECK(w.resolve(kIno, kB, 0, 5000, recent, kNow).conflicts == 1);
}

TEST_CASE("conflicts: commitWrite replaces only the ranges it carries, so disjoint writers merge") {
  TempNode t;
  auto f = t.ns().mknod(t.root(), "f", 0100644, 0, Caller{0, 0}).value();
  auto commit = [&](std::vector<ExtentRecord> extents, uint64_t size) {
    CommitRequest r;
    r.ino = f.ino;
    r.extents = std::move(extents);
    r.newChunks = {makeChunk('A', 1 << 20), makeChunk('B', 1 << 20)};
    r.newSize = size;
    return commitWrite(t.node->store(), r);
  };
  // Writer 1 commits [0, 1M) and [2M, 3M); writer 2, based on the same version,
  // commits [1M, 2M) and [3M, 4M).
  REQUIRE(commit({chunkExtent(0, 1 << 20, 'A'), chunkExtent(2 << 20, 1 << 20, 'A')}, 3 << 20)
              .status.ok());
  REQUIRE(commit({chunkExtent(1 << 20, 1 << 20, 'B'), chunkExtent(3 << 20, 1 << 20, 'B')}, 4 << 20)
              .status.ok());
  auto extents = getExtents(t.node->store(), f.ino, 0, UINT64_MAX).value();
  CHECK(extents.inode.size == (4u << 20));
  REQUIRE(extents.extents.size() == 4);
  const char expected[] = {'A', 'B', 'A', 'B'};
  for (size_t i = 0; i < 4; ++i) {
    CHECK(extents.extents[i].fileOffset == i << 20);
    CHECK(extents.extents[i].length == (1u << 20));
    CHECK(extents.extents[i].chunkId == std::string(32, expected[i]));
  }
}
