// Prometheus metrics of the metadata node (names and meaning: docs/metrics.md),
// reported into the process-wide registry that `--metrics-listen` serves.
//
// Thread: RpcScope and publishMetaMetrics run on the event-loop thread; the
// registry itself may be read from the HTTP server thread.
#pragma once

#include <vector>

#include "backend/common/metrics.h"
#include "backend/meta/cluster_map.h"
#include "backend/meta/meta_store.h"

namespace dfs::meta {

// Counts one RPC call of method `op` and observes its duration (to the end of
// the scope) in dfs_rpc_requests_total / dfs_rpc_request_duration_seconds.
class RpcScope {
 public:
  explicit RpcScope(const char* op);

 private:
  ScopedLatencyTimer timer_;
};

// Sets the dfs_meta_* gauges from the current statistics and cluster map.
void publishMetaMetrics(const StatsRecord& stats, const std::vector<NodeView>& nodes);

}  // namespace dfs::meta
