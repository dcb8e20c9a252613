// An upload of new chunks to the storage nodes, fed a batch at a time while a
// flush is still cutting the rest of its buffer (DataPath::commitRanges). The
// caller places each chunk (rendezvous hashing over the nodes that are up and
// not recently failed); batches of about DataPathOptions::uploadBatchBytes of
// plaintext are then encoded and sent by a task of their own. After starting
// one, the caller waits until at most kMaxPutsInFlight are in flight, so that
// cutting, hashing, encoding and the storage nodes' work overlap. Chunks whose
// put failed are re-placed by finish(), which waits for every put: no commit
// names a fragment that is not stored.
//
// Threads: one caller (the flushing thread); each batch's task encodes on a
// thread of its own and waits for its put (completed on the RPC loop).
#pragma once

#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/client/data_path.h"
#include "backend/common/chunk_codec.h"
#include "backend/common/placement.h"

namespace dfs {

class DataPath::Upload {
 public:
  // `ino` is for the logs.
  Upload(DataPath& dp, uint64_t ino, const VolumeInfo& vol);
  // Waits for the puts still in flight (an upload abandoned after an error).
  ~Upload();
  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;

  // Places, encodes and sends `pieces` (they must outlive the Upload). A batch
  // smaller than uploadBatchBytes waits for the next add() or finish(). An
  // error here (no placement, an encoding failure) ends the upload.
  Status add(const std::vector<const Piece*>& pieces);
  // Sends what is left, waits for every put, re-places the chunks of failed
  // puts (kUploadAttempts in all) and appends each chunk's placement to *placed.
  Status finish(std::vector<ChunkPlacement>* placed);

 private:
  struct Batch {
    std::vector<const Piece*> pieces;
    std::vector<std::vector<uint32_t>> nodes;         // per piece: k+m node ids
    std::vector<std::vector<std::string>> addresses;  // per piece: those nodes' addresses
    uint64_t bytes = 0;
    // Filled by the task; the puts own it too (a put that times out may keep
    // its message queued after the upload is gone).
    std::shared_ptr<std::vector<EncodedChunk>> encoded =
        std::make_shared<std::vector<EncodedChunk>>();
    Status encodeError;  // set by the task: fatal, not retried
    std::future<PutOutcome> done;
  };
  // The nodes to place on; waits (kPlacementWaits) for k+m of them after a
  // dfs-meta restart. `refresh`: ask dfs-meta for the map first.
  void collectNodes(bool refresh, bool force);
  Status place(const std::vector<const Piece*>& pieces);
  // Starts the current batch's task.
  void launch();
  // Waits for a batch's task and takes its outcome.
  void reap(Batch& batch);
  void drain();

  DataPath& dp_;
  const uint64_t ino_;
  const VolumeInfo vol_;
  std::vector<PlacementNode> up_;
  std::unordered_map<uint32_t, std::string> addresses_;
  std::unique_ptr<Batch> batch_;
  std::deque<std::unique_ptr<Batch>> inflight_;
  std::vector<const Piece*> retry_;  // chunks of failed puts
  std::vector<ChunkPlacement> placed_;
  std::vector<uint32_t> newlyFailed_;  // nodes of failed puts not yet left out of up_
  Status putError_;                    // the first failed put's (NO_SPACE wins)
  Status fatal_;
};

}  // namespace dfs
