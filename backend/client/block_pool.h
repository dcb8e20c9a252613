// Large byte blocks for the client's streamed write ranges (RangeBuffer), kept for
// reuse instead of being unmapped. A sequential writer fills a fresh ~65 MiB buffer
// per flush; new anonymous memory has to be faulted in and zeroed by the kernel,
// which cost ~5 % of all CPU in a 1 GiB write (docs/benchmarks.md, session 9). A
// released block goes to a small pool (at most kPoolBytes) after MADV_FREE, so the
// kernel may still reclaim its pages under memory pressure; reusing a block whose
// pages were not reclaimed costs no fault and no zeroing.
// Blocks below kPooledMin are plain malloc/free.
//
// Thread: allocateBlock/releaseBlock may be called from any thread (internal mutex).
#pragma once

#include <cstddef>

namespace dfs {

struct Block {
  char* data = nullptr;
  size_t size = 0;
};

constexpr size_t kPooledMin = size_t(8) << 20;    // smaller blocks are malloc'ed
constexpr size_t kPoolBytes = size_t(160) << 20;  // released blocks kept at most

// A block of at least `size` bytes (more when a pooled one fits). Throws
// std::bad_alloc when memory is exhausted, like operator new.
Block allocateBlock(size_t size);
void releaseBlock(Block block);

// Pooled bytes right now (tests, metrics).
size_t pooledBlockBytes();

}  // namespace dfs
