// Invalidation callbacks, flush recalls (Recalls) and concurrent-writer
// conflicts over real RPC connections: two sessions (two connections) on one
// volume.
#include "backend/meta/invalidations.h"

#include <algorithm>

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include "backend/common/rpc.h"
#include "backend/meta/extent_map.h"
#include "backend/meta/meta_service.h"
#include "tests/unit/meta/served_node.h"

using namespace dfs;
using namespace dfs::meta;
using namespace dfs::meta::testing;

namespace {

capnp::Data::Reader data(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

struct Received {
  std::vector<uint64_t> inodes;
  std::vector<std::pair<uint64_t, std::string>> entries;
  int calls = 0;
  bool fail = false;
  std::vector<uint64_t> flushed;  // ClientCallback.flush requests
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> flushDone;  // set: hold the answer
  bool has(uint64_t ino) const {
    return std::find(inodes.begin(), inodes.end(), ino) != inodes.end();
  }
  bool hasEntry(uint64_t parent, const std::string& name) const {
    return std::find(entries.begin(), entries.end(), std::make_pair(parent, name)) != entries.end();
  }
};

class RecordingCallback final : public proto::ClientCallback::Server {
 public:
  explicit RecordingCallback(Received& out) : out_(out) {}
  kj::Promise<void> invalidate(InvalidateContext context) override {
    ++out_.calls;
    if (out_.fail) return KJ_EXCEPTION(DISCONNECTED, "client gone");
    for (uint64_t ino : context.getParams().getInodes()) out_.inodes.push_back(ino);
    for (auto e : context.getParams().getEntries()) {
      out_.entries.emplace_back(e.getParent(), std::string(reinterpret_cast<const char*>(
                                                               e.getName().begin()),
                                                           e.getName().size()));
    }
    return kj::READY_NOW;
  }
  kj::Promise<void> flush(FlushContext context) override {
    for (uint64_t ino : context.getParams().getInodes()) out_.flushed.push_back(ino);
    if (out_.fail) return KJ_EXCEPTION(DISCONNECTED, "client gone");
    auto paf = kj::newPromiseAndFulfiller<void>();
    out_.flushDone = kj::mv(paf.fulfiller);
    return kj::mv(paf.promise);
  }

 private:
  Received& out_;
};

struct Mounted {
  kj::Own<RpcConnection> connection;
  proto::Meta::Client meta = nullptr;
  uint64_t session = 0;
  uint64_t root = 0;
};

Mounted mountOn(kj::AsyncIoContext& io, const std::string& address, Received* received) {
  Mounted m;
  m.connection = connectRpc(io.provider->getNetwork(), address).wait(io.waitScope);
  auto hello = m.connection->bootstrapAs<proto::MetaGateway>().helloRequest();
  hello.setVersion(proto::PROTOCOL_VERSION);
  hello.setPeer("test");
  m.meta = hello.send().wait(io.waitScope).getMeta();
  auto mount = m.meta.mountRequest();
  mount.setClient("test");
  if (received) mount.setCallback(kj::heap<RecordingCallback>(*received));
  auto r = mount.send().wait(io.waitScope);
  REQUIRE(r.getStatus().getCode() == proto::Code::OK);
  m.session = r.getSessionId();
  m.root = r.getVolume().getRootIno();
  return m;
}

// Lets queued invalidations (sent at the next loop turn without a timer) arrive.
void settle(kj::AsyncIoContext& io) {
  for (int i = 0; i < 20; ++i) {
    kj::evalLater([] {}).wait(io.waitScope);
    io.provider->getTimer().afterDelay(1 * kj::MILLISECONDS).wait(io.waitScope);
  }
}

}  // namespace

TEST_CASE("invalidations: other sessions on the volume hear of committed changes, the author does not") {
  auto io = kj::setupAsyncIo();
  ServedNode served(io);
  TempNode& t = served.t;
  const std::string& address = served.address;

  Received gotA, gotB;
  Mounted a = mountOn(io, address, &gotA);
  Mounted b = mountOn(io, address, &gotB);
  Mounted v1 = mountOn(io, address, nullptr);  // a client without callback still works
  CHECK(t.node->invalidations().targets() == 2);

  auto create = a.meta.createRequest();
  create.setSessionId(a.session);
  create.setParent(a.root);
  create.setName(data("f"));
  create.setMode(0644);
  auto created = create.send().wait(io.waitScope);
  REQUIRE(created.getStatus().getCode() == proto::Code::OK);
  uint64_t ino = created.getAttr().getIno();
  settle(io);
  CHECK(gotB.hasEntry(a.root, "f"));
  CHECK(gotB.has(a.root));
  CHECK(gotA.calls == 0);

  // setattr by the v1 client reaches both A and B.
  auto setattr = v1.meta.setattrRequest();
  setattr.setIno(ino);
  setattr.initSet().setMode(0600);
  setattr.getSet().setSetMode(true);
  REQUIRE(setattr.send().wait(io.waitScope).getStatus().getCode() == proto::Code::OK);
  settle(io);
  CHECK(gotA.has(ino));
  CHECK(gotB.has(ino));

  // Concurrent writers: A commits at HLC 2000 based on version v; B, based on
  // the same v, commits later with an OLDER HLC: B's overlapping bytes are
  // dropped, the conflict is counted and A's bytes stay.
  uint64_t base = created.getAttr().getDataVersion();
  auto commitAs = [&](Mounted& m, const std::string& bytes, uint64_t hlc) {
    auto commit = m.meta.commitWriteRequest();
    commit.setIno(ino);
    auto extents = commit.initExtents(1);
    extents[0].setFileOffset(0);
    extents[0].setLength(bytes.size());
    extents[0].setInline(data(bytes));
    commit.setNewSize(bytes.size());
    commit.setHlc(hlc);
    commit.setBaseVersion(base);
    return commit.send().wait(io.waitScope);
  };
  gotB = Received();
  auto first = commitAs(a, "AAAA", 2000);
  REQUIRE(first.getStatus().getCode() == proto::Code::OK);
  CHECK(first.getHlc() > 2000);  // the server's clock merged the client's
  auto second = commitAs(b, "BBBB", 1500);
  REQUIRE(second.getStatus().getCode() == proto::Code::OK);
  auto stats = a.meta.statsRequest().send().wait(io.waitScope);
  CHECK(stats.getStats().getConflicts() == 1);
  auto extents = getExtents(t.node->store(), ino, 0, 100).value().extents;
  REQUIRE(extents.size() == 1);
  CHECK(extents[0].inlineData == "AAAA");
  // A newer writer overwrites entirely.
  auto third = commitAs(b, "CCCC", 3000);
  REQUIRE(third.getStatus().getCode() == proto::Code::OK);
  extents = getExtents(t.node->store(), ino, 0, 100).value().extents;
  REQUIRE(extents.size() == 1);
  CHECK(extents[0].inlineData == "CCCC");
  settle(io);
  CHECK(gotB.calls == 1);  // A's commit, coalesced; B's own commits are not sent back to B
  CHECK(gotB.has(ino));

  // A dead callback is dropped; mutations keep working.
  gotB.fail = true;
  auto mk = a.meta.mkdirRequest();
  mk.setParent(a.root);
  mk.setName(data("d"));
  mk.setMode(0755);
  REQUIRE(mk.send().wait(io.waitScope).getStatus().getCode() == proto::Code::OK);
  settle(io);
  CHECK(t.node->invalidations().targets() == 1);
  auto mk2 = a.meta.mkdirRequest();
  mk2.setParent(a.root);
  mk2.setName(data("e"));
  mk2.setMode(0755);
  REQUIRE(mk2.send().wait(io.waitScope).getStatus().getCode() == proto::Code::OK);

  // Unmount detaches.
  auto um = a.meta.unmountRequest();
  um.setSessionId(a.session);
  um.send().wait(io.waitScope);
  CHECK(t.node->invalidations().targets() == 0);
}

TEST_CASE("recalls: an open waits until the file's writers elsewhere have flushed") {
  auto io = kj::setupAsyncIo();
  ServedNode served(io);
  TempNode& t = served.t;
  const std::string& address = served.address;
  Received gotA, gotB;
  Mounted a = mountOn(io, address, &gotA);
  Mounted b = mountOn(io, address, &gotB);

  auto create = a.meta.createRequest();
  create.setSessionId(a.session);
  create.setParent(a.root);
  create.setName(data("w"));
  create.setMode(0644);
  create.setExclusive(true);
  uint64_t ino = create.send().wait(io.waitScope).getAttr().getIno();
  CHECK(t.node->recalls().writers(ino) == 1);

  auto openBy = [&](Mounted& m, bool write) {
    auto open = m.meta.openRequest();
    open.setSessionId(m.session);
    open.setIno(ino);
    open.setWrite(write);
    return open.send();
  };
  // A's own open asks nobody.
  REQUIRE(openBy(a, false).wait(io.waitScope).getStatus().getCode() == proto::Code::OK);
  CHECK(gotA.flushed.empty());

  // B's open is answered only after A answered the flush request.
  bool answered = false;
  auto pending = openBy(b, false).then([&](auto r) {
    answered = true;
    return r.getStatus().getCode();
  }).eagerlyEvaluate(nullptr);
  settle(io);
  REQUIRE(gotA.flushed == std::vector<uint64_t>{ino});
  CHECK_FALSE(answered);
  KJ_ASSERT_NONNULL(gotA.flushDone)->fulfill();
  CHECK(pending.wait(io.waitScope) == proto::Code::OK);
  CHECK(answered);
  CHECK(gotB.flushed.empty());

  // So does B's lookup: the size B's kernel caches must be the committed one.
  answered = false;
  auto lookup = b.meta.lookupRequest();
  lookup.setParent(b.root);
  lookup.setName(data("w"));
  auto looked = lookup.send().then([&](auto r) {
    answered = true;
    return r.getStatus().getCode();
  }).eagerlyEvaluate(nullptr);
  settle(io);
  REQUIRE(gotA.flushed.size() == 2);
  CHECK_FALSE(answered);
  KJ_ASSERT_NONNULL(gotA.flushDone)->fulfill();
  CHECK(looked.wait(io.waitScope) == proto::Code::OK);

  // A releases both handles: no longer a writer, nobody is asked.
  for (int i = 0; i < 2; ++i) {
    auto release = a.meta.releaseRequest();
    release.setSessionId(a.session);
    release.setIno(ino);
    release.send().wait(io.waitScope);
  }
  CHECK(t.node->recalls().writers(ino) == 0);
  REQUIRE(openBy(b, true).wait(io.waitScope).getStatus().getCode() == proto::Code::OK);
  CHECK(gotA.flushed.size() == 2);
  CHECK(t.node->recalls().writers(ino) == 1);  // now B writes

  // A writer whose callback fails does not block the opener.
  gotB.fail = true;
  REQUIRE(openBy(a, false).wait(io.waitScope).getStatus().getCode() == proto::Code::OK);
  CHECK(gotB.flushed == std::vector<uint64_t>{ino});

  // An unmounted session is no writer any more.
  auto unmount = b.meta.unmountRequest();
  unmount.setSessionId(b.session);
  unmount.send().wait(io.waitScope);
  CHECK(t.node->recalls().writers(ino) == 0);
}

namespace {

// One NamespaceOp of an applyOps request (OpId client 77, `seq`).
proto::NamespaceOp::Builder opAt(capnp::List<proto::NamespaceOp>::Builder ops, unsigned i,
                                 uint64_t seq, int64_t timeNs) {
  auto op = ops[i];
  op.initOp().setClient(77);
  op.getOp().setSeq(seq);
  op.setTimeNs(timeNs);
  return op;
}

}  // namespace

TEST_CASE("absorbed ops: reserved inodes, applied in order once, delegation recalled") {
  auto io = kj::setupAsyncIo();
  ServedNode served(io);
  TempNode& t = served.t;
  Received gotA, gotB;
  Mounted a = mountOn(io, served.address, &gotA);
  Mounted b = mountOn(io, served.address, &gotB);

  auto mkdir = a.meta.mkdirDelegatedRequest();
  mkdir.setSessionId(a.session);
  mkdir.setParent(a.root);
  mkdir.setName(data("d"));
  mkdir.setMode(0755);
  auto made = mkdir.send().wait(io.waitScope);
  REQUIRE(made.getStatus().getCode() == proto::Code::OK);
  const uint64_t dir = made.getAttr().getIno();
  CHECK(t.node->recalls().delegated(dir));

  auto reserve = a.meta.reserveInodesRequest();
  reserve.setSessionId(a.session);
  reserve.setCount(4);
  auto reserved = reserve.send().wait(io.waitScope);
  REQUIRE(reserved.getStatus().getCode() == proto::Code::OK);
  const uint64_t first = reserved.getFirst();
  CHECK(first > dir);
  auto none = a.meta.reserveInodesRequest();
  none.setSessionId(a.session);
  none.setCount(0);
  CHECK(none.send().wait(io.waitScope).getStatus().getCode() == proto::Code::INVALID);

  const int64_t when = int64_t(1700000000) * 1000000000 + 123;
  auto apply = [&](bool withBad) {
    auto request = a.meta.applyOpsRequest();
    request.setSessionId(a.session);
    auto ops = request.initOps(withBad ? 6 : 4);
    auto create = opAt(ops, 0, 1, when).initCreate();
    create.setParent(dir);
    create.setName(data("f"));
    create.setMode(S_IFREG | 0640);
    create.setIno(first);
    create.setOpen(true);
    auto chmod = opAt(ops, 1, 2, when + 1).initSetattr();
    chmod.setIno(dir);
    chmod.initSet().setMode(0700);
    chmod.getSet().setSetMode(true);
    chmod.getSet().setCtimeNs(when + 1);
    auto sub = opAt(ops, 2, 3, when + 2).initCreate();
    sub.setParent(dir);
    sub.setName(data("sub"));
    sub.setMode(S_IFDIR | 0755);
    sub.setIno(first + 1);
    auto rename = opAt(ops, 3, 4, when + 3).initRename();
    rename.setParent(dir);
    rename.setName(data("f"));
    rename.setNewParent(dir);
    rename.setNewName(data("g"));
    if (withBad) {
      auto unreserved = opAt(ops, 4, 5, when).initCreate();
      unreserved.setParent(dir);
      unreserved.setName(data("x"));
      unreserved.setMode(S_IFREG | 0644);
      unreserved.setIno(first + 100000);
      auto inUse = opAt(ops, 5, 6, when).initCreate();
      inUse.setParent(dir);
      inUse.setName(data("y"));
      inUse.setMode(S_IFREG | 0644);
      inUse.setIno(first);
    }
    std::vector<proto::Code> codes;
    // The response must outlive the loop (a range-for does not extend it).
    auto response = request.send().wait(io.waitScope);
    for (auto s : response.getStatuses()) codes.push_back(s.getCode());
    return codes;
  };
  using C = proto::Code;
  CHECK(apply(false) == std::vector<C>{C::OK, C::OK, C::OK, C::OK});
  // Retried (a lost answer, a replayed journal): stored statuses, no second effect.
  CHECK(apply(true) == std::vector<C>{C::OK, C::OK, C::OK, C::OK, C::INVALID, C::INVALID});

  auto file = t.node->names().lookup(dir, "g");
  REQUIRE(file.ok());
  CHECK(file.value().ino == first);
  CHECK(file.value().mode == (S_IFREG | 0640));
  CHECK(file.value().ctimeNs >= when);
  CHECK_FALSE(t.node->names().lookup(dir, "f").ok());
  auto d = t.node->names().getattr(dir);
  REQUIRE(d.ok());
  CHECK((d.value().mode & 07777) == 0700);
  CHECK(d.value().nlink == 3);
  CHECK(d.value().mtimeNs == when + 3);  // the rename's time, from the client
  CHECK(t.node->recalls().delegated(first + 1));  // an absorbed mkdir is delegated too
  CHECK(t.node->recalls().writers(first) == 1);   // created open

  // B's lookup inside the delegated directory waits until A sent what it holds.
  bool answered = false;
  auto lookup = b.meta.lookupRequest();
  lookup.setParent(dir);
  lookup.setName(data("g"));
  auto looked = lookup.send().then([&](auto r) {
    answered = true;
    return r.getStatus().getCode();
  }).eagerlyEvaluate(nullptr);
  settle(io);
  REQUIRE(gotA.flushed == std::vector<uint64_t>{dir});
  CHECK_FALSE(answered);
  KJ_ASSERT_NONNULL(gotA.flushDone)->fulfill();
  settle(io);
  CHECK_FALSE(t.node->recalls().delegated(dir));  // the delegation ended with the answer
  // The file itself is open for writing by A (created open): it is flushed too.
  REQUIRE(gotA.flushed == std::vector<uint64_t>{dir, first});
  CHECK_FALSE(answered);
  KJ_ASSERT_NONNULL(gotA.flushDone)->fulfill();
  CHECK(looked.wait(io.waitScope) == proto::Code::OK);
  // The directory asks nobody the second time.
  auto again = b.meta.getattrRequest();
  again.setIno(dir);
  CHECK(again.send().wait(io.waitScope).getStatus().getCode() == proto::Code::OK);
  CHECK(gotA.flushed.size() == 2);

  // A queued release ends the open.
  auto request = a.meta.applyOpsRequest();
  request.setSessionId(a.session);
  request.initOps(1)[0].setRelease(first);
  CHECK(request.send().wait(io.waitScope).getStatuses()[0].getCode() == proto::Code::OK);
  CHECK(t.node->recalls().writers(first) == 0);

  // Absorbed opens: applied once even when sent again, each ended by a release;
  // an open handle keeps the unlinked file.
  auto send = [&](auto fill) {
    auto req = a.meta.applyOpsRequest();
    req.setSessionId(a.session);
    fill(req.initOps(1));
    auto response = req.send().wait(io.waitScope);
    return response.getStatuses()[0].getCode();
  };
  auto openOp = [&](uint64_t seq, uint64_t ino, bool write) {
    return send([&](auto ops) {
      auto o = opAt(ops, 0, seq, when).initOpen();
      o.setIno(ino);
      o.setWrite(write);
    });
  };
  auto release = [&]() { return send([&](auto ops) { ops[0].setRelease(first); }); };
  CHECK(openOp(10, first, true) == C::OK);
  CHECK(openOp(10, first, true) == C::OK);  // a retry: its stored status
  CHECK(t.node->recalls().writers(first) == 1);
  CHECK(openOp(11, first, false) == C::OK);
  CHECK(openOp(12, first + 3, false) == C::STALE);  // reserved, never made
  CHECK(send([&](auto ops) {
          auto e = opAt(ops, 0, 13, when + 4).initUnlink();
          e.setParent(dir);
          e.setName(data("g"));
        }) == C::OK);
  CHECK(t.node->names().getattr(first).ok());  // open twice: kept
  CHECK(release() == C::OK);
  CHECK(t.node->names().getattr(first).ok());  // still open once
  CHECK(release() == C::OK);
  CHECK(t.node->recalls().writers(first) == 0);  // the session's last handle
  CHECK_FALSE(t.node->names().getattr(first).ok());  // took the file with it
}
