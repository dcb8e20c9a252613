// Connections to storage nodes (dfs-storage), by address, shared by all files.
//
// put() hands a batch of fragments to the loop and returns at once: the caller
// keeps encoding while the batch is on the wire, then waits on the future.
// fetch() gets fragments of many chunks in parallel and blocks until each chunk
// has `need` fragments or has run out of candidates. It asks for each chunk's first
// `need` candidates, grouped by node: one Storage.getMany per node and batch, so a
// read-ahead of 16 chunks costs about one call per node instead of one per
// fragment. A fragment that fails (missing, corrupt on the node, error, timeout) is
// counted in `failures` and replaced by the chunk's next candidate. A batch the
// node refuses (more than 32 MiB: very large chunks) is asked for in halves; a node
// without getMany (older dfs-storage: "unimplemented") with one get per fragment.
//
// A connection that breaks is dropped and re-established on next use; a node
// that refused a connection is not retried for a second (reads then go straight
// to parity instead of waiting).
//
// Threads: public methods from any thread except the RpcLoop thread.
#pragma once

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/client/rpc_loop.h"
#include "backend/common/hash.h"
#include "backend/common/status.h"

namespace dfs {

struct FragmentPut {
  uint32_t node = 0;
  std::string address;
  std::string id;            // 33-byte fragment id
  const std::string* data;   // owned by `owner` (or, without one, must outlive the future)
  uint64_t checksum = 0;
  // Keeps `data` alive. The request message references the bytes instead of
  // copying them (zero-copy); a put that fails without an answer (timeout,
  // broken connection) may leave the message queued on its connection, so the
  // pool keeps `owner` until that connection is destroyed.
  std::shared_ptr<const void> owner;
};

struct PutOutcome {
  Status status;
  std::vector<uint32_t> failedNodes;  // nodes whose put failed (for re-placement)
};

struct FetchRequest {
  ChunkId chunk{};
  uint8_t generation = 0;              // fragment ids: fragmentId(chunk, i, generation)
  std::vector<std::string> addresses;  // k+m: address of fragment i's node ("" unknown)
  std::vector<int> order;              // fragment indices to try, best first
  int need = 0;                        // stop after this many fragments arrived
};

struct FetchResult {
  std::vector<std::optional<std::string>> fragments;  // k+m, nullopt: not fetched
  int failures = 0;                                   // gets that failed or timed out
};

class StoragePool {
 public:
  StoragePool(RpcLoop& loop, int64_t opTimeoutMs);
  ~StoragePool();
  StoragePool(const StoragePool&) = delete;
  StoragePool& operator=(const StoragePool&) = delete;

  // One put RPC per node. REQUIRES: every `data` stays valid until the future is
  // ready, and as long as its `owner` lives (without an owner: for the life of the
  // pool; tests only).
  std::future<PutOutcome> put(std::vector<FragmentPut> fragments);
  // `results` gets one entry per request.
  std::vector<FetchResult> fetch(const std::vector<FetchRequest>& requests);

  class Pool;  // loop-thread state, defined in storage_pool.cc

 private:
  RpcLoop& loop_;
  std::unique_ptr<Pool> pool_;  // loop thread only
};

}  // namespace dfs
