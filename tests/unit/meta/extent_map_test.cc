#include "backend/meta/extent_map.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "backend/meta/chunk_table.h"
#include "tests/unit/meta/temp_node.h"

using namespace dfs;
using namespace dfs::meta;
using namespace dfs::meta::testing;

namespace {

const Caller kUser{1000, 1000};

uint64_t refcount(TempNode& t, char seed) {
  LmdbTxn txn(t.node->store().env(), LmdbTxn::Mode::kRead);
  auto c = tryLoadChunk(txn, t.node->store().dbs(), std::string(32, seed));
  return c ? c->refcount : UINT64_MAX;
}

CommitResult commit(TempNode& t, uint64_t ino, std::vector<ExtentRecord> extents,
                    std::vector<ChunkRecord> chunks, uint64_t size, bool setSize = false) {
  CommitRequest r;
  r.ino = ino;
  r.extents = std::move(extents);
  r.newChunks = std::move(chunks);
  r.newSize = size;
  r.setSize = setSize;
  return commitWrite(t.node->store(), r);
}

std::vector<ExtentRecord> extentsOf(TempNode& t, uint64_t ino) {
  return getExtents(t.node->store(), ino, 0, UINT64_MAX).value().extents;
}

}  // namespace

TEST_CASE("extents: overwrite splits a chunk extent and counts references") {
  TempNode t;
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  auto r1 = commit(t, f.ino, {chunkExtent(0, 100, 'A')}, {makeChunk('A', 100)}, 100);
  REQUIRE(r1.status.ok());
  CHECK(r1.inode.size == 100);
  CHECK(r1.inode.storedBytes == 100);
  CHECK(r1.inode.dataVersion == 1);
  CHECK(refcount(t, 'A') == 1);

  auto r2 = commit(t, f.ino, {chunkExtent(40, 20, 'B', 5)}, {makeChunk('B', 50)}, 60);
  REQUIRE(r2.status.ok());
  CHECK(r2.inode.size == 100);  // max(size, newSize)
  CHECK(r2.inode.dataVersion == 2);
  auto extents = extentsOf(t, f.ino);
  REQUIRE(extents.size() == 3);
  CHECK(extents[0].fileOffset == 0);
  CHECK(extents[0].length == 40);
  CHECK(extents[0].chunkOffset == 0);
  CHECK(extents[1].chunkId == std::string(32, 'B'));
  CHECK(extents[1].chunkOffset == 5);
  CHECK(extents[2].fileOffset == 60);
  CHECK(extents[2].length == 40);
  CHECK(extents[2].chunkOffset == 60);
  CHECK(refcount(t, 'A') == 2);
  CHECK(refcount(t, 'B') == 1);
  CHECK(t.node->store().stats().logicalBytes == 100);
  CHECK(t.node->store().stats().uniqueBytes == 150);

  // A read of a sub-range is clipped and names each chunk once.
  auto part = getExtents(t.node->store(), f.ino, 30, 40).value();
  REQUIRE(part.extents.size() == 3);
  CHECK(part.extents[0].fileOffset == 30);
  CHECK(part.extents[0].chunkOffset == 30);
  CHECK(part.extents[2].length == 10);
  CHECK(part.chunks.size() == 2);

  // Overwriting everything with inline data drops every reference.
  auto r3 = commit(t, f.ino, {inlineExtent(0, std::string(100, 'x'))}, {}, 100);
  REQUIRE(r3.status.ok());
  CHECK(refcount(t, 'A') == 0);
  CHECK(refcount(t, 'B') == 0);
  auto s = t.node->store().stats();
  CHECK(s.unreferencedChunks == 2);
  CHECK(s.logicalBytes == 100);
  CHECK(s.uniqueBytes == 100);
  CHECK(s.compressedBytes == 100);
  CHECK(s.chunks == 2);
  auto only = extentsOf(t, f.ino);
  REQUIRE(only.size() == 1);
  CHECK(only[0].kind == ExtentRecord::Kind::kInline);
  CHECK(only[0].inlineData == std::string(100, 'x'));
}

TEST_CASE("extents: inline slices, holes, sparse growth") {
  TempNode t;
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  REQUIRE(commit(t, f.ino, {inlineExtent(0, "hello world")}, {}, 11).status.ok());
  // Punch a hole in the middle.
  ExtentRecord hole;
  hole.fileOffset = 2;
  hole.length = 3;
  hole.kind = ExtentRecord::Kind::kHole;
  auto r = commit(t, f.ino, {hole}, {}, 0);
  REQUIRE(r.status.ok());
  CHECK(r.inode.size == 11);
  CHECK(r.inode.storedBytes == 8);
  auto extents = extentsOf(t, f.ino);
  REQUIRE(extents.size() == 2);
  CHECK(extents[0].inlineData == "he");
  CHECK(extents[1].fileOffset == 5);
  CHECK(extents[1].inlineData == " world");
  // Write far away: the gap is a hole.
  auto far = commit(t, f.ino, {inlineExtent(1 << 20, "z")}, {}, (1 << 20) + 1);
  REQUIRE(far.status.ok());
  CHECK(far.inode.size == (1 << 20) + 1);
  CHECK(far.inode.storedBytes == 9);
  CHECK(t.node->store().stats().logicalBytes == 9);
}

