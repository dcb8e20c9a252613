#include "backend/meta/garbage_collector.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <kj/async-io.h>
#include <set>

#include "backend/common/rpc.h"
#include "backend/meta/chunk_table.h"
#include "backend/meta/extent_map.h"
#include "backend/meta/meta_service.h"
#include "backend/meta/tiering.h"
#include "tests/unit/meta/temp_node.h"

using namespace dfs;
using namespace dfs::meta;
using namespace dfs::meta::testing;

namespace {

const Caller kUser{1000, 1000};
constexpr int64_t kHour = int64_t(3600) * 1000000000;

CommitResult commitChunk(TempNode& t, uint64_t ino, char seed, bool offer) {
  CommitRequest r;
  r.ino = ino;
  r.extents.push_back(chunkExtent(0, 100, seed));
  if (offer) r.newChunks.push_back(makeChunk(seed, 100));
  r.newSize = 100;
  r.setSize = true;
  return commitWrite(t.node->store(), r);
}

// A storage node that keeps fragment ids in memory.
class FakeStorage final : public proto::Storage::Server {
 public:
  std::set<std::string> fragments;
  kj::ForkedPromise<void>* gate = nullptr;  // when set, deletes wait for it
  kj::Promise<void> delete_(DeleteContext context) override {
    if (gate != nullptr) {
      return gate->addBranch().then([this, context]() mutable { deleteNow(context); });
    }
    deleteNow(context);
    return kj::READY_NOW;
  }
  void deleteNow(DeleteContext& context) {
    uint32_t n = 0;
    for (auto id : context.getParams().getIds()) {
      n += fragments.erase(std::string(reinterpret_cast<const char*>(id.begin()), id.size()));
    }
    context.getResults().setDeleted(n);
  }
  kj::Promise<void> list(ListContext context) override {
    auto params = context.getParams();
    std::string after(reinterpret_cast<const char*>(params.getAfter().begin()), params.getAfter().size());
    std::vector<std::string> page;
    auto it = after.empty() ? fragments.begin() : fragments.upper_bound(after);
    for (; it != fragments.end() && page.size() < params.getMax(); ++it) page.push_back(*it);
    auto ids = context.getResults().initIds(unsigned(page.size()));
    for (size_t i = 0; i < page.size(); ++i) {
      ids.set(unsigned(i), capnp::Data::Reader(reinterpret_cast<const kj::byte*>(page[i].data()), page[i].size()));
    }
    context.getResults().setEof(it == fragments.end());
    return kj::READY_NOW;
  }
};

class FakeGateway final : public proto::StorageGateway::Server {
 public:
  explicit FakeGateway(proto::Storage::Client storage) : storage_(kj::mv(storage)) {}
  kj::Promise<void> hello(HelloContext context) override {
    context.getResults().setStorage(storage_);
    context.getResults().setServerVersion(1);
    return kj::READY_NOW;
  }

 private:
  proto::Storage::Client storage_;
};

// Reopens `t` with networking and starts six fake storage nodes (ids 1..6).
struct FakeCluster {
  std::vector<FakeStorage*> stores;
  std::vector<kj::Own<kj::ConnectionReceiver>> listeners;
  std::vector<kj::Promise<void>> servers;

  FakeCluster(kj::AsyncIoContext& io, TempNode& t) {
    t.node.reset();
    MetaConfig config;
    config.dataDir = t.dir;
    config.mapSize = size_t(512) << 20;
    config.durable = false;
    config.clock = [&t]() { return t.clock; };
    auto opened = MetaNode::open(config, &io.provider->getNetwork(), &io.provider->getTimer());
    REQUIRE(opened.ok());
    t.node = std::move(opened).value();
    for (int i = 1; i <= 6; ++i) {
      auto storage = kj::heap<FakeStorage>();
      stores.push_back(storage.get());
      proto::Storage::Client storageClient = kj::mv(storage);
      capnp::Capability::Client gateway = kj::heap<FakeGateway>(storageClient);
      auto listener = io.provider->getNetwork().parseAddress("127.0.0.1:0").wait(io.waitScope)->listen();
      std::string address = "127.0.0.1:" + std::to_string(listener->getPort());
      REQUIRE(t.node->cluster().registerNode("node" + std::to_string(i), address, 1 << 30, 0, 0, "").value() ==
              uint32_t(i));
      servers.push_back(serveRpc(*listener, gateway, "fake-storage").eagerlyEvaluate(nullptr));
      listeners.push_back(kj::mv(listener));
    }
  }
};

std::string fragment(char seed, int index, int generation = 0) {
  return std::string(32, seed) + char(index | (generation << 6));
}

}  // namespace

