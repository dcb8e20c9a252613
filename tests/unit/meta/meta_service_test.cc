#include "backend/meta/meta_service.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include "backend/common/rpc.h"
#include "tests/unit/meta/served_node.h"

using namespace dfs;
using namespace dfs::meta;
using namespace dfs::meta::testing;

namespace {

capnp::Data::Reader data(const char* s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s), strlen(s));
}

}  // namespace

TEST_CASE("rpc: hello checks the protocol version; calls over a real connection") {
  auto io = kj::setupAsyncIo();
  ServedNode served(io);
  const std::string& address = served.address;
  auto connection = connectRpc(io.provider->getNetwork(), address).wait(io.waitScope);
  auto gateway = connection->bootstrapAs<proto::MetaGateway>();

  {
    auto request = gateway.helloRequest();
    request.setVersion(2);
    request.setPeer("future client");
    try {
      request.send().wait(io.waitScope);
      FAIL("hello with version 2 must fail");
    } catch (const kj::Exception& e) {
      CHECK(std::string(e.getDescription().cStr()).find("unsupported protocol version 2 (this server speaks 1)") !=
            std::string::npos);
    }
  }
  // The connection and server survive a refused hello.
  auto hello = gateway.helloRequest();
  hello.setVersion(proto::PROTOCOL_VERSION);
  hello.setPeer("test");
  auto helloResponse = hello.send().wait(io.waitScope);
  CHECK(helloResponse.getServerVersion() == 1);
  auto meta = helloResponse.getMeta();

  auto badMount = meta.mountRequest();
  badMount.setVolume("x");
  auto badMountResponse = badMount.send().wait(io.waitScope);
  CHECK(badMountResponse.getStatus().getCode() == proto::Code::NOT_FOUND);
  CHECK(std::string(badMountResponse.getStatus().getMessage().cStr()) == "no such volume 'x'");

  auto mount = meta.mountRequest();
  mount.setVolume("");  // the default volume
  mount.setClient("test");
  auto mounted = mount.send().wait(io.waitScope);
  REQUIRE(mounted.getStatus().getCode() == proto::Code::OK);
  uint64_t root = mounted.getVolume().getRootIno();
  CHECK(mounted.getVolume().getEcK() == 4);
  CHECK(mounted.getVolume().getInlineThreshold() == 4096);
  CHECK(mounted.getLeaseMs() == 30000);

  auto create = meta.createRequest();
  create.setSessionId(mounted.getSessionId());
  create.setParent(root);
  create.setName(data("hello.txt"));
  create.setMode(0644);
  create.setExclusive(true);
  create.initCaller().setUid(1000);
  auto created = create.send().wait(io.waitScope);
  REQUIRE(created.getStatus().getCode() == proto::Code::OK);
  uint64_t ino = created.getAttr().getIno();
  CHECK(created.getAttr().getUid() == 1000);
  CHECK(S_ISREG(created.getAttr().getMode()));

  std::string id(32, 'C');
  auto makeCommit = [&](bool offerChunk) {
    auto commit = meta.commitWriteRequest();
    commit.setIno(ino);
    auto extents = commit.initExtents(2);
    extents[0].setFileOffset(0);
    extents[0].setLength(5);
    extents[0].setInline(data("hello"));
    extents[1].setFileOffset(5);
    extents[1].setLength(64);
    auto ref = extents[1].initChunk();
    ref.setId(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(id.data()), id.size()));
    commit.setNewSize(69);
    if (offerChunk) {
      auto chunks = commit.initNewChunks(1);
      chunks[0].setId(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(id.data()), id.size()));
      chunks[0].setPlainSize(64);
      chunks[0].setStoredSize(64);
      chunks[0].setK(1);
      chunks[0].setM(1);
      chunks[0].setFragmentSize(64);
      auto nodes = chunks[0].initNodes(2);
      nodes.set(0, 1);
      nodes.set(1, 2);
      chunks[0].initFragmentChecksums(2);
    }
    return commit;
  };
  auto unknownNode = makeCommit(true).send().wait(io.waitScope);
  CHECK(unknownNode.getStatus().getCode() == proto::Code::INVALID);
  for (int i = 1; i <= 2; ++i) {
    auto reg = meta.registerNodeRequest();
    reg.setUuid(kj::str("u", i));
    reg.setAddress(kj::str("127.0.0.1:", 9 + i));
    reg.setCapacityBytes(500);
    reg.setUsedBytes(50);
    REQUIRE(reg.send().wait(io.waitScope).getNodeId() == uint32_t(i));
  }
  auto missing = makeCommit(false).send().wait(io.waitScope);
  CHECK(missing.getStatus().getCode() == proto::Code::MISSING_CHUNKS);
  REQUIRE(missing.getMissing().size() == 1);
  CHECK(missing.getMissing()[0].size() == 32);
  auto committed = makeCommit(true).send().wait(io.waitScope);
  REQUIRE(committed.getStatus().getCode() == proto::Code::OK);
  CHECK(committed.getAttr().getSize() == 69);
  CHECK(committed.getAttr().getStoredBytes() == 69);

  // A commit of `bytes` inline at offset 0 that also carries deferred attributes.
  auto commitWithAttrs = [&](const char* bytes, uint32_t callerUid) {
    auto commit = meta.commitWriteRequest();
    commit.setIno(ino);
    auto extents = commit.initExtents(1);
    extents[0].setFileOffset(0);
    extents[0].setLength(strlen(bytes));
    extents[0].setInline(data(bytes));
    commit.setNewSize(strlen(bytes));
    commit.initCaller().setUid(callerUid);
    return commit;
  };
  // Deferred attributes ride on a commit: applied after the extents, in the same
  // transaction; the explicit mtime wins over the commit's own.
  {
    auto commit = commitWithAttrs("HELLO", 0);
    auto set = commit.initSetAttr();
    set.setSetMode(true);
    set.setMode(04755);
    set.setSetUid(true);
    set.setUid(77);
    set.setSetMtime(true);
    set.setMtimeNs(1200000000000000005);
    set.setSetSize(true);  // refused: a deferred change never truncates
    set.setSize(1);
    auto reply = commit.send().wait(io.waitScope);
    REQUIRE(reply.getStatus().getCode() == proto::Code::OK);
    CHECK(reply.getAttr().getMode() == (S_IFREG | 04755));
    CHECK(reply.getAttr().getUid() == 77);
    CHECK(reply.getAttr().getMtimeNs() == 1200000000000000005);
    CHECK(reply.getAttr().getSize() == 69);
  }
  {
    // chown by a non-root caller clears set-user-ID, as a plain setattr does.
    auto commit = commitWithAttrs("h", 77);
    auto set = commit.initSetAttr();
    set.setSetGid(true);
    set.setGid(5);
    auto reply = commit.send().wait(io.waitScope);
    REQUIRE(reply.getStatus().getCode() == proto::Code::OK);
    CHECK(reply.getAttr().getMode() == (S_IFREG | 0755));
    CHECK(reply.getAttr().getGid() == 5);
    auto attr = meta.getattrRequest();
    attr.setIno(ino);
    auto fetched = attr.send().wait(io.waitScope);
    CHECK(fetched.getAttr().getMode() == (S_IFREG | 0755));
    CHECK(fetched.getAttr().getUid() == 77);
    CHECK(fetched.getAttr().getMtimeNs() > 1200000000000000005);  // this commit had none
  }

  auto read = meta.getExtentsRequest();
  read.setIno(ino);
  read.setOffset(3);
  read.setLength(1000);
  auto got = read.send().wait(io.waitScope);
  REQUIRE(got.getStatus().getCode() == proto::Code::OK);
  REQUIRE(got.getExtents().size() == 2);
  CHECK(got.getExtents()[0].isInline());
  CHECK(got.getExtents()[0].getInline().size() == 2);
  CHECK(got.getExtents()[1].isChunk());
  CHECK(got.getChunks().size() == 1);
  CHECK(got.getChunks()[0].getNodes().size() == 2);

  auto find = meta.findChunksRequest();
  auto ids = find.initIds(2);
  ids.set(0, capnp::Data::Reader(reinterpret_cast<const kj::byte*>(id.data()), id.size()));
  ids.set(1, data("short"));
  auto found = find.send().wait(io.waitScope);
  REQUIRE(found.getPresent().size() == 2);
  CHECK(found.getPresent()[0]);
  CHECK_FALSE(found.getPresent()[1]);

  auto readdir = meta.readdirRequest();
  readdir.setIno(root);
  readdir.setMax(10);
  readdir.setPlus(true);
  auto listing = readdir.send().wait(io.waitScope);
  REQUIRE(listing.getEntries().size() == 1);
  CHECK(listing.getEof());
  CHECK(listing.getEntries()[0].getHasAttr());
  CHECK(listing.getEntries()[0].getAttr().getSize() == 69);

  auto statsResponse = meta.statsRequest().send().wait(io.waitScope);
  auto stats = statsResponse.getStats();
  CHECK(stats.getLogicalBytes() == 69);
  CHECK(stats.getRawBytes() == 128);

  auto volume = meta.createVolumeRequest();
  volume.initSpec().setName("big");
  volume.getSpec().setEcK(4);
  volume.getSpec().setEcM(2);
  auto refused = volume.send().wait(io.waitScope);
  CHECK(refused.getStatus().getCode() == proto::Code::UNAVAILABLE);
  CHECK(std::string(refused.getStatus().getMessage().cStr()) ==
        "volume needs 6 storage nodes (4+2), only 2 are up");

  auto reg = meta.registerNodeRequest();
  reg.setUuid("u1");
  reg.setAddress("127.0.0.1:10");
  reg.setCapacityBytes(500);
  reg.setUsedBytes(50);
  auto registered = reg.send().wait(io.waitScope);
  CHECK(registered.getNodeId() == 1);
  CHECK(registered.getHeartbeatMs() == 1000);
  auto statfsResponse = meta.statfsRequest().send().wait(io.waitScope);
  auto statfs = statfsResponse.getStatfs();
  CHECK(statfs.getTotalBytes() == 1000);
  CHECK(statfs.getFreeBytes() == 900);
  auto map = meta.clusterMapRequest().send().wait(io.waitScope);
  REQUIRE(map.getNodes().size() == 2);
  CHECK(map.getNodes()[0].getState() == proto::NodeInfo::NodeState::UP);

  auto gc = meta.gcRequest();
  gc.setGraceMs(-1);
  CHECK(gc.send().wait(io.waitScope).getStatus().getCode() == proto::Code::OK);
}

