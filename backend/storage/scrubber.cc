#include "backend/storage/scrubber.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace dfs {

namespace {
constexpr int kStepsPerSecond = 4;
}

Scrubber::Scrubber(ExtentStore& store, uint64_t bytesPerSecond, int64_t minPassSeconds)
    : store_(store), bytesPerSecond_(bytesPerSecond), minPassSeconds_(minPassSeconds) {
  if (bytesPerSecond_ > 0) thread_ = std::thread([this] { run(); });
}

Scrubber::~Scrubber() { stop(); }

void Scrubber::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

uint64_t Scrubber::passes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return passes_;
}

void Scrubber::run() {
  std::string cursor;
  uint64_t corruptThisPass = 0;
  auto passStart = std::chrono::steady_clock::now();
  const uint64_t stepBytes = std::max<uint64_t>(1, bytesPerSecond_ / kStepsPerSecond);
  for (;;) {
    auto stepStart = std::chrono::steady_clock::now();
    auto found = store_.scrubStep(&cursor, stepBytes);
    if (!found.ok()) {
      spdlog::warn("scrub: {}", found.status().message);
    } else {
      corruptThisPass += found.value();
    }
    // Pace the reads: each step may take up to 1/kStepsPerSecond of a second.
    auto next = stepStart + std::chrono::milliseconds(1000 / kStepsPerSecond);
    if (cursor.empty()) {
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - passStart).count();
      auto level = corruptThisPass ? spdlog::level::warn : spdlog::level::info;
      spdlog::log(level, "scrub pass complete in {:.0f} s: {} corrupt fragments", seconds, corruptThisPass);
      corruptThisPass = 0;
      next = std::max(next, passStart + std::chrono::seconds(minPassSeconds_));
      passStart = next;
      std::lock_guard<std::mutex> lock(mutex_);
      ++passes_;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait_until(lock, next, [this] { return stopping_; });
    if (stopping_) return;
  }
}

}  // namespace dfs
