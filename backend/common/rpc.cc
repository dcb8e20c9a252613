#include "backend/common/rpc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

namespace dfs {

capnp::ReaderOptions rpcReaderOptions() {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = 8 * 1024 * 1024;  // 64 MiB
  options.nestingLimit = 64;
  return options;
}

namespace {

std::string peerName(kj::AsyncIoStream& stream) {
  sockaddr_storage addr{};
  kj::uint len = sizeof(addr);
  try {
    stream.getpeername(reinterpret_cast<sockaddr*>(&addr), &len);
  } catch (...) {
    return "?";
  }
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (addr.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

struct ServerConnection {
  ServerConnection(kj::Own<kj::AsyncIoStream> stream, capnp::Capability::Client bootstrap)
      : stream(kj::mv(stream)),
        network(*this->stream, capnp::rpc::twoparty::Side::SERVER, rpcReaderOptions()),
        rpc(capnp::makeRpcServer(network, kj::mv(bootstrap))) {}
  kj::Own<kj::AsyncIoStream> stream;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
};

class ConnectionErrorHandler : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&& exception) override {
    spdlog::warn("rpc connection ended with error: {}", exception.getDescription().cStr());
  }
};

kj::Promise<void> acceptLoop(kj::ConnectionReceiver& listener,
                             capnp::Capability::Client bootstrap, std::string serviceName,
                             kj::Own<kj::TaskSet> tasks) {
  auto accepted = listener.accept();
  return accepted.then([&listener, bootstrap = kj::mv(bootstrap), serviceName = kj::mv(serviceName),
                        tasks = kj::mv(tasks)](kj::Own<kj::AsyncIoStream>&& stream) mutable {
    std::string peer = peerName(*stream);
    spdlog::debug("{}: connection from {}", serviceName, peer);
    auto connection = kj::heap<ServerConnection>(kj::mv(stream), bootstrap);
    auto done = connection->network.onDisconnect().then(
        [serviceName, peer]() { spdlog::debug("{}: {} disconnected", serviceName, peer); },
        [serviceName, peer](kj::Exception&& e) {
          spdlog::warn("{}: dropped peer {}: {}", serviceName, peer, e.getDescription().cStr());
        });
    tasks->add(done.attach(kj::mv(connection)));
    return acceptLoop(listener, kj::mv(bootstrap), kj::mv(serviceName), kj::mv(tasks));
  });
}

}  // namespace

kj::Promise<void> serveRpc(kj::ConnectionReceiver& listener, capnp::Capability::Client bootstrap,
                           std::string serviceName) {
  auto handler = kj::heap<ConnectionErrorHandler>();
  auto tasks = kj::heap<kj::TaskSet>(*handler);
  return acceptLoop(listener, kj::mv(bootstrap), kj::mv(serviceName), tasks.attach(kj::mv(handler)));
}

RpcConnection::RpcConnection(kj::Own<kj::AsyncIoStream> stream)
    : stream_(kj::mv(stream)),
      network_(*stream_, capnp::rpc::twoparty::Side::CLIENT, rpcReaderOptions()),
      rpc_(capnp::makeRpcClient(network_)) {}

RpcConnection::~RpcConnection() = default;

capnp::Capability::Client RpcConnection::bootstrap() {
  capnp::word scratch[4];
  memset(scratch, 0, sizeof(scratch));
  capnp::MallocMessageBuilder message(scratch);
  auto vatId = message.getRoot<capnp::rpc::twoparty::VatId>();
  vatId.setSide(capnp::rpc::twoparty::Side::SERVER);
  return rpc_.bootstrap(vatId);
}

kj::Promise<void> RpcConnection::onDisconnect() { return network_.onDisconnect(); }

kj::Promise<kj::Own<RpcConnection>> connectRpc(kj::Network& network, kj::StringPtr address) {
  return network.parseAddress(address).then([](kj::Own<kj::NetworkAddress> addr) {
    return addr->connect().attach(kj::mv(addr));
  }).then([](kj::Own<kj::AsyncIoStream> stream) {
    return kj::heap<RpcConnection>(kj::mv(stream));
  });
}

void KjLogBridge::logMessage(kj::LogSeverity severity, const char* file, int line, int,
                             kj::String&& text) {
  switch (severity) {
    case kj::LogSeverity::INFO: spdlog::info("kj {}:{}: {}", file, line, text.cStr()); break;
    case kj::LogSeverity::WARNING: spdlog::warn("kj {}:{}: {}", file, line, text.cStr()); break;
    case kj::LogSeverity::ERROR:
    case kj::LogSeverity::FATAL: spdlog::error("kj {}:{}: {}", file, line, text.cStr()); break;
    case kj::LogSeverity::DBG: spdlog::debug("kj {}:{}: {}", file, line, text.cStr()); break;
  }
}

}  // namespace dfs
