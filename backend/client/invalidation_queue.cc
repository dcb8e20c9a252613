#include "backend/client/invalidation_queue.h"

#include <spdlog/spdlog.h>

namespace dfs {

InvalidationQueue::InvalidationQueue() : thread_([this] { threadMain(); }) {}

InvalidationQueue::~InvalidationQueue() { stop(); }

void InvalidationQueue::push(InvalidationBatch batch) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    ++received_;
    all_ = all_ || batch.all;
    inodes_.insert(batch.inodes.begin(), batch.inodes.end());
    for (auto& e : batch.entries) entries_.insert(std::move(e));
  }
  cv_.notify_one();
}

void InvalidationQueue::setHandler(Handler handler) {
  std::lock_guard<std::mutex> lock(handlerMu_);
  handler_ = std::move(handler);
}

void InvalidationQueue::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t InvalidationQueue::received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

void InvalidationQueue::threadMain() {
  for (;;) {
    InvalidationBatch batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || all_ || !inodes_.empty() || !entries_.empty(); });
      if (stopping_) return;
      batch.inodes.assign(inodes_.begin(), inodes_.end());
      batch.entries.assign(entries_.begin(), entries_.end());
      batch.all = all_;
      inodes_.clear();
      entries_.clear();
      all_ = false;
    }
    std::lock_guard<std::mutex> lock(handlerMu_);
    if (!handler_) continue;
    try {
      handler_(batch);
    } catch (const std::exception& e) {
      spdlog::warn("invalidation handler failed: {}", e.what());
    }
  }
}

}  // namespace dfs
