#include "backend/meta/meta_metrics.h"

#include <map>
#include <string>

namespace dfs::meta {

namespace {

struct OpMetrics {
  Counter* requests;
  Histogram* latency;
};

// Series are looked up once per method name and kept (the registry lookup locks).
OpMetrics& opMetrics(const char* op) {
  static std::map<std::string, OpMetrics> cache;  // event-loop thread only
  auto it = cache.find(op);
  if (it == cache.end()) {
    MetricLabels labels{{"op", op}};
    OpMetrics m{&metrics().counter("dfs_rpc_requests_total", "RPC calls served, by method", labels),
                &metrics().histogram("dfs_rpc_request_duration_seconds",
                                     "time from receiving a call to sending its answer", labels)};
    it = cache.emplace(op, m).first;
  }
  return it->second;
}

double ratio(uint64_t a, uint64_t b) { return b == 0 ? 0.0 : double(a) / double(b); }

}  // namespace

RpcScope::RpcScope(const char* op) : timer_(*opMetrics(op).latency) { opMetrics(op).requests->inc(); }

void publishMetaMetrics(const StatsRecord& s, const std::vector<NodeView>& nodes) {
  static Gauge& logical = metrics().gauge("dfs_meta_logical_bytes", "file bytes as clients see them");
  static Gauge& unique = metrics().gauge("dfs_meta_unique_bytes", "bytes of distinct chunks (after deduplication)");
  static Gauge& compressed = metrics().gauge("dfs_meta_compressed_bytes", "unique chunks after zstd");
  static Gauge& raw = metrics().gauge("dfs_meta_raw_bytes", "bytes on storage nodes including parity");
  static Gauge& dedup = metrics().gauge("dfs_meta_dedup_ratio", "logical / unique");
  static Gauge& compression = metrics().gauge("dfs_meta_compression_ratio", "unique / compressed");
  static Gauge& ec = metrics().gauge("dfs_meta_ec_overhead_ratio", "raw / compressed");
  static Gauge& up = metrics().gauge("dfs_meta_nodes", "storage nodes by state", {{"state", "up"}});
  static Gauge& suspect = metrics().gauge("dfs_meta_nodes", "storage nodes by state", {{"state", "suspect"}});
  static Gauge& down = metrics().gauge("dfs_meta_nodes", "storage nodes by state", {{"state", "down"}});
  logical.set(double(s.logicalBytes));
  unique.set(double(s.uniqueBytes));
  compressed.set(double(s.compressedBytes));
  raw.set(double(s.rawBytes));
  dedup.set(ratio(s.logicalBytes, s.uniqueBytes));
  compression.set(ratio(s.uniqueBytes, s.compressedBytes));
  ec.set(ratio(s.rawBytes, s.compressedBytes));
  int counts[3] = {0, 0, 0};
  for (const auto& node : nodes) counts[int(node.state)] += 1;
  up.set(counts[int(NodeState::kUp)]);
  suspect.set(counts[int(NodeState::kSuspect)]);
  down.set(counts[int(NodeState::kDown)]);
}

}  // namespace dfs::meta
