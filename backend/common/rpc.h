// Cap'n Proto RPC plumbing shared by every process: the server accept loop with
// message limits, and a client connection. Thread: everything here runs on the
// calling thread's KJ event loop.
#pragma once

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include <string>

namespace dfs {

// Limits applied to every received message (DESIGN §6 "Bad input"): a peer cannot
// make us traverse more than 64 MiB or nest deeper than 64 levels.
capnp::ReaderOptions rpcReaderOptions();

// Accepts connections forever, serving `bootstrap` on each. A peer that sends
// garbage, truncated messages or breaks protocol is logged and disconnected; the
// loop and other peers are unaffected. The returned promise only fails if accept()
// itself fails.
kj::Promise<void> serveRpc(kj::ConnectionReceiver& listener, capnp::Capability::Client bootstrap,
                           std::string serviceName);

// A client-side connection. Owns the socket and the RPC system.
class RpcConnection {
 public:
  RpcConnection(kj::Own<kj::AsyncIoStream> stream);
  ~RpcConnection();

  capnp::Capability::Client bootstrap();
  template <typename T>
  typename T::Client bootstrapAs() {
    return bootstrap().castAs<T>();
  }
  // Resolves (or rejects) when the connection is gone.
  kj::Promise<void> onDisconnect();

 private:
  kj::Own<kj::AsyncIoStream> stream_;
  capnp::TwoPartyVatNetwork network_;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc_;
};

// Resolves to an open connection to "host:port".
kj::Promise<kj::Own<RpcConnection>> connectRpc(kj::Network& network, kj::StringPtr address);

// Routes KJ's own log lines (e.g. why a peer was disconnected) to spdlog.
// Install one per thread that runs an event loop; it lives for its scope.
class KjLogBridge : public kj::ExceptionCallback {
 public:
  void logMessage(kj::LogSeverity severity, const char* file, int line, int contextDepth,
                  kj::String&& text) override;
};

}  // namespace dfs
