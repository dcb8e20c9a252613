#include "backend/storage/meta_heartbeat.h"

#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "backend/common/status.h"

namespace dfs {

MetaHeartbeat::MetaHeartbeat(kj::Network& network, kj::Timer& timer, HeartbeatConfig config,
                             std::function<NodeReport()> report)
    : network_(network),
      timer_(timer),
      config_(std::move(config)),
      report_(std::move(report)),
      backoffMs_(config_.initialBackoffMs) {}

kj::Promise<void> MetaHeartbeat::run() {
  return session()
      .then([]() {},
            [this](kj::Exception&& e) {
              if (!inOutage_) {
                spdlog::warn("metadata node {} unreachable ({}); retrying in the background",
                             config_.metaAddress, e.getDescription().cStr());
                inOutage_ = true;
              } else {
                spdlog::debug("metadata node {} still unreachable: {}", config_.metaAddress,
                              e.getDescription().cStr());
              }
            })
      .then([this]() {
        uint32_t delay = backoffMs_;
        backoffMs_ = std::min(config_.maxBackoffMs, backoffMs_ * 2);
        return timer_.afterDelay(delay * kj::MILLISECONDS);
      })
      .then([this]() { return run(); });
}

kj::Promise<void> MetaHeartbeat::session() {
  return connectRpc(network_, config_.metaAddress).then([this](kj::Own<RpcConnection> connection) {
    auto gateway = connection->bootstrapAs<proto::MetaGateway>();
    auto hello = gateway.helloRequest();
    hello.setVersion(proto::PROTOCOL_VERSION);
    hello.setPeer(kj::str("dfs-storage ", config_.advertiseAddress.c_str(), " ", config_.uuid.c_str()));
    auto meta = hello.send().getMeta();  // pipelined: registerNode goes out with hello
    auto lost = connection->onDisconnect().then([]() {
      kj::throwFatalException(KJ_EXCEPTION(DISCONNECTED, "connection to the metadata node lost"));
    });
    return heartbeatLoop(kj::mv(meta)).exclusiveJoin(kj::mv(lost)).attach(kj::mv(connection));
  });
}

kj::Promise<void> MetaHeartbeat::heartbeatLoop(proto::Meta::Client meta) {
  NodeReport report = report_();
  auto request = meta.registerNodeRequest();
  request.setUuid(config_.uuid);
  request.setAddress(config_.advertiseAddress);
  request.setCapacityBytes(report.capacityBytes);
  request.setUsedBytes(report.usedBytes);
  request.setFragments(report.fragments);
  request.setLabel(config_.label);
  auto reply = timer_.timeoutAfter(config_.callTimeoutMs * kj::MILLISECONDS, request.send());
  return reply.then([this, meta](capnp::Response<proto::Meta::RegisterNodeResults>&& response) mutable {
    Status status = fromProto(response.getStatus());
    if (!status.ok()) {
      kj::throwFatalException(KJ_EXCEPTION(
          FAILED, kj::str("metadata node refused registration: ", codeName(status.code), " ",
                          status.message.c_str())));
    }
    uint32_t nodeId = response.getNodeId();
    if (inOutage_ || nodeId != nodeId_) {
      spdlog::info("registered with metadata node {} as node {}", config_.metaAddress, nodeId);
    }
    inOutage_ = false;
    nodeId_ = nodeId;
    ++registrations_;
    backoffMs_ = config_.initialBackoffMs;
    uint32_t interval = response.getHeartbeatMs() ? response.getHeartbeatMs() : config_.defaultHeartbeatMs;
    return timer_.afterDelay(interval * kj::MILLISECONDS).then([this, meta]() mutable {
      return heartbeatLoop(kj::mv(meta));
    });
  });
}

}  // namespace dfs
