// The client's one RPC thread. It runs a KJ event loop (kj::setupAsyncIo) that owns
// every Cap'n Proto object of the client: the connection to dfs-meta and the pool of
// storage connections. Other threads (FUSE workers) never touch those objects; they
// hand work to the loop with run(), which blocks until the work's promise resolves.
//
// Threads: run() from any thread except the loop thread itself; io()/timer() only
// on the loop thread (inside a function passed to run()).
#pragma once

#include <kj/async-io.h>
#include <kj/async.h>
#include <kj/mutex.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace dfs {

class RpcLoop {
 public:
  // Starts the thread; returns once its event loop is ready.
  RpcLoop();
  // Runs the shutdown hooks on the loop, stops it and joins the thread.
  ~RpcLoop();
  RpcLoop(const RpcLoop&) = delete;
  RpcLoop& operator=(const RpcLoop&) = delete;

  // Executes `func` on the loop thread and blocks until it (and the promise it
  // returns, if any) completes; returns its result. Exceptions propagate.
  template <typename Func>
  auto run(Func&& func) {
    return executor_->executeSync(kj::fwd<Func>(func));
  }

  // Loop thread only.
  kj::AsyncIoProvider& io() { return *provider_; }
  kj::Timer& timer() { return provider_->getTimer(); }
  kj::Network& network() { return provider_->getNetwork(); }
  // Tasks that run in the background on the loop (failures are logged).
  void addTask(kj::Promise<void> task);
  // Registers a function run on the loop thread before it exits (to destroy
  // loop-owned objects on their own thread).
  void onShutdown(std::function<void()> hook);

 private:
  void threadMain();

  std::thread thread_;
  std::mutex readyMu_;
  std::condition_variable readyCv_;
  bool ready_ = false;
  kj::Own<const kj::Executor> executor_;
  kj::AsyncIoProvider* provider_ = nullptr;  // owned by threadMain's stack; loop thread only
  kj::Own<kj::PromiseFulfiller<void>> stop_;
  kj::Own<kj::TaskSet> tasks_;
  std::vector<std::function<void()>> shutdownHooks_;  // loop thread only
};

}  // namespace dfs
