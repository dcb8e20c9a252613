#include "backend/storage/meta_heartbeat.h"

#include <kj/async-io.h>

#include <catch2/catch.hpp>
#include <functional>

#include "backend/common/rpc.h"
#include "backend/common/status.h"

namespace {

// The part of dfs-meta a storage node talks to: hello and registerNode.
struct Registry {
  int registrations = 0;
  std::string uuid, address, label;
  uint64_t capacity = 0, fragments = 0;
};

class FakeMetaImpl final : public dfs::proto::Meta::Server {
 public:
  explicit FakeMetaImpl(Registry& registry) : registry_(registry) {}

 protected:
  kj::Promise<void> registerNode(RegisterNodeContext context) override {
    auto params = context.getParams();
    registry_.registrations++;
    registry_.uuid = params.getUuid();
    registry_.address = params.getAddress();
    registry_.label = params.getLabel();
    registry_.capacity = params.getCapacityBytes();
    registry_.fragments = params.getFragments();
    auto results = context.getResults();
    results.initStatus().setCode(dfs::Code::OK);
    results.setNodeId(7);
    results.setHeartbeatMs(20);
    return kj::READY_NOW;
  }

 private:
  Registry& registry_;
};

class FakeMetaGatewayImpl final : public dfs::proto::MetaGateway::Server {
 public:
  explicit FakeMetaGatewayImpl(Registry& registry) : meta_(kj::heap<FakeMetaImpl>(registry)) {}

 protected:
  kj::Promise<void> hello(HelloContext context) override {
    context.getResults().setMeta(meta_);
    context.getResults().setServerVersion(dfs::proto::PROTOCOL_VERSION);
    return kj::READY_NOW;
  }

 private:
  dfs::proto::Meta::Client meta_;
};

struct FakeMeta {
  FakeMeta(kj::AsyncIoContext& io, Registry& registry, uint port) {
    auto address = io.provider->getNetwork().parseAddress("127.0.0.1", port).wait(io.waitScope);
    listener = address->listen();
    this->port = listener->getPort();
    serving = dfs::serveRpc(*listener, kj::heap<FakeMetaGatewayImpl>(registry), "fake-meta")
                  .eagerlyEvaluate(nullptr);
  }
  kj::Own<kj::ConnectionReceiver> listener;
  uint port = 0;
  kj::Promise<void> serving = nullptr;
};

// Runs the loop until `done` or 5 s pass.
bool waitFor(kj::AsyncIoContext& io, std::function<bool()> done) {
  for (int i = 0; i < 500 && !done(); ++i) {
    io.provider->getTimer().afterDelay(10 * kj::MILLISECONDS).wait(io.waitScope);
  }
  return done();
}

}  // namespace

TEST_CASE("meta heartbeat: survives a missing metadata node, registers, re-registers after a restart") {
  auto io = kj::setupAsyncIo();
  Registry registry;
  uint port;
  {
    FakeMeta probe(io, registry, 0);  // find a free port, then free it again
    port = probe.port;
  }
  dfs::HeartbeatConfig config;
  config.metaAddress = "127.0.0.1:" + std::to_string(port);
  config.advertiseAddress = "127.0.0.1:7100";
  config.uuid = "11111111-2222-4333-8444-555555555555";
  config.label = "rack-a";
  config.initialBackoffMs = 10;
  config.maxBackoffMs = 50;
  int reports = 0;
  dfs::MetaHeartbeat heartbeat(io.provider->getNetwork(), io.provider->getTimer(), config, [&] {
    ++reports;
    return dfs::NodeReport{1000, 10, 3};
  });
  auto task = heartbeat.run().eagerlyEvaluate(nullptr);

  // Nobody listens: it keeps retrying without failing.
  io.provider->getTimer().afterDelay(200 * kj::MILLISECONDS).wait(io.waitScope);
  CHECK(heartbeat.registrations() == 0);

  {
    FakeMeta meta(io, registry, port);
    REQUIRE(waitFor(io, [&] { return registry.registrations >= 3; }));
    CHECK(heartbeat.nodeId() == 7);
    CHECK(registry.uuid == config.uuid);
    CHECK(registry.address == "127.0.0.1:7100");
    CHECK(registry.label == "rack-a");
    CHECK(registry.capacity == 1000);
    CHECK(registry.fragments == 3);
  }
  // The metadata node went away (connections dropped) and comes back.
  io.provider->getTimer().afterDelay(100 * kj::MILLISECONDS).wait(io.waitScope);
  int before = registry.registrations;
  FakeMeta restarted(io, registry, port);
  REQUIRE(waitFor(io, [&] { return registry.registrations >= before + 2; }));
}
