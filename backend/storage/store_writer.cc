// GCC 12 reports false -Wmaybe-uninitialized inside kj::_::ExceptionOr<T> for T
// holding a std::string (Status); the value is only read when it was set.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "backend/storage/store_writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace dfs {

StoreWriter::StoreWriter(ExtentStore& store, int compactIdleMs)
    : store_(store), compactIdleMs_(compactIdleMs), thread_([this] { run(); }) {}

StoreWriter::~StoreWriter() { stop(); }

void StoreWriter::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

kj::Promise<Status> StoreWriter::put(std::vector<OwnedFragment> fragments) {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<Status>();
  auto job = std::make_unique<PutJob>();
  job->owned = std::move(fragments);
  for (const auto& f : job->owned) job->fragments.push_back(FragmentWrite{f.id, f.data, f.checksum});
  job->fulfiller = kj::mv(paf.fulfiller);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return Status::error(Code::UNAVAILABLE, "storage node is shutting down");
    puts_.push_back(std::move(job));
  }
  wake_.notify_one();
  return kj::mv(paf.promise);
}

kj::Promise<RemoveOutcome> StoreWriter::remove(std::vector<std::string> ids) {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<RemoveOutcome>();
  auto job = std::make_unique<RemoveJob>();
  job->ids = std::move(ids);
  job->fulfiller = kj::mv(paf.fulfiller);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      return RemoveOutcome{Status::error(Code::UNAVAILABLE, "storage node is shutting down"), 0};
    }
    removes_.push_back(std::move(job));
  }
  wake_.notify_one();
  return kj::mv(paf.promise);
}

void StoreWriter::run() {
  bool compactionDue = false;
  uint64_t busyRounds = 0;
  for (;;) {
    std::deque<std::unique_ptr<PutJob>> puts;
    std::deque<std::unique_ptr<RemoveJob>> removes;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (puts_.empty() && removes_.empty() && !stopping_ && !compactionDue) {
        // Pending index rows are committed within about their interval of going idle.
        int idleMs = store_.indexPending() ? std::min(compactIdleMs_, 100) : compactIdleMs_;
        wake_.wait_for(lock, std::chrono::milliseconds(idleMs));
      }
      if (puts_.empty() && removes_.empty() && stopping_) return;
      puts.swap(puts_);
      removes.swap(removes_);
    }
    if (!puts.empty()) {
      // Everything queued while the previous group synced becomes one group.
      std::vector<PutRequest*> requests;
      for (auto& job : puts) {
        job->request.fragments = &job->fragments;
        requests.push_back(&job->request);
      }
      store_.putGroup(requests);
      for (auto& job : puts) job->fulfiller->fulfill(kj::mv(job->request.status));
    }
    for (auto& job : removes) {
      auto result = store_.remove(job->ids);
      RemoveOutcome outcome;
      if (result.ok()) {
        outcome.deleted = result.value();
      } else {
        outcome.status = result.status();
      }
      job->fulfiller->fulfill(kj::mv(outcome));
    }
    store_.commitIndexIfDue();
    // Compaction runs in bounded steps between groups so that puts never wait
    // behind a whole extent's rewrite.
    // Under constant load compaction still gets every 16th round.
    compactionDue = false;
    bool idle = puts.empty() && removes.empty();
    busyRounds = idle ? 0 : busyRounds + 1;
    if ((idle || busyRounds % 16 == 0) && store_.needsCompaction()) {
      auto step = store_.compactStep();
      if (!step.ok()) {
        spdlog::warn("compaction step failed: {}", step.status().message);
      } else {
        compactionDue = step.value();
      }
    }
  }
}

}  // namespace dfs
