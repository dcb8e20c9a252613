#include "backend/client/dirty_ranges.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace dfs {

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
      std::string& buf = prev->second;
      uint64_t rel = offset - prev->first;
      uint64_t overlap = std::min<uint64_t>(prevEnd - offset, data.size());
      memcpy(&buf[rel], data.data(), overlap);
      if (overlap < data.size()) {
        buf.append(data.data() + overlap, data.size() - overlap);
        bytes_ += data.size() - overlap;
      }
      // Absorb following ranges that now overlap or touch.
      uint64_t newEnd = prev->first + buf.size();
      auto next = std::next(prev);
      while (next != ranges_.end() && next->first <= newEnd) {
        uint64_t nextEnd = next->first + next->second.size();
        bytes_ -= next->second.size();
        if (nextEnd > newEnd) {
          buf.append(next->second, newEnd - next->first, std::string::npos);
          bytes_ += nextEnd - newEnd;
          newEnd = nextEnd;
        }
        next = ranges_.erase(next);
      }
      (void)end;
      return;
    }
  }
  // New range starting at `offset`, absorbing following ranges it overlaps or touches.
  std::string buf(data);
  bytes_ += data.size();
  uint64_t newEnd = end;
  auto next = ranges_.lower_bound(offset);
  while (next != ranges_.end() && next->first <= newEnd) {
    uint64_t nextEnd = next->first + next->second.size();
    bytes_ -= next->second.size();
    if (nextEnd > newEnd) {
      buf.append(next->second, newEnd - next->first, std::string::npos);
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
    last->second.resize(size - last->first);
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
