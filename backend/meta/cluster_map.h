// The cluster map: storage nodes known to this metadata node, their persistent
// small ids (one per data-directory uuid), addresses, capacity and liveness.
// Liveness is in memory only: a node is up while it heartbeats, suspect after 3
// missed heartbeats, down after the node timeout; a node that has not
// heartbeated since this process started is down. The epoch changes whenever
// membership or any node's state changes.
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "backend/meta/meta_store.h"

namespace dfs::meta {

enum class NodeState { kUp, kSuspect, kDown };

struct NodeView {
  NodeRecord record;
  NodeState state = NodeState::kDown;
  uint32_t weight = 1;  // capacity in GiB, at least 1
};

class ClusterMap {
 public:
  static constexpr uint32_t kHeartbeatMs = 1000;

  ClusterMap(MetaStore& store, int64_t nodeTimeoutNs);
  // Reads the persisted nodes (all down until they heartbeat).
  Status load();
  // Registers or heartbeats a node; returns its id.
  Result<uint32_t> registerNode(const std::string& uuid, const std::string& address,
                                uint64_t capacityBytes, uint64_t usedBytes, uint64_t fragments,
                                const std::string& label);
  // Recomputes states from the clock; bumps the epoch on any change.
  void refresh();
  std::vector<NodeView> nodes();
  uint64_t epoch();
  int upCount();
  // Address of node `id`, empty when unknown.
  std::string address(uint32_t id) const;

 private:
  struct Entry {
    NodeRecord record;
    NodeState state = NodeState::kDown;
    bool heartbeated = false;  // since this process started
    int64_t persistedNs = 0;
  };
  NodeState stateOf(const Entry& entry, int64_t now) const;

  MetaStore& store_;
  int64_t nodeTimeoutNs_;
  std::map<uint32_t, Entry> nodes_;  // by id
  uint64_t epoch_;
};

}  // namespace dfs::meta
