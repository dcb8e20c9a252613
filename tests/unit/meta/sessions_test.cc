#include "backend/meta/sessions.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "backend/meta/extent_map.h"
#include "tests/unit/meta/temp_node.h"

using namespace dfs;
using namespace dfs::meta;
using namespace dfs::meta::testing;

namespace {
const Caller kUser{1000, 1000};
constexpr int64_t kSecond = 1000000000;
}  // namespace

TEST_CASE("sessions: an unlinked file stays while open, then goes with its data") {
  TempNode t;
  auto& sessions = t.node->sessions();
  uint64_t s1 = sessions.mount(1, "test").value();
  uint64_t s2 = sessions.mount(1, "test2").value();
  auto f = sessions.create(s1, t.root(), "f", 0644, true, kUser);
  REQUIRE(f.ok());
  CHECK(sessions.create(s1, t.root(), "f", 0644, true, kUser).status().code == Code::EXISTS);
  // Non-exclusive create of an existing file opens it.
  auto again = sessions.create(s2, t.root(), "f", 0644, false, kUser);
  REQUIRE(again.ok());
  CHECK(again.value().ino == f.value().ino);
  CommitRequest write;
  write.ino = f.value().ino;
  write.extents.push_back(inlineExtent(0, "data"));
  write.newSize = 4;
  REQUIRE(commitWrite(t.node->store(), write).status.ok());

  REQUIRE(t.ns().unlink(t.root(), "f", kUser).ok());
  auto orphan = t.ns().getattr(f.value().ino);
  REQUIRE(orphan.ok());
  CHECK(orphan.value().nlink == 0);
  CHECK(t.node->store().stats().logicalBytes == 4);
  sessions.release(s1, f.value().ino);
  CHECK(t.ns().getattr(f.value().ino).ok());  // s2 still has it
  sessions.release(s2, f.value().ino);
  CHECK(t.ns().getattr(f.value().ino).status().code == Code::STALE);
  CHECK(t.node->store().stats().logicalBytes == 0);
  CHECK(t.node->store().stats().files == 0);
}

TEST_CASE("sessions: open counts, rename over an open file, expiry releases") {
  TempNode t;
  auto& sessions = t.node->sessions();
  uint64_t s = sessions.mount(1, "c").value();
  auto a = t.ns().mknod(t.root(), "a", S_IFREG | 0644, 0, kUser).value();
  auto b = t.ns().mknod(t.root(), "b", S_IFREG | 0644, 0, kUser).value();
  REQUIRE(sessions.open(s, b.ino, false).ok());
  REQUIRE(sessions.open(s, b.ino, false).ok());
  REQUIRE(t.ns().rename(t.root(), "a", t.root(), "b", 0, kUser).ok());
  CHECK(t.ns().getattr(b.ino).value().nlink == 0);
  sessions.release(s, b.ino);
  CHECK(t.ns().getattr(b.ino).ok());  // opened twice
  // The lease runs out: the session ends and the orphan goes.
  t.clock += 31 * kSecond;
  CHECK(sessions.keepalive(s).code == Code::STALE);
  CHECK(sessions.expire() == 1);
  CHECK(t.ns().getattr(b.ino).status().code == Code::STALE);
  CHECK(sessions.open(s, a.ino, false).status().code == Code::STALE);
  uint64_t s2 = sessions.mount(1, "c").value();
  t.clock += 20 * kSecond;
  REQUIRE(sessions.keepalive(s2).ok());
  t.clock += 20 * kSecond;
  CHECK(sessions.expire() == 0);
  REQUIRE(sessions.unmount(s2).ok());
  CHECK(sessions.keepalive(s2).code == Code::STALE);
}

TEST_CASE("sessions: open with truncate, orphans and sessions across restart") {
  TempNode t;
  auto& sessions = t.node->sessions();
  uint64_t s = sessions.mount(1, "c").value();
  auto f = sessions.create(s, t.root(), "f", 0644, false, kUser).value();
  CommitRequest write;
  write.ino = f.ino;
  write.extents.push_back(inlineExtent(0, "0123456789"));
  write.newSize = 10;
  REQUIRE(commitWrite(t.node->store(), write).status.ok());
  auto reopened = sessions.open(s, f.ino, true);
  REQUIRE(reopened.ok());
  CHECK(reopened.value().size == 0);
  CHECK(reopened.value().storedBytes == 0);
  CHECK(reopened.value().dataVersion == 2);
  REQUIRE(t.ns().unlink(t.root(), "f", kUser).ok());
  // After a restart the session continues (fresh lease) and still holds the orphan.
  t.reopen();
  CHECK(t.ns().getattr(f.ino).ok());
  REQUIRE(t.node->sessions().keepalive(s).ok());
  t.node->sessions().release(s, f.ino);
  t.node->sessions().release(s, f.ino);
  CHECK(t.ns().getattr(f.ino).status().code == Code::STALE);
}

