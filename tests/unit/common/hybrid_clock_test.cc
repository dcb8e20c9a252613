#include "backend/common/hybrid_clock.h"

#include <catch2/catch.hpp>

#include <set>
#include <thread>
#include <vector>

TEST_CASE("hybrid clock follows the physical clock when it moves forward") {
  int64_t physical = 1000;
  dfs::HybridClock clock([&] { return physical; });
  CHECK(clock.now() == 1000);
  physical = 5000;
  CHECK(clock.now() == 5000);
  CHECK(clock.last() == 5000);
}

TEST_CASE("hybrid clock never repeats or goes backwards when the wall clock stalls or steps back") {
  int64_t physical = 1000;
  dfs::HybridClock clock([&] { return physical; });
  uint64_t a = clock.now();
  uint64_t b = clock.now();
  CHECK(b == a + 1);
  physical = 10;  // the wall clock was stepped back
  uint64_t c = clock.now();
  CHECK(c == b + 1);
}

TEST_CASE("hybrid clock orders after a remote timestamp despite skew") {
  int64_t physical = 1000;
  dfs::HybridClock clock([&] { return physical; });
  clock.observe(1000000);  // a node whose clock runs ahead
  CHECK(clock.now() == 1000001);
  clock.observe(5);  // older news changes nothing
  CHECK(clock.now() == 1000002);
  clock.observe(0);
  CHECK(clock.last() == 1000002);
  physical = 2000000;  // physical time catches up
  CHECK(clock.now() == 2000000);
}

TEST_CASE("hybrid clock hands out unique timestamps across threads") {
  int64_t fixed = 42;
  dfs::HybridClock clock([&] { return fixed; });
  constexpr int kThreads = 4, kEach = 10000;
  std::vector<std::vector<uint64_t>> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) seen[t].push_back(clock.now());
    });
  }
  for (auto& t : threads) t.join();
  std::set<uint64_t> all;
  for (auto& v : seen) {
    for (size_t i = 1; i < v.size(); ++i) CHECK(v[i] > v[i - 1]);
    all.insert(v.begin(), v.end());
  }
  CHECK(all.size() == size_t(kThreads) * kEach);
  CHECK(clock.last() == 42 + kThreads * kEach - 1);
}
