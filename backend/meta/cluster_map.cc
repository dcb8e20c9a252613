#include "backend/meta/cluster_map.h"

#include <algorithm>

namespace dfs::meta {

namespace {
// Capacity and usage are refreshed in the store at most this often (liveness is
// never persisted), so heartbeats do not each cost an fsync.
constexpr int64_t kPersistIntervalNs = int64_t(60) * 1000000000;
}  // namespace

ClusterMap::ClusterMap(MetaStore& store, int64_t nodeTimeoutNs)
    : store_(store),
      nodeTimeoutNs_(nodeTimeoutNs),
      // Starts from the wall clock in ms so that epochs also grow across restarts.
      epoch_(uint64_t(store.now() / 1000000)) {}

Status ClusterMap::load() {
  LmdbTxn txn(store_.env(), LmdbTxn::Mode::kRead);
  if (!txn.status().ok()) return txn.status();
  LmdbCursor cursor(txn, store_.dbs().nodes);
  for (cursor.first(); cursor.valid(); cursor.next()) {
    auto node = decodeNode(cursor.key(), cursor.value());
    if (!node.ok()) return node.status();
    Entry entry;
    entry.record = node.value();
    nodes_[entry.record.id] = entry;
  }
  return {};
}

Result<uint32_t> ClusterMap::registerNode(const std::string& uuid, const std::string& address,
                                          uint64_t capacityBytes, uint64_t usedBytes,
                                          uint64_t fragments, const std::string& label) {
  if (uuid.empty() || uuid.size() > 128) return Status::error(Code::INVALID, "node uuid must be 1..128 bytes");
  if (address.empty() || address.size() > 256 || address.find(':') == std::string::npos) {
    return Status::error(Code::INVALID, "node address must be host:port");
  }
  if (label.size() > 256) return Status::error(Code::INVALID, "node label too long");
  int64_t now = store_.now();
  Entry* entry = nullptr;
  for (auto& [id, e] : nodes_) {
    if (e.record.uuid == uuid) entry = &e;
  }
  bool persist = false;
  if (!entry) {
    WriteTxn wtx(store_);
    Entry fresh;
    fresh.record.uuid = uuid;
    fresh.record.id = uint32_t(wtx.nextId(kNextNode, 1));
    auto status = wtx.commit();
    if (!status.ok()) return status;
    entry = &nodes_[fresh.record.id];
    *entry = fresh;
    persist = true;
    epoch_ += 1;
  }
  NodeRecord& r = entry->record;
  if (r.address != address || r.label != label) {
    persist = true;
    epoch_ += 1;
  }
  r.address = address;
  r.label = label;
  r.capacityBytes = capacityBytes;
  r.usedBytes = usedBytes;
  r.fragments = fragments;
  r.lastHeartbeatNs = now;
  entry->heartbeated = true;
  if (entry->state != NodeState::kUp) {
    entry->state = NodeState::kUp;
    epoch_ += 1;
  }
  if (persist || now - entry->persistedNs > kPersistIntervalNs) {
    WriteTxn wtx(store_);
    wtx.put(wtx.dbs().nodes, r.uuid, encodeNode(r));
    auto status = wtx.commit();
    if (!status.ok()) return status;
    entry->persistedNs = now;
  }
  return r.id;
}

NodeState ClusterMap::stateOf(const Entry& entry, int64_t now) const {
  if (!entry.heartbeated) return NodeState::kDown;
  int64_t silence = now - entry.record.lastHeartbeatNs;
  if (silence > nodeTimeoutNs_) return NodeState::kDown;
  if (silence > int64_t(3) * kHeartbeatMs * 1000000) return NodeState::kSuspect;
  return NodeState::kUp;
}

void ClusterMap::refresh() {
  int64_t now = store_.now();
  for (auto& [id, entry] : nodes_) {
    NodeState state = stateOf(entry, now);
    if (state != entry.state) {
      entry.state = state;
      epoch_ += 1;
    }
  }
}

std::vector<NodeView> ClusterMap::nodes() {
  refresh();
  std::vector<NodeView> out;
  for (auto& [id, entry] : nodes_) {
    NodeView view;
    view.record = entry.record;
    view.state = entry.state;
    view.weight = uint32_t(std::max<uint64_t>(1, entry.record.capacityBytes >> 30));
    out.push_back(std::move(view));
  }
  return out;
}

uint64_t ClusterMap::epoch() {
  refresh();
  return epoch_;
}

int ClusterMap::upCount() {
  refresh();
  int n = 0;
  for (auto& [id, entry] : nodes_) n += entry.state == NodeState::kUp;
  return n;
}

std::string ClusterMap::address(uint32_t id) const {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? std::string() : it->second.record.address;
}

}  // namespace dfs::meta