TEST_CASE("volumes: creation needs enough storage nodes; mount by name") {
  TempNode t;
  auto& cluster = t.node->cluster();
  for (int i = 1; i <= 5; ++i) {
    auto id = cluster.registerNode("uuid-" + std::to_string(i), "127.0.0.1:" + std::to_string(7100 + i),
                                   uint64_t(10) << 30, uint64_t(1) << 30, 0, "");
    REQUIRE(id.ok());
    CHECK(id.value() == uint32_t(i));
  }
  VolumeRecord spec;
  spec.name = "photos";
  auto refused = t.node->volumes().create(spec, cluster.upCount());
  CHECK(refused.status().code == Code::UNAVAILABLE);
  CHECK(refused.status().message == "volume needs 6 storage nodes (4+2), only 5 are up");
  spec.ecK = 0;
  CHECK(t.node->volumes().create(spec, cluster.upCount()).status().code == Code::INVALID);
  spec.ecK = 3;
  spec.ecM = 17;
  CHECK(t.node->volumes().create(spec, cluster.upCount()).status().code == Code::INVALID);
  spec.ecM = 2;
  spec.name = "bad/name";
  CHECK(t.node->volumes().create(spec, cluster.upCount()).status().code == Code::INVALID);
  spec.name = "photos";
  auto created = t.node->volumes().create(spec, cluster.upCount());
  REQUIRE(created.ok());
  CHECK(created.value().chunkAvg == 65536);
  CHECK(t.node->volumes().create(spec, cluster.upCount()).status().code == Code::EXISTS);
  auto root = t.ns().getattr(created.value().rootIno).value();
  CHECK(root.mode == (S_IFDIR | 0755));
  CHECK(root.uid == 0);
  CHECK(root.volume == created.value().id);
  CHECK(t.node->volumes().find("nope").status().message == "no such volume 'nope'");
  // Cross-volume rename and link are refused.
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  CHECK(t.ns().rename(t.root(), "f", root.ino, "f", 0, kUser).code == Code::CROSS_DEVICE);
  CHECK(t.ns().link(f.ino, root.ino, "f").status().code == Code::CROSS_DEVICE);
  CHECK(t.node->volumes().list().size() == 2);
}

TEST_CASE("cluster map: node ids, up/suspect/down, epoch") {
  TempNode t;
  auto& cluster = t.node->cluster();
  uint64_t e0 = cluster.epoch();
  auto a = cluster.registerNode("a", "127.0.0.1:1", uint64_t(5) << 30, 0, 0, "rack1").value();
  auto b = cluster.registerNode("b", "127.0.0.1:2", 1, 0, 0, "").value();
  CHECK(a == 1);
  CHECK(b == 2);
  CHECK(cluster.registerNode("a", "127.0.0.1:1", uint64_t(5) << 30, 0, 0, "rack1").value() == 1);
  uint64_t e1 = cluster.epoch();
  CHECK(e1 > e0);
  CHECK(cluster.upCount() == 2);
  t.clock += 3500000000;  // 3.5 s without heartbeat
  cluster.registerNode("b", "127.0.0.1:2", 1, 0, 0, "");
  auto nodes = cluster.nodes();
  CHECK(nodes[0].state == NodeState::kSuspect);
  CHECK(nodes[0].weight == 5);
  CHECK(nodes[1].state == NodeState::kUp);
  CHECK(nodes[1].weight == 1);
  CHECK(cluster.epoch() > e1);
  t.clock += 2000000000;
  CHECK(cluster.nodes()[0].state == NodeState::kDown);
  CHECK(cluster.upCount() == 1);
  CHECK(cluster.registerNode("", "127.0.0.1:2", 1, 0, 0, "").status().code == Code::INVALID);
  CHECK(cluster.registerNode("c", "nocolon", 1, 0, 0, "").status().code == Code::INVALID);
  // Ids persist; after a restart nodes are down until they heartbeat.
  t.reopen();
  auto& again = t.node->cluster();
  CHECK(again.nodes().size() == 2);
  CHECK(again.upCount() == 0);
  CHECK(again.registerNode("b", "127.0.0.1:2", 1, 0, 0, "").value() == 2);
  CHECK(again.registerNode("new", "127.0.0.1:3", 1, 0, 0, "").value() == 3);
  CHECK(again.upCount() == 2);
}

TEST_CASE("group commit: operations share one transaction, visible once committed") {
  TempNode t;
  int scheduled = 0;
  t.node->store().enableGroupCommit([&scheduled]() { ++scheduled; });
  auto& store = t.node->store();
  auto a = t.ns().mknod(t.root(), "a", S_IFREG | 0644, 0, kUser);
  auto b = t.ns().mknod(t.root(), "b", S_IFREG | 0644, 0, kUser);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(scheduled == 1);
  CHECK(store.batchOpen());
  // An expected failure writes nothing and does not spoil the batch.
  CHECK(t.ns().mknod(t.root(), "a", S_IFREG | 0644, 0, kUser).status().code == Code::EXISTS);
  // Not visible to readers (other clients) before the commit.
  CHECK(t.ns().lookup(t.root(), "a").status().code == Code::NOT_FOUND);
  uint64_t inodes = store.stats().inodes;
  Status seen = Status::error(Code::IO, "not called");
  store.whenCommitted([&seen](const Status& s) { seen = s; });
  REQUIRE(store.commitBatch().ok());
  CHECK(seen.ok());
  CHECK(t.ns().lookup(t.root(), "a").value().ino == a.value().ino);
  CHECK(t.ns().lookup(t.root(), "b").value().ino == b.value().ino);
  CHECK(store.stats().inodes == inodes + 2);

  // An operation that fails after writing poisons its batch: nothing of it commits.
  auto c = t.ns().mknod(t.root(), "c", S_IFREG | 0644, 0, kUser);
  REQUIRE(c.ok());
  {
    WriteTxn broken(store);
    broken.put(store.dbs().counters, "junk", "x");
  }  // destroyed without commit
  Status outcome;
  store.whenCommitted([&outcome](const Status& s) { outcome = s; });
  CHECK_FALSE(store.commitBatch().ok());
  CHECK_FALSE(outcome.ok());
  CHECK(t.ns().lookup(t.root(), "c").status().code == Code::NOT_FOUND);
  CHECK(store.stats().inodes == inodes + 2);
  CHECK(scheduled == 2);
}
