// Bookkeeping of a file's not-yet-committed bytes: a set of disjoint, non-adjacent
// byte ranges, each with its contents. Pure data structure, no I/O.
//
// Threads: not thread-safe; the owner (DataPath's per-file state) locks it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "backend/client/range_buffer.h"

namespace dfs {

class DirtyRanges {
 public:
  // Records that [offset, offset+data.size()) now holds `data`, replacing older
  // bytes there. Ranges that overlap or touch are merged into one.
  void write(uint64_t offset, std::string_view data);
  // Like write(), but only fills the parts of the range that hold no bytes yet:
  // existing (newer) bytes win. Used to put back a tail that was not committed.
  void fillGaps(uint64_t offset, std::string_view data);
  // Like fillGaps(), but also leaves alone the parts `newer` holds: puts back
  // the bytes of a failed commit while a later flush still has its own.
  void fillGapsOutside(uint64_t offset, std::string_view data, const RangeMap& newer);
  // Forgets everything at or beyond `size` (truncate).
  void truncate(uint64_t size);
  // Copies the recorded bytes that fall inside [offset, offset+size) into
  // out[0..size); bytes not recorded are left untouched. Returns whether any
  // recorded byte overlapped.
  bool overlay(uint64_t offset, size_t size, char* out) const;
  bool overlaps(uint64_t offset, uint64_t size) const;

  bool empty() const { return ranges_.empty(); }
  uint64_t bytes() const { return bytes_; }
  // One past the last recorded byte (0 when empty).
  uint64_t end() const;
  void clear() {
    ranges_.clear();
    bytes_ = 0;
  }
  // A range that grows by appends past 1 MiB (a sequential writer) is moved,
  // once, into a buffer of this many bytes with kStreamHeadroom bytes free in
  // front: no copy of the buffered bytes on each growth, a flush's tail is put
  // back in front of it without copying the range, and the untouched part of
  // the reservation costs no memory.
  void setGrowthReserve(uint64_t bytes) { growthReserve_ = bytes; }
  static constexpr size_t kStreamHeadroom = 1u << 20;
  // Range start -> contents; ranges are disjoint and never adjacent.
  const RangeMap& ranges() const { return ranges_; }
  RangeMap take() {
    bytes_ = 0;
    return std::move(ranges_);
  }

 private:
  // Appends `data` to `buf`, moving it into a streaming buffer first when it is
  // being streamed into.
  void appendTo(RangeBuffer& buf, std::string_view data);

  RangeMap ranges_;
  uint64_t bytes_ = 0;
  uint64_t growthReserve_ = 0;
};

}  // namespace dfs
