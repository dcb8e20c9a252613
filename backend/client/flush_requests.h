// Flush requests from the metadata node (ClientCallback.flush: another client
// is opening a file this mount writes to), answered off the RPC loop thread.
//
// The callback runs on the RpcLoop thread, which must never block (a flush
// makes RPCs through it): it queues the inodes with a cross-thread fulfiller
// and returns the promise; this class's thread runs the flush and fulfils it.
//
// Threads: request() on any thread (the RPC loop); the flush function runs on
// the queue's own thread, one request at a time. stop() fulfils what is left.
#pragma once

#include <kj/async.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dfs {

class FlushRequests {
 public:
  using Flush = std::function<void(uint64_t ino)>;

  explicit FlushRequests(Flush flush);
  ~FlushRequests();  // stop()

  // Resolves once every inode was flushed (successfully or not).
  kj::Promise<void> request(std::vector<uint64_t> inodes);
  // Ends the thread; pending requests are answered without flushing.
  void stop();

 private:
  struct Pending {
    std::vector<uint64_t> inodes;
    kj::Own<kj::CrossThreadPromiseFulfiller<void>> done;
  };
  void threadMain();

  const Flush flush_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  std::thread thread_;
};

}  // namespace dfs