TEST_CASE("gc: refcount-0 chunks are collected only after the grace period") {
  kj::EventLoop loop;
  kj::WaitScope waitScope(loop);
  TempNode t;
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  REQUIRE(commitChunk(t, f.ino, 'A', true).status.ok());
  REQUIRE(t.ns().unlink(t.root(), "f", kUser).ok());
  CHECK(t.node->store().stats().unreferencedChunks == 1);

  auto early = t.node->gc().run(kHour).wait(waitScope);
  REQUIRE(early.ok());
  CHECK(early.value().chunksDeleted == 0);
  CHECK(findChunks(t.node->store(), {std::string(32, 'A')})[0]);

  t.clock += 2 * kHour;
  auto late = t.node->gc().run(kHour).wait(waitScope);
  REQUIRE(late.ok());
  CHECK(late.value().chunksDeleted == 1);
  CHECK(late.value().bytesFreed == 6 * 25);
  CHECK_FALSE(findChunks(t.node->store(), {std::string(32, 'A')})[0]);
  auto s = t.node->store().stats();
  CHECK(s.chunks == 0);
  CHECK(s.rawBytes == 0);
  CHECK(s.unreferencedChunks == 0);
}

TEST_CASE("gc race: chunk collected between findChunks and commitWrite -> MISSING_CHUNKS") {
  kj::EventLoop loop;
  kj::WaitScope waitScope(loop);
  TempNode t;
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  auto g = t.ns().mknod(t.root(), "g", S_IFREG | 0644, 0, kUser).value();
  REQUIRE(commitChunk(t, f.ino, 'A', true).status.ok());
  SetAttrRequest cut;
  cut.setSize = true;
  cut.size = 0;
  REQUIRE(t.ns().setattr(f.ino, cut, kUser).ok());  // A now unreferenced

  // Client: "does A exist?" -> yes (refcount 0 awaiting GC still counts), so it skips the upload.
  REQUIRE(findChunks(t.node->store(), {std::string(32, 'A'), std::string(32, 'Z')}) ==
          std::vector<bool>{true, false});
  // A commit now would revive A...
  // ...but GC gets there first.
  auto collected = t.node->gc().run(0).wait(waitScope);
  REQUIRE(collected.ok());
  CHECK(collected.value().chunksDeleted == 1);
  // The client's commit must fail, naming the chunk, and change nothing.
  auto failed = commitChunk(t, g.ino, 'A', false);
  CHECK(failed.status.code == Code::MISSING_CHUNKS);
  REQUIRE(failed.missing == std::vector<std::string>{std::string(32, 'A')});
  CHECK(t.ns().getattr(g.ino).value().dataVersion == 0);
  CHECK(t.node->store().stats().chunks == 0);
  // Re-upload and retry with the chunk offered: succeeds.
  auto retried = commitChunk(t, g.ino, 'A', true);
  REQUIRE(retried.status.ok());
  CHECK(t.node->store().stats().chunks == 1);
  CHECK(t.node->store().stats().uniqueBytes == 100);

  // A chunk with refcount 0 that has not been collected yet is revived by a commit.
  REQUIRE(t.ns().setattr(g.ino, cut, kUser).ok());
  CHECK(t.node->store().stats().unreferencedChunks == 1);
  REQUIRE(commitChunk(t, g.ino, 'A', false).status.ok());
  CHECK(t.node->store().stats().unreferencedChunks == 0);
  t.clock += 2 * kHour;
  CHECK(t.node->gc().run(kHour).wait(waitScope).value().chunksDeleted == 0);
}

TEST_CASE("gc: deletes fragments on storage nodes, and orphan fragments") {
  auto io = kj::setupAsyncIo();
  TempNode t;
  FakeCluster cluster(io, t);
  auto& stores = cluster.stores;
  // Chunk A (placement: fragment i on node i+1) and B stay referenced; A is then freed.
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  auto g = t.ns().mknod(t.root(), "g", S_IFREG | 0644, 0, kUser).value();
  REQUIRE(commitChunk(t, f.ino, 'A', true).status.ok());
  REQUIRE(commitChunk(t, g.ino, 'B', true).status.ok());
  for (int i = 0; i < 6; ++i) {
    stores[i]->fragments.insert(fragment('A', i));
    stores[i]->fragments.insert(fragment('B', i));
  }
  stores[0]->fragments.insert(fragment('B', 3));  // B's fragment 3 in the wrong place
  stores[2]->fragments.insert(fragment('Q', 0));  // never committed (client died)
  REQUIRE(t.ns().unlink(t.root(), "f", kUser).ok());

  auto result = t.node->gc().run(0).wait(io.waitScope);
  REQUIRE(result.ok());
  CHECK(result.value().chunksDeleted == 1);
  CHECK(result.value().fragmentsDeleted == 6);
  CHECK(result.value().orphanFragmentsDeleted == 2);
  for (int i = 0; i < 6; ++i) {
    CHECK(stores[i]->fragments == std::set<std::string>{fragment('B', i)});
  }
  CHECK_FALSE(t.node->gc().running());
}

