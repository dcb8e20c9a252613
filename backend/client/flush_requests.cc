#include "backend/client/flush_requests.h"

namespace dfs {

FlushRequests::FlushRequests(Flush flush) : flush_(std::move(flush)) {
  thread_ = std::thread([this] { threadMain(); });
}

FlushRequests::~FlushRequests() { stop(); }

kj::Promise<void> FlushRequests::request(std::vector<uint64_t> inodes) {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return kj::READY_NOW;
    queue_.push_back(Pending{std::move(inodes), kj::mv(paf.fulfiller)});
  }
  cv_.notify_one();
  return kj::mv(paf.promise);
}

void FlushRequests::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& p : queue_) p.done->fulfill();
  queue_.clear();
}

void FlushRequests::threadMain() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    for (uint64_t ino : p.inodes) flush_(ino);
    p.done->fulfill();
    lock.lock();
  }
}

}  // namespace dfs