TEST_CASE("rpc: a retried request with the same OpId gets the first reply, not a second effect") {
  auto io = kj::setupAsyncIo();
  ServedNode served(io);
  TempNode& t = served.t;
  const std::string& address = served.address;
  auto connection = connectRpc(io.provider->getNetwork(), address).wait(io.waitScope);
  auto hello = connection->bootstrapAs<proto::MetaGateway>().helloRequest();
  hello.setVersion(proto::PROTOCOL_VERSION);
  auto meta = hello.send().wait(io.waitScope).getMeta();

  auto mkdir = [&](uint64_t client, uint64_t seq, uint64_t doneBelow) {
    auto req = meta.mkdirRequest();
    req.setParent(t.root());
    req.setName(data("d"));
    req.setMode(0755);
    auto op = req.initOp();
    op.setClient(client);
    op.setSeq(seq);
    op.setDoneBelow(doneBelow);
    return req.send().wait(io.waitScope);
  };
  auto first = mkdir(42, 7, 1);
  REQUIRE(first.getStatus().getCode() == proto::Code::OK);
  uint64_t ino = first.getAttr().getIno();
  // The same request again (a retry after a lost reply): same answer, no EEXIST.
  auto retry = mkdir(42, 7, 1);
  CHECK(retry.getStatus().getCode() == proto::Code::OK);
  CHECK(retry.getAttr().getIno() == ino);
  // A new request of the same client is applied: the name exists now.
  auto second = mkdir(42, 8, 8);
  CHECK(second.getStatus().getCode() == proto::Code::EXISTS);
  // Another client's request with the same seq is its own request.
  CHECK(mkdir(43, 7, 1).getStatus().getCode() == proto::Code::EXISTS);
  // doneBelow = 8 dropped the reply of seq 7: a (bogus) late retry applies again.
  CHECK(mkdir(42, 7, 9).getStatus().getCode() == proto::Code::EXISTS);
  // rmdir is covered too, and its reply is in the store (persistent table).
  auto unlinkReq = meta.rmdirRequest();
  unlinkReq.setParent(t.root());
  unlinkReq.setName(data("d"));
  auto op = unlinkReq.initOp();
  op.setClient(42);
  op.setSeq(20);
  op.setDoneBelow(20);
  REQUIRE(unlinkReq.send().wait(io.waitScope).getStatus().getCode() == proto::Code::OK);
  CHECK(t.node->clientOps().reply(42, 20).has_value());
}
