#include "tools/dfsctl/tier.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "backend/client/chunk_fetch.h"
#include "backend/client/proto_convert.h"
#include "backend/client/rpc_loop.h"
#include "backend/client/storage_pool.h"
#include "backend/common/chunk_codec.h"
#include "tools/dfsctl/deadline.h"

namespace dfs {
namespace {

constexpr uint32_t kPage = 64;               // chunks per coldChunks call and per batch
constexpr int64_t kStorageTimeoutMs = 30000;

// One cold chunk on its way through the batch.
struct Work {
  ChunkPlacement old;
  std::optional<std::string> plain;  // decoded, verified plaintext
  std::shared_ptr<EncodedChunk> fresh;  // re-encoded at the tier level (owns the put bytes)
  bool pays = false;                 // fresh is smaller on the storage nodes
  bool failed = false;
};

class Tierer {
 public:
  Tierer(proto::Meta::Client meta, kj::AsyncIoContext& io, int timeoutSeconds,
         const TierOptions& options)
      : meta_(kj::mv(meta)), io_(io), timeoutSeconds_(timeoutSeconds), options_(options),
        pool_(loop_, kStorageTimeoutMs) {}

  TierReport run() {
    loadNodes();
    int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    int64_t beforeNs = now - options_.coldAfterSeconds * 1000000000;
    std::string after;
    bool eof = false;
    while (!eof && (options_.maxChunks == 0 || report_.examined < options_.maxChunks)) {
      auto request = meta_.coldChunksRequest();
      request.setBeforeNs(beforeNs);
      request.setBelowLevel(uint8_t(options_.level));
      request.setAfter(asData(after));
      uint32_t want = kPage;
      if (options_.maxChunks != 0) {
        want = uint32_t(std::min<uint64_t>(kPage, options_.maxChunks - report_.examined));
      }
      request.setMax(want);
      auto reply = wait(request.send());
      check(reply.getStatus(), "coldChunks");
      std::vector<Work> batch;
      for (auto c : reply.getChunks()) {
        batch.emplace_back();
        batch.back().old = chunkFromProto(c);
      }
      after = toString(reply.getNext());
      eof = reply.getEof() || after.empty();
      if (!batch.empty()) tierBatch(batch);
    }
    return report_;
  }

 private:
  template <typename T>
  T wait(kj::Promise<T>&& promise) {
    return waitWithin(io_, timeoutSeconds_, kj::mv(promise));
  }

  void check(proto::Status::Reader status, const char* what) {
    if (status.getCode() != proto::Code::OK) {
      KJ_FAIL_REQUIRE(what, status.getMessage().cStr());
    }
  }

  void loadNodes() {
    auto reply = wait(meta_.clusterMapRequest().send());
    for (auto n : reply.getNodes()) {
      nodes_[n.getId()] =
          NodeAddress{n.getAddress().cStr(), n.getState() == proto::NodeInfo::NodeState::UP};
    }
  }

  // Fetches and verifies every chunk of the batch (parity when data fragments fail).
  void fetch(std::vector<Work>& batch) {
    std::vector<const ChunkPlacement*> chunks;
    for (const auto& w : batch) chunks.push_back(&w.old);
    auto reads = readChunks(pool_, chunks, nodes_);
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& w = batch[i];
      if (!reads[i].plain.ok()) {
        spdlog::warn("tier: chunk {} unreadable, left as it is: {}", toHex(w.old.layout.id),
                     reads[i].plain.status().message);
        w.failed = true;
        continue;
      }
      w.plain = std::move(reads[i].plain).value();
    }
  }

  // Recompresses and re-encodes the fetched chunks on `threads` threads.
  void encode(std::vector<Work>& batch) {
    std::atomic<size_t> next{0};
    auto worker = [&]() {
      for (size_t i = next++; i < batch.size(); i = next++) {
        auto& w = batch[i];
        if (w.failed) continue;
        auto enc = encodeChunk(reinterpret_cast<const uint8_t*>(w.plain->data()), w.plain->size(),
                               w.old.layout.k, w.old.layout.m, options_.level, &w.old.layout.id);
        w.plain.reset();
        if (!enc.ok()) {
          w.failed = true;
          continue;
        }
        w.fresh = std::make_shared<EncodedChunk>(std::move(enc).value());
        w.pays = w.fresh->layout.fragmentSize < w.old.layout.fragmentSize;
      }
    };
    std::vector<std::thread> threads;
    for (int t = 1; t < options_.threads; ++t) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
  }

