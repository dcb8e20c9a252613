// The extent store's writer thread. put() and remove() wait for fdatasync (and
// remove for an LMDB commit): milliseconds on a real disk; running them on the
// event loop would stall every other RPC for that long. Instead the loop hands
// them to this thread, which drains its whole queue into one group commit (one
// fdatasync for all puts waiting at that moment) and completes each caller's
// promise back on the loop through a cross-thread fulfiller. Between groups and
// when idle it commits the pending index rows when they are due
// (ExtentStore::commitIndexIfDue) and compacts extents.
//
// Thread: construct, call put()/remove() and destroy on one KJ event-loop thread.
// The writer thread touches only the ExtentStore (thread-safe) and the fulfillers.
#pragma once

#include <kj/async.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend/common/status.h"
#include "backend/storage/extent_store.h"

namespace dfs {

// A fragment whose bytes the writer owns: an RPC's request message may be freed
// when its peer disconnects, while the writer thread is still appending.
struct OwnedFragment {
  std::string id;
  std::string data;
  uint64_t checksum = 0;
};

struct RemoveOutcome {
  Status status;
  uint32_t deleted = 0;
};

class StoreWriter {
 public:
  // `compactIdleMs`: how often the idle thread checks whether compaction is due.
  explicit StoreWriter(ExtentStore& store, int compactIdleMs = 1000);
  ~StoreWriter();  // finishes queued work, then joins the thread
  StoreWriter(const StoreWriter&) = delete;
  StoreWriter& operator=(const StoreWriter&) = delete;

  // Resolves once the fragments are durable (or refused); see ExtentStore::put.
  kj::Promise<Status> put(std::vector<OwnedFragment> fragments);
  kj::Promise<RemoveOutcome> remove(std::vector<std::string> ids);
  // Stops accepting work, finishes what is queued and joins. Idempotent.
  void stop();

 private:
  struct PutJob {
    std::vector<OwnedFragment> owned;
    std::vector<FragmentWrite> fragments;  // views into `owned`
    PutRequest request;
    kj::Own<kj::CrossThreadPromiseFulfiller<Status>> fulfiller;
  };
  struct RemoveJob {
    std::vector<std::string> ids;
    kj::Own<kj::CrossThreadPromiseFulfiller<RemoveOutcome>> fulfiller;
  };
  void run();

  ExtentStore& store_;
  const int compactIdleMs_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<PutJob>> puts_;        // guarded by mutex_
  std::deque<std::unique_ptr<RemoveJob>> removes_;  // guarded by mutex_
  bool stopping_ = false;                           // guarded by mutex_
  std::thread thread_;
};

}  // namespace dfs
