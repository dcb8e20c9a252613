// Internal to the client data path (data_path.cc: writes, reads, flusher
// threads; data_commit.cc: the commit path): the per-file state and the
// helpers both halves use. Not part of DataPath's interface.
#pragma once

#include <malloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/client/data_path.h"
#include "backend/client/dirty_ranges.h"
#include "backend/common/clock.h"
#include "backend/common/metrics.h"

namespace dfs {
namespace data_path_detail {

// Prometheus series of the client data path (docs/metrics.md).
struct DataPathMetrics {
  Counter& bytesOut = metrics().counter("dfs_bytes_out_total",
                                        "Fragment bytes sent to storage nodes (incl. parity)");
  Counter& bytesIn = metrics().counter("dfs_bytes_in_total", "Fragment bytes received from storage nodes");
  Counter& fragmentErrors = metrics().counter(
      "dfs_fuse_fragment_errors_total", "Fragments that were corrupt or could not be fetched");
};
inline DataPathMetrics& dataPathMetrics() {
  static DataPathMetrics m;
  return m;
}

inline constexpr uint64_t kExtentWindow = 64ull << 20;  // bytes of extents fetched per getExtents
inline constexpr int64_t kClusterRefreshNs = 5ll * 1000000000;
inline constexpr int64_t kExcludeNodeNs = 30ll * 1000000000;
inline constexpr int kUploadAttempts = 3;
inline constexpr int kPlacementWaits = 10;  // x 500 ms for enough up storage nodes
inline constexpr int kCommitAttempts = 4;
inline constexpr size_t kMaxPutsInFlight = 3;
inline constexpr int64_t kTrimIntervalNs = 10ll * 1000000000;
inline constexpr int64_t kFailedFlushRetryNs = 10ll * 1000000000;  // background retry of a failed flush
// New closed files of at most this size are committed in batches (flushClosed).
inline constexpr uint64_t kBatchFileBytes = 1ull << 20;
inline constexpr int64_t kScanIntervalNs = 500ll * 1000000;  // flusher's scan of all files

inline void overlayMap(const RangeMap& ranges, uint64_t offset, size_t size,
                char* out) {
  uint64_t end = offset + size;
  auto it = ranges.upper_bound(offset);
  if (it != ranges.begin()) --it;
  for (; it != ranges.end() && it->first < end; ++it) {
    uint64_t b = std::max(offset, it->first);
    uint64_t e = std::min(end, it->first + it->second.size());
    if (b < e) memcpy(out + (b - offset), it->second.data() + (b - it->first), e - b);
  }
}

inline uint64_t mapBytes(const RangeMap& ranges) {
  uint64_t n = 0;
  for (const auto& [off, data] : ranges) n += data.size();
  return n;
}

inline uint64_t mapEnd(const RangeMap& ranges) {
  if (ranges.empty()) return 0;
  auto last = std::prev(ranges.end());
  return last->first + last->second.size();
}

// Inline extents holding the bytes of `ranges` (a file within the inline threshold).
inline std::vector<Extent> inlineExtents(const RangeMap& ranges) {
  std::vector<Extent> extents;
  for (const auto& [off, data] : ranges) {
    Extent e;
    e.fileOffset = off;
    e.length = data.size();
    e.kind = Extent::Kind::kInline;
    e.inlineData = std::string(data.view());
    extents.push_back(std::move(e));
  }
  return extents;
}

}  // namespace data_path_detail

struct DataPath::FileState {
  explicit FileState(uint64_t ino) : ino(ino) {}
  const uint64_t ino;
  std::mutex flushMu;            // serializes flushes of this file
  std::shared_mutex commitMu;    // readers shared; applying a commit exclusive
  std::mutex mu;                 // guards everything below
  DirtyRanges dirty;
  RangeMap flushing;  // being committed; written only under flushMu
  // A sequential writer's flushes overlap (DataPath::flushFile, `pipelined`):
  // once a flush has cut and handed its chunks to the upload, its bytes move
  // here and its commit finishes on a thread of its own (commitRunning) while
  // the next flush cuts the bytes written since. At most one such commit runs
  // per file; every other flush waits for it (awaitCommit) before it commits.
  // Newer bytes win: dirty over flushing over committing.
  RangeMap committing;
  bool commitRunning = false;
  Status committedStatus;  // the outcome of the last handed-off commit, taken by awaitCommit
  std::condition_variable commitDone;  // signalled when commitRunning turns false
  bool attrKnown = false;
  Attr attr;                     // last committed attributes seen
  int64_t lastWriteNs = 0;
  // An explicit mtime (utimens) absorbed after the last write: every commit of
  // bytes written before it carries it, not their write time (a bounded
  // flush may send the change and leave a tail for a later commit). A write
  // clears it: it sets mtime to its own time (POSIX).
  std::optional<int64_t> mtimeSet;
  int64_t firstDirtyNs = 0;
  uint64_t accounted = 0;        // bytes counted in DataPath::dirtyBytes_
  Status error;                  // first failed background flush, reported by flush()
  int64_t retryAfterNs = 0;      // the flusher leaves a failing file alone until then
  bool flushRequested = false;   // passed its bound: the flusher should commit it
  // The cached extents of [start, end) (null: none or invalidated). Replaced,
  // never modified, so a reader keeps using the window it looked at even when
  // a concurrent read of another range installs a new one.
  struct ExtentWindow {
    uint64_t start = 0, end = 0;
    std::vector<Extent> extents;
    std::unordered_map<ChunkId, ChunkPlacement, ChunkIdHash> chunks;
    // File offset up to which a sequential reader has queued this window's chunks
    // for the prefetcher: later reads queue only what lies beyond (0 after a
    // non-sequential read). Only a hint, hence relaxed.
    mutable std::atomic<uint64_t> queuedEnd{0};
  };
  std::shared_ptr<const ExtentWindow> window;
  // Highest dataVersion ever seen (survives invalidate()), and the one the
  // buffered bytes are based on (taken when the buffer was last empty): the
  // commit's base version for concurrent-writer conflict detection.
  uint64_t seenVersion = 0;
  uint64_t dirtyBase = 0;
  uint64_t lastReadEnd = 0;
  // Journal records of this file not yet covered by a commit, in seq order.
  std::deque<JournalSpan> journaled;
  // Attribute changes acknowledged but not sent yet (absorbSetattr), merged;
  // they go with the next commit. attrsGeneration counts absorbed changes.
  bool attrsPending = false;
  SetAttrRequest pendingSet;
  Caller pendingCaller;
  uint64_t attrsGeneration = 0;
  // A close asked for a commit (the flusher does it); handle releases to send
  // once nothing is left to commit.
  bool closeRequested = false;
  std::vector<std::function<void()>> releases;
  bool claimed = false;  // a flusher thread picked it
  // The kernel forgot the inode while something was left to commit: the
  // flusher's scan drops the state once it is clean (unless the inode was read,
  // written or opened since: file(ino, true) clears it).
  std::atomic<bool> forgotten{false};
  bool queued = false;   // in closedQueue_: left to the closed-file batches, not the scan
  // Signalled (under mu) when a flush took the buffered bytes or ended: a
  // writer waiting past twice the file's bound (awaitFlusher) goes on.
  std::condition_variable drained;
};

namespace data_path_detail {

// REQUIRES: f.mu held. Bytes are on their way to the cluster (taken by a flush).
inline bool inFlight(const DataPath::FileState& f) {
  return !f.flushing.empty() || !f.committing.empty();
}

// REQUIRES: f.mu held. The end of the bytes in flight (0: none).
inline uint64_t inFlightEnd(const DataPath::FileState& f) {
  return std::max(mapEnd(f.flushing), mapEnd(f.committing));
}

// REQUIRES: file.mu held. The releases that may go now: nothing of the file is
// left to commit.
inline std::vector<std::function<void()>> takeReleases(DataPath::FileState& f) {
  if (!f.dirty.empty() || inFlight(f) || f.attrsPending) return {};
  f.closeRequested = false;
  return std::exchange(f.releases, {});
}

inline void runReleases(std::vector<std::function<void()>> releases) {
  for (auto& release : releases) release();
}

// REQUIRES: f.mu held. Lays what only this client knows over `attr`: the size
// and mtime of buffered writes, and deferred attribute changes.
inline void patchLocked(const DataPath::FileState& f, Attr* attr) {
  uint64_t end = std::max(f.dirty.end(), inFlightEnd(f));
  if (attr->size < end) attr->size = end;
  if (!f.dirty.empty() || inFlight(f)) {
    attr->mtimeNs = f.mtimeSet ? *f.mtimeSet : std::max(attr->mtimeNs, f.lastWriteNs);
    attr->ctimeNs = std::max(attr->ctimeNs, f.lastWriteNs);
  }
  if (f.attrsPending) overlayAttrs(f.pendingSet, f.pendingCaller, attr);
}

// REQUIRES: f.mu held. The mtime a commit of the file's buffered bytes sets.
inline int64_t commitMtime(const DataPath::FileState& f) {
  return f.mtimeSet ? *f.mtimeSet : f.lastWriteNs;
}

// The seq a commit of `journaled` makes durable: every record at or below it is
// committed. Records whose bytes reach into the uncommitted tail (at or after
// `tailOffset`) are not, so the mark stays below the oldest of them.
inline uint64_t journalMark(const std::vector<DataPath::JournalSpan>& journaled, uint64_t tailOffset) {
  if (journaled.empty()) return 0;
  uint64_t mark = journaled.back().seq;
  for (const auto& span : journaled) {
    if (span.end > tailOffset) {
      mark = span.seq - 1;
      break;
    }
  }
  return mark;
}

// REQUIRES: file.mu held. Returns the change in accounted bytes.
inline int64_t reaccount(DataPath::FileState& file) {
  uint64_t now = file.dirty.bytes() + mapBytes(file.flushing) + mapBytes(file.committing);
  int64_t delta = int64_t(now) - int64_t(file.accounted);
  file.accounted = now;
  return delta;
}

}  // namespace data_path_detail
}  // namespace dfs
