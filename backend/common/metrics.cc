#include "backend/common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace dfs {

namespace {

void atomicAdd(std::atomic<double>& target, double delta) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
  }
}

bool isValidName(const std::string& name, bool allowColon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (allowColon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Shortest form that reads back to the same double (Prometheus parses with Go's ParseFloat).
std::string formatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Plain decimals in the usual range (so bucket bounds read le="0.0001", as other
  // clients write them), exponent form only for very small or large magnitudes.
  char buffer[64];
  double magnitude = std::fabs(value);
  bool plain = magnitude == 0 || (magnitude >= 1e-4 && magnitude < 1e15);
  auto result = plain ? std::to_chars(buffer, buffer + sizeof(buffer), value,
                                      std::chars_format::fixed)
                      : std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

void appendEscaped(std::string& out, const std::string& text, bool escapeQuote) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && escapeQuote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// Appends `name{labels,extra} value\n`.
void appendSample(std::string& out, const std::string& name, const MetricLabels& labels,
                  const std::pair<std::string, std::string>* extra, const std::string& value) {
  out += name;
  if (!labels.empty() || extra) {
    out += '{';
    bool first = true;
    auto appendLabel = [&](const std::pair<std::string, std::string>& label) {
      if (!first) out += ',';
      first = false;
      out += label.first;
      out += "=\"";
      appendEscaped(out, label.second, true);
      out += '"';
    };
    for (const auto& label : labels) appendLabel(label);
    if (extra) appendLabel(*extra);
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

}  // namespace

void Gauge::add(double delta) { atomicAdd(value_, delta); }

Histogram::Histogram(std::vector<double> upperBounds)
    : upperBounds_(std::move(upperBounds)),
      buckets_(new std::atomic<uint64_t>[upperBounds_.size() + 1]) {
  for (size_t i = 0; i < upperBounds_.size(); ++i) {
    if (!std::isfinite(upperBounds_[i]) || (i > 0 && upperBounds_[i] <= upperBounds_[i - 1])) {
      throw std::invalid_argument("histogram bounds must be finite and strictly increasing");
    }
  }
  for (size_t i = 0; i <= upperBounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double value) {
  // Buckets are "less than or equal": the first bound >= value.
  size_t slot = std::lower_bound(upperBounds_.begin(), upperBounds_.end(), value) -
                upperBounds_.begin();
  buckets_[slot].fetch_add(1, std::memory_order_relaxed);
  atomicAdd(sum_, value);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snap;
  snap.upperBounds = upperBounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= upperBounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snap.cumulativeCounts.push_back(running);
  }
  snap.count = running;
  snap.sum = sum_.load(std::memory_order_relaxed);
  return snap;
}

ScopedLatencyTimer::~ScopedLatencyTimer() {
  if (histogram_) histogram_->observe(elapsedSeconds());
}

double ScopedLatencyTimer::elapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

MetricsCallbackHandle::MetricsCallbackHandle(MetricsCallbackHandle&& other) noexcept
    : registry_(other.registry_), id_(other.id_) {
  other.registry_ = nullptr;
}

MetricsCallbackHandle& MetricsCallbackHandle::operator=(MetricsCallbackHandle&& other) noexcept {
  if (this != &other) {
    reset();
    registry_ = other.registry_;
    id_ = other.id_;
    other.registry_ = nullptr;
  }
  return *this;
}

void MetricsCallbackHandle::reset() {
  if (registry_) registry_->removeCallback(id_);
  registry_ = nullptr;
}

Metrics::Family& Metrics::familyLocked(const std::string& name, const std::string& help,
                                       Type type, const MetricLabels& labels) {
  if (!isValidName(name, true)) throw std::invalid_argument("invalid metric name '" + name + "'");
  for (const auto& label : labels) {
    if (!isValidName(label.first, false) || label.first.rfind("__", 0) == 0 ||
        (type == Type::kHistogram && label.first == "le")) {
      throw std::invalid_argument("invalid label name '" + label.first + "' on " + name);
    }
  }
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(name, Family{type, help, {}, {}, {}, {}, {}}).first;
  } else if (it->second.type != type) {
    throw std::invalid_argument("metric '" + name + "' registered with two types");
  }
  return it->second;
}

Counter& Metrics::counter(const std::string& name, const std::string& help,
                          const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = familyLocked(name, help, Type::kCounter, labels).counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Metrics::gauge(const std::string& name, const std::string& help,
                      const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = familyLocked(name, help, Type::kGauge, labels).gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Metrics::histogram(const std::string& name, const std::string& help,
                              const MetricLabels& labels,
                              const std::vector<double>& upperBounds) {
  std::lock_guard<std::mutex> lock(mutex_);
  Family& family = familyLocked(name, help, Type::kHistogram, labels);
  if (family.histograms.empty() && family.upperBounds.empty()) family.upperBounds = upperBounds;
  auto& slot = family.histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(family.upperBounds);
  return *slot;
}

MetricsCallbackHandle Metrics::gaugeCallback(const std::string& name, const std::string& help,
                                             const MetricLabels& labels,
                                             std::function<double()> callback) {
  std::lock_guard<std::mutex> lock(mutex_);
  Family& family = familyLocked(name, help, Type::kGauge, labels);
  uint64_t id = nextCallbackId_++;
  family.callbacks.emplace(id, std::make_pair(labels, std::move(callback)));
  callbackFamilies_.emplace(id, name);
  return MetricsCallbackHandle(this, id);
}

void Metrics::removeCallback(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = callbackFamilies_.find(id);
  if (it == callbackFamilies_.end()) return;
  families_.at(it->second).callbacks.erase(id);
  callbackFamilies_.erase(it);
}

std::string Metrics::renderPrometheus() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  out.reserve(4096);
  for (const auto& [name, family] : families_) {
    out += "# HELP ";
    out += name;
    out += ' ';
    appendEscaped(out, family.help, false);
    out += "\n# TYPE ";
    out += name;
    switch (family.type) {
      case Type::kCounter:
        out += " counter\n";
        for (const auto& [labels, counter] : family.counters) {
          appendSample(out, name, labels, nullptr, std::to_string(counter->value()));
        }
        break;
      case Type::kGauge:
        out += " gauge\n";
        for (const auto& [labels, gauge] : family.gauges) {
          appendSample(out, name, labels, nullptr, formatValue(gauge->value()));
        }
        for (const auto& [id, entry] : family.callbacks) {
          appendSample(out, name, entry.first, nullptr, formatValue(entry.second()));
        }
        break;
      case Type::kHistogram:
        out += " histogram\n";
        for (const auto& [labels, histogram] : family.histograms) {
          Histogram::Snapshot snap = histogram->snapshot();
          for (size_t i = 0; i < snap.cumulativeCounts.size(); ++i) {
            std::pair<std::string, std::string> le(
                "le", i < snap.upperBounds.size() ? formatValue(snap.upperBounds[i]) : "+Inf");
            appendSample(out, name + "_bucket", labels, &le,
                         std::to_string(snap.cumulativeCounts[i]));
          }
          appendSample(out, name + "_sum", labels, nullptr, formatValue(snap.sum));
          appendSample(out, name + "_count", labels, nullptr, std::to_string(snap.count));
        }
        break;
    }
  }
  return out;
}

Metrics& metrics() {
  // Leaked on purpose: threads (the HTTP server, FUSE workers) may still touch it while
  // static destructors run at exit.
  static Metrics* registry = new Metrics();
  return *registry;
}

}  // namespace dfs
