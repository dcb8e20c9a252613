#include "backend/client/dirty_ranges.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace dfs {

namespace {
constexpr size_t kStreamingBytes = 1 << 20;  // a range this long is being streamed into
constexpr uintptr_t kHugePage = 2u << 20;

// A streamed range fills tens of MiB of fresh memory per flush. Faulting it in
// 4 KiB pages cost a quarter of dfs-fuse's CPU in a 1 GiB write (one trap per
// page, expensive in a VM); transparent huge pages take one per 2 MiB. Only
// the whole huge pages inside the buffer are advised (a buffer this large is
// an mmap of its own, so no other allocation shares them). A hint: failure
// (no THP) changes nothing.
void adviseHugePages(const char* data, size_t size) {
  uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHugePage - 1) & ~(kHugePage - 1);
  uintptr_t end = (reinterpret_cast<uintptr_t>(data) + size) & ~(kHugePage - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}
}  // namespace

void DirtyRanges::appendTo(RangeBuffer& buf, std::string_view data) {
  size_t needed = buf.size() + data.size();
  if (needed > buf.capacity() && buf.size() >= kStreamingBytes && growthReserve_ > needed) {
    RangeBuffer moved(buf.view(), kStreamHeadroom, growthReserve_);
    adviseHugePages(moved.allocation(), moved.allocationSize());
    buf = std::move(moved);
  }
  buf.append(data);
}

void DirtyRanges::write(uint64_t offset, std::string_view data) {
  if (data.empty()) return;
  uint64_t end = offset + data.size();
  // Fast path: appending to the range that ends exactly at `offset`.
  auto it = ranges_.upper_bound(offset);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    uint64_t prevEnd = prev->first + prev->second.size();
    if (prevEnd >= offset) {
      // Merge into prev: overwrite the overlapping part, append the rest.
      RangeBuffer& buf = prev->second;
      uint64_t rel = offset - prev->first;
      uint64_t overlap = std::min<uint64_t>(prevEnd - offset, data.size());
      memcpy(buf.data() + rel, data.data(), overlap);
      if (overlap < data.size()) {
        appendTo(buf, data.substr(overlap));
        bytes_ += data.size() - overlap;
      }
      // Absorb following ranges that now overlap or touch.
      uint64_t newEnd = prev->first + buf.size();
      auto next = std::next(prev);
      while (next != ranges_.end() && next->first <= newEnd) {
        uint64_t nextEnd = next->first + next->second.size();
        bytes_ -= next->second.size();
        if (nextEnd > newEnd) {
          appendTo(buf, next->second.view().substr(newEnd - next->first));
          bytes_ += nextEnd - newEnd;
          newEnd = nextEnd;
        }
        next = ranges_.erase(next);
      }
      return;
    }
  }
  auto next = ranges_.lower_bound(offset);
  // Bytes right in front of a range that reaches at least as far (a flush's
  // tail put back before what the writer wrote since): they go into that
  // range's headroom instead of copying the range into a new buffer.
  if (next != ranges_.end() && next->first <= end &&
      next->first + next->second.size() >= end) {
    uint64_t overlap = end - next->first;
    auto node = ranges_.extract(next);
    RangeBuffer& buf = node.mapped();
    memcpy(buf.data(), data.data() + (data.size() - overlap), overlap);
    buf.prepend(data.substr(0, data.size() - overlap));
    bytes_ += data.size() - overlap;
    node.key() = offset;
    ranges_.insert(std::move(node));
    return;
  }
  // New range starting at `offset`, absorbing following ranges it overlaps or touches.
  RangeBuffer buf(data);
  bytes_ += data.size();
  uint64_t newEnd = end;
  while (next != ranges_.end() && next->first <= newEnd) {
    uint64_t nextEnd = next->first + next->second.size();
    bytes_ -= next->second.size();
    if (nextEnd > newEnd) {
      appendTo(buf, next->second.view().substr(newEnd - next->first));
      bytes_ += nextEnd - newEnd;
      newEnd = nextEnd;
    }
    next = ranges_.erase(next);
  }
  ranges_.emplace(offset, std::move(buf));
}

void DirtyRanges::fillGaps(uint64_t offset, std::string_view data) {
  uint64_t end = offset + data.size();
  // Collect the gaps first, then write them (write() may merge ranges).
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  uint64_t pos = offset;
  auto it = ranges_.upper_bound(offset);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    pos = std::max(pos, prev->first + prev->second.size());
  }
  for (; pos < end && it != ranges_.end() && it->first < end; ++it) {
    if (it->first > pos) gaps.emplace_back(pos, it->first);
    pos = std::max(pos, it->first + it->second.size());
  }
  if (pos < end) gaps.emplace_back(pos, end);
  for (auto [b, e] : gaps) write(b, data.substr(b - offset, e - b));
}

void DirtyRanges::fillGapsOutside(uint64_t offset, std::string_view data, const RangeMap& newer) {
  const uint64_t end = offset + data.size();
  uint64_t pos = offset;
  auto fill = [&](uint64_t b, uint64_t e) { fillGaps(b, data.substr(b - offset, e - b)); };
  // The first range of `newer` that ends after `offset`.
  auto it = newer.upper_bound(offset);
  if (it != newer.begin() && std::prev(it)->first + std::prev(it)->second.size() > offset) --it;
  for (; pos < end && it != newer.end() && it->first < end; ++it) {
    if (it->first > pos) fill(pos, it->first);
    pos = std::max(pos, it->first + it->second.size());
  }
  if (pos < end) fill(pos, end);
}

void DirtyRanges::truncate(uint64_t size) {
  auto it = ranges_.lower_bound(size);
  while (it != ranges_.end()) {
    bytes_ -= it->second.size();
    it = ranges_.erase(it);
  }
  if (ranges_.empty()) return;
  auto last = std::prev(ranges_.end());
  uint64_t lastEnd = last->first + last->second.size();
  if (lastEnd > size) {
    bytes_ -= lastEnd - size;
    last->second.truncate(size - last->first);
  }
}

bool DirtyRanges::overlay(uint64_t offset, size_t size, char* out) const {
  bool any = false;
  uint64_t end = offset + size;
  auto it = ranges_.upper_bound(offset);
  if (it != ranges_.begin()) --it;
  for (; it != ranges_.end() && it->first < end; ++it) {
    uint64_t b = std::max(offset, it->first);
    uint64_t e = std::min(end, it->first + it->second.size());
    if (b >= e) continue;
    memcpy(out + (b - offset), it->second.data() + (b - it->first), e - b);
    any = true;
  }
  return any;
}

bool DirtyRanges::overlaps(uint64_t offset, uint64_t size) const {
  uint64_t end = offset + size;
  auto it = ranges_.upper_bound(offset);
  if (it != ranges_.begin()) --it;
  for (; it != ranges_.end() && it->first < end; ++it) {
    if (it->first + it->second.size() > offset) return true;
  }
  return false;
}

uint64_t DirtyRanges::end() const {
  if (ranges_.empty()) return 0;
  auto last = std::prev(ranges_.end());
  return last->first + last->second.size();
}

}  // namespace dfs
