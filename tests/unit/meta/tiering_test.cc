#include "backend/meta/tiering.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "backend/meta/chunk_table.h"
#include "backend/meta/extent_map.h"
#include "tests/unit/meta/temp_node.h"

using namespace dfs;
using namespace dfs::meta;
using namespace dfs::meta::testing;

namespace {

const Caller kUser{1000, 1000};

ChunkRecord load(TempNode& t, char seed) {
  LmdbTxn txn(t.node->store().env(), LmdbTxn::Mode::kRead);
  auto c = tryLoadChunk(txn, t.node->store().dbs(), std::string(32, seed));
  REQUIRE(c);
  return *c;
}

// A file referencing chunk `seed` (so that it is referenced and counted).
void fileWithChunk(TempNode& t, const char* name, char seed, uint32_t plain, uint32_t stored) {
  auto f = t.ns().mknod(t.root(), name, S_IFREG | 0644, 0, kUser).value();
  CommitRequest r;
  r.ino = f.ino;
  r.extents = {chunkExtent(0, plain, seed)};
  r.newChunks = {makeChunk(seed, plain, stored)};
  r.newSize = plain;
  REQUIRE(commitWrite(t.node->store(), r).status.ok());
}

// `old` recompressed to `stored` bytes under the next generation.
ChunkRecord recompressed(const ChunkRecord& old, uint32_t stored) {
  ChunkRecord r = old;
  r.storedSize = stored;
  r.compression = 1;
  r.fragmentSize = (stored + 7) / 8 * 2;  // roundUp(ceil(stored / 4), 8) for the sizes used here
  r.fragmentChecksums = {21, 22, 23, 24, 25, 26};
  r.generation = uint8_t(old.generation % 3 + 1);
  return r;
}

Status retier(TempNode& t, const ChunkRecord& expected, const ChunkRecord& replacement,
              uint8_t level = 19) {
  WriteTxn wtx(t.node->store());
  auto s = retierChunk(wtx, expected, replacement, level);
  if (s.ok()) s = wtx.commit();
  return s;
}

}  // namespace

TEST_CASE("tiering: cold chunks are referenced, unread since the cutoff, below the level") {
  TempNode t;
  fileWithChunk(t, "a", 'A', 40000, 30000);
  fileWithChunk(t, "b", 'B', 40000, 30000);
  int64_t written = t.clock;
  t.clock += 1000000000;
  t.node->store().noteChunkAccess(std::string(32, 'B'), t.clock);  // B read a moment ago

  auto page = coldChunks(t.node->store(), written + 1, 19, "", 10);
  REQUIRE(page.ok());
  REQUIRE(page.value().chunks.size() == 1);  // the noted access was flushed first
  CHECK(page.value().chunks[0].id == std::string(32, 'A'));
  CHECK(page.value().eof);
  CHECK(coldChunks(t.node->store(), written, 19, "", 10).value().chunks.empty());

  // Paging: max 1 returns A, then continuing after it finds nothing more that is cold.
  auto first = coldChunks(t.node->store(), t.clock + 1, 19, "", 1).value();
  REQUIRE(first.chunks.size() == 1);
  auto second = coldChunks(t.node->store(), t.clock + 1, 19, first.next, 1).value();
  REQUIRE(second.chunks.size() == 1);
  CHECK(second.chunks[0].id != first.chunks[0].id);

  // Already tiered at 19: not cold for level 19, still for 22.
  auto a = load(t, 'A');
  REQUIRE(retier(t, a, recompressed(a, 20000)).ok());
  auto after = coldChunks(t.node->store(), t.clock + 1, 19, "", 10).value();
  REQUIRE(after.chunks.size() == 1);
  CHECK(after.chunks[0].id == std::string(32, 'B'));
  CHECK(coldChunks(t.node->store(), t.clock + 1, 22, "", 10).value().chunks.size() == 2);

  // Unreferenced chunks are left to the garbage collector.
  REQUIRE(t.ns().unlink(t.root(), "b", kUser).ok());
  auto noB = coldChunks(t.node->store(), t.clock + 1, 22, "", 10).value();
  REQUIRE(noB.chunks.size() == 1);
  CHECK(noB.chunks[0].id == std::string(32, 'A'));
}

