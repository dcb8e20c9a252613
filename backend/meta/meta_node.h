// The metadata node as a whole: configuration, the store and the tables built
// on it, and the periodic work (session expiry, node liveness, GC). The RPC
// layer (meta_service.h) and the tests both drive it through these members.
//
// Thread: the metadata node's one event-loop thread.
#pragma once

#include <kj/async-io.h>

#include <functional>
#include <memory>
#include <string>

#include "backend/common/hybrid_clock.h"
#include "backend/meta/client_ops.h"
#include "backend/meta/cluster_map.h"
#include "backend/meta/garbage_collector.h"
#include "backend/meta/invalidations.h"
#include "backend/meta/recalls.h"
#include "backend/meta/meta_store.h"
#include "backend/meta/namespace_ops.h"
#include "backend/meta/sessions.h"
#include "backend/meta/volumes.h"
#include "backend/meta/write_conflicts.h"
#include "backend/meta/xattrs.h"

namespace dfs::meta {

struct MetaConfig {
  std::string dataDir;
  std::string defaultVolume = "default";  // created on first start; empty: none
  int64_t nodeTimeoutNs = int64_t(5) * 1000000000;
  int64_t sessionLeaseNs = int64_t(30) * 1000000000;
  int64_t gcGraceNs = int64_t(3600) * 1000000000;
  int64_t gcIntervalNs = int64_t(600) * 1000000000;
  size_t mapSize = size_t(64) << 30;
  // A client with no reply or journal mark stored for this long is forgotten
  // (ClientOps::expire), checked every kClientExpiryIntervalNs.
  int64_t clientRetentionNs = int64_t(30) * 24 * 3600 * 1000000000;
  // true: every commit fdatasyncs its data pages (MDB_NOMETASYNC; the meta page
  // follows with the next commit, Meta.sync or the periodic tick). false: no
  // fsync at all (tests only; a crash may lose recent commits).
  bool durable = true;
  // Group commit of the operations of one event-loop burst (see
  // MetaStore::enableGroupCommit). REQUIRES a KJ event loop on this thread.
  bool groupCommit = false;
  // Wall clock override for tests (null: the real clock).
  std::function<int64_t()> clock;
};

class MetaNode {
 public:
  // Opens the store in config.dataDir, loads nodes and sessions, creates the
  // default volume on first start. `network`/`timer` may be null (tests: no GC RPCs).
  static Result<std::unique_ptr<MetaNode>> open(const MetaConfig& config,
                                                kj::Network* network = nullptr,
                                                kj::Timer* timer = nullptr);

  ~MetaNode();  // commits a pending group commit

  // Runs the periodic work forever (REQUIRES: a timer was given).
  kj::Promise<void> runPeriodic();

  // Resolves once every change made so far is durable (group commit), with the
  // commit's outcome; at once when nothing is pending.
  kj::Promise<Status> whenDurable();

  const MetaConfig& config() const { return config_; }
  MetaStore& store() { return *store_; }
  Namespace& names() { return names_; }
  Xattrs& xattrs() { return xattrs_; }
  SessionTable& sessions() { return sessions_; }
  VolumeTable& volumes() { return volumes_; }
  ClusterMap& cluster() { return cluster_; }
  GarbageCollector& gc() { return gc_; }
  // Cache invalidation callbacks of mounted sessions (in memory).
  Invalidations& invalidations() { return invalidations_; }
  // Which sessions write which files; flush requests before others' opens.
  Recalls& recalls() { return recalls_; }
  // Recent commits per inode for concurrent-writer conflicts (in memory).
  WriteConflicts& conflicts() { return conflicts_; }
  // Stored replies and journal marks per client instance (persistent).
  ClientOps& clientOps() { return clientOps_; }
  // The node's hybrid logical clock (merged with the clients' on commitWrite).
  HybridClock& hlc() { return hlc_; }

 private:
  MetaNode(const MetaConfig& config, std::unique_ptr<MetaStore> store, kj::Network* network,
           kj::Timer* timer);
  kj::Promise<void> tick();

  MetaConfig config_;
  std::unique_ptr<MetaStore> store_;
  kj::Timer* timer_;
  Namespace names_;
  Xattrs xattrs_;
  SessionTable sessions_;
  VolumeTable volumes_;
  ClusterMap cluster_;
  GarbageCollector gc_;
  Invalidations invalidations_;
  Recalls recalls_;
  WriteConflicts conflicts_;
  ClientOps clientOps_;
  HybridClock hlc_;
  int64_t nextGcNs_ = 0;
  // Lets a scheduled group commit notice that the node is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // Chunk last-access times are written at most this often (one transaction).
  static constexpr int64_t kAccessFlushIntervalNs = int64_t(60) * 1000000000;
  int64_t nextAccessFlushNs_ = 0;
  static constexpr int64_t kClientExpiryIntervalNs = int64_t(3600) * 1000000000;
  int64_t nextClientExpiryNs_ = 0;
};

}  // namespace dfs::meta
