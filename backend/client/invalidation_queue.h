// Invalidations from the metadata node (another client changed something),
// handed from the RPC loop thread to one dedicated thread.
//
// The ClientCallback server runs on the RpcLoop thread and may only enqueue
// (push() never blocks on anything but a leaf mutex). The queue's own thread
// takes everything queued so far as one batch (duplicates coalesce) and calls
// the handler with it: the client core drops its caches, then the FUSE adapter
// (its sink) asks the kernel to drop its caches. Kernel notifications never run
// inside a FUSE op handler or on the RPC thread, so they cannot deadlock them.
//
// Threads: push() from any thread (the RPC loop); setHandler()/stop() from the
// owner; the handler runs on the queue's thread, one batch at a time.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace dfs {

struct InvalidationBatch {
  std::vector<uint64_t> inodes;                           // server inode numbers
  std::vector<std::pair<uint64_t, std::string>> entries;  // (parent inode, name)
  // Everything may be stale (a new session after a lost connection: the
  // invalidations of the gap were never received).
  bool all = false;
};

class InvalidationQueue {
 public:
  using Handler = std::function<void(const InvalidationBatch&)>;

  InvalidationQueue();
  ~InvalidationQueue();  // stop()
  InvalidationQueue(const InvalidationQueue&) = delete;
  InvalidationQueue& operator=(const InvalidationQueue&) = delete;

  void push(InvalidationBatch batch);
  // Replaces the handler; returns once no call of the previous handler runs.
  // A null handler drops what arrives.
  void setHandler(Handler handler);
  // Ends the thread (pending batches are dropped). Idempotent.
  void stop();

  uint64_t received() const;

 private:
  void threadMain();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<uint64_t> inodes_;                           // guarded by mu_
  std::set<std::pair<uint64_t, std::string>> entries_;  // guarded by mu_
  bool all_ = false;                                    // guarded by mu_
  bool stopping_ = false;                               // guarded by mu_
  uint64_t received_ = 0;                               // guarded by mu_
  // Held while the handler runs (and to replace it): after setHandler returns
  // the old handler is never called again. Lock order: handlerMu_ -> mu_.
  std::mutex handlerMu_;
  Handler handler_;  // guarded by handlerMu_
  std::thread thread_;
};

}  // namespace dfs
