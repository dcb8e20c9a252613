#include "backend/client/chunk_upload.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <system_error>
#include <thread>
#include <utility>

#include "backend/client/data_path_internal.h"

namespace dfs {

using namespace data_path_detail;

DataPath::Upload::Upload(DataPath& dp, uint64_t ino, const VolumeInfo& vol)
    : dp_(dp), ino_(ino), vol_(vol), batch_(std::make_unique<Batch>()) {
  collectNodes(/*refresh=*/true, /*force=*/false);
}

DataPath::Upload::~Upload() {
  for (auto& b : inflight_) {
    // A deferred task (launch() found no thread) has not started: drop it.
    if (b->done.valid() &&
        b->done.wait_for(std::chrono::seconds(0)) != std::future_status::deferred) {
      b->done.wait();
    }
  }
}

void DataPath::Upload::collectNodes(bool refresh, bool force) {
  if (refresh) dp_.refreshClusterMap(force);
  size_t usable = 0;
  auto collect = [&] {
    up_.clear();
    usable = 0;
    std::lock_guard<std::mutex> lock(dp_.clusterMu_);
    int64_t now = monotonicNs();
    for (const auto& n : dp_.cluster_.nodes) {
      addresses_[n.id] = n.address;
      auto ex = dp_.excludedUntilNs_.find(n.id);
      bool excluded = ex != dp_.excludedUntilNs_.end() && ex->second > now;
      up_.push_back(PlacementNode{n.id, n.weight, n.label, n.up && !excluded});
      usable += n.up && !excluded;
    }
  };
  collect();
  // Right after a dfs-meta restart the storage nodes re-register within a
  // heartbeat or two: wait a little for enough of them before failing.
  for (int wait = 0; wait < kPlacementWaits && usable < size_t(vol_.ecK + vol_.ecM); ++wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    dp_.refreshClusterMap(true);
    collect();
  }
}

Status DataPath::Upload::add(const std::vector<const Piece*>& pieces) {
  if (!fatal_.ok()) return fatal_;
  // Nodes whose puts failed since the last batch are left out from now on.
  if (!newlyFailed_.empty()) {
    newlyFailed_.clear();
    collectNodes(false, false);
  }
  fatal_ = place(pieces);
  if (!fatal_.ok()) spdlog::error("write of inode {} failed: {}", ino_, fatal_.message);
  return fatal_;
}

Status DataPath::Upload::place(const std::vector<const Piece*>& pieces) {
  size_t n = size_t(vol_.ecK + vol_.ecM);
  for (const Piece* p : pieces) {
    auto nodes = placeFragments(p->id, up_, n);
    if (!nodes.ok()) {
      return Status::error(Code::UNAVAILABLE, "cannot place " + std::to_string(n) +
                                                  " fragments (k=" + std::to_string(vol_.ecK) +
                                                  ", m=" + std::to_string(vol_.ecM) +
                                                  "): " + nodes.status().message);
    }
    std::vector<std::string> addresses;
    for (uint32_t node : nodes.value()) addresses.push_back(addresses_[node]);
    batch_->pieces.push_back(p);
    batch_->nodes.push_back(std::move(nodes).value());
    batch_->addresses.push_back(std::move(addresses));
    batch_->bytes += p->size;
    if (batch_->bytes >= dp_.options_.uploadBatchBytes) launch();
    if (!fatal_.ok()) return fatal_;  // a reaped batch failed to encode
  }
  return {};
}

void DataPath::Upload::launch() {
  std::unique_ptr<Batch> b = std::exchange(batch_, std::make_unique<Batch>());
  // The task outlives neither the batch nor the pieces: the upload waits for it.
  Batch* raw = b.get();
  VolumeInfo vol = vol_;
  StoragePool& storage = dp_.storage_;
  auto task = [raw, vol, &storage]() -> PutOutcome {
    std::vector<EncodedChunk>& encoded = *raw->encoded;
    std::vector<FragmentPut> puts;
    for (size_t i = 0; i < raw->pieces.size(); ++i) {
      const Piece* p = raw->pieces[i];
      auto enc = encodeChunk(p->data, p->size, vol.ecK, vol.ecM, vol.compressionLevel, &p->id);
      if (!enc.ok()) {
        raw->encodeError = enc.status();
        return PutOutcome{enc.status(), {}};
      }
      encoded.push_back(std::move(enc).value());
    }
    for (size_t i = 0; i < encoded.size(); ++i) {
      const EncodedChunk& enc = encoded[i];
      for (size_t j = 0; j < enc.fragments.size(); ++j) {
        // The request points at the fragment instead of copying it (zero-copy).
        puts.push_back(FragmentPut{raw->nodes[i][j], raw->addresses[i][j],
                                   fragmentId(enc.layout.id, uint8_t(j)), &enc.fragments[j],
                                   enc.layout.checksums[j], raw->encoded});
      }
    }
    return storage.put(std::move(puts)).get();
  };
  try {
    b->done = std::async(std::launch::async, task);
  } catch (const std::system_error& e) {
    // No thread to be had (a process limit): encode when reaped, on this thread.
    spdlog::warn("inode {}: upload task not started ({}); encoding inline", ino_, e.what());
    b->done = std::async(std::launch::deferred, task);
  }
  inflight_.push_back(std::move(b));
  while (inflight_.size() > kMaxPutsInFlight) {
    reap(*inflight_.front());
    inflight_.pop_front();
  }
}

void DataPath::Upload::reap(Batch& b) {
  PutOutcome out = b.done.get();
  if (!b.encodeError.ok()) {
    if (fatal_.ok()) fatal_ = b.encodeError;
    return;
  }
  if (out.status.ok()) {
    uint64_t sent = 0;
    for (size_t i = 0; i < b.encoded->size(); ++i) {
      const EncodedChunk& enc = (*b.encoded)[i];
      placed_.push_back(ChunkPlacement{enc.layout, b.nodes[i]});
      sent += uint64_t(enc.layout.fragmentSize) * enc.fragments.size();
    }
    dp_.stats_.chunksUploaded += b.encoded->size();
    dataPathMetrics().bytesOut.inc(sent);
    return;
  }
  if (putError_.ok() || out.status.code == Code::NO_SPACE) putError_ = out.status;
  {
    std::lock_guard<std::mutex> lock(dp_.clusterMu_);
    for (uint32_t node : out.failedNodes) {
      dp_.excludedUntilNs_[node] = monotonicNs() + kExcludeNodeNs;
      newlyFailed_.push_back(node);
    }
  }
  retry_.insert(retry_.end(), b.pieces.begin(), b.pieces.end());
}

void DataPath::Upload::drain() {
  if (fatal_.ok() && !batch_->pieces.empty()) launch();
  while (!inflight_.empty()) {
    reap(*inflight_.front());
    inflight_.pop_front();
  }
}

Status DataPath::Upload::finish(std::vector<ChunkPlacement>* placed) {
  if (!fatal_.ok()) return fatal_;  // add() failed and said why
  drain();
  for (int attempt = 1; fatal_.ok() && !retry_.empty(); ++attempt) {
    spdlog::warn("inode {}: {} chunks failed to upload ({}); re-placing", ino_, retry_.size(),
                 putError_.message);
    if (attempt == kUploadAttempts) {
      spdlog::error("write of inode {} failed: {}", ino_, putError_.message);
      return putError_.code == Code::NO_SPACE ? putError_
                                              : Status::error(Code::IO, putError_.message);
    }
    std::vector<const Piece*> pending = std::exchange(retry_, {});
    newlyFailed_.clear();
    collectNodes(/*refresh=*/true, /*force=*/true);
    fatal_ = place(pending);
    drain();
  }
  if (!fatal_.ok()) {
    spdlog::error("write of inode {} failed: {}", ino_, fatal_.message);
    return fatal_;
  }
  placed->insert(placed->end(), placed_.begin(), placed_.end());
  placed_.clear();
  return {};
}

Status DataPath::uploadPieces(uint64_t ino, const VolumeInfo& vol,
                              const std::vector<const Piece*>& list,
                              std::vector<ChunkPlacement>* placed) {
  Upload upload(*this, ino, vol);
  Status s = upload.add(list);
  return s.ok() ? upload.finish(placed) : s;
}

}  // namespace dfs