TEST_CASE("tiering: a swap changes the record and the byte counts, once") {
  TempNode t;
  fileWithChunk(t, "a", 'A', 40000, 30000);
  auto before = t.node->store().stats();
  auto a = load(t, 'A');
  auto fresh = recompressed(a, 20000);
  REQUIRE(retier(t, a, fresh).ok());

  auto now = load(t, 'A');
  CHECK(now.generation == 1);
  CHECK(now.tierLevel == 19);
  CHECK(now.storedSize == 20000);
  CHECK(now.fragmentChecksums == fresh.fragmentChecksums);
  CHECK(now.refcount == a.refcount);
  CHECK(now.lastAccessNs == a.lastAccessNs);
  auto s = t.node->store().stats();
  CHECK(s.rawBytes == before.rawBytes - a.rawBytes() + fresh.rawBytes());
  CHECK(s.compressedBytes == before.compressedBytes - 10000);
  CHECK(s.uniqueBytes == before.uniqueBytes);
  CHECK(s.logicalBytes == before.logicalBytes);

  // The same swap again: the record is no longer `a`.
  CHECK(retier(t, a, fresh).code == Code::BUSY);
  CHECK(t.node->store().stats().rawBytes == s.rawBytes);

  // The next tiering goes to generation 2, then 3, then back to 1.
  auto g2 = recompressed(now, 19000);
  REQUIRE(retier(t, now, g2, 22).ok());
  CHECK(load(t, 'A').generation == 2);
}

TEST_CASE("tiering: a chunk that did not shrink is only marked as tried") {
  TempNode t;
  fileWithChunk(t, "a", 'A', 40000, 40000);
  auto before = t.node->store().stats();
  auto a = load(t, 'A');
  REQUIRE(retier(t, a, a).ok());
  auto now = load(t, 'A');
  CHECK(now.generation == 0);
  CHECK(now.tierLevel == 19);
  CHECK(now.fragmentChecksums == a.fragmentChecksums);
  CHECK(t.node->store().stats().rawBytes == before.rawBytes);
}

TEST_CASE("tiering: replacements that are not re-encodings of the chunk are refused") {
  TempNode t;
  fileWithChunk(t, "a", 'A', 40000, 30000);
  auto a = load(t, 'A');
  auto good = recompressed(a, 20000);

  auto otherNodes = good;
  otherNodes.nodes = {1, 2, 3, 4, 5, 7};
  CHECK(retier(t, a, otherNodes).code == Code::INVALID);
  auto otherSize = good;
  otherSize.plainSize = 40001;
  CHECK(retier(t, a, otherSize).code == Code::INVALID);
  auto otherK = good;
  otherK.k = 3;
  otherK.m = 3;
  CHECK(retier(t, a, otherK).code == Code::INVALID);
  auto sameGeneration = good;
  sameGeneration.generation = a.generation;
  CHECK(retier(t, a, sameGeneration).code == Code::INVALID);
  auto badGeneration = good;
  badGeneration.generation = 4;
  CHECK(retier(t, a, badGeneration).code == Code::INVALID);
  auto notSmaller = good;
  notSmaller.storedSize = 40000;
  CHECK(retier(t, a, notSmaller).code == Code::INVALID);
  auto tooSmallFragments = good;
  tooSmallFragments.fragmentSize = 100;
  CHECK(retier(t, a, tooSmallFragments).code == Code::INVALID);
  CHECK(retier(t, a, good, 0).code == Code::INVALID);

  auto gone = a;
  gone.id = std::string(32, 'Z');
  auto goneNew = good;
  goneNew.id = gone.id;
  CHECK(retier(t, gone, goneNew).code == Code::NOT_FOUND);
  CHECK(load(t, 'A').fragmentChecksums == a.fragmentChecksums);  // nothing written
}

TEST_CASE("tiering: chunk records of version 1 and 2 round-trip") {
  ChunkRecord r = makeChunk('Q', 5000, 3000);
  r.refcount = 3;
  r.lastAccessNs = 77;
  auto v1 = encodeChunk(r);
  CHECK(uint8_t(v1[0]) == 1);
  auto d1 = decodeChunk(r.id, v1);
  REQUIRE(d1.ok());
  CHECK(d1.value().generation == 0);
  CHECK(d1.value().tierLevel == 0);

  r.generation = 3;
  r.tierLevel = 19;
  auto v2 = encodeChunk(r);
  CHECK(uint8_t(v2[0]) == 2);
  CHECK(v2.size() == v1.size() + 2);
  auto d2 = decodeChunk(r.id, v2);
  REQUIRE(d2.ok());
  CHECK(d2.value().generation == 3);
  CHECK(d2.value().tierLevel == 19);
  CHECK(d2.value().fragmentChecksums == r.fragmentChecksums);

  v2[v2.size() - 2] = 4;  // generation out of range
  CHECK_FALSE(decodeChunk(r.id, v2).ok());
  CHECK_FALSE(decodeChunk(r.id, v1.substr(0, v1.size()) + "xy").ok());  // v1 with a v2 tail
  std::string v3 = v2;
  v3[0] = 3;
  CHECK_FALSE(decodeChunk(r.id, v3).ok());
}
