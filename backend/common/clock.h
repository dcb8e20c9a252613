#pragma once

#include <cstdint>
#include <ctime>

namespace dfs {

// Wall-clock time in nanoseconds since the Unix epoch (file times, leases).
inline int64_t nowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Monotonic time in nanoseconds (deadlines, latency).
inline int64_t monotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace dfs
