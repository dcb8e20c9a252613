// dfs-meta: the metadata node daemon. One KJ event-loop thread serves every
// client and storage node; LMDB write transactions run synchronously on it and
// are durable when they return (LMDB syncs on commit).
#include <signal.h>
#include <spdlog/spdlog.h>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>

#include <cstdio>
#include <string>
#include <vector>

#include "backend/common/http_server.h"
#include "backend/common/logging.h"
#include "backend/common/options.h"
#include "backend/common/rpc.h"
#include "backend/meta/meta_node.h"
#include "backend/meta/meta_service.h"

namespace {

constexpr int kExitBadConfig = 2;

std::vector<dfs::OptionSpec> optionSpecs() {
  return {
      {"data-dir", "", "directory of the metadata store (required)"},
      {"listen", "127.0.0.1:7000", "address to serve RPC on (host:port)"},
      {"default-volume", "default", "volume created on first start; empty: none"},
      {"node-timeout", "5000", "ms without heartbeat before a storage node is down"},
      {"session-lease", "30000", "ms a client session lives without keepalive"},
      {"gc-grace", "3600000", "ms an unreferenced chunk or orphan fragment is kept"},
      {"gc-interval", "600000", "ms between periodic garbage collections (0: never)"},
      {"map-size", "64G", "maximum size of the LMDB data file"},
      {"log-level", "info", "trace, debug, info, warn or error"},
      {"log-json", "", "log JSON lines", true},
      {"metrics-listen", "", "host:port for Prometheus /metrics and /health (default: off)"},
  };
}

int badConfig(const std::string& message) {
  std::fprintf(stderr, "dfs-meta: %s\n", message.c_str());
  return kExitBadConfig;
}

// Reads a non-negative duration in ms into ns.
bool readMs(const dfs::Options& options, const char* key, int64_t* outNs, std::string* error) {
  auto value = options.getInt(key);
  if (!value.ok() || value.value() < 0 || value.value() > int64_t(1) << 40) {
    *error = std::string("--") + key + " must be a number of milliseconds, got '" +
             options.get(key) + "'";
    return false;
  }
  *outNs = value.value() * 1000000;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Signals are captured first, before any thread exists (logging may start
  // one), so that every thread inherits the blocked mask and SIGTERM reaches
  // the event loop instead of killing the process.
  kj::UnixEventPort::captureSignal(SIGTERM);
  kj::UnixEventPort::captureSignal(SIGINT);
  signal(SIGPIPE, SIG_IGN);
  auto specs = optionSpecs();
  auto parsed = dfs::Options::parse(argc, argv, specs);
  if (!parsed.ok()) return badConfig(parsed.status().message);
  const auto& options = parsed.value();
  if (options.helpRequested()) {
    std::fputs(dfs::Options::usage("dfs-meta", "DFS metadata node.", specs).c_str(), stdout);
    return 0;
  }
  if (!options.positional().empty()) return badConfig("unexpected argument '" + options.positional()[0] + "'");

  dfs::meta::MetaConfig config;
  config.dataDir = options.get("data-dir");
  if (config.dataDir.empty()) return badConfig("--data-dir is required");
  config.defaultVolume = options.get("default-volume");
  std::string error;
  if (!readMs(options, "node-timeout", &config.nodeTimeoutNs, &error) ||
      !readMs(options, "session-lease", &config.sessionLeaseNs, &error) ||
      !readMs(options, "gc-grace", &config.gcGraceNs, &error) ||
      !readMs(options, "gc-interval", &config.gcIntervalNs, &error)) {
    return badConfig(error);
  }
  if (config.sessionLeaseNs < 1000000000) return badConfig("--session-lease must be at least 1000 ms");
  auto mapSize = options.getSize("map-size");
  if (!mapSize.ok() || mapSize.value() < (uint64_t(1) << 20)) {
    return badConfig("--map-size must be a size of at least 1M, got '" + options.get("map-size") + "'");
  }
  config.mapSize = mapSize.value();
  config.groupCommit = true;
  std::string listen = options.get("listen");
  if (listen.find(':') == std::string::npos) return badConfig("--listen must be host:port, got '" + listen + "'");
  auto logging = dfs::initLogging("dfs-meta", options.get("log-level"), options.getBool("log-json"));
  if (!logging.ok()) return badConfig(logging.message);

  auto io = kj::setupAsyncIo();
  dfs::KjLogBridge logBridge;

  auto opened = dfs::meta::MetaNode::open(config, &io.provider->getNetwork(), &io.provider->getTimer());
  if (!opened.ok()) {
    spdlog::error("cannot open metadata store in {}: {}", config.dataDir, opened.status().message);
    return 1;
  }
  auto node = std::move(opened).value();

  kj::Own<kj::ConnectionReceiver> listener;
  KJ_IF_MAYBE(exception, kj::runCatchingExceptions([&]() {
    listener = io.provider->getNetwork().parseAddress(listen).wait(io.waitScope)->listen();
  })) {
    spdlog::error("cannot listen on {}: {}", listen, exception->getDescription().cStr());
    return 1;
  }
  std::unique_ptr<dfs::HttpServer> metricsServer;
  if (!options.get("metrics-listen").empty()) {
    metricsServer = std::make_unique<dfs::HttpServer>();
    auto started = metricsServer->start(options.get("metrics-listen"));
    if (!started.ok()) {
      spdlog::error("cannot serve metrics: {}", started.message);
      return 1;
    }
    spdlog::info("metrics on port {} (/metrics, /health)", metricsServer->port());
  }
  spdlog::info("dfs-meta listening on {}, data in {}", listen, config.dataDir);

  capnp::Capability::Client bootstrap = kj::heap<dfs::meta::MetaGatewayImpl>(*node);
  auto server = dfs::serveRpc(*listener, bootstrap, "dfs-meta")
                    .exclusiveJoin(node->runPeriodic())
                    .then([]() -> int { return 1; },
                          [](kj::Exception&& e) -> int {
                            spdlog::error("server stopped: {}", e.getDescription().cStr());
                            return 1;
                          });
  auto& port = io.unixEventPort;
  auto stop = port.onSignal(SIGTERM)
                  .exclusiveJoin(port.onSignal(SIGINT))
                  .then([](siginfo_t info) -> int {
                    spdlog::info("signal {} received, shutting down", info.si_signo);
                    return 0;
                  });
  int code = server.exclusiveJoin(kj::mv(stop)).wait(io.waitScope);
  // Connections and the store close before the event loop goes away.
  if (metricsServer) metricsServer->stop();
  bootstrap = nullptr;
  listener = nullptr;
  node.reset();
  spdlog::info("dfs-meta stopped");
  return code;
}
