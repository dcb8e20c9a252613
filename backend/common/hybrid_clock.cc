#include "backend/common/hybrid_clock.h"

#include <algorithm>
#include <chrono>

namespace dfs {

HybridClock::HybridClock(std::function<int64_t()> physical) : physical_(std::move(physical)) {
  if (!physical_) {
    physical_ = [] {
      return int64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count());
    };
  }
}

uint64_t HybridClock::now() {
  int64_t p = physical_();
  uint64_t physical = p > 0 ? uint64_t(p) : 0;
  uint64_t last = last_.load(std::memory_order_acquire);
  uint64_t next;
  do {
    next = std::max(physical, last + 1);
  } while (!last_.compare_exchange_weak(last, next, std::memory_order_acq_rel));
  return next;
}

void HybridClock::observe(uint64_t remote) {
  uint64_t last = last_.load(std::memory_order_acquire);
  while (remote > last && !last_.compare_exchange_weak(last, remote, std::memory_order_acq_rel)) {
  }
}

}  // namespace dfs
