// The bytes of one buffered range of a file (DirtyRanges), with optional free
// space in front of them. A sequential writer's range grows at its end while a
// flush of the bytes before it runs; the flush then puts back the bytes after
// its last chunk cut, which belong right in front of the new range. With
// headroom that is a copy of those few bytes, not of the tens of MiB after
// them. No I/O; blocks of 8 MiB and more come from, and go back to, the
// process-wide block pool (block_pool.h), which reuses them.
//
// Threads: not thread-safe; the owner locks it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <map>
#include <string>
#include <string_view>

#include "backend/client/block_pool.h"

namespace dfs {

class RangeBuffer {
 public:
  RangeBuffer() = default;
  explicit RangeBuffer(std::string_view data) { append(data); }
  // `data` after `headroom` free bytes, with room for `capacity` bytes after the
  // headroom before the buffer has to move.
  RangeBuffer(std::string_view data, size_t headroom, size_t capacity) {
    block_ = allocateBlock(headroom + std::max(capacity, data.size()));
    head_ = end_ = headroom;
    append(data);
  }
  ~RangeBuffer() { releaseBlock(block_); }
  RangeBuffer(const RangeBuffer& other) : RangeBuffer(other.view()) {}
  RangeBuffer& operator=(const RangeBuffer& other) {
    if (this != &other) *this = RangeBuffer(other.view());
    return *this;
  }
  RangeBuffer(RangeBuffer&& other) noexcept { swap(other); }
  RangeBuffer& operator=(RangeBuffer&& other) noexcept {
    RangeBuffer old(std::move(*this));
    swap(other);
    return *this;
  }

  const char* data() const { return block_.data ? block_.data + head_ : kEmpty; }
  char* data() { return block_.data ? block_.data + head_ : kEmpty; }
  size_t size() const { return end_ - head_; }
  bool empty() const { return size() == 0; }
  std::string_view view() const { return {data(), size()}; }
  // Bytes it can hold without moving (after the headroom).
  size_t capacity() const { return block_.size - head_; }
  size_t headroom() const { return head_; }
  // The whole allocation, headroom included (for memory hints).
  const char* allocation() const { return block_.data; }
  size_t allocationSize() const { return block_.size; }

  void append(const char* bytes, size_t n) {
    if (n == 0) return;
    if (end_ + n > block_.size) moveTo(std::max(end_ + n, 2 * block_.size), head_);
    memcpy(block_.data + end_, bytes, n);
    end_ += n;
  }
  void append(std::string_view bytes) { append(bytes.data(), bytes.size()); }
  // Puts `bytes` in front of the held bytes; copies only `bytes` when they fit
  // in the headroom.
  void prepend(std::string_view bytes) {
    if (bytes.empty()) return;
    if (bytes.size() > head_) moveTo(bytes.size() + block_.size - head_, bytes.size());
    head_ -= bytes.size();
    memcpy(block_.data + head_, bytes.data(), bytes.size());
  }
  // Keeps the first `n` bytes (n <= size()).
  void truncate(size_t n) { end_ = head_ + n; }

  bool operator==(std::string_view other) const { return view() == other; }

 private:
  static inline char kEmpty[1] = {};
  void swap(RangeBuffer& other) noexcept {
    std::swap(block_, other.block_);
    std::swap(head_, other.head_);
    std::swap(end_, other.end_);
  }
  // Moves the held bytes into a new block of `size` bytes, `headroom` free in front.
  void moveTo(size_t size, size_t headroom) {
    Block fresh = allocateBlock(size);
    size_t n = end_ - head_;
    if (n > 0) memcpy(fresh.data + headroom, block_.data + head_, n);
    releaseBlock(block_);
    block_ = fresh;
    head_ = headroom;
    end_ = headroom + n;
  }

  Block block_;
  size_t head_ = 0;  // free bytes in front of the held ones
  size_t end_ = 0;   // offset just after the held bytes
};

// Range start -> bytes; disjoint, never adjacent (DirtyRanges keeps them so).
using RangeMap = std::map<uint64_t, RangeBuffer>;

}  // namespace dfs
