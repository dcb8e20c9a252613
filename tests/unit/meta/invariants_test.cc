// Randomised operations against the store, checking after every step the
// invariants that tie the tables together: link counts, directory parents,
// chunk reference counts and the storage statistics.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>

#include "backend/meta/chunk_table.h"
#include "backend/meta/extent_map.h"
#include "tests/unit/meta/temp_node.h"

using namespace dfs;
using namespace dfs::meta;
using namespace dfs::meta::testing;

namespace {

const Caller kUser{1000, 1000};

// Recomputes everything derivable from the tables and compares.
void checkInvariants(TempNode& t) {
  auto& store = t.node->store();
  LmdbTxn txn(store.env(), LmdbTxn::Mode::kRead);
  const auto& dbs = store.dbs();
  std::map<uint64_t, InodeRecord> inodes;
  {
    LmdbCursor c(txn, dbs.inodes);
    for (c.first(); c.valid(); c.next()) {
      auto r = decodeInode(readBigEndian64(c.key()), c.value());
      REQUIRE(r.ok());
      inodes[r.value().ino] = r.value();
    }
  }
  std::map<uint64_t, uint32_t> names, subdirs;
  {
    LmdbCursor c(txn, dbs.dirents);
    for (c.first(); c.valid(); c.next()) {
      uint64_t parent = readBigEndian64(c.key());
      auto d = decodeDirent(c.value());
      REQUIRE(d.ok());
      REQUIRE(inodes.count(parent));
      REQUIRE(inodes[parent].isDirectory());
      REQUIRE(inodes.count(d.value().ino));
      const auto& child = inodes[d.value().ino];
      CHECK(child.type() == d.value().type);
      names[child.ino] += 1;
      if (child.isDirectory()) {
        subdirs[parent] += 1;
        CHECK(child.parent == parent);
      }
    }
  }
  std::map<std::string, uint64_t> refs;
  uint64_t logical = 0, inlineBytes = 0, files = 0;
  std::map<uint64_t, uint64_t> stored;
  {
    LmdbCursor c(txn, dbs.extents);
    uint64_t lastIno = 0, lastEnd = 0;
    for (c.first(); c.valid(); c.next()) {
      uint64_t ino = readBigEndian64(c.key());
      auto e = decodeExtent(readBigEndian64(c.key(), 8), c.value());
      REQUIRE(e.ok());
      REQUIRE(inodes.count(ino));
      if (ino == lastIno) CHECK(e.value().fileOffset >= lastEnd);  // no overlap
      lastIno = ino;
      lastEnd = e.value().end();
      CHECK(e.value().end() <= inodes[ino].size);
      logical += e.value().length;
      stored[ino] += e.value().length;
      if (e.value().kind == ExtentRecord::Kind::kChunk) refs[e.value().chunkId] += 1;
      else inlineBytes += e.value().length;
    }
  }
  uint64_t unique = inlineBytes, compressed = inlineBytes, raw = 0, chunks = 0, unreferenced = 0;
  {
    LmdbCursor c(txn, dbs.chunks);
    for (c.first(); c.valid(); c.next()) {
      auto r = decodeChunk(c.key(), c.value());
      REQUIRE(r.ok());
      CHECK(r.value().refcount == refs[r.value().id]);
      chunks += 1;
      raw += r.value().rawBytes();
      if (r.value().refcount == 0) {
        unreferenced += 1;
      } else {
        unique += r.value().plainSize;
        compressed += r.value().storedSize;
      }
    }
  }
  for (const auto& [ino, inode] : inodes) {
    if (inode.isRegular()) files += 1;
    CHECK(inode.storedBytes == stored[ino]);
    bool isRoot = inode.isDirectory() && inode.parent == ino;
    if (isRoot) continue;
    bool orphan = txn.get(dbs.orphans, u64Key(ino)).has_value();
    if (orphan) {
      CHECK(inode.nlink == 0);
    } else if (inode.isDirectory()) {
      CHECK(names[ino] == 1);
    } else {
      CHECK(inode.nlink == names[ino]);
    }
    if (inode.isDirectory() && inode.nlink > 0) CHECK(inode.nlink == 2 + subdirs[ino]);
  }
  auto s = store.stats();
  CHECK(s.inodes == inodes.size());
  CHECK(s.files == files);
  CHECK(s.logicalBytes == logical);
  CHECK(s.uniqueBytes == unique);
  CHECK(s.compressedBytes == compressed);
  CHECK(s.rawBytes == raw);
  CHECK(s.chunks == chunks);
  CHECK(s.unreferencedChunks == unreferenced);
}

}  // namespace

