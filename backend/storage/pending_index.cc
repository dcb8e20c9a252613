#include "backend/storage/pending_index.h"

namespace dfs {

void PendingIndex::add(Delta&& delta, int64_t nowNs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (rows_.fragments.empty() && rows_.staleLocations.empty() && rows_.extents.empty()) {
    oldestNs_ = nowNs;
  }
  for (auto& [id, location] : delta.fragments) rows_.fragments[id] = location;
  for (auto& key : delta.staleLocations) rows_.staleLocations.insert(std::move(key));
  rows_.extents.insert(delta.extents.begin(), delta.extents.end());
  recordBytes_ += delta.recordBytes;
}

std::optional<FragmentLocation> PendingIndex::find(std::string_view id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = rows_.fragments.find(id);
  if (it == rows_.fragments.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<std::string, int64_t>> PendingIndex::idsAfter(std::string_view after) const {
  std::vector<std::pair<std::string, int64_t>> ids;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = after.empty() ? rows_.fragments.begin() : rows_.fragments.upper_bound(after);
  for (; it != rows_.fragments.end(); ++it) ids.emplace_back(it->first, it->second.storedAtNs);
  return ids;
}

PendingIndex::Snapshot PendingIndex::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rows_;
}

void PendingIndex::committed(const Snapshot& snapshot) {
  std::lock_guard<std::mutex> lock(mu_);
  // Only the writer adds rows, and it holds the store's commitMutex_ from
  // snapshot() to here: nothing was added in between, but stay exact anyway.
  for (const auto& [id, location] : snapshot.fragments) {
    auto it = rows_.fragments.find(id);
    if (it != rows_.fragments.end() && it->second.extent == location.extent &&
        it->second.offset == location.offset) {
      rows_.fragments.erase(it);
    }
  }
  for (const auto& key : snapshot.staleLocations) rows_.staleLocations.erase(key);
  for (uint32_t extent : snapshot.extents) rows_.extents.erase(extent);
  if (rows_.fragments.empty() && rows_.staleLocations.empty() && rows_.extents.empty()) {
    recordBytes_ = 0;
    oldestNs_ = 0;
  }
}

bool PendingIndex::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rows_.fragments.empty() && rows_.staleLocations.empty() && rows_.extents.empty();
}

uint64_t PendingIndex::recordBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return recordBytes_;
}

int64_t PendingIndex::oldestNs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return oldestNs_;
}

}  // namespace dfs
