// dfs-storage: the storage node daemon (DESIGN §2, §3 "Storage nodes").
// Serves StorageGateway on --listen, keeps itself registered with dfs-meta, and
// shuts down cleanly on SIGTERM/SIGINT: finishes queued writes, closes LMDB.
#include <kj/async-unix.h>
#include <kj/debug.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/common/http_server.h"
#include "backend/common/logging.h"
#include "backend/common/metrics.h"
#include "backend/common/options.h"
#include "backend/common/rpc.h"
#include "backend/storage/extent_store.h"
#include "backend/storage/meta_heartbeat.h"
#include "backend/storage/scrubber.h"
#include "backend/storage/storage_service.h"
#include "backend/storage/store_writer.h"

namespace {

constexpr char kSummary[] =
    "The DFS storage node: stores erasure-coded chunk fragments in extent files.";

std::vector<dfs::OptionSpec> optionSpecs() {
  return {
      {"data-dir", "", "directory holding extents/, index/ and uuid (required)"},
      {"listen", "127.0.0.1:7100", "host:port to serve storage RPC on"},
      {"advertise", "", "host:port given to the metadata node (default: --listen)"},
      {"meta", "127.0.0.1:7000", "host:port of the metadata node"},
      {"label", "", "failure-domain label (e.g. rack or host name)"},
      {"capacity", "", "bytes this node may use, e.g. 500G (default: size of the file system)"},
      {"max-extent-size", "256M", "extent files are rolled at this size"},
      {"scrub-rate", "8M", "bytes per second the background scrub re-verifies (0: off)"},
      {"buffered-appends", "",
       "append every group commit through the page cache (default: groups of 128 KiB or "
       "more go through O_DIRECT)",
       true},
      {"metrics-listen", "", "host:port for Prometheus /metrics and /health (default: off)"},
      {"log-level", "info", "trace, debug, info, warn or error"},
      {"log-json", "", "log JSON lines instead of text", true},
  };
}

int configError(const std::string& message) {
  std::fprintf(stderr, "dfs-storage: %s\n", message.c_str());
  return 2;
}

int runNode(const dfs::Options& options, const dfs::ExtentStoreOptions& storeOptions,
            uint64_t scrubRate) {
  // Signals must be captured before the event port exists, so that every thread
  // created later (the writer thread) inherits them blocked.
  kj::UnixEventPort::captureSignal(SIGTERM);
  kj::UnixEventPort::captureSignal(SIGINT);
  auto io = kj::setupAsyncIo();
  dfs::KjLogBridge logBridge;

  auto opened = dfs::ExtentStore::open(storeOptions);
  if (!opened.ok()) {
    spdlog::error("cannot open data directory {}: {}", storeOptions.dataDir, opened.status().message);
    return opened.status().code == dfs::Code::INVALID ? 2 : 1;
  }
  std::unique_ptr<dfs::ExtentStore> store = std::move(opened).value();
  auto uuid = dfs::loadOrCreateNodeUuid(storeOptions.dataDir);
  if (!uuid.ok()) {
    spdlog::error("cannot read the node uuid: {}", uuid.status().message);
    return 1;
  }

  std::string listenAddress = options.get("listen");
  kj::Own<kj::ConnectionReceiver> listener;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    auto address = io.provider->getNetwork().parseAddress(listenAddress).wait(io.waitScope);
    listener = address->listen();
  })) {
    spdlog::error("cannot listen on {}: {}", listenAddress, e->getDescription().cStr());
    return 1;
  }
  // With --listen HOST:0 the kernel picks the port; report and advertise the real one.
  if (listenAddress.size() > 2 && listenAddress.compare(listenAddress.size() - 2, 2, ":0") == 0) {
    listenAddress = listenAddress.substr(0, listenAddress.size() - 1) + std::to_string(listener->getPort());
  }
  std::string advertise = options.isSet("advertise") ? options.get("advertise") : listenAddress;
  if (advertise.rfind("0.0.0.0:", 0) == 0 || advertise.rfind("[::]:", 0) == 0) {
    spdlog::warn("advertising {} to the metadata node; clients cannot connect to a wildcard address, "
                 "set --advertise", advertise);
  }

  // Store gauges are computed when scraped (on the HTTP thread; stats() is thread-safe).
  std::vector<dfs::MetricsCallbackHandle> gauges;
  dfs::ExtentStore* statsSource = store.get();
  auto addGauge = [&](const char* name, const char* help, std::function<double(const dfs::StoreStats&)> pick) {
    gauges.push_back(dfs::metrics().gaugeCallback(name, help, {}, [statsSource, pick]() {
      return pick(statsSource->stats());
    }));
  };
  addGauge("dfs_storage_capacity_bytes", "Bytes this node may use",
           [](const dfs::StoreStats& s) { return double(s.capacityBytes); });
  addGauge("dfs_storage_used_bytes", "Bytes in extent files, live and garbage",
           [](const dfs::StoreStats& s) { return double(s.usedBytes); });
  addGauge("dfs_storage_live_bytes", "Record bytes of stored fragments",
           [](const dfs::StoreStats& s) { return double(s.liveBytes); });
  addGauge("dfs_storage_fragments", "Fragments stored",
           [](const dfs::StoreStats& s) { return double(s.fragments); });
  addGauge("dfs_storage_extents", "Extent files",
           [](const dfs::StoreStats& s) { return double(s.extents); });
  std::unique_ptr<dfs::HttpServer> metricsServer;
  if (!options.get("metrics-listen").empty()) {
    metricsServer = std::make_unique<dfs::HttpServer>();
    dfs::Status started = metricsServer->start(options.get("metrics-listen"));
    if (!started.ok()) {
      spdlog::error("cannot serve metrics: {}", started.message);
      return 1;
    }
    spdlog::info("metrics on port {} (/metrics, /health)", metricsServer->port());
  }

  auto writer = std::make_unique<dfs::StoreWriter>(*store);
  auto scrubber = std::make_unique<dfs::Scrubber>(*store, scrubRate);
  dfs::proto::Storage::Client storage = kj::heap<dfs::StorageImpl>(*store, *writer, uuid.value());
  capnp::Capability::Client gateway = kj::heap<dfs::StorageGatewayImpl>(storage);

  dfs::HeartbeatConfig heartbeatConfig;
  heartbeatConfig.metaAddress = options.get("meta");
  heartbeatConfig.advertiseAddress = advertise;
  heartbeatConfig.uuid = uuid.value();
  heartbeatConfig.label = options.get("label");
  dfs::ExtentStore* storePtr = store.get();
  auto heartbeat = std::make_unique<dfs::MetaHeartbeat>(
      io.provider->getNetwork(), io.provider->getTimer(), heartbeatConfig, [storePtr]() {
        auto stats = storePtr->stats();
        return dfs::NodeReport{stats.capacityBytes, stats.usedBytes, stats.fragments};
      });
  auto heartbeatTask = heartbeat->run().eagerlyEvaluate(nullptr);

  spdlog::info("dfs-storage listening on {}, data in {}, uuid {}", listenAddress,
               storeOptions.dataDir, uuid.value());
  bool serveFailed = false;
  auto serving = dfs::serveRpc(*listener, gateway, "dfs-storage").then(
      []() {}, [&serveFailed](kj::Exception&& e) {
        spdlog::error("accepting connections failed: {}", e.getDescription().cStr());
        serveFailed = true;
      });
  auto stop = io.unixEventPort.onSignal(SIGTERM)
                  .exclusiveJoin(io.unixEventPort.onSignal(SIGINT))
                  .then([](siginfo_t info) {
                    spdlog::info("received signal {}, shutting down", info.si_signo);
                  });
  auto serveTask = serving.exclusiveJoin(kj::mv(stop)).fork();
  serveTask.addBranch().wait(io.waitScope);

  // Order matters: finish every write already handed to the writer (its promises
  // resolve later but the data is durable), stop heartbeats, drop the
  // connections, then close the index.
  scrubber.reset();
  writer->stop();
  heartbeatTask = nullptr;
  heartbeat.reset();
  serveTask = kj::ForkedPromise<void>(nullptr);
  listener = nullptr;
  gateway = nullptr;
  storage = nullptr;
  io.waitScope.poll();
  writer.reset();
  if (metricsServer) metricsServer->stop();
  gauges.clear();
  auto stats = store->stats();
  store.reset();
  spdlog::info("dfs-storage stopped: {} fragments, {} bytes used", stats.fragments, stats.usedBytes);
  return serveFailed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Each put arrives as a message of a few MiB that glibc would take from fresh
  // mmap'ed (or freshly grown and then trimmed) memory: the kernel copied every
  // received byte into newly faulted, zeroed pages. Keeping such blocks in the heap
  // for reuse saved ~1.2 of ~4.5 CPU-seconds of the six nodes per GiB written
  // (docs/benchmarks.md, session 9). The cost is that up to the trim threshold of freed
  // heap stays resident after a burst. An environment setting wins.
  if (!getenv("MALLOC_MMAP_THRESHOLD_") && !getenv("MALLOC_TRIM_THRESHOLD_") &&
      !(getenv("GLIBC_TUNABLES") && strstr(getenv("GLIBC_TUNABLES"), "malloc"))) {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
  }
  auto specs = optionSpecs();
  auto parsed = dfs::Options::parse(argc, argv, specs);
  if (!parsed.ok()) return configError(parsed.status().message);
  const dfs::Options& options = parsed.value();
  if (options.helpRequested()) {
    std::printf("%s", dfs::Options::usage("dfs-storage", kSummary, specs).c_str());
    return 0;
  }
  if (!options.positional().empty()) return configError("unexpected argument '" + options.positional()[0] + "'");
  if (options.get("data-dir").empty()) return configError("--data-dir is required");

  dfs::ExtentStoreOptions storeOptions;
  storeOptions.dataDir = options.get("data-dir");
  if (options.isSet("capacity")) {
    auto capacity = options.getSize("capacity");
    if (!capacity.ok()) return configError("--capacity: " + capacity.status().message);
    if (capacity.value() == 0) return configError("--capacity must be more than 0");
    storeOptions.capacityBytes = capacity.value();
  }
  auto extentSize = options.getSize("max-extent-size");
  if (!extentSize.ok()) return configError("--max-extent-size: " + extentSize.status().message);
  if (extentSize.value() < (1u << 20)) return configError("--max-extent-size must be at least 1M");
  storeOptions.maxExtentBytes = extentSize.value();
  storeOptions.directAppends = !options.getBool("buffered-appends");
  auto scrubRate = options.getSize("scrub-rate");
  if (!scrubRate.ok()) return configError("--scrub-rate: " + scrubRate.status().message);
  for (const char* key : {"listen", "meta"}) {
    if (options.get(key).find(':') == std::string::npos) {
      return configError(std::string("--") + key + " must be host:port, got '" + options.get(key) + "'");
    }
  }
  dfs::Status logging = dfs::initLogging("dfs-storage", options.get("log-level"), options.getBool("log-json"));
  if (!logging.ok()) return configError(logging.message);
  return runNode(options, storeOptions, scrubRate.value());
}
