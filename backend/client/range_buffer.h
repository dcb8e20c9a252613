// The bytes of one buffered range of a file (DirtyRanges), with optional free
// space in front of them. A sequential writer's range grows at its end while a
// flush of the bytes before it runs; the flush then puts back the bytes after
// its last chunk cut, which belong right in front of the new range. With
// headroom that is a copy of those few bytes, not of the tens of MiB after
// them. Pure data structure, no I/O.
//
// Threads: not thread-safe; the owner locks it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <map>
#include <string>
#include <string_view>

namespace dfs {

class RangeBuffer {
 public:
  RangeBuffer() = default;
  explicit RangeBuffer(std::string_view data) : buf_(data) {}
  // `data` after `headroom` free bytes, with room for `capacity` bytes after the
  // headroom before the buffer has to move.
  RangeBuffer(std::string_view data, size_t headroom, size_t capacity) : head_(headroom) {
    buf_.reserve(headroom + std::max(capacity, data.size()));
    buf_.resize(headroom);
    buf_.append(data);
  }

  const char* data() const { return buf_.data() + head_; }
  char* data() { return buf_.data() + head_; }
  size_t size() const { return buf_.size() - head_; }
  bool empty() const { return size() == 0; }
  std::string_view view() const { return {data(), size()}; }
  // Bytes it can hold without moving (after the headroom).
  size_t capacity() const { return buf_.capacity() - head_; }
  size_t headroom() const { return head_; }
  // The whole allocation, headroom included (for memory hints).
  const char* allocation() const { return buf_.data(); }
  size_t allocationSize() const { return buf_.capacity(); }

  void append(const char* bytes, size_t n) { buf_.append(bytes, n); }
  void append(std::string_view bytes) { buf_.append(bytes.data(), bytes.size()); }
  // Puts `bytes` in front of the held bytes; copies only `bytes` when they fit
  // in the headroom.
  void prepend(std::string_view bytes) {
    if (bytes.size() <= head_) {
      head_ -= bytes.size();
      memcpy(buf_.data() + head_, bytes.data(), bytes.size());
      return;
    }
    std::string merged;
    merged.reserve(bytes.size() + buf_.capacity() - head_);
    merged.append(bytes);
    merged.append(view());
    buf_ = std::move(merged);
    head_ = 0;
  }
  // Keeps the first `n` bytes (n <= size()).
  void truncate(size_t n) { buf_.resize(head_ + n); }

  bool operator==(std::string_view other) const { return view() == other; }

 private:
  std::string buf_;
  size_t head_ = 0;
};

// Range start -> bytes; disjoint, never adjacent (DirtyRanges keeps them so).
using RangeMap = std::map<uint64_t, RangeBuffer>;

}  // namespace dfs
