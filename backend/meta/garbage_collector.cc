#include "backend/meta/garbage_collector.h"

#include <spdlog/spdlog.h>

#include "backend/common/chunk_codec.h"
#include "backend/meta/chunk_table.h"

namespace dfs::meta {

namespace {
constexpr size_t kRecordBatch = 512;      // chunk records per write transaction
constexpr size_t kDeleteBatch = 1024;     // fragment ids per Storage.delete
constexpr uint32_t kListPage = 1024;      // fragment ids per Storage.list
constexpr auto kStorageTimeout = 30 * kj::SECONDS;

capnp::Data::Reader asData(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}
}  // namespace

GarbageCollector::GarbageCollector(MetaStore& store, ClusterMap& cluster, kj::Network* network,
                                   kj::Timer* timer)
    : store_(store), cluster_(cluster), network_(network), timer_(timer) {}

kj::Promise<void> GarbageCollector::whenIdle() {
  KJ_IF_MAYBE(idle, idle_) { return idle->addBranch(); }
  return kj::READY_NOW;
}

void GarbageCollector::finishPhaseOne() {
  deleting_.clear();
  pending_.clear();
  KJ_IF_MAYBE(fulfiller, idleFulfiller_) { (*fulfiller)->fulfill(); }
  idleFulfiller_ = nullptr;
  idle_ = nullptr;
}

kj::Promise<Result<GcResult>> GarbageCollector::run(int64_t graceNs) {
  if (running_) {
    return Result<GcResult>(Status::error(Code::BUSY, "garbage collection already running"));
  }
  running_ = true;
  result_ = {};
  auto paf = kj::newPromiseAndFulfiller<void>();
  idleFulfiller_ = kj::mv(paf.fulfiller);
  idle_ = paf.promise.fork();
  int64_t cutoff = store_.now() - graceNs;
  return collectRecords(cutoff, {})
      .then([this]() { return deleteFragments(); })
      .then([this]() { finishPhaseOne(); },
            [this](kj::Exception&& e) {
              spdlog::warn("gc: fragment deletion failed: {}", e.getDescription().cStr());
              finishPhaseOne();
            })
      .then([this, cutoff]() { return collectOrphans(cutoff); })
      .then(
          [this]() -> Result<GcResult> {
            running_ = false;
            clients_.clear();
            connections_.clear();
            bool any = result_.chunksDeleted + result_.orphanFragmentsDeleted > 0;
            spdlog::log(any ? spdlog::level::info : spdlog::level::debug,
                        "gc: {} chunks, {} fragments, {} orphan fragments deleted, {} bytes freed",
                        result_.chunksDeleted, result_.fragmentsDeleted,
                        result_.orphanFragmentsDeleted, result_.bytesFreed);
            return result_;
          },
          [this](kj::Exception&& e) -> Result<GcResult> {
            running_ = false;
            clients_.clear();
            connections_.clear();
            return Status::error(Code::IO, std::string("gc failed: ") + e.getDescription().cStr());
          });
}

kj::Promise<void> GarbageCollector::collectRecords(int64_t zeroBeforeNs, std::string after) {
  WriteTxn wtx(store_);
  auto removed = removeUnreferencedChunks(wtx, zeroBeforeNs, kRecordBatch, &after);
  auto status = wtx.commit();
  // Fragments may only go once the removal of their records is durable.
  if (status.ok()) status = store_.commitBatch();
  if (!status.ok()) {
    spdlog::warn("gc: removing chunk records failed: {}", status.message);
    return kj::READY_NOW;
  }
  for (const auto& record : removed) {
    result_.chunksDeleted += 1;
    result_.bytesFreed += record.rawBytes();
    deleting_.insert(record.id);
    for (size_t i = 0; i < record.nodes.size(); ++i) {
      pending_[record.nodes[i]].push_back(fragmentId(record.id, uint8_t(i), record.generation));
    }
  }
  if (after.empty()) return kj::READY_NOW;
  // Yield between batches so that clients are served while a large backlog is collected.
  return kj::evalLater([this, zeroBeforeNs, after]() { return collectRecords(zeroBeforeNs, after); });
}

kj::Promise<void> GarbageCollector::deleteFragments() {
  // Nodes that are not up are skipped rather than waited for: their fragments
  // have no chunk record any more, so the orphan phase of a later run removes
  // them once the node is back.
  std::set<uint32_t> up;
  for (const auto& node : cluster_.nodes()) {
    if (node.state == NodeState::kUp) up.insert(node.record.id);
  }
  auto promises = kj::heapArrayBuilder<kj::Promise<void>>(pending_.size());
  for (auto& [nodeId, ids] : pending_) {
    if (!up.count(nodeId)) {
      promises.add(kj::READY_NOW);
      continue;
    }
    promises.add(deleteOn(nodeId, ids).then([this](uint32_t n) { result_.fragmentsDeleted += n; }));
  }
  return kj::joinPromises(promises.finish());
}

kj::Promise<proto::Storage::Client> GarbageCollector::storage(uint32_t nodeId) {
  auto it = clients_.find(nodeId);
  if (it != clients_.end()) return it->second;
  std::string address = cluster_.address(nodeId);
  if (network_ == nullptr || address.empty()) {
    return KJ_EXCEPTION(DISCONNECTED, "storage node unreachable", nodeId);
  }
  return connectRpc(*network_, address).then([this, nodeId](kj::Own<RpcConnection> connection) {
    auto gateway = connection->bootstrapAs<proto::StorageGateway>();
    connections_.push_back(kj::mv(connection));
    auto request = gateway.helloRequest();
    request.setVersion(proto::PROTOCOL_VERSION);
    request.setPeer("dfs-meta gc");
    return request.send().then([this, nodeId](capnp::Response<proto::StorageGateway::HelloResults>&& response) {
      proto::Storage::Client client = response.getStorage();
      clients_.emplace(nodeId, client);
      return client;
    });
  });
}

kj::Promise<uint32_t> GarbageCollector::deleteOn(uint32_t nodeId,
                                                 std::vector<std::string> fragmentIds) {
  if (network_ == nullptr || fragmentIds.empty()) return uint32_t(0);
  auto work = storage(nodeId).then([fragmentIds = kj::mv(fragmentIds)](proto::Storage::Client client) {
    size_t batches = (fragmentIds.size() + kDeleteBatch - 1) / kDeleteBatch;
    auto promises = kj::heapArrayBuilder<kj::Promise<uint32_t>>(batches);
    for (size_t b = 0; b < batches; ++b) {
      size_t begin = b * kDeleteBatch, end = std::min(fragmentIds.size(), begin + kDeleteBatch);
      auto request = client.deleteRequest();
      auto ids = request.initIds(unsigned(end - begin));
      for (size_t i = begin; i < end; ++i) ids.set(unsigned(i - begin), asData(fragmentIds[i]));
      promises.add(request.send().then([](capnp::Response<proto::Storage::DeleteResults>&& r) {
        return r.getDeleted();
      }));
    }
    return kj::joinPromises(promises.finish()).then([](kj::Array<uint32_t> counts) {
      uint32_t total = 0;
      for (uint32_t c : counts) total += c;
      return total;
    });
  });
  if (timer_ != nullptr) work = timer_->timeoutAfter(kStorageTimeout, kj::mv(work));
  return work.catch_([nodeId](kj::Exception&& e) -> uint32_t {
    spdlog::warn("gc: deleting fragments on node {} failed: {}", nodeId, e.getDescription().cStr());
    return 0;
  });
}

kj::Promise<void> GarbageCollector::collectOrphans(int64_t beforeNs) {
  kj::Promise<void> chain = kj::READY_NOW;
  for (const auto& node : cluster_.nodes()) {
    if (node.state != NodeState::kUp || network_ == nullptr) continue;
    uint32_t nodeId = node.record.id;
    chain = chain.then([this, nodeId, beforeNs]() {
      auto scan = scanNode(nodeId, {}, beforeNs);
      if (timer_ != nullptr) scan = timer_->timeoutAfter(10 * kStorageTimeout, kj::mv(scan));
      return scan.catch_([nodeId](kj::Exception&& e) {
        spdlog::warn("gc: orphan scan of node {} failed: {}", nodeId, e.getDescription().cStr());
      });
    });
  }
  return chain;
}

kj::Promise<void> GarbageCollector::scanNode(uint32_t nodeId, std::string after, int64_t beforeNs) {
  return storage(nodeId).then([this, nodeId, after = kj::mv(after), beforeNs](proto::Storage::Client client) {
    auto request = client.listRequest();
    request.setAfter(asData(after));
    request.setMax(kListPage);
    request.setBeforeNs(beforeNs);
    return request.send().then([this, nodeId, beforeNs](capnp::Response<proto::Storage::ListResults>&& response) {
      std::vector<std::string> doomed;
      std::string last;
      // Judge against every commit made so far, including a pending group commit.
      auto flushed = store_.commitBatch();
      if (!flushed.ok()) return kj::Promise<void>(KJ_EXCEPTION(FAILED, "gc: commit failed", flushed.message));
      {
        LmdbTxn txn(store_.env(), LmdbTxn::Mode::kRead);
        for (auto id : response.getIds()) {
          std::string fragment(reinterpret_cast<const char*>(id.begin()), id.size());
          last = fragment;
          if (fragment.size() != kChunkIdSize + 1) continue;  // not ours to judge
          std::string chunkId = fragment.substr(0, kChunkIdSize);
          uint8_t idByte = uint8_t(fragment[kChunkIdSize]);
          size_t index = fragmentIndexOf(idByte);
          if (deleting(chunkId)) continue;
          auto chunk = tryLoadChunk(txn, store_.dbs(), chunkId);
          // Also doomed: fragments of an earlier generation (replaced by tiering).
          if (!chunk || index >= chunk->nodes.size() || chunk->nodes[index] != nodeId ||
              fragmentGenerationOf(idByte) != chunk->generation) {
            doomed.push_back(std::move(fragment));
          }
        }
      }
      bool done = response.getEof() || last.empty();
      return kj::Promise<void>(deleteOn(nodeId, kj::mv(doomed))
          .then([this, nodeId, beforeNs, done, last](uint32_t n) -> kj::Promise<void> {
            result_.orphanFragmentsDeleted += n;
            if (done) return kj::READY_NOW;
            return scanNode(nodeId, last, beforeNs);
          }));
    });
  });
}

}  // namespace dfs::meta
