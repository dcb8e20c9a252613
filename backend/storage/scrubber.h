// Background scrub (DESIGN §6): re-verifies the checksum of every stored fragment,
// continuously, at a bounded read rate, so bit rot is found before a client needs
// the fragment. Corrupt fragments are logged and counted (they read as `io`, so
// clients treat them as erasures and repair rebuilds them).
// Thread: owns one thread; construct and destroy from the owning (main) thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "backend/storage/extent_store.h"

namespace dfs {

class Scrubber {
 public:
  // `bytesPerSecond` == 0 disables scrubbing (no thread is started). A new pass
  // starts no sooner than `minPassSeconds` after the previous one started, so a
  // small store is not re-read over and over.
  Scrubber(ExtentStore& store, uint64_t bytesPerSecond, int64_t minPassSeconds = 3600);
  ~Scrubber();  // stops and joins
  Scrubber(const Scrubber&) = delete;
  Scrubber& operator=(const Scrubber&) = delete;

  void stop();
  uint64_t passes() const;  // completed full passes

 private:
  void run();

  ExtentStore& store_;
  const uint64_t bytesPerSecond_;
  const int64_t minPassSeconds_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  uint64_t passes_ = 0;    // guarded by mutex_
  std::thread thread_;
};

}  // namespace dfs