TEST_CASE("invariants hold under random namespace and data operations") {
  TempNode t;
  auto seed = GENERATE(12345u, 7u, 2026u);
  bool grouped = GENERATE(false, true);  // group commit: batches of random size
  std::mt19937 rng(seed);
  if (grouped) t.node->store().enableGroupCommit([]() {});
  auto pick = [&](int n) { return int(rng() % unsigned(n)); };
  uint64_t session = t.node->sessions().mount(1, "fuzz").value();
  std::vector<uint64_t> dirs{t.root()};
  const char* names[] = {"a", "b", "c", "d"};
  int ok = 0;
  for (int step = 0; step < 3000; ++step) {
    uint64_t dir = dirs[pick(int(dirs.size()))];
    uint64_t dir2 = dirs[pick(int(dirs.size()))];
    std::string name = names[pick(4)], name2 = names[pick(4)];
    bool success = false;
    switch (pick(11)) {
      case 0: {
        auto r = t.ns().mkdir(dir, name, 0755, kUser);
        if (r.ok() && dirs.size() < 12) dirs.push_back(r.value().ino);
        success = r.ok();
        break;
      }
      case 1: success = t.ns().mknod(dir, name, S_IFREG | 0644, 0, kUser).ok(); break;
      case 2: {
        auto target = t.ns().lookup(dir, name);
        if (target.ok()) success = t.ns().link(target.value().ino, dir2, name2).ok();
        break;
      }
      case 3: success = t.ns().unlink(dir, name, kUser).ok(); break;
      case 4: success = t.ns().rmdir(dir, name, kUser).ok(); break;
      case 5: success = t.ns().rename(dir, name, dir2, name2, uint32_t(pick(3)), kUser).ok(); break;
      case 6: {
        auto target = t.ns().lookup(dir, name);
        if (target.ok() && target.value().isRegular()) {
          CommitRequest r;
          r.ino = target.value().ino;
          uint64_t offset = uint64_t(pick(8)) * 50;
          char chunkSeed = char('A' + pick(6));
          if (pick(3) == 0) {
            r.extents.push_back(inlineExtent(offset, std::string(1 + pick(40), 'i')));
          } else {
            uint32_t chunkOffset = uint32_t(pick(100));
            r.extents.push_back(chunkExtent(offset, 1 + pick(100), chunkSeed, chunkOffset));
          }
          if (pick(2) == 0) r.newChunks.push_back(makeChunk(chunkSeed, 200, 120));
          r.newSize = r.extents[0].end();
          r.setSize = pick(4) == 0;
          auto result = commitWrite(t.node->store(), r);
          success = result.status.ok();
          if (!success) CHECK(result.status.code == Code::MISSING_CHUNKS);
        }
        break;
      }
      case 7: {
        auto target = t.ns().lookup(dir, name);
        if (target.ok() && target.value().isRegular()) {
          SetAttrRequest set;
          set.setSize = true;
          set.size = uint64_t(pick(500));
          success = t.ns().setattr(target.value().ino, set, kUser).ok();
        }
        break;
      }
      case 8: {
        auto target = t.ns().lookup(dir, name);
        if (target.ok()) success = t.node->sessions().open(session, target.value().ino, pick(4) == 0).ok();
        break;
      }
      case 9: {
        auto target = t.ns().lookup(dir, name);
        if (target.ok()) t.node->sessions().release(session, target.value().ino);
        break;
      }
      case 10: {
        if (pick(10) == 0) {
          // End the session (releasing everything, destroying orphans) and start another.
          REQUIRE(t.node->sessions().unmount(session).ok());
          session = t.node->sessions().mount(1, "fuzz").value();
        }
        if (pick(20) == 0) {
          WriteTxn wtx(t.node->store());
          std::string after;
          removeUnreferencedChunks(wtx, t.clock, 100, &after);
          REQUIRE(wtx.commit().ok());
        }
        break;
      }
    }
    ok += success;
    if (grouped && pick(3) == 0) REQUIRE(t.node->store().commitBatch().ok());
    // Directories removed by rmdir/rename drop out of the working set.
    std::vector<uint64_t> alive;
    for (uint64_t d : dirs) {
      auto attr = t.ns().getattr(d);
      if (attr.ok() && attr.value().nlink > 0) alive.push_back(d);
    }
    dirs = alive;
    if (step % 50 == 0) {
      REQUIRE(t.node->store().commitBatch().ok());
      checkInvariants(t);
    }
  }
  REQUIRE(t.node->sessions().unmount(session).ok());
  REQUIRE(t.node->store().commitBatch().ok());
  checkInvariants(t);
  CHECK(ok > 500);
}