  // Stores the new fragments of the chunks that pay under their next generation.
  void store(std::vector<Work>& batch) {
    std::vector<FragmentPut> puts;
    for (auto& w : batch) {
      if (w.failed || !w.pays) continue;
      uint8_t generation = uint8_t(w.old.generation % kMaxGeneration + 1);
      for (size_t j = 0; j < w.fresh->fragments.size(); ++j) {
        uint32_t node = w.old.nodes[j];
        auto it = nodes_.find(node);
        if (it == nodes_.end() || !it->second.up) {
          w.failed = true;
          break;
        }
        puts.push_back(FragmentPut{node, it->second.address, fragmentId(w.old.layout.id, uint8_t(j), generation),
                                   &w.fresh->fragments[j], w.fresh->layout.checksums[j], w.fresh});
      }
    }
    if (puts.empty()) return;
    auto outcome = pool_.put(puts).get();
    if (outcome.status.ok()) return;
    spdlog::warn("tier: storing new fragments failed on {} node(s): {}", outcome.failedNodes.size(),
                 outcome.status.message);
    for (auto& w : batch) {
      for (uint32_t n : outcome.failedNodes) {
        for (uint32_t mine : w.old.nodes) w.failed = w.failed || mine == n;
      }
    }
    if (outcome.failedNodes.empty()) {
      for (auto& w : batch) w.failed = w.failed || w.pays;
    }
  }

  void commit(std::vector<Work>& batch) {
    std::vector<Work*> sent;
    for (auto& w : batch) {
      if (!w.failed) sent.push_back(&w);
    }
    if (sent.empty()) return;
    auto request = meta_.retierChunksRequest();
    auto list = request.initChunks(unsigned(sent.size()));
    for (size_t i = 0; i < sent.size(); ++i) {
      Work& w = *sent[i];
      chunkToProto(w.old, list[unsigned(i)].initOld());
      ChunkPlacement replacement = w.old;
      if (w.pays) {
        replacement.layout = w.fresh->layout;
        replacement.generation = uint8_t(w.old.generation % kMaxGeneration + 1);
      }
      chunkToProto(replacement, list[unsigned(i)].initNew());
      list[unsigned(i)].setLevel(uint8_t(options_.level));
    }
    auto reply = wait(request.send());
    auto statuses = reply.getStatuses();
    for (size_t i = 0; i < sent.size() && i < statuses.size(); ++i) {
      Work& w = *sent[i];
      auto code = statuses[unsigned(i)].getCode();
      if (code == proto::Code::OK && w.pays) {
        ++report_.recompressed;
        report_.storedBefore += w.old.layout.storedSize;
        report_.storedAfter += w.fresh->layout.storedSize;
        report_.rawBefore += uint64_t(w.old.layout.k + w.old.layout.m) * w.old.layout.fragmentSize;
        report_.rawAfter += uint64_t(w.fresh->layout.k + w.fresh->layout.m) * w.fresh->layout.fragmentSize;
      } else if (code == proto::Code::OK) {
        ++report_.unchanged;
      } else if (code == proto::Code::BUSY || code == proto::Code::NOT_FOUND) {
        ++report_.changed;
      } else {
        ++report_.failed;
        spdlog::warn("tier: chunk {} refused: {}", toHex(w.old.layout.id),
                     statuses[unsigned(i)].getMessage().cStr());
      }
    }
  }

  void tierBatch(std::vector<Work>& batch) {
    report_.examined += batch.size();
    fetch(batch);
    encode(batch);
    store(batch);
    commit(batch);
    for (const auto& w : batch) report_.failed += w.failed ? 1 : 0;
  }

  proto::Meta::Client meta_;
  kj::AsyncIoContext& io_;
  int timeoutSeconds_;
  TierOptions options_;
  RpcLoop loop_;
  StoragePool pool_;
  NodeDirectory nodes_;
  TierReport report_;
};

}  // namespace

TierReport runTier(proto::Meta::Client meta, kj::AsyncIoContext& io, int timeoutSeconds,
                   const TierOptions& options) {
  Tierer tierer(kj::mv(meta), io, timeoutSeconds, options);
  return tierer.run();
}

}  // namespace dfs
