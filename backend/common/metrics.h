// A small Prometheus registry: counters, gauges (settable or computed by a callback) and
// histograms with fixed buckets, each optionally labelled, rendered in the text exposition
// format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
// Metric names and their meaning are listed in docs/metrics.md.
//
// Cost model: looking a series up (`counter(...)`, `gauge(...)`, `histogram(...)`) takes the
// registry mutex and may allocate; do it once and keep the returned reference, which stays
// valid for the registry's lifetime. Updating a series (`inc`, `set`, `observe`) is a few
// relaxed atomic operations and never locks.
//
// Thread safety: every method of Counter, Gauge, Histogram and Metrics may be called from
// any thread. A ScopedLatencyTimer or MetricsCallbackHandle is used by one thread at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace dfs {

// Label name/value pairs of one series, e.g. {{"op", "lookup"}}. Order as given is kept.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Upper bounds (seconds) for latency histograms: 100 µs to 10 s, roughly ×2.5 per step,
// which covers a cached FUSE lookup as well as a degraded erasure-coded read. constexpr
// so that registering a histogram from a static initializer sees the values.
inline constexpr double kLatencyBuckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                             1,      2.5,     5,      10};

// A monotonically increasing count (requests, bytes).
class Counter {
 public:
  void inc(uint64_t amount = 1) { value_.fetch_add(amount, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down (bytes used, fragments stored).
class Gauge {
 public:
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  void add(double delta);
  void inc() { add(1); }
  void dec() { add(-1); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into fixed buckets and keeps their sum (Prometheus histogram).
class Histogram {
 public:
  // REQUIRES: `upperBounds` strictly increasing and finite; +Inf is implicit.
  explicit Histogram(std::vector<double> upperBounds);

  void observe(double value);

  struct Snapshot {
    std::vector<double> upperBounds;
    std::vector<uint64_t> cumulativeCounts;  // one per bound, then one for +Inf
    double sum = 0;
    uint64_t count = 0;  // == cumulativeCounts.back()
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double> upperBounds_;
  // Non-cumulative: slot i counts values in (bound[i-1], bound[i]]; the last slot is +Inf.
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

// Observes the time from construction to destruction, in seconds, into a histogram.
// Use it on the stack around the operation being measured.
class ScopedLatencyTimer {
 public:
  explicit ScopedLatencyTimer(Histogram& histogram)
      : histogram_(&histogram), start_(std::chrono::steady_clock::now()) {}
  ~ScopedLatencyTimer();
  ScopedLatencyTimer(const ScopedLatencyTimer&) = delete;
  ScopedLatencyTimer& operator=(const ScopedLatencyTimer&) = delete;

  // Records nothing at destruction (e.g. the operation was abandoned).
  void cancel() { histogram_ = nullptr; }
  double elapsedSeconds() const;

 private:
  Histogram* histogram_;
  std::chrono::steady_clock::time_point start_;
};

class Metrics;

// Keeps a callback gauge registered; destroying it unregisters the callback, after which
// the callback is guaranteed not to be running and never to run again.
class MetricsCallbackHandle {
 public:
  MetricsCallbackHandle() = default;
  MetricsCallbackHandle(Metrics* registry, uint64_t id) : registry_(registry), id_(id) {}
  MetricsCallbackHandle(MetricsCallbackHandle&& other) noexcept;
  MetricsCallbackHandle& operator=(MetricsCallbackHandle&& other) noexcept;
  ~MetricsCallbackHandle() { reset(); }
  void reset();

 private:
  Metrics* registry_ = nullptr;
  uint64_t id_ = 0;
};

// The registry. A name has one type and one help text; registering it again with the same
// type returns the existing series (or adds a series with other labels). Invalid names,
// a type clash or a reserved label name (`le` on histograms, `__*`) are programming errors
// and throw std::invalid_argument.
class Metrics {
 public:
  Metrics() = default;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  Counter& counter(const std::string& name, const std::string& help,
                   const MetricLabels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  // `upperBounds` only matters the first time the name is registered.
  Histogram& histogram(const std::string& name, const std::string& help,
                       const MetricLabels& labels = {},
                       const std::vector<double>& upperBounds = {std::begin(kLatencyBuckets),
                                                                 std::end(kLatencyBuckets)});

  // A gauge whose value is computed when rendered. The callback runs on the rendering
  // thread (the HTTP server's) with the registry mutex held, so it must be thread-safe,
  // quick, and must not call back into this registry.
  [[nodiscard]] MetricsCallbackHandle gaugeCallback(const std::string& name,
                                                    const std::string& help,
                                                    const MetricLabels& labels,
                                                    std::function<double()> callback);

  // Every metric in the text exposition format 0.0.4, families sorted by name.
  std::string renderPrometheus() const;

 private:
  friend class MetricsCallbackHandle;
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> upperBounds;  // histograms only
    std::map<MetricLabels, std::unique_ptr<Counter>> counters;
    std::map<MetricLabels, std::unique_ptr<Gauge>> gauges;
    std::map<MetricLabels, std::unique_ptr<Histogram>> histograms;
    std::map<uint64_t, std::pair<MetricLabels, std::function<double()>>> callbacks;
  };

  Family& familyLocked(const std::string& name, const std::string& help, Type type,
                       const MetricLabels& labels);
  void removeCallback(uint64_t id);

  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;           // guarded by mutex_
  std::map<uint64_t, std::string> callbackFamilies_;  // callback id -> family name; mutex_
  uint64_t nextCallbackId_ = 1;                       // guarded by mutex_
};

// The process-wide registry. A global is acceptable here and nowhere else: metrics are
// write-only telemetry that every layer of a process (RPC servers, stores, the FUSE
// adapter) reports into and one HTTP endpoint reads, and threading a registry through
// every constructor would touch every interface for no behavioural gain. Tests that need
// isolation construct their own `Metrics`.
Metrics& metrics();

}  // namespace dfs
