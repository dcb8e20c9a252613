// Test fixture: a TempNode in the daemon's mode (group commit: answers wait
// for the batch commit) served over Cap'n Proto RPC on 127.0.0.1, any port.
// REQUIRES: `io` outlives the fixture.
#pragma once

#include <kj/async-io.h>

#include <string>

#include "backend/common/rpc.h"
#include "backend/meta/meta_service.h"
#include "tests/unit/meta/temp_node.h"

namespace dfs::meta::testing {

struct ServedNode {
  TempNode t;
  kj::Own<kj::ConnectionReceiver> listener;
  kj::Promise<void> server = nullptr;
  std::string address;  // host:port to connect to

  explicit ServedNode(kj::AsyncIoContext& io) {
    t.groupCommit = true;
    t.reopen();
    listener = io.provider->getNetwork().parseAddress("127.0.0.1:0").wait(io.waitScope)->listen();
    capnp::Capability::Client bootstrap = kj::heap<MetaGatewayImpl>(*t.node);
    server = serveRpc(*listener, bootstrap, "dfs-meta").eagerlyEvaluate(nullptr);
    address = "127.0.0.1:" + std::to_string(listener->getPort());
  }
};

}  // namespace dfs::meta::testing
