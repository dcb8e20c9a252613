#include "backend/meta/write_conflicts.h"

#include <algorithm>

#include "backend/common/metrics.h"

namespace dfs::meta {

ExtentRecord clipExtent(const ExtentRecord& e, uint64_t from, uint64_t to) {
  if (e.kind != ExtentRecord::Kind::kHole) return e.slice(from, to);
  ExtentRecord out = e;
  out.fileOffset = from;
  out.length = to - from;
  return out;
}

void WriteConflicts::count(uint64_t conflicts) {
  static Counter& counter = metrics().counter(
      "dfs_meta_write_conflicts_total",
      "commitWrite conflicts between sessions (resolved last-writer-wins by HLC)");
  total_ += conflicts;
  counter.inc(conflicts);
}

void WriteConflicts::prune(std::deque<Range>& ranges, int64_t nowNs) {
  while (!ranges.empty() &&
         (ranges.size() > kMaxCommits * 4 || nowNs - ranges.front().atNs > kMaxAgeNs)) {
    ranges.pop_front();
  }
}

ConflictOutcome WriteConflicts::resolve(uint64_t ino, uint64_t session, uint64_t baseVersion,
                                        uint64_t hlc, std::vector<ExtentRecord>& extents,
                                        int64_t nowNs) {
  ConflictOutcome out;
  auto it = recent_.find(ino);
  if (it == recent_.end() || hlc == 0) return out;
  prune(it->second, nowNs);
  for (const Range& r : it->second) {
    if (r.session == session || r.version <= baseVersion) continue;
    bool overlaps = false;
    for (const auto& e : extents) overlaps = overlaps || (e.fileOffset < r.end && r.begin < e.end());
    if (!overlaps) continue;
    ++out.conflicts;
    bool newerWins = r.hlc > hlc;
    out.detail += (out.detail.empty() ? "" : "; ") + std::string("[") + std::to_string(r.begin) +
                  "," + std::to_string(r.end) + ") of session " + std::to_string(r.session) +
                  " (version " + std::to_string(r.version) + ", hlc " + std::to_string(r.hlc) +
                  (newerWins ? ", newer: kept" : ", older: overwritten") + ")";
    if (!newerWins) continue;
    std::vector<ExtentRecord> kept;
    for (const auto& e : extents) {
      if (e.end() <= r.begin || r.end <= e.fileOffset) {
        kept.push_back(e);
        continue;
      }
      if (e.fileOffset < r.begin) kept.push_back(clipExtent(e, e.fileOffset, r.begin));
      if (r.end < e.end()) kept.push_back(clipExtent(e, r.end, e.end()));
      out.droppedBytes += std::min(e.end(), r.end) - std::max(e.fileOffset, r.begin);
    }
    extents = std::move(kept);
  }
  return out;
}

void WriteConflicts::record(uint64_t ino, uint64_t session, uint64_t version, uint64_t hlc,
                            const std::vector<ExtentRecord>& extents, int64_t nowNs) {
  if (extents.empty()) return;
  auto& ranges = recent_[ino];
  // Contiguous extents of one commit become one range.
  std::vector<ExtentRecord> sorted = extents;
  std::sort(sorted.begin(), sorted.end(),
            [](const ExtentRecord& a, const ExtentRecord& b) { return a.fileOffset < b.fileOffset; });
  Range current;
  bool open = false;
  auto flush = [&] {
    if (open) ranges.push_back(current);
    open = false;
  };
  for (const auto& e : sorted) {
    if (open && e.fileOffset <= current.end) {
      current.end = std::max(current.end, e.end());
      continue;
    }
    flush();
    current = Range{e.fileOffset, e.end(), hlc, session, version, nowNs};
    open = true;
  }
  flush();
  prune(ranges, nowNs);
  // Bound by commits too: drop the oldest commits' ranges past kMaxCommits versions.
  while (!ranges.empty() && version > kMaxCommits && ranges.front().version + kMaxCommits < version) {
    ranges.pop_front();
  }
  if (recent_.size() > 100000) {  // memory bound over many files: drop stale inodes
    for (auto i = recent_.begin(); i != recent_.end();) {
      if (i->second.empty() || nowNs - i->second.back().atNs > kMaxAgeNs) {
        i = recent_.erase(i);
      } else {
        ++i;
      }
    }
  }
}

}  // namespace dfs::meta
