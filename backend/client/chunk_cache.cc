#include "backend/client/chunk_cache.h"

namespace dfs {

std::shared_ptr<const std::string> ChunkCache::get(const ChunkId& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void ChunkCache::put(const ChunkId& id, std::shared_ptr<const std::string> data) {
  if (!data || data->size() > capacity_) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(id);
  if (it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  bytes_ += data->size();
  lru_.emplace_front(id, std::move(data));
  index_[id] = lru_.begin();
  while (bytes_ > capacity_ && !lru_.empty()) {
    auto& last = lru_.back();
    bytes_ -= last.second->size();
    index_.erase(last.first);
    lru_.pop_back();
  }
}

size_t ChunkCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

}  // namespace dfs
