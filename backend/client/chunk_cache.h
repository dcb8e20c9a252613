// LRU cache of decoded chunk plaintexts, keyed by chunk id (content-addressed, so
// an entry is never stale). Bounded by total bytes.
//
// Threads: any; one internal mutex (a leaf lock).
#pragma once

#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "backend/common/hash.h"

namespace dfs {

struct ChunkIdHash {
  size_t operator()(const ChunkId& id) const {
    size_t h;
    memcpy(&h, id.data(), sizeof(h));  // SHA-256 bytes are uniformly distributed
    return h;
  }
};

class ChunkCache {
 public:
  explicit ChunkCache(size_t capacityBytes) : capacity_(capacityBytes) {}

  std::shared_ptr<const std::string> get(const ChunkId& id);
  void put(const ChunkId& id, std::shared_ptr<const std::string> data);
  size_t bytes() const;

 private:
  using Entry = std::pair<ChunkId, std::shared_ptr<const std::string>>;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // front: most recently used
  std::unordered_map<ChunkId, std::list<Entry>::iterator, ChunkIdHash> index_;
  size_t bytes_ = 0;
};

}  // namespace dfs
