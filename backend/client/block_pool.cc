#include "backend/client/block_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace dfs {

namespace {

struct Pool {
  std::mutex mu;
  std::vector<Block> free;  // guarded by mu
  size_t bytes = 0;         // guarded by mu
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: blocks may be released during exit
  return *p;
}

size_t pageSize() {
  static const size_t size = size_t(sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

Block allocateBlock(size_t size) {
  if (size < kPooledMin) {
    void* p = std::malloc(size == 0 ? 1 : size);
    if (!p) throw std::bad_alloc();
    return Block{static_cast<char*>(p), size};
  }
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mu);
    // The smallest pooled block that holds `size` and is at most twice as big.
    size_t best = p.free.size();
    for (size_t i = 0; i < p.free.size(); ++i) {
      size_t have = p.free[i].size;
      if (have >= size && have / 2 <= size && (best == p.free.size() || have < p.free[best].size)) {
        best = i;
      }
    }
    if (best != p.free.size()) {
      Block b = p.free[best];
      p.free.erase(p.free.begin() + long(best));
      p.bytes -= b.size;
      return b;
    }
  }
  size_t rounded = (size + pageSize() - 1) / pageSize() * pageSize();
  void* m = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  return Block{static_cast<char*>(m), rounded};
}

void releaseBlock(Block block) {
  if (!block.data) return;
  if (block.size < kPooledMin) {
    std::free(block.data);
    return;
  }
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mu);
    if (p.bytes + block.size <= kPoolBytes) {
      // The contents are garbage now: the kernel may take the pages back lazily.
      madvise(block.data, block.size, MADV_FREE);
      p.free.push_back(block);
      p.bytes += block.size;
      return;
    }
  }
  munmap(block.data, block.size);
}

size_t pooledBlockBytes() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  return p.bytes;
}

}  // namespace dfs
