#include "backend/client/invalidation_queue.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

using namespace dfs;

namespace {

template <typename Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

}  // namespace

TEST_CASE("invalidation queue: batches reach the handler on its own thread, coalesced") {
  InvalidationQueue queue;
  std::mutex mu;
  std::vector<InvalidationBatch> seen;
  std::thread::id handlerThread;
  std::atomic<bool> release{false}, entered{false};
  queue.setHandler([&](const InvalidationBatch& b) {
    entered = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(mu);
    handlerThread = std::this_thread::get_id();
    seen.push_back(b);
  });
  queue.push({{1}, {}});
  REQUIRE(eventually([&] { return entered.load(); }));
  // While the first batch is being handled, these pile up and coalesce.
  queue.push({{2, 3}, {{1, "a"}}});
  queue.push({{3}, {{1, "a"}, {1, "b"}}});
  release = true;
  REQUIRE(eventually([&] {
    std::lock_guard<std::mutex> lock(mu);
    return seen.size() == 2;
  }));
  std::lock_guard<std::mutex> lock(mu);
  CHECK(handlerThread != std::this_thread::get_id());
  CHECK(seen[0].inodes == std::vector<uint64_t>{1});
  CHECK(seen[1].inodes == std::vector<uint64_t>{2, 3});
  CHECK(seen[1].entries.size() == 2);
  CHECK_FALSE(seen[1].all);
  CHECK(queue.received() == 3);
}

TEST_CASE("invalidation queue: 'all' survives coalescing; a replaced handler is never called again") {
  InvalidationQueue queue;
  std::atomic<int> oldCalls{0}, allCalls{0};
  queue.setHandler([&](const InvalidationBatch&) { ++oldCalls; });
  queue.push({{1}, {}});
  REQUIRE(eventually([&] { return oldCalls == 1; }));
  queue.setHandler([&](const InvalidationBatch& b) {
    if (b.all) ++allCalls;
  });
  int before = oldCalls;
  InvalidationBatch all;
  all.all = true;
  queue.push(all);
  REQUIRE(eventually([&] { return allCalls == 1; }));
  CHECK(oldCalls == before);
  queue.setHandler(nullptr);
  queue.push({{5}, {}});  // dropped
  queue.stop();
  queue.push({{6}, {}});  // after stop: ignored, no crash
  CHECK(allCalls == 1);
}
