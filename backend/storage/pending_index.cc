#include "backend/storage/pending_index.h"

#include <algorithm>

namespace dfs {

void PendingIndex::add(Delta&& delta, int64_t nowNs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (rows_.empty()) oldestNs_ = nowNs;
  for (auto& [id, location] : delta.fragments) rows_.fragments[id] = location;
  for (auto& key : delta.staleLocations) rows_.staleLocations.insert(std::move(key));
  rows_.extents.insert(delta.extents.begin(), delta.extents.end());
  recordBytes_ += delta.recordBytes;
}

std::optional<FragmentLocation> PendingIndex::find(std::string_view id) const {
  // A key without an allocation per lookup (C++17 has no heterogeneous find):
  // ids are 33 bytes, past the short-string buffer.
  thread_local std::string key;
  key.assign(id.data(), id.size());
  std::lock_guard<std::mutex> lock(mu_);
  for (const Rows* rows : {&rows_, &committing_}) {
    auto it = rows->fragments.find(key);
    if (it != rows->fragments.end()) return it->second;
  }
  return std::nullopt;
}

std::vector<std::pair<std::string, int64_t>> PendingIndex::idsAfter(std::string_view after) const {
  std::vector<std::pair<std::string, int64_t>> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Rows* rows : {&rows_, &committing_}) {
      for (const auto& [id, location] : rows->fragments) {
        if (after.empty() || std::string_view(id) > after)
          ids.emplace_back(id, location.storedAtNs);
      }
    }
  }
  // An id in both (put again while a commit runs) is listed once, the newer row.
  std::stable_sort(ids.begin(), ids.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  ids.erase(std::unique(ids.begin(), ids.end(),
                        [](const auto& a, const auto& b) { return a.first == b.first; }),
            ids.end());
  return ids;
}

PendingIndex::Commit::Commit(PendingIndex& index) : index_(index) {
  std::lock_guard<std::mutex> lock(index_.mu_);
  std::swap(index_.rows_, index_.committing_);
  index_.committingBytes_ = index_.recordBytes_;
  index_.committingOldestNs_ = index_.oldestNs_;
  index_.recordBytes_ = 0;
  index_.oldestNs_ = 0;
}

PendingIndex::Commit::~Commit() {
  Rows forgotten;  // freed after the lock is released
  std::lock_guard<std::mutex> lock(index_.mu_);
  Rows& rows = index_.rows_;
  Rows& committing = index_.committing_;
  if (!done_) {
    // Not committed: pending again (rows added since, if any, are newer and win).
    for (auto& [id, location] : committing.fragments) rows.fragments.emplace(id, location);
    rows.staleLocations.merge(committing.staleLocations);
    rows.extents.merge(committing.extents);
    index_.recordBytes_ += index_.committingBytes_;
    if (index_.committingOldestNs_ != 0) index_.oldestNs_ = index_.committingOldestNs_;
  }
  std::swap(forgotten, committing);
  index_.committingBytes_ = 0;
  index_.committingOldestNs_ = 0;
}

bool PendingIndex::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rows_.empty() && committing_.empty();
}

uint64_t PendingIndex::recordBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return recordBytes_ + committingBytes_;
}

int64_t PendingIndex::oldestNs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return committingOldestNs_ != 0 ? committingOldestNs_ : oldestNs_;
}

}  // namespace dfs