TEST_CASE("gc: a tiered chunk's old generation goes as orphans, its current one stays") {
  auto io = kj::setupAsyncIo();
  TempNode t;
  FakeCluster cluster(io, t);
  auto& stores = cluster.stores;
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  REQUIRE(commitChunk(t, f.ino, 'A', true).status.ok());
  for (int i = 0; i < 6; ++i) stores[i]->fragments.insert(fragment('A', i));
  // dfsctl tier: new fragments under generation 1, then the record swap.
  ChunkRecord old;
  {
    LmdbTxn txn(t.node->store().env(), LmdbTxn::Mode::kRead);
    old = *tryLoadChunk(txn, t.node->store().dbs(), std::string(32, 'A'));
  }
  ChunkRecord fresh = old;
  fresh.storedSize = 60;
  fresh.compression = 1;
  fresh.fragmentSize = 16;
  fresh.generation = 1;
  for (int i = 0; i < 6; ++i) stores[i]->fragments.insert(fragment('A', i, 1));
  {
    WriteTxn wtx(t.node->store());
    REQUIRE(retierChunk(wtx, old, fresh, 19).ok());
    REQUIRE(wtx.commit().ok());
  }
  auto result = t.node->gc().run(0).wait(io.waitScope);
  REQUIRE(result.ok());
  CHECK(result.value().orphanFragmentsDeleted == 6);
  for (int i = 0; i < 6; ++i) CHECK(stores[i]->fragments == std::set<std::string>{fragment('A', i, 1)});

  // Collecting the tiered chunk deletes the fragments of its current generation.
  REQUIRE(t.ns().unlink(t.root(), "f", kUser).ok());
  auto collected = t.node->gc().run(0).wait(io.waitScope);
  REQUIRE(collected.ok());
  CHECK(collected.value().chunksDeleted == 1);
  CHECK(collected.value().fragmentsDeleted == 6);
  for (int i = 0; i < 6; ++i) CHECK(stores[i]->fragments.empty());
}

TEST_CASE("gc race: answers about chunks being deleted wait for the deletion") {
  auto io = kj::setupAsyncIo();
  TempNode t;
  FakeCluster cluster(io, t);
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  REQUIRE(commitChunk(t, f.ino, 'A', true).status.ok());
  for (int i = 0; i < 6; ++i) cluster.stores[i]->fragments.insert(fragment('A', i));
  REQUIRE(t.ns().unlink(t.root(), "f", kUser).ok());

  auto gate = kj::newPromiseAndFulfiller<void>();
  auto forked = gate.promise.fork();
  for (auto* store : cluster.stores) store->gate = &forked;
  auto run = t.node->gc().run(0);
  io.waitScope.poll();
  REQUIRE(t.node->gc().deleting(std::string(32, 'A')));

  proto::Meta::Client meta = kj::heap<MetaImpl>(*t.node);
  auto find = meta.findChunksRequest();
  std::string id(32, 'A');
  find.initIds(1).set(0, capnp::Data::Reader(reinterpret_cast<const kj::byte*>(id.data()), id.size()));
  auto answer = find.send();
  for (int i = 0; i < 10; ++i) io.waitScope.poll();
  CHECK_FALSE(answer.poll(io.waitScope));  // held back while the fragments are being deleted

  gate.fulfiller->fulfill();
  auto answered = answer.wait(io.waitScope);
  auto present = answered.getPresent();
  REQUIRE(present.size() == 1);
  CHECK_FALSE(present[0]);
  auto result = run.wait(io.waitScope);
  REQUIRE(result.ok());
  CHECK(result.value().fragmentsDeleted == 6);
  CHECK_FALSE(t.node->gc().deleting(id));
}

TEST_CASE("gc: a down node is skipped; its fragments go as orphans once it is back") {
  auto io = kj::setupAsyncIo();
  TempNode t;
  FakeCluster cluster(io, t);
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  REQUIRE(commitChunk(t, f.ino, 'A', true).status.ok());
  for (int i = 0; i < 6; ++i) cluster.stores[i]->fragments.insert(fragment('A', i));
  REQUIRE(t.ns().unlink(t.root(), "f", kUser).ok());
  // Node 6 stops heartbeating.
  t.clock += int64_t(6) * 1000000000;
  auto nodes = t.node->cluster().nodes();
  for (int i = 0; i < 5; ++i) {
    REQUIRE(t.node->cluster().registerNode(nodes[i].record.uuid, nodes[i].record.address, 1 << 30, 0, 0, "").ok());
  }
  auto first = t.node->gc().run(0).wait(io.waitScope);
  REQUIRE(first.ok());
  CHECK(first.value().chunksDeleted == 1);
  CHECK(first.value().fragmentsDeleted == 5);
  CHECK(cluster.stores[5]->fragments.size() == 1);
  // Back up: the orphan phase removes what is left.
  REQUIRE(t.node->cluster().registerNode(nodes[5].record.uuid, nodes[5].record.address, 1 << 30, 0, 0, "").ok());
  auto second = t.node->gc().run(0).wait(io.waitScope);
  REQUIRE(second.ok());
  CHECK(second.value().orphanFragmentsDeleted == 1);
  CHECK(cluster.stores[5]->fragments.empty());
}