TEST_CASE("extents: truncate drops and clips extents and adjusts refcounts") {
  TempNode t;
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  REQUIRE(commit(t, f.ino, {chunkExtent(0, 1000, 'A'), chunkExtent(1000, 1000, 'B')},
                 {makeChunk('A', 1000), makeChunk('B', 1000)}, 2000)
              .status.ok());
  SetAttrRequest set;
  set.setSize = true;
  set.size = 500;
  auto truncated = t.ns().setattr(f.ino, set, kUser);
  REQUIRE(truncated.ok());
  CHECK(truncated.value().size == 500);
  CHECK(truncated.value().storedBytes == 500);
  CHECK(truncated.value().dataVersion == 2);
  CHECK(refcount(t, 'A') == 1);
  CHECK(refcount(t, 'B') == 0);
  auto extents = extentsOf(t, f.ino);
  REQUIRE(extents.size() == 1);
  CHECK(extents[0].length == 500);
  // Growing leaves a hole.
  set.size = 5000;
  auto grown = t.ns().setattr(f.ino, set, kUser).value();
  CHECK(grown.size == 5000);
  CHECK(grown.storedBytes == 500);
  CHECK(extentsOf(t, f.ino).size() == 1);
  // setSize in a commit cuts exactly.
  auto exact = commit(t, f.ino, {}, {}, 100, true);
  REQUIRE(exact.status.ok());
  CHECK(exact.inode.size == 100);
  CHECK(exact.inode.storedBytes == 100);
  CHECK(t.node->store().stats().logicalBytes == 100);
}

TEST_CASE("extents: validation of commits") {
  TempNode t;
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  auto d = t.ns().mkdir(t.root(), "d", 0755, kUser).value();
  CHECK(commit(t, d.ino, {}, {}, 0).status.code == Code::IS_DIRECTORY);
  CHECK(commit(t, 424242, {}, {}, 0).status.code == Code::STALE);
  // Chunk extent longer than its chunk.
  CHECK(commit(t, f.ino, {chunkExtent(0, 101, 'A')}, {makeChunk('A', 100)}, 101).status.code ==
        Code::INVALID);
  CHECK(commit(t, f.ino, {chunkExtent(0, 10, 'A', 95)}, {makeChunk('A', 100)}, 10).status.code ==
        Code::INVALID);
  auto badInline = inlineExtent(0, "abc");
  badInline.length = 4;
  CHECK(commit(t, f.ino, {badInline}, {}, 4).status.code == Code::INVALID);
  CHECK(commit(t, f.ino, {chunkExtent(UINT64_MAX - 5, 10, 'A')}, {makeChunk('A', 100)}, 0).status.code ==
        Code::FILE_TOO_BIG);
  auto shortId = makeChunk('A', 100);
  shortId.id = "short";
  CHECK(commit(t, f.ino, {}, {shortId}, 0).status.code == Code::INVALID);
  auto badNodes = makeChunk('A', 100);
  badNodes.nodes.pop_back();
  CHECK(commit(t, f.ino, {}, {badNodes}, 0).status.code == Code::INVALID);
  auto badSums = makeChunk('A', 100);
  badSums.fragmentChecksums.push_back(1);
  CHECK(commit(t, f.ino, {}, {badSums}, 0).status.code == Code::INVALID);
  ExtentRecord empty = inlineExtent(0, "");
  CHECK(commit(t, f.ino, {empty}, {}, 0).status.code == Code::INVALID);
  // Nothing of the failed commits stuck.
  CHECK(t.node->store().stats().chunks == 0);
  CHECK(t.ns().getattr(f.ino).value().dataVersion == 0);
}

