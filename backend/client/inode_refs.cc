#include "backend/client/inode_refs.h"

namespace dfs {

uint64_t InodeRefs::add(uint64_t ino, uint64_t count) {
  Shard& s = shard(ino);
  std::lock_guard<std::mutex> lock(s.mu);
  return s.counts[ino] += count;
}

bool InodeRefs::forget(uint64_t ino, uint64_t count) {
  Shard& s = shard(ino);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.counts.find(ino);
  if (it == s.counts.end()) return true;
  if (it->second > count) {
    it->second -= count;
    return false;
  }
  s.counts.erase(it);
  return true;
}

uint64_t InodeRefs::count(uint64_t ino) const {
  const Shard& s = shard(ino);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.counts.find(ino);
  return it == s.counts.end() ? 0 : it->second;
}

std::vector<uint64_t> InodeRefs::known() const {
  std::vector<uint64_t> out;
  for (const auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    for (const auto& [ino, count] : s.counts) out.push_back(ino);
  }
  return out;
}

size_t InodeRefs::size() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    n += s.counts.size();
  }
  return n;
}

}  // namespace dfs
