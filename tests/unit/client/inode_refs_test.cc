#include "backend/client/inode_refs.h"

#include <catch2/catch.hpp>
#include <atomic>
#include <thread>
#include <vector>

using dfs::InodeRefs;

TEST_CASE("inode refs count lookups and drop at zero") {
  InodeRefs refs;
  CHECK(refs.add(7) == 1);
  CHECK(refs.add(7, 2) == 3);
  CHECK_FALSE(refs.forget(7, 2));
  CHECK(refs.count(7) == 1);
  CHECK(refs.forget(7, 1));
  CHECK(refs.count(7) == 0);
  CHECK(refs.size() == 0);
  CHECK(refs.forget(99, 1));  // unknown inode: already gone
}

TEST_CASE("inode refs stay exact under concurrent lookups and forgets") {
  InodeRefs refs;
  constexpr int kThreads = 8;
  constexpr int kOps = 20000;
  constexpr uint64_t kInodes = 37;
  std::atomic<int> drops{0};
  // Each thread adds then forgets the same number of references per inode, in
  // interleaved batches, like concurrent `cp -a` lookups racing kernel forgets.
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        uint64_t ino = 2 + uint64_t(i * 7 + t) % kInodes;
        refs.add(ino);
        if (i % 3 == 2) {
          // forget the three most recent adds of this thread in one batch
          for (int back = 0; back < 3; ++back) {
            uint64_t prev = 2 + uint64_t((i - back) * 7 + t) % kInodes;
            if (refs.forget(prev, 1)) ++drops;
          }
        }
      }
      // The remaining adds of this thread (kOps % 3 of them).
      for (int i = kOps - kOps % 3; i < kOps; ++i) {
        uint64_t ino = 2 + uint64_t(i * 7 + t) % kInodes;
        if (refs.forget(ino, 1)) ++drops;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(refs.size() == 0);
  for (uint64_t ino = 2; ino < 2 + kInodes; ++ino) CHECK(refs.count(ino) == 0);
  CHECK(drops > 0);
}

TEST_CASE("inode refs never go negative on over-forget") {
  InodeRefs refs;
  refs.add(5, 2);
  CHECK(refs.forget(5, 10));
  CHECK(refs.count(5) == 0);
  CHECK(refs.add(5) == 1);
}
