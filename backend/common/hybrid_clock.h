// A hybrid logical clock (HLC) for ordering writes from different machines:
// timestamps are nanoseconds like the wall clock when clocks agree, never go
// backwards, and every timestamp issued after seeing a remote timestamp is
// larger than it (causality survives clock skew).
//
//   now():        max(physical ns, last + 1); becomes `last`
//   observe(t):   last = max(last, t); a later now() is > t
//
// Thread-safe (one atomic); the physical clock can be injected for tests.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

namespace dfs {

class HybridClock {
 public:
  // `physical` returns nanoseconds since the Unix epoch (default: the real clock).
  explicit HybridClock(std::function<int64_t()> physical = nullptr);

  // A new timestamp, strictly greater than every timestamp returned or observed so far.
  uint64_t now();
  // Merges a timestamp from another node (0 is ignored).
  void observe(uint64_t remote);
  // The last timestamp returned or observed, without advancing.
  uint64_t last() const { return last_.load(std::memory_order_acquire); }

 private:
  std::function<int64_t()> physical_;
  std::atomic<uint64_t> last_{0};
};

}  // namespace dfs
