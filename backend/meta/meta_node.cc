#include "backend/meta/meta_node.h"

#include <spdlog/spdlog.h>

#include "backend/meta/chunk_table.h"
#include "backend/meta/meta_metrics.h"

namespace dfs::meta {

MetaNode::MetaNode(const MetaConfig& config, std::unique_ptr<MetaStore> store,
                   kj::Network* network, kj::Timer* timer)
    : config_(config),
      store_(std::move(store)),
      timer_(timer),
      names_(*store_),
      xattrs_(*store_),
      sessions_(*store_, config.sessionLeaseNs),
      volumes_(*store_),
      cluster_(*store_, config.nodeTimeoutNs),
      gc_(*store_, cluster_, network, timer),
      invalidations_(timer),
      recalls_(invalidations_, timer),
      clientOps_(*store_) {}

Result<std::unique_ptr<MetaNode>> MetaNode::open(const MetaConfig& config, kj::Network* network,
                                                 kj::Timer* timer) {
  auto store = MetaStore::open(config.dataDir, config.mapSize, config.durable ? MDB_NOMETASYNC : MDB_NOSYNC);
  if (!store.ok()) return store.status();
  if (config.clock) store.value()->setClockForTest(config.clock);
  std::unique_ptr<MetaNode> node(new MetaNode(config, std::move(store).value(), network, timer));
  auto status = node->cluster_.load();
  if (status.ok()) status = node->sessions_.load();
  if (status.ok()) status = node->volumes_.ensureDefault(config.defaultVolume);
  if (!status.ok()) return status;
  node->nextGcNs_ = node->store_->now() + config.gcIntervalNs;
  if (config.groupCommit) {
    MetaStore* store = node->store_.get();
    std::weak_ptr<bool> alive = node->alive_;
    // The batch commits when the event queue has drained, i.e. after every
    // request that arrived together has run its transaction.
    store->enableGroupCommit([store, alive]() {
      kj::evalLast([store, alive]() {
        if (alive.expired()) return;
        auto status = store->commitBatch();
        if (!status.ok()) spdlog::error("group commit failed: {}", status.message);
      }).detach([](kj::Exception&& e) {
        spdlog::error("group commit: {}", e.getDescription().cStr());
      });
    });
  }
  return node;
}

MetaNode::~MetaNode() {
  auto status = store_->commitBatch();
  if (!status.ok()) spdlog::error("final group commit failed: {}", status.message);
  status = store_->sync();
  if (!status.ok()) spdlog::error("final sync failed: {}", status.message);
}

kj::Promise<Status> MetaNode::whenDurable() {
  if (!store_->batchOpen()) return Status::success();
  auto paf = kj::newPromiseAndFulfiller<Status>();
  auto fulfiller = std::make_shared<kj::Own<kj::PromiseFulfiller<Status>>>(kj::mv(paf.fulfiller));
  store_->whenCommitted([fulfiller](const Status& status) { (*fulfiller)->fulfill(Status(status)); });
  return kj::mv(paf.promise);
}

kj::Promise<void> MetaNode::runPeriodic() {
  return timer_->afterDelay(500 * kj::MILLISECONDS)
      .then([this]() { return tick(); })
      .catch_([](kj::Exception&& e) {
        // A failed tick is logged; the periodic work (and the daemon) go on.
        spdlog::error("periodic work failed: {}", e.getDescription().cStr());
      })
      .then([this]() { return runPeriodic(); });
}

kj::Promise<void> MetaNode::tick() {
  size_t expired = sessions_.expire();
  if (expired > 0) spdlog::info("expired {} client sessions", expired);
  publishMetaMetrics(store_->stats(), cluster_.nodes());
  int64_t now = store_->now();
  // Bounds what an OS crash could undo (MDB_NOMETASYNC) to one tick.
  Status synced = store_->sync();
  if (!synced.ok()) spdlog::error("periodic sync of the metadata store failed: {}", synced.message);
  if (now >= nextAccessFlushNs_) {
    nextAccessFlushNs_ = now + kAccessFlushIntervalNs;
    flushChunkAccessTimes(*store_);
  }
  if (now >= nextClientExpiryNs_) {
    nextClientExpiryNs_ = now + kClientExpiryIntervalNs;
    auto forgotten = clientOps_.expire(config_.clientRetentionNs);
    if (!forgotten.ok())
      spdlog::error("expiry of idle clients failed: {}", forgotten.status().message);
  }
  if (config_.gcIntervalNs > 0 && now >= nextGcNs_ && !gc_.running()) {
    nextGcNs_ = now + config_.gcIntervalNs;
    // Runs in the background; the tick loop does not wait for it.
    auto run = gc_.run(config_.gcGraceNs).then([](Result<GcResult> result) {
      if (!result.ok()) spdlog::warn("periodic gc: {}", result.status().message);
    });
    run.detach([](kj::Exception&& e) {
      spdlog::warn("periodic gc failed: {}", e.getDescription().cStr());
    });
  }
  return kj::READY_NOW;
}

}  // namespace dfs::meta
