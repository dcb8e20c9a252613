// Kernel lookup counts (nlookup) per inode, exactly as the FUSE protocol defines
// them: every successful reply that hands the kernel an inode (lookup, create,
// mkdir, mknod, symlink, link, readdirplus entries) adds one; forget(n) removes n.
// When the count reaches 0 the kernel no longer knows the inode and its client
// state may be dropped.
//
// Sharded by inode number so concurrent lookups (cp -a, find) rarely contend.
// Threads: any. Each shard's mutex is a leaf lock.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace dfs {

class InodeRefs {
 public:
  // Adds `count` references. Returns the new count.
  uint64_t add(uint64_t ino, uint64_t count = 1);
  // Removes `count` references. Returns true when the inode dropped to 0 (and was
  // removed). Forgetting more than was added clamps at 0 and is logged by the caller.
  bool forget(uint64_t ino, uint64_t count);
  uint64_t count(uint64_t ino) const;
  size_t size() const;
  // Every inode with a count > 0 (a snapshot, shard by shard).
  std::vector<uint64_t> known() const;

 private:
  static constexpr size_t kShards = 64;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, uint64_t> counts;
  };
  Shard& shard(uint64_t ino) { return shards_[(ino * 0x9E3779B97F4A7C15ull) >> 58]; }
  const Shard& shard(uint64_t ino) const { return shards_[(ino * 0x9E3779B97F4A7C15ull) >> 58]; }
  std::array<Shard, kShards> shards_;
};

}  // namespace dfs
