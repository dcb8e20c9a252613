// Keeps this storage node registered with the metadata node: connects, says hello,
// calls Meta.registerNode at start and then every heartbeatMs (as the reply says).
// If the metadata node is down or the connection breaks, it reconnects with
// exponential backoff; it never fails and logs one warning per outage, not one
// per attempt.
// Thread: construct, run() and destroy on one KJ event-loop thread.
#pragma once

#include <kj/async-io.h>
#include <kj/timer.h>

#include <cstdint>
#include <functional>
#include <string>

#include "backend/common/rpc.h"
#include "protocol/dfs.capnp.h"

namespace dfs {

// What the node reports in each heartbeat.
struct NodeReport {
  uint64_t capacityBytes = 0;
  uint64_t usedBytes = 0;
  uint64_t fragments = 0;
};

struct HeartbeatConfig {
  std::string metaAddress;       // host:port of dfs-meta
  std::string advertiseAddress;  // host:port clients use to reach this node
  std::string uuid;
  std::string label;
  uint32_t initialBackoffMs = 100;
  uint32_t maxBackoffMs = 10000;
  uint32_t defaultHeartbeatMs = 5000;  // when the reply does not say
  uint32_t callTimeoutMs = 10000;      // a registerNode reply later than this counts as an outage
};

class MetaHeartbeat {
 public:
  MetaHeartbeat(kj::Network& network, kj::Timer& timer, HeartbeatConfig config,
                std::function<NodeReport()> report);

  // Runs forever (until the promise is dropped). Never rejects.
  kj::Promise<void> run();
  // 0 until the first successful registration.
  uint32_t nodeId() const { return nodeId_; }
  uint64_t registrations() const { return registrations_; }

 private:
  kj::Promise<void> session();
  kj::Promise<void> heartbeatLoop(proto::Meta::Client meta);

  kj::Network& network_;
  kj::Timer& timer_;
  const HeartbeatConfig config_;
  std::function<NodeReport()> report_;
  uint32_t backoffMs_;
  bool inOutage_ = false;
  uint32_t nodeId_ = 0;
  uint64_t registrations_ = 0;
};

}  // namespace dfs