TEST_CASE("stats: dedup arithmetic over shared chunks") {
  TempNode t;
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  auto g = t.ns().mknod(t.root(), "g", S_IFREG | 0644, 0, kUser).value();
  // Chunk A: 4000 plain, 1000 stored -> fragment 250, raw 6*250.
  REQUIRE(commit(t, f.ino, {chunkExtent(0, 4000, 'A')}, {makeChunk('A', 4000, 1000)}, 4000).status.ok());
  REQUIRE(commit(t, g.ino, {chunkExtent(0, 4000, 'A'), inlineExtent(4000, "tail")}, {}, 4004).status.ok());
  auto s = t.node->store().stats();
  CHECK(s.logicalBytes == 8004);
  CHECK(s.uniqueBytes == 4004);
  CHECK(s.compressedBytes == 1004);
  CHECK(s.rawBytes == 1500);
  CHECK(s.chunks == 1);
  CHECK(s.unreferencedChunks == 0);
  CHECK(s.files == 2);
  CHECK(s.inodes == 3);
  CHECK(refcount(t, 'A') == 2);
  // Deleting a file removes its extents in the same transaction.
  REQUIRE(t.ns().unlink(t.root(), "g", kUser).ok());
  s = t.node->store().stats();
  CHECK(s.logicalBytes == 4000);
  CHECK(s.uniqueBytes == 4000);
  CHECK(s.files == 1);
  CHECK(refcount(t, 'A') == 1);
  REQUIRE(t.ns().unlink(t.root(), "f", kUser).ok());
  s = t.node->store().stats();
  CHECK(s.logicalBytes == 0);
  CHECK(s.uniqueBytes == 0);
  CHECK(s.compressedBytes == 0);
  CHECK(s.rawBytes == 1500);  // still stored until GC
  CHECK(s.unreferencedChunks == 1);
  // Statistics persist.
  t.reopen();
  CHECK(t.node->store().stats().rawBytes == 1500);
  CHECK(t.node->store().stats().unreferencedChunks == 1);
}

TEST_CASE("stats: a commit's new chunks start with the references its extents make") {
  TempNode t;
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  // A twice, B once then overlapped by a later extent of the same commit, C past
  // the size the commit sets, D offered but named by no extent, E offered twice.
  auto r = commit(t, f.ino,
                  {chunkExtent(0, 100, 'A'), chunkExtent(100, 100, 'A'), chunkExtent(200, 100, 'B'),
                   chunkExtent(200, 100, 'E'), chunkExtent(400, 100, 'C')},
                  {makeChunk('A', 100), makeChunk('B', 100), makeChunk('C', 100),
                   makeChunk('D', 100, 40), makeChunk('E', 100), makeChunk('E', 100)},
                  300, /*setSize=*/true);
  REQUIRE(r.status.ok());
  CHECK(r.inode.size == 300);
  CHECK(r.inode.storedBytes == 300);
  CHECK(refcount(t, 'A') == 2);
  CHECK(refcount(t, 'B') == 0);
  CHECK(refcount(t, 'C') == 0);
  CHECK(refcount(t, 'D') == 0);
  CHECK(refcount(t, 'E') == 1);
  auto s = t.node->store().stats();
  CHECK(s.chunks == 5);
  CHECK(s.unreferencedChunks == 3);  // B, C, D: collected after their grace period
  CHECK(s.logicalBytes == 300);
  CHECK(s.uniqueBytes == 200);  // A and E
  CHECK(s.compressedBytes == 200);
  {
    LmdbTxn txn(t.node->store().env(), LmdbTxn::Mode::kRead);
    for (char seed : {'B', 'C', 'D'}) {
      auto c = tryLoadChunk(txn, t.node->store().dbs(), std::string(32, seed));
      REQUIRE(c);
      CHECK(c->zeroSinceNs != 0);
    }
    CHECK(tryLoadChunk(txn, t.node->store().dbs(), std::string(32, 'A'))->zeroSinceNs == 0);
  }
  // A stored chunk offered again is referenced, not inserted twice.
  auto g = t.ns().mknod(t.root(), "g", S_IFREG | 0644, 0, kUser).value();
  REQUIRE(commit(t, g.ino, {chunkExtent(0, 100, 'B')}, {makeChunk('B', 100)}, 100).status.ok());
  CHECK(refcount(t, 'B') == 1);
  s = t.node->store().stats();
  CHECK(s.chunks == 5);
  CHECK(s.unreferencedChunks == 2);
  CHECK(s.uniqueBytes == 300);
  t.reopen();
  CHECK(t.node->store().stats().uniqueBytes == 300);
  CHECK(t.node->store().stats().unreferencedChunks == 2);
}

TEST_CASE("chunks: last access is noted on read and flushed lazily") {
  TempNode t;
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  REQUIRE(commit(t, f.ino, {chunkExtent(0, 100, 'A')}, {makeChunk('A', 100)}, 100).status.ok());
  int64_t inserted = t.clock;
  t.clock += 1000;
  REQUIRE(getExtents(t.node->store(), f.ino, 0, 100).ok());
  auto lastAccess = [&]() {
    LmdbTxn txn(t.node->store().env(), LmdbTxn::Mode::kRead);
    return tryLoadChunk(txn, t.node->store().dbs(), std::string(32, 'A'))->lastAccessNs;
  };
  CHECK(lastAccess() == inserted);
  CHECK(flushChunkAccessTimes(t.node->store()) == 1);
  CHECK(lastAccess() == t.clock);
  CHECK(flushChunkAccessTimes(t.node->store()) == 0);
}
