// dfs-meta: the metadata node daemon. One KJ event-loop thread serves every
// client and storage node; LMDB write transactions run synchronously on it and
// are durable when they return (LMDB syncs on commit).
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <spdlog/spdlog.h>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
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
      {"node-timeout", "5s",
       "time without heartbeat before a storage node is down (ms, or with s/m/h)"},
      {"session-lease", "30s", "time a client session lives without keepalive"},
      {"gc-grace", "1h", "time an unreferenced chunk or orphan fragment is kept before GC"},
      {"gc-interval", "10m", "time between periodic garbage collections (0: never)"},
      {"client-retention", "720h",
       "time a client that stopped calling keeps its stored replies and journal marks (30 days)"},
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

// Reads a non-negative duration: a number of milliseconds, or a number with
// one of the suffixes ms, s, m, h ("5000", "5s", "10m", "1h").
bool readDuration(const dfs::Options& options, const char* key, int64_t* outNs, std::string* error) {
  const std::string& text = options.get(key);
  size_t digits = 0;
  while (digits < text.size() && isdigit(uint8_t(text[digits]))) ++digits;
  std::string suffix = text.substr(digits);
  int64_t unitNs = suffix == "" || suffix == "ms" ? 1000000
                   : suffix == "s"                ? int64_t(1000000000)
                   : suffix == "m"                ? int64_t(60) * 1000000000
                   : suffix == "h"                ? int64_t(3600) * 1000000000
                                                  : 0;
  if (digits == 0 || digits > 12 || unitNs == 0) {
    *error = std::string("--") + key + " must be a duration such as 5000, 5000ms, 5s, 10m or 1h, got '" +
             text + "'";
    return false;
  }
  int64_t value = std::stoll(text.substr(0, digits));
  if (value > (int64_t(1) << 62) / unitNs) {
    *error = std::string("--") + key + " is too large: '" + text + "'";
    return false;
  }
  *outNs = value * unitNs;
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
  if (!readDuration(options, "node-timeout", &config.nodeTimeoutNs, &error) ||
      !readDuration(options, "session-lease", &config.sessionLeaseNs, &error) ||
      !readDuration(options, "gc-grace", &config.gcGraceNs, &error) ||
      !readDuration(options, "gc-interval", &config.gcIntervalNs, &error) ||
      !readDuration(options, "client-retention", &config.clientRetentionNs, &error)) {
    return badConfig(error);
  }
  if (config.sessionLeaseNs < 1000000000) return badConfig("--session-lease must be at least 1s");
  // A client killed mid-write replays its journal when it mounts again; its
  // marks must outlive any plausible downtime of a client host.
  if (config.clientRetentionNs < int64_t(3600) * 1000000000) {
    return badConfig("--client-retention must be at least 1h");
  }
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

  // One process per data directory: LMDB itself would let a second one in, but
  // sessions, leases and node liveness live in memory.
  std::error_code mkdirError;
  std::filesystem::create_directories(config.dataDir, mkdirError);
  std::string lockPath = config.dataDir + "/lock";
  int lockFd = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (lockFd < 0 || ::flock(lockFd, LOCK_EX | LOCK_NB) != 0) {
    spdlog::error("cannot lock {}: {} (is another dfs-meta using {}?)", lockPath, strerror(errno),
                  config.dataDir);
    return 1;
  }
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
