#include "backend/client/data_path.h"

#include "backend/common/metrics.h"

#include <malloc.h>
#include <sys/stat.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <shared_mutex>
#include <unordered_set>
#include <utility>

#include "backend/client/dirty_ranges.h"
#include "backend/common/chunk_codec.h"
#include "backend/common/clock.h"
#include "backend/common/fastcdc.h"
#include "backend/common/placement.h"

namespace dfs {

namespace {
// Prometheus series of the client data path (docs/metrics.md).
struct DataPathMetrics {
  Counter& bytesOut = metrics().counter("dfs_bytes_out_total",
                                        "Fragment bytes sent to storage nodes (incl. parity)");
  Counter& bytesIn = metrics().counter("dfs_bytes_in_total", "Fragment bytes received from storage nodes");
  Counter& fragmentErrors = metrics().counter(
      "dfs_fuse_fragment_errors_total", "Fragments that were corrupt or could not be fetched");
};
DataPathMetrics& dataPathMetrics() {
  static DataPathMetrics m;
  return m;
}

constexpr uint64_t kExtentWindow = 64ull << 20;  // bytes of extents fetched per getExtents
constexpr int64_t kClusterRefreshNs = 5ll * 1000000000;
constexpr int64_t kExcludeNodeNs = 30ll * 1000000000;
constexpr int kUploadAttempts = 3;
constexpr int kPlacementWaits = 10;  // x 500 ms for enough up storage nodes
constexpr int kCommitAttempts = 4;
constexpr size_t kMaxPutsInFlight = 3;
constexpr int64_t kTrimIntervalNs = 10ll * 1000000000;
constexpr int64_t kFailedFlushRetryNs = 10ll * 1000000000;  // background retry of a failed flush
// New closed files of at most this size are committed in batches (flushClosed).
constexpr uint64_t kBatchFileBytes = 1ull << 20;
constexpr int64_t kScanIntervalNs = 500ll * 1000000;  // flusher's scan of all files

void overlayMap(const RangeMap& ranges, uint64_t offset, size_t size,
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

uint64_t mapBytes(const RangeMap& ranges) {
  uint64_t n = 0;
  for (const auto& [off, data] : ranges) n += data.size();
  return n;
}

uint64_t mapEnd(const RangeMap& ranges) {
  if (ranges.empty()) return 0;
  auto last = std::prev(ranges.end());
  return last->first + last->second.size();
}

// Inline extents holding the bytes of `ranges` (a file within the inline threshold).
std::vector<Extent> inlineExtents(const RangeMap& ranges) {
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

}  // namespace

// A piece of a buffered range that becomes one chunk.
struct DataPath::Piece {
  uint64_t fileOffset;
  const uint8_t* data;
  uint32_t size;
  ChunkId id;
};

struct DataPath::FileState {
  explicit FileState(uint64_t ino) : ino(ino) {}
  const uint64_t ino;
  std::mutex flushMu;            // serializes flushes of this file
  std::shared_mutex commitMu;    // readers shared; applying a commit exclusive
  std::mutex mu;                 // guards everything below
  DirtyRanges dirty;
  RangeMap flushing;  // being committed; written only under flushMu
  bool attrKnown = false;
  Attr attr;                     // last committed attributes seen
  int64_t lastWriteNs = 0;
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
  bool queued = false;   // in closedQueue_: left to the closed-file batches, not the scan
  // Signalled (under mu) when a flush took the buffered bytes or ended: a
  // writer waiting past twice the file's bound (awaitFlusher) goes on.
  std::condition_variable drained;
};

namespace {
// The seq a commit of `journaled` makes durable: every record at or below it is
// committed. Records whose bytes reach into the uncommitted tail (at or after
// `tailOffset`) are not, so the mark stays below the oldest of them.
// REQUIRES: file.mu held. The releases that may go now: nothing of the file is
// left to commit.
std::vector<std::function<void()>> takeReleases(DataPath::FileState& f) {
  if (!f.dirty.empty() || !f.flushing.empty() || f.attrsPending) return {};
  f.closeRequested = false;
  return std::exchange(f.releases, {});
}

void runReleases(std::vector<std::function<void()>> releases) {
  for (auto& release : releases) release();
}

// What the metadata node will make of `a` once the deferred change `set` by
// `caller` is applied (mirrors meta::Namespace::setattr).
void overlayAttrs(const SetAttrRequest& set, const Caller& caller, Attr* a) {
  if (set.setMode) a->mode = (a->mode & S_IFMT) | (set.mode & 07777);
  if (set.setUid) a->uid = set.uid;
  if (set.setGid) a->gid = set.gid;
  if ((set.setUid || set.setGid) && !set.setMode && caller.uid != 0 && !S_ISDIR(a->mode)) {
    a->mode &= ~uint32_t(S_ISUID);
    if (a->mode & S_IXGRP) a->mode &= ~uint32_t(S_ISGID);
  }
  if (set.setAtime) a->atimeNs = set.atimeNs;
  if (set.setMtime) a->mtimeNs = set.mtimeNs;
  a->ctimeNs = std::max(a->ctimeNs, set.ctimeNs);
}

// REQUIRES: f.mu held. Lays what only this client knows over `attr`: the size
// and mtime of buffered writes, and deferred attribute changes.
void patchLocked(const DataPath::FileState& f, Attr* attr) {
  uint64_t end = std::max(f.dirty.end(), mapEnd(f.flushing));
  if (attr->size < end) attr->size = end;
  if (!f.dirty.empty() || !f.flushing.empty()) {
    attr->mtimeNs = std::max(attr->mtimeNs, f.lastWriteNs);
    attr->ctimeNs = std::max(attr->ctimeNs, f.lastWriteNs);
  }
  if (f.attrsPending) overlayAttrs(f.pendingSet, f.pendingCaller, attr);
}

uint64_t journalMark(const std::vector<DataPath::JournalSpan>& journaled, uint64_t tailOffset) {
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
}  // namespace

DataPath::DataPath(MetaClient& meta, StoragePool& storage, DataPathOptions options)
    : meta_(meta),
      storage_(storage),
      options_(options),
      cache_(options.chunkCacheBytes),
      closedWorkers_(std::max(1, options.closedWorkers)),
      closedBatch_(std::max<size_t>(1, options.closedBatchFiles)) {
  for (int i = 0; i < kFlushers; ++i) flushers_.emplace_back([this] { flusherMain(); });
  prefetcher_ = std::thread([this] { prefetcherMain(); });
}

DataPath::~DataPath() {
  {
    std::lock_guard<std::mutex> lock(memoryMu_);
    stopping_ = true;
  }
  flusherCv_.notify_all();
  memoryCv_.notify_all();
  for (auto& t : flushers_) t.join();
  {
    std::lock_guard<std::mutex> lock(prefetchMu_);
    prefetchStop_ = true;
  }
  prefetchCv_.notify_all();
  prefetcher_.join();
}

void DataPath::prefetch(std::vector<ChunkPlacement> chunks) {
  {
    std::lock_guard<std::mutex> lock(prefetchMu_);
    for (auto& c : chunks) {
      if (prefetching_.insert(c.layout.id).second) prefetchQueue_.push_back(std::move(c));
    }
  }
  prefetchCv_.notify_one();
}

bool DataPath::awaitPrefetch(const ChunkId& id) {
  std::unique_lock<std::mutex> lock(prefetchMu_);
  if (!prefetching_.count(id)) return false;
  loadedCv_.wait_for(lock, std::chrono::milliseconds(meta_.opTimeoutMs()),
                     [&] { return prefetching_.count(id) == 0; });
  return true;
}

void DataPath::prefetcherMain() {
  // The whole read-ahead window per batch: one getMany per node for all of it
  // (two threads with half-size batches were measured slower: more calls, more
  // CPU per GiB on both sides).
  const size_t kBatch = size_t(std::max(1, options_.readAheadChunks));
  std::unique_lock<std::mutex> lock(prefetchMu_);
  while (true) {
    prefetchCv_.wait(lock, [&] { return prefetchStop_ || !prefetchQueue_.empty(); });
    if (prefetchStop_) break;
    std::vector<ChunkPlacement> batch;
    while (!prefetchQueue_.empty() && batch.size() < kBatch) {
      batch.push_back(std::move(prefetchQueue_.front()));
      prefetchQueue_.pop_front();
    }
    lock.unlock();
    std::vector<const ChunkPlacement*> list;
    for (const auto& c : batch) {
      if (!cache_.get(c.layout.id)) list.push_back(&c);
    }
    if (!list.empty()) {
      auto loaded = loadChunks(list);
      for (size_t i = 0; i < list.size(); ++i) {
        if (loaded[i].ok()) cache_.put(list[i]->layout.id, loaded[i].value());
      }
    }
    lock.lock();
    for (const auto& c : batch) prefetching_.erase(c.layout.id);
    loadedCv_.notify_all();
  }
}

std::shared_ptr<DataPath::FileState> DataPath::file(uint64_t ino, bool create) {
  std::lock_guard<std::mutex> lock(filesMu_);
  auto it = files_.find(ino);
  if (it != files_.end()) return it->second;
  if (!create) return nullptr;
  auto state = std::make_shared<FileState>(ino);
  // A writer waits at twice the bound; one write (max_write) may cross it.
  state->dirty.setGrowthReserve(2 * options_.fileDirtyLimit + (1u << 20));
  files_.emplace(ino, state);
  return state;
}

void DataPath::addDirty(int64_t delta) {
  if (delta >= 0) {
    dirtyBytes_ += uint64_t(delta);
  } else {
    dirtyBytes_ -= uint64_t(-delta);
    memoryCv_.notify_all();
  }
}

namespace {
// REQUIRES: file.mu held. Returns the change in accounted bytes.
int64_t reaccount(DataPath::FileState& file) {
  uint64_t now = file.dirty.bytes() + mapBytes(file.flushing);
  int64_t delta = int64_t(now) - int64_t(file.accounted);
  file.accounted = now;
  return delta;
}
}  // namespace

void DataPath::noteAttr(const Attr& attr, bool opened) {
  auto f = file(attr.ino, opened);
  if (!f) return;
  std::lock_guard<std::mutex> lock(f->mu);
  if (f->attrKnown && attr.dataVersion < f->attr.dataVersion) return;  // older news
  if (opened && f->attrKnown && attr.dataVersion != f->attr.dataVersion) f->window.reset();
  if (!f->attrKnown) f->window.reset();
  f->attr = attr;
  f->attrKnown = true;
  f->seenVersion = std::max(f->seenVersion, attr.dataVersion);
}

void DataPath::invalidateAll() {
  std::vector<std::shared_ptr<FileState>> all;
  {
    std::lock_guard<std::mutex> lock(filesMu_);
    for (auto& [ino, f] : files_) all.push_back(f);
  }
  for (auto& f : all) {
    std::lock_guard<std::mutex> lock(f->mu);
    f->attrKnown = false;
    f->window.reset();
  }
}

void DataPath::invalidate(uint64_t ino) {
  auto f = file(ino, false);
  if (!f) return;
  std::lock_guard<std::mutex> lock(f->mu);
  f->attrKnown = false;
  f->window.reset();
}

void DataPath::patchAttr(Attr* attr) {
  auto f = file(attr->ino, false);
  if (!f) return;
  std::lock_guard<std::mutex> lock(f->mu);
  patchLocked(*f, attr);
}

std::optional<Attr> DataPath::absorbSetattr(uint64_t ino, const SetAttrRequest& set,
                                            const Caller& caller) {
  if (set.setSize || !(set.setMode || set.setUid || set.setGid || set.setAtime || set.setMtime)) {
    return std::nullopt;
  }
  auto f = file(ino, false);
  if (!f) return std::nullopt;
  std::lock_guard<std::mutex> lock(f->mu);
  // Buffered bytes guarantee a commit to carry the change (close, fsync, the
  // flusher, unmount), and so does a closed file whose commit is under way
  // (rsync sets attributes after close): the flusher then sends the change
  // right after. A failed flush or another caller's pending change do not mix
  // with it.
  bool committing = f->dirty.empty() && !f->flushing.empty() && f->closeRequested;
  if (!f->attrKnown || (f->dirty.empty() && !committing) || !f->error.ok()) return std::nullopt;
  if (f->attrsPending && (f->pendingCaller.uid != caller.uid || f->pendingCaller.gid != caller.gid)) {
    return std::nullopt;
  }
  int64_t now = nowNs();
  SetAttrRequest change = set;
  if (change.atimeNow) change.atimeNs = now;
  if (change.mtimeNow) change.mtimeNs = now;
  change.atimeNow = change.mtimeNow = false;
  change.ctimeNs = now;
  if (journal_) {
    auto seq = journal_->appendSetattr(ino, change, caller, now);
    if (!seq.ok()) return std::nullopt;
    JournalSpan span{seq.value(), 0, 0};
    span.attrs = true;
    f->journaled.push_back(span);
  }
  SetAttrRequest& p = f->pendingSet;
  if (!f->attrsPending) p = SetAttrRequest{};
  if (change.setMode) p.mode = change.mode, p.setMode = true;
  if (change.setUid) p.uid = change.uid, p.setUid = true;
  if (change.setGid) p.gid = change.gid, p.setGid = true;
  if (change.setAtime) p.atimeNs = change.atimeNs, p.setAtime = true;
  if (change.setMtime) p.mtimeNs = change.mtimeNs, p.setMtime = true;
  p.ctimeNs = now;
  f->pendingCaller = caller;
  f->attrsPending = true;
  ++f->attrsGeneration;
  static Counter& absorbed = metrics().counter(
      "dfs_fuse_setattr_deferred_total", "chmod/chown/utimens sent with the next data commit");
  absorbed.inc();
  Attr a = f->attr;
  patchLocked(*f, &a);
  return a;
}

bool DataPath::attrsPending(uint64_t ino) {
  auto f = file(ino, false);
  if (!f) return false;
  std::lock_guard<std::mutex> lock(f->mu);
  return f->attrsPending;
}

Result<size_t> DataPath::write(uint64_t ino, uint64_t offset, const char* data, size_t size) {
  if (size == 0) return size_t(0);
  auto f = file(ino, true);
  bool overFile, handOff = false;
  {
    std::lock_guard<std::mutex> lock(f->mu);
    int64_t now = nowNs();
    if (journal_) {
      // In the journal before the application hears of success.
      auto seq = journal_->appendWrite(ino, offset, std::string_view(data, size), now);
      if (!seq.ok()) return seq.status();
      f->journaled.push_back(JournalSpan{seq.value(), offset, offset + size});
    }
    if (f->dirty.empty() && f->flushing.empty()) f->dirtyBase = f->seenVersion;
    // A write after a deferred utimens sets mtime to its own time (POSIX).
    if (f->attrsPending) f->pendingSet.setMtime = false;
    f->dirty.write(offset, std::string_view(data, size));
    f->lastWriteNs = now;
    if (f->firstDirtyNs == 0) f->firstDirtyNs = now;
    addDirty(reaccount(*f));
    // Past the bound the flusher commits in the background while this writer keeps
    // going; past twice the bound the writer flushes itself (back-pressure).
    overFile = f->dirty.bytes() >= 2 * options_.fileDirtyLimit;
    if (!overFile && f->dirty.bytes() >= options_.fileDirtyLimit && !f->flushRequested) {
      f->flushRequested = true;
      handOff = true;
    }
  }
  if (handOff) {
    {
      std::lock_guard<std::mutex> lock(memoryMu_);
      wakeFlusher_ = true;  // scan now: this file passed its bound
    }
    flusherCv_.notify_one();
  }
  if (overFile) {
    Status status = awaitFlusher(*f);
    if (!status.ok()) return status;
  } else if (dirtyBytes_ > options_.totalDirtyLimit) {
    waitForMemory();
  }
  return size;
}

Status DataPath::awaitFlusher(FileState& f) {
  int64_t deadline = monotonicNs() + meta_.opTimeoutMs() * 1000000;
  {
    std::unique_lock<std::mutex> lock(f.mu);
    while (f.dirty.bytes() >= 2 * options_.fileDirtyLimit) {
      // A failed background flush waits for its retry time: commit here instead,
      // so the writer hears of a failure that persists.
      if (!f.error.ok() || monotonicNs() >= deadline) break;
      if (!f.claimed || !f.flushRequested) {
        f.flushRequested = true;
        std::lock_guard<std::mutex> memory(memoryMu_);
        wakeFlusher_ = true;
        flusherCv_.notify_one();
      }
      f.drained.wait_for(lock, std::chrono::milliseconds(100));
    }
    if (f.dirty.bytes() < 2 * options_.fileDirtyLimit) return {};
  }
  return flushFile(f, false);
}

void DataPath::waitForMemory() {
  std::unique_lock<std::mutex> lock(memoryMu_);
  int64_t deadline = monotonicNs() + meta_.opTimeoutMs() * 1000000;
  while (dirtyBytes_ > options_.totalDirtyLimit && !stopping_ && monotonicNs() < deadline) {
    wakeFlusher_ = true;
    flusherCv_.notify_one();
    memoryCv_.wait_for(lock, std::chrono::milliseconds(100));
  }
}

void DataPath::flusherMain() {
  int64_t lastTrimNs = 0;
  int64_t lastScanNs = 0;
  std::unique_lock<std::mutex> lock(memoryMu_);
  while (!stopping_) {
    flusherCv_.wait_for(lock, std::chrono::milliseconds(500), [&] {
      return stopping_ || wakeFlusher_ || (!closedQueue_.empty() && closedBusy_ < closedWorkers_);
    });
    if (stopping_) break;
    bool pressure = std::exchange(wakeFlusher_, false);
    // Closed files first, a few at a time, so that the other flusher threads
    // take the next ones: they are waiting for nothing but this commit.
    std::vector<std::pair<std::shared_ptr<FileState>, bool>> work;  // file, final
    std::vector<std::shared_ptr<FileState>> closed;
    // At most closedWorkers_ threads commit closed files at once: while they
    // are busy, closes queue up and the next batch takes them together.
    if (closedBusy_ < closedWorkers_) {
      while (!closedQueue_.empty() && closed.size() < closedBatch_) {
        closed.push_back(std::move(closedQueue_.front()));
        closedQueue_.pop_front();
      }
    }
    if (!closed.empty()) ++closedBusy_;
    if (!closedQueue_.empty() && closedBusy_ < closedWorkers_) flusherCv_.notify_one();
    lock.unlock();
    int64_t now = nowNs();
    std::vector<std::shared_ptr<FileState>> closedWork;
    for (auto& f : closed) {
      std::lock_guard<std::mutex> fl(f->mu);
      f->queued = false;
      if (f->claimed || !f->closeRequested || now < f->retryAfterNs) continue;
      f->claimed = true;
      closedWork.push_back(f);
    }
    // Then, at most every 500 ms (or under memory pressure), the scan of all
    // files: those past their bound, under memory pressure the one with the
    // most dirty bytes, dirty data older than flushAfterMs, and closed files
    // whose commit failed earlier (once their retry time has come).
    if (pressure || monotonicNs() - lastScanNs >= kScanIntervalNs) {
      lastScanNs = monotonicNs();
      std::lock_guard<std::mutex> files(filesMu_);
      std::shared_ptr<FileState> largest;
      uint64_t largestBytes = 0;
      for (auto& [ino, f] : files_) {
        std::lock_guard<std::mutex> fl(f->mu);
        if (f->claimed) continue;  // another flusher thread has it
        if (f->closeRequested && !f->queued && now >= f->retryAfterNs) {
          f->claimed = true;
          work.emplace_back(f, true);
          continue;
        }
        if (f->dirty.empty() || now < f->retryAfterNs) continue;
        if (f->flushRequested) {
          f->flushRequested = false;
          f->claimed = true;
          work.emplace_back(f, false);
          continue;
        }
        if (f->dirty.bytes() > largestBytes) {
          largestBytes = f->dirty.bytes();
          largest = f;
        }
        if (now - f->firstDirtyNs > options_.flushAfterMs * 1000000) {
          bool idle = now - f->lastWriteNs > options_.flushAfterMs * 1000000;
          f->claimed = true;
          work.emplace_back(f, idle);
        }
      }
      if (dirtyBytes_ > options_.totalDirtyLimit / 2 && largest) {
        std::lock_guard<std::mutex> fl(largest->mu);
        if (!largest->claimed) {
          largest->claimed = true;
          work.emplace_back(largest, false);
        }
      }
    }
    std::vector<std::shared_ptr<FileState>> again;
    if (!closedWork.empty()) {
      std::vector<Status> statuses = flushClosed(closedWork);
      for (size_t i = 0; i < closedWork.size(); ++i) {
        auto& f = closedWork[i];
        if (!statuses[i].ok()) {
          spdlog::warn("background flush of inode {} failed: {}", f->ino, statuses[i].message);
        }
        std::lock_guard<std::mutex> fl(f->mu);
        f->claimed = false;
        // Attributes deferred while this commit ran still have to go.
        if (statuses[i].ok() && f->closeRequested) {
          f->queued = true;
          again.push_back(f);
        }
      }
    }
    for (auto& [f, final] : work) {
      for (;;) {
        Status status = flushFile(*f, final, /*background=*/true);
        if (!status.ok()) {
          spdlog::warn("background flush of inode {} failed: {}", f->ino, status.message);
        }
        std::lock_guard<std::mutex> fl(f->mu);
        // A writer streaming into the file passed its bound again while this
        // commit ran: take the next buffer at once (the writer keeps writing).
        if (status.ok() && !final && f->flushRequested && !f->closeRequested) {
          f->flushRequested = false;
          continue;
        }
        f->claimed = false;
        // Attributes deferred while this commit ran still have to go.
        if (status.ok() && f->closeRequested) {
          f->queued = true;
          again.push_back(f);
        }
        break;
      }
    }
    // Large write bursts leave freed buffers in per-thread malloc arenas; give
    // them back to the system once things are quiet.
    int64_t nowMono = monotonicNs();
    if (dirtyBytes_ == 0 && nowMono - lastTrimNs > kTrimIntervalNs) {
      malloc_trim(0);
      lastTrimNs = nowMono;
    }
    lock.lock();
    if (!closed.empty()) {
      --closedBusy_;
      if (!closedQueue_.empty()) flusherCv_.notify_one();
    }
    for (auto& f : again) closedQueue_.push_back(std::move(f));
  }
}

Status DataPath::flush(uint64_t ino) {
  auto f = file(ino, false);
  if (!f) return {};
  return flushFile(*f, true);
}

Status DataPath::flushAll() {
  std::vector<std::shared_ptr<FileState>> all;
  {
    std::lock_guard<std::mutex> lock(filesMu_);
    for (auto& [ino, f] : files_) all.push_back(f);
  }
  Status first;
  for (auto& f : all) {
    Status s = flushFile(*f, true);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

Status DataPath::startFlush(uint64_t ino) {
  auto f = file(ino, false);
  if (!f) return {};
  {
    std::lock_guard<std::mutex> lock(f->mu);
    Status earlier = std::exchange(f->error, Status{});
    if (f->dirty.empty() && f->flushing.empty() && !f->attrsPending) return earlier;
    f->closeRequested = true;
    if (!earlier.ok()) return earlier;
  }
  queueClosed(std::move(f));
  return {};
}

void DataPath::afterFlush(uint64_t ino, std::function<void()> release) {
  auto f = file(ino, false);
  if (f) {
    std::unique_lock<std::mutex> lock(f->mu);
    if (!f->dirty.empty() || !f->flushing.empty() || f->attrsPending) {
      f->releases.push_back(std::move(release));
      if (!f->closeRequested) {
        f->closeRequested = true;
        lock.unlock();
        queueClosed(std::move(f));
      }
      return;
    }
  }
  release();
}

void DataPath::queueClosed(std::shared_ptr<FileState> f) {
  {
    std::lock_guard<std::mutex> fl(f->mu);
    f->queued = true;
  }
  {
    std::lock_guard<std::mutex> lock(memoryMu_);
    closedQueue_.push_back(std::move(f));
  }
  flusherCv_.notify_one();
}

void DataPath::truncated(uint64_t ino, uint64_t size) {
  auto f = file(ino, false);
  if (!f) return;
  std::unique_lock<std::shared_mutex> commit(f->commitMu);
  std::lock_guard<std::mutex> lock(f->mu);
  f->dirty.truncate(size);
  addDirty(reaccount(*f));
  // Nothing of these records is left to commit (the truncate follows a flush).
  if (f->dirty.empty() && f->flushing.empty()) dropJournaled(*f);
  f->window.reset();
  if (f->attrKnown) f->attr.size = size;
}

void DataPath::dropJournaled(FileState& f) {
  for (auto it = f.journaled.begin(); it != f.journaled.end();) {
    if (it->attrs && f.attrsPending) {
      ++it;  // still to be sent
      continue;
    }
    if (journal_) journal_->done(it->seq);
    it = f.journaled.erase(it);
  }
}

void DataPath::forget(uint64_t ino) {
  std::lock_guard<std::mutex> lock(filesMu_);
  auto it = files_.find(ino);
  if (it == files_.end()) return;
  std::lock_guard<std::mutex> fl(it->second->mu);
  if (!it->second->dirty.empty() || !it->second->flushing.empty() || it->second->attrsPending ||
      !it->second->releases.empty()) {
    return;
  }
  dropJournaled(*it->second);
  files_.erase(it);
}

Status DataPath::flushFile(FileState& f, bool final, bool background) {
  std::lock_guard<std::mutex> flushLock(f.flushMu);
  Taken taken;
  Status early;
  if (!beginFlush(f, final, &taken, &early)) return early;
  uint64_t committedEnd = 0;
  uint64_t tailOffset = UINT64_MAX;
  bool attrsSent = false;
  Status status = commitRanges(f, f.flushing, final, taken.journaled, &committedEnd, &tailOffset,
                               taken.attrs ? &*taken.attrs : nullptr, &taken.caller, &attrsSent);
  endFlush(f, final, background, taken, status, tailOffset, attrsSent);
  return status;
}

bool DataPath::beginFlush(FileState& f, bool final, Taken* taken, Status* early) {
  std::unique_lock<std::mutex> lock(f.mu);
  if (f.dirty.empty()) {
    if (f.attrsPending) {
      lock.unlock();
      Status sent = commitPendingAttrs(f);
      lock.lock();
      if (!sent.ok() && f.error.ok()) f.error = sent;
    }
    *early = f.error;
    if (final) f.error = {};
    auto releases = takeReleases(f);
    lock.unlock();
    runReleases(std::move(releases));
    return false;
  }
  f.flushing = f.dirty.take();
  f.firstDirtyNs = 0;
  f.drained.notify_all();
  // Accounting unchanged: the bytes moved from dirty to flushing.
  taken->journaled.assign(f.journaled.begin(), f.journaled.end());
  if (f.attrsPending) {
    taken->attrs = f.pendingSet;
    taken->caller = f.pendingCaller;
    taken->attrsGeneration = f.attrsGeneration;
  }
  return true;
}

void DataPath::endFlush(FileState& f, bool final, bool background, const Taken& taken,
                        const Status& status, uint64_t tailOffset, bool attrsSent) {
  std::vector<std::function<void()>> releases;
  {
    std::unique_lock<std::shared_mutex> commit(f.commitMu);
    std::lock_guard<std::mutex> lock(f.mu);
    if (status.ok()) {
      if (tailOffset != UINT64_MAX) {
        // The bytes after the last cut point stay buffered for the next flush.
        for (auto& [off, data] : f.flushing) {
          uint64_t end = off + data.size();
          if (end <= tailOffset) continue;
          uint64_t b = std::max(off, tailOffset);
          f.dirty.fillGaps(b, data.view().substr(b - off));
        }
        if (!f.dirty.empty() && f.firstDirtyNs == 0) f.firstDirtyNs = nowNs();
      }
      f.window.reset();
      // Journal records of the snapshot whose bytes were all committed are done
      // (those reaching into the kept tail stay live).
      uint64_t last = taken.journaled.empty() ? 0 : taken.journaled.back().seq;
      if (attrsSent && f.attrsGeneration == taken.attrsGeneration) f.attrsPending = false;
      for (auto it = f.journaled.begin(); it != f.journaled.end() && it->seq <= last;) {
        if (it->attrs ? attrsSent : it->end <= tailOffset) {
          if (journal_) journal_->done(it->seq);
          it = f.journaled.erase(it);
        } else {
          ++it;
        }
      }
    } else {
      for (auto& [off, data] : f.flushing) f.dirty.fillGaps(off, data.view());
      if (f.firstDirtyNs == 0) f.firstDirtyNs = nowNs();
      f.retryAfterNs = nowNs() + kFailedFlushRetryNs;
      if (f.error.ok()) f.error = status;
    }
    f.flushing.clear();
    f.drained.notify_all();
    addDirty(reaccount(f));
    if (!status.ok() && final && !background) f.error = {};
    if (status.ok()) releases = takeReleases(f);
  }
  runReleases(std::move(releases));
}

std::vector<Status> DataPath::flushClosed(const std::vector<std::shared_ptr<FileState>>& files) {
  std::vector<Status> out(files.size());
  // A batch member: a new file whose whole content goes in one final commit.
  struct Member {
    size_t index;
    FileState* f;
    Taken taken;
    std::vector<Piece> pieces;
    std::vector<Extent> extents;
    uint64_t committedEnd = 0;
    int64_t mtime = 0;
    uint64_t baseVersion = 0;
  };
  std::vector<std::unique_lock<std::mutex>> locks;
  std::vector<Member> members;
  std::vector<size_t> later;  // flushMu busy: flushed alone once the batch is done
  VolumeInfo vol = meta_.volume();
  for (size_t i = 0; i < files.size(); ++i) {
    FileState& f = *files[i];
    // Never wait for a second flushMu while holding one (a writer's fsync
    // holds its file's): a busy file is flushed on its own afterwards.
    std::unique_lock<std::mutex> flushLock(f.flushMu, std::try_to_lock);
    if (!flushLock.owns_lock()) {
      later.push_back(i);
      continue;
    }
    Taken taken;
    if (!beginFlush(f, true, &taken, &out[i])) continue;
    bool batchable;
    int64_t mtime;
    uint64_t baseVersion;
    {
      std::lock_guard<std::mutex> lock(f.mu);
      batchable = f.attrKnown && f.attr.size == 0 && mapEnd(f.flushing) <= kBatchFileBytes;
      mtime = f.lastWriteNs;
      baseVersion = f.dirtyBase;
    }
    if (!batchable) {
      // Committed content to merge with, or large: the general path.
      uint64_t committedEnd = 0, tailOffset = UINT64_MAX;
      bool attrsSent = false;
      out[i] = commitRanges(f, f.flushing, true, taken.journaled, &committedEnd, &tailOffset,
                            taken.attrs ? &*taken.attrs : nullptr, &taken.caller, &attrsSent);
      endFlush(f, true, true, taken, out[i], tailOffset, attrsSent);
      continue;
    }
    Member m{i, &f, std::move(taken), {}, {}, 0, mtime, baseVersion};
    if (mapEnd(f.flushing) <= vol.inlineThreshold) {
      m.extents = inlineExtents(f.flushing);
      m.committedEnd = mapEnd(f.flushing);
    } else {
      uint64_t tailOffset = UINT64_MAX;  // a final cut leaves no tail
      cutPieces(f.flushing, true, vol, &m.pieces, &m.committedEnd, &tailOffset);
      m.extents = chunkExtents(m.pieces);
    }
    locks.push_back(std::move(flushLock));
    members.push_back(std::move(m));
  }

  // One dedup question and one upload for the chunks of every member.
  std::vector<const Piece*> all;
  for (const auto& m : members) {
    for (const auto& p : m.pieces) all.push_back(&p);
  }
  PieceIndex byId;
  std::vector<ChunkPlacement> uploaded;
  Status shared;
  if (!all.empty()) {
    std::vector<const Piece*> toUpload;
    shared = findMissing(all, &byId, &toUpload);
    if (shared.ok()) shared = uploadPieces(files.front()->ino, vol, toUpload, &uploaded);
  }
  std::vector<CommitArgs> commits;
  std::vector<Member*> committing;
  for (auto& m : members) {
    if (!shared.ok() && !m.pieces.empty()) {
      out[m.index] = shared;
      endFlush(*m.f, true, true, m.taken, shared, UINT64_MAX, false);
      continue;
    }
    CommitArgs c;
    c.ino = m.f->ino;
    c.extents = std::move(m.extents);
    if (!m.pieces.empty()) {
      std::unordered_set<ChunkId, ChunkIdHash> mine;
      for (const auto& p : m.pieces) mine.insert(p.id);
      for (const auto& placement : uploaded) {
        if (mine.count(placement.layout.id)) c.newChunks.push_back(placement);
      }
    }
    c.newSize = m.committedEnd;
    c.mtimeNs = m.mtime;
    c.baseVersion = m.baseVersion;
    c.journalSeq = journalMark(m.taken.journaled, UINT64_MAX);
    c.attrs = m.taken.attrs ? &*m.taken.attrs : nullptr;
    c.caller = &m.taken.caller;
    commits.push_back(std::move(c));
    committing.push_back(&m);
  }
  if (!commits.empty()) {
    std::vector<CommitResult> results = meta_.commitWrites(commits);
    for (size_t j = 0; j < committing.size(); ++j) {
      Member& m = *committing[j];
      CommitResult& r = results[j];
      if (r.status.ok()) {
        ++stats_.commits;
        noteAttr(r.attr, false);
      } else if (r.status.code == Code::MISSING_CHUNKS) {
        // Collected between findChunks and the commit: this file alone, again.
        out[m.index] = retryCommit(*m.f, vol, commits[j], byId, std::move(r));
      } else {
        spdlog::error("commit of inode {} failed: {} {}", m.f->ino, codeName(r.status.code),
                      r.status.message);
        out[m.index] = r.status;
      }
      bool attrsSent = out[m.index].ok() && m.taken.attrs.has_value();
      endFlush(*m.f, true, true, m.taken, out[m.index], UINT64_MAX, attrsSent);
    }
  }
  members.clear();
  locks.clear();
  for (size_t i : later) out[i] = flushFile(*files[i], true, /*background=*/true);
  return out;
}

void DataPath::refreshClusterMap(bool force) {
  {
    std::lock_guard<std::mutex> lock(clusterMu_);
    if (!force && clusterFetchedNs_ != 0 && monotonicNs() - clusterFetchedNs_ < kClusterRefreshNs) {
      return;
    }
  }
  auto map = meta_.clusterMap();
  if (!map.ok()) return;
  std::lock_guard<std::mutex> lock(clusterMu_);
  cluster_ = std::move(map).value();
  clusterFetchedNs_ = monotonicNs();
}

Status DataPath::commitPendingAttrs(FileState& f) {
  SetAttrRequest set;
  Caller caller;
  uint64_t generation, last = 0;
  {
    std::lock_guard<std::mutex> lock(f.mu);
    if (!f.attrsPending) return {};
    set = f.pendingSet;
    caller = f.pendingCaller;
    generation = f.attrsGeneration;
    for (const auto& span : f.journaled) {
      if (span.attrs) last = span.seq;
    }
  }
  auto r = meta_.setattr(f.ino, set, caller);
  if (!r.ok()) {
    spdlog::error("deferred setattr of inode {} failed: {}", f.ino, r.status().message);
    return r.status();
  }
  noteAttr(r.value(), false);
  std::lock_guard<std::mutex> lock(f.mu);
  if (f.attrsGeneration == generation) f.attrsPending = false;
  for (auto it = f.journaled.begin(); it != f.journaled.end();) {
    if (it->attrs && it->seq <= last) {
      if (journal_) journal_->done(it->seq);
      it = f.journaled.erase(it);
    } else {
      ++it;
    }
  }
  return {};
}

Status DataPath::commitRanges(FileState& f, RangeMap& ranges, bool final,
                              const std::vector<JournalSpan>& journaled, uint64_t* committedEnd,
                              uint64_t* tailOffset, const SetAttrRequest* attrs,
                              const Caller* caller, bool* attrsSent) {
  VolumeInfo vol = meta_.volume();
  uint64_t committedSize;
  int64_t mtime;
  uint64_t baseVersion;
  {
    std::lock_guard<std::mutex> lock(f.mu);
    committedSize = f.attrKnown ? f.attr.size : 0;
    mtime = f.lastWriteNs;
    baseVersion = f.dirtyBase;
    if (!f.attrKnown) {
      // Unknown committed size (should not happen after open): ask.
    }
  }
  if (!f.attrKnown) {
    auto attr = meta_.getattr(f.ino);
    if (!attr.ok()) return attr.status();
    noteAttr(attr.value(), false);
    committedSize = attr.value().size;
  }
  uint64_t newEnd = mapEnd(ranges);
  uint64_t finalSize = std::max(committedSize, newEnd);
  CommitArgs c;
  c.ino = f.ino;
  c.mtimeNs = mtime;
  c.baseVersion = baseVersion;
  c.attrs = attrs;
  c.caller = caller;
  std::vector<Piece> pieces;
  PieceIndex byId;
  if (finalSize <= vol.inlineThreshold) {
    c.extents = inlineExtents(ranges);
    *committedEnd = newEnd;
  } else {
    if (committedSize > 0 && committedSize <= vol.inlineThreshold) {
      // The file outgrows inline storage: re-chunk its inline head with the new bytes.
      std::string head(committedSize, '\0');
      {
        std::shared_lock<std::shared_mutex> commit(f.commitMu);
        Status s = readCommitted(f, 0, committedSize, head.data());
        if (!s.ok()) return s;
      }
      std::lock_guard<std::mutex> lock(f.mu);
      DirtyRanges merged;
      for (auto& [off, data] : ranges) merged.write(off, data.view());
      merged.fillGaps(0, head);
      ranges = merged.take();
    }
    cutPieces(ranges, final, vol, &pieces, committedEnd, tailOffset);
    if (pieces.empty()) return {};  // everything is tail; nothing to commit yet
    std::vector<const Piece*> all, toUpload;
    for (const auto& p : pieces) all.push_back(&p);
    Status s = findMissing(all, &byId, &toUpload);
    if (!s.ok()) return s;
    s = uploadPieces(f.ino, vol, toUpload, &c.newChunks);
    if (!s.ok()) return s;
    c.extents = chunkExtents(pieces);
  }
  c.newSize = *committedEnd;
  c.journalSeq = journalMark(journaled, *tailOffset);
  Status s = sendCommit(f, vol, c, pieces.empty() ? nullptr : &byId);
  if (s.ok()) *attrsSent = attrs != nullptr;
  return s;
}

void DataPath::cutPieces(const RangeMap& ranges, bool final, const VolumeInfo& vol,
                         std::vector<Piece>* pieces, uint64_t* committedEnd,
                         uint64_t* tailOffset) {
  ChunkerParams params{vol.chunkMin, vol.chunkAvg, vol.chunkMax};
  if (!validateChunkerParams(params).ok()) params = kDefaultChunkerParams;
  FastCdc cdc(params);
  *committedEnd = 0;
  for (auto it = ranges.begin(); it != ranges.end(); ++it) {
    bool last = std::next(it) == ranges.end();
    const uint8_t* data = reinterpret_cast<const uint8_t*>(it->second.data());
    size_t size = it->second.size();
    size_t pos = 0;
    while (pos < size) {
      size_t n = cdc.nextChunk(data + pos, size - pos, final || !last);
      if (n == 0) {
        *tailOffset = it->first + pos;
        break;
      }
      pieces->push_back(Piece{it->first + pos, data + pos, uint32_t(n), sha256(data + pos, n)});
      pos += n;
    }
    if (pos > 0) *committedEnd = std::max(*committedEnd, it->first + pos);
  }
}

std::vector<Extent> DataPath::chunkExtents(const std::vector<Piece>& pieces) {
  std::vector<Extent> extents;
  for (const auto& p : pieces) {
    Extent e;
    e.fileOffset = p.fileOffset;
    e.length = p.size;
    e.kind = Extent::Kind::kChunk;
    e.chunk = p.id;
    e.chunkOffset = 0;
    extents.push_back(std::move(e));
  }
  return extents;
}

Status DataPath::findMissing(const std::vector<const Piece*>& pieces, PieceIndex* byId,
                             std::vector<const Piece*>* toUpload) {
  std::vector<ChunkId> unique;
  for (const Piece* p : pieces) {
    if (byId->emplace(p->id, p).second) unique.push_back(p->id);
  }
  auto present = meta_.findChunks(unique);
  if (!present.ok()) return present.status();
  for (size_t i = 0; i < unique.size(); ++i) {
    if (!present.value()[i]) toUpload->push_back((*byId)[unique[i]]);
  }
  stats_.chunksDeduped += unique.size() - toUpload->size();
  return {};
}

Status DataPath::uploadPieces(uint64_t ino, const VolumeInfo& vol,
                              const std::vector<const Piece*>& list,
                              std::vector<ChunkPlacement>* placed) {
  std::vector<ChunkPlacement>& newChunks = *placed;
  std::vector<const Piece*> pending = list;
  for (int attempt = 0; attempt < kUploadAttempts && !pending.empty(); ++attempt) {
    refreshClusterMap(attempt > 0);
    std::vector<PlacementNode> up;
    std::unordered_map<uint32_t, std::string> addresses;
    size_t usable = 0;
    auto collect = [&] {
      up.clear();
      usable = 0;
      std::lock_guard<std::mutex> lock(clusterMu_);
      int64_t now = monotonicNs();
      for (const auto& n : cluster_.nodes) {
        addresses[n.id] = n.address;
        auto ex = excludedUntilNs_.find(n.id);
        bool excluded = ex != excludedUntilNs_.end() && ex->second > now;
        up.push_back(PlacementNode{n.id, n.weight, n.label, n.up && !excluded});
        usable += n.up && !excluded;
      }
    };
    collect();
    // Right after a dfs-meta restart the storage nodes re-register within a
    // heartbeat or two: wait a little for enough of them before failing.
    for (int wait = 0; wait < kPlacementWaits && usable < size_t(vol.ecK + vol.ecM); ++wait) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      refreshClusterMap(true);
      collect();
    }
    struct Batch {
      std::vector<const Piece*> pieces;
      std::vector<EncodedChunk> encoded;
      std::vector<std::vector<uint32_t>> nodes;
      uint64_t bytes = 0;
      std::future<PutOutcome> future;
    };
    std::deque<std::shared_ptr<Batch>> inflight;
    std::vector<const Piece*> retry;
    Status firstError;
    auto finish = [&](Batch& b) {
      PutOutcome out = b.future.get();
      if (out.status.ok()) {
        for (size_t i = 0; i < b.encoded.size(); ++i) {
          newChunks.push_back(ChunkPlacement{b.encoded[i].layout, b.nodes[i]});
        }
        stats_.chunksUploaded += b.encoded.size();
        uint64_t sent = 0;
        for (const auto& e : b.encoded) sent += uint64_t(e.layout.fragmentSize) * e.fragments.size();
        dataPathMetrics().bytesOut.inc(sent);
        return;
      }
      if (firstError.ok() || out.status.code == Code::NO_SPACE) firstError = out.status;
      {
        std::lock_guard<std::mutex> lock(clusterMu_);
        for (uint32_t node : out.failedNodes) {
          excludedUntilNs_[node] = monotonicNs() + kExcludeNodeNs;
        }
      }
      retry.insert(retry.end(), b.pieces.begin(), b.pieces.end());
    };
    auto submit = [&](std::shared_ptr<Batch> b) {
      std::vector<FragmentPut> puts;
      for (size_t i = 0; i < b->encoded.size(); ++i) {
        auto& enc = b->encoded[i];
        for (size_t j = 0; j < enc.fragments.size(); ++j) {
          uint32_t node = b->nodes[i][j];
          // The batch owns the fragments the request points at (zero-copy).
          puts.push_back(FragmentPut{node, addresses[node], fragmentId(enc.layout.id, uint8_t(j)),
                                     &enc.fragments[j], enc.layout.checksums[j], b});
        }
      }
      b->future = storage_.put(std::move(puts));
      inflight.push_back(std::move(b));
      while (inflight.size() > kMaxPutsInFlight) {
        finish(*inflight.front());
        inflight.pop_front();
      }
    };
    auto batch = std::make_shared<Batch>();
    Status fatal;
    for (const Piece* p : pending) {
      auto nodes = placeFragments(p->id, up, size_t(vol.ecK + vol.ecM));
      if (!nodes.ok()) {
        fatal = Status::error(Code::UNAVAILABLE,
                              "cannot place " + std::to_string(vol.ecK + vol.ecM) +
                                  " fragments (k=" + std::to_string(vol.ecK) + ", m=" +
                                  std::to_string(vol.ecM) + "): " + nodes.status().message);
        break;
      }
      auto enc = encodeChunk(p->data, p->size, vol.ecK, vol.ecM, vol.compressionLevel, &p->id);
      if (!enc.ok()) {
        fatal = enc.status();
        break;
      }
      batch->pieces.push_back(p);
      batch->encoded.push_back(std::move(enc).value());
      batch->nodes.push_back(std::move(nodes).value());
      batch->bytes += p->size;
      if (batch->bytes >= options_.uploadBatchBytes) {
        submit(std::move(batch));
        batch = std::make_shared<Batch>();
      }
    }
    if (fatal.ok() && !batch->encoded.empty()) submit(std::move(batch));
    while (!inflight.empty()) {
      finish(*inflight.front());
      inflight.pop_front();
    }
    if (!fatal.ok()) {
      spdlog::error("write of inode {} failed: {}", ino, fatal.message);
      return fatal;
    }
    if (!retry.empty()) {
      spdlog::warn("inode {}: {} chunks failed to upload ({}); re-placing", ino,
                   retry.size(), firstError.message);
      if (attempt + 1 == kUploadAttempts) {
        spdlog::error("write of inode {} failed: {}", ino, firstError.message);
        return firstError.code == Code::NO_SPACE ? firstError
                                                 : Status::error(Code::IO, firstError.message);
      }
    }
    pending = std::move(retry);
  }
  return {};
}

Status DataPath::sendCommit(FileState& f, const VolumeInfo& vol, CommitArgs& c,
                            const PieceIndex* byId) {
  CommitResult r = std::move(meta_.commitWrites({c}).front());
  if (r.status.code == Code::MISSING_CHUNKS && byId != nullptr) {
    return retryCommit(f, vol, c, *byId, std::move(r));
  }
  if (!r.status.ok()) {
    spdlog::error("commit of inode {} failed: {} {}", f.ino, codeName(r.status.code),
                  r.status.message);
    return r.status.code == Code::MISSING_CHUNKS ? Status::error(Code::IO, r.status.message)
                                                 : r.status;
  }
  ++stats_.commits;
  noteAttr(r.attr, false);
  return {};
}

Status DataPath::retryCommit(FileState& f, const VolumeInfo& vol, CommitArgs& c,
                             const PieceIndex& byId, CommitResult r) {
  for (int attempt = 1; r.status.code == Code::MISSING_CHUNKS && attempt < kCommitAttempts;
       ++attempt) {
    // Collected between findChunks and commit: upload them again.
    spdlog::info("inode {}: {} chunks vanished before commit; re-uploading", f.ino,
                 r.missing.size());
    std::vector<const Piece*> again;
    for (const auto& id : r.missing) {
      auto it = byId.find(id);
      if (it != byId.end()) again.push_back(it->second);
    }
    if (again.empty()) return Status::error(Code::IO, "commit reports unknown missing chunks");
    Status s = uploadPieces(f.ino, vol, again, &c.newChunks);
    if (!s.ok()) return s;
    r = std::move(meta_.commitWrites({c}).front());
  }
  if (!r.status.ok()) {
    spdlog::error("commit of inode {} failed: {} {}", f.ino, codeName(r.status.code),
                  r.status.message);
    return r.status.code == Code::MISSING_CHUNKS ? Status::error(Code::IO, r.status.message)
                                                 : r.status;
  }
  ++stats_.commits;
  noteAttr(r.attr, false);
  return {};
}

Result<size_t> DataPath::read(uint64_t ino, uint64_t offset, size_t size, char* out) {
  auto f = file(ino, true);
  bool known;
  {
    std::lock_guard<std::mutex> lock(f->mu);
    known = f->attrKnown;
  }
  if (!known) {
    auto attr = meta_.getattr(ino);
    if (!attr.ok()) return attr.status();
    noteAttr(attr.value(), false);
  }
  std::shared_lock<std::shared_mutex> commit(f->commitMu);
  uint64_t fileSize, committedSize;
  {
    std::lock_guard<std::mutex> lock(f->mu);
    committedSize = f->attr.size;
    fileSize = std::max({committedSize, f->dirty.end(), mapEnd(f->flushing)});
  }
  if (offset >= fileSize) return size_t(0);
  size_t n = size_t(std::min<uint64_t>(size, fileSize - offset));
  memset(out, 0, n);
  if (offset < committedSize) {
    Status s = readCommitted(*f, offset, size_t(std::min<uint64_t>(n, committedSize - offset)), out);
    if (!s.ok()) return s;
  }
  std::lock_guard<std::mutex> lock(f->mu);
  overlayMap(f->flushing, offset, n, out);
  f->dirty.overlay(offset, n, out);
  f->lastReadEnd = offset + n;
  return n;
}

Status DataPath::readCommitted(FileState& f, uint64_t offset, size_t size, char* out) {
  uint64_t end = offset + size;
  std::shared_ptr<const FileState::ExtentWindow> window;
  {
    std::lock_guard<std::mutex> lock(f.mu);
    if (f.window && offset >= f.window->start && end <= f.window->end) window = f.window;
  }
  if (!window) {
    uint64_t length = std::max<uint64_t>(size, kExtentWindow);
    auto map = meta_.getExtents(f.ino, offset, length);
    if (!map.ok()) return map.status();
    auto fresh = std::make_shared<FileState::ExtentWindow>();
    fresh->start = offset;
    fresh->end = offset + length;
    fresh->extents = std::move(map.value().extents);
    for (auto& c : map.value().chunks) {
      ChunkId id = c.layout.id;
      fresh->chunks.emplace(id, std::move(c));
    }
    window = fresh;
    std::lock_guard<std::mutex> lock(f.mu);
    f.window = window;
  }
  // What this read needs, from the window it checked (readers hold commitMu
  // shared, so no commit changed the file since the window was fetched).
  struct Part {
    Extent extent;
    const ChunkPlacement* chunk = nullptr;
  };
  std::vector<Part> parts;
  std::vector<ChunkPlacement> chunkInfos;
  std::vector<ChunkPlacement> ahead;
  {
    bool sequential;
    {
      std::lock_guard<std::mutex> lock(f.mu);
      // Near the end of the previous read (async reads may arrive slightly out of order).
      sequential = offset + (1u << 20) >= f.lastReadEnd && offset <= f.lastReadEnd + (1u << 20);
    }
    int aheadSeen = 0;
    std::set<ChunkId> seen;
    for (const auto& e : window->extents) {
      uint64_t eEnd = e.fileOffset + e.length;
      if (eEnd <= offset) continue;
      if (e.fileOffset >= end) {
        if (!sequential || aheadSeen >= options_.readAheadChunks) break;
        if (e.kind == Extent::Kind::kChunk && seen.insert(e.chunk).second) {
          ++aheadSeen;
          auto it = window->chunks.find(e.chunk);
          if (it != window->chunks.end() && !cache_.get(e.chunk)) ahead.push_back(it->second);
        }
        continue;
      }
      Part part;
      part.extent = e;
      parts.push_back(std::move(part));
      if (e.kind == Extent::Kind::kChunk && seen.insert(e.chunk).second) {
        auto it = window->chunks.find(e.chunk);
        if (it == window->chunks.end()) {
          return Status::error(Code::IO, "getExtents did not describe chunk " + toHex(e.chunk));
        }
        chunkInfos.push_back(it->second);
      }
    }
  }
  // Load chunks not in the cache (plus read-ahead), in parallel.
  std::unordered_map<ChunkId, std::shared_ptr<const std::string>, ChunkIdHash> plain;
  std::vector<const ChunkPlacement*> missing;
  if (!ahead.empty()) prefetch(ahead);
  for (const auto& c : chunkInfos) {
    auto data = cache_.get(c.layout.id);
    if (!data && awaitPrefetch(c.layout.id)) data = cache_.get(c.layout.id);
    if (data) plain[c.layout.id] = data;
    else missing.push_back(&c);
  }
  if (!missing.empty()) {
    auto loaded = loadChunks(missing);
    for (size_t i = 0; i < missing.size(); ++i) {
      if (!loaded[i].ok()) return loaded[i].status();
      cache_.put(missing[i]->layout.id, loaded[i].value());
      plain[missing[i]->layout.id] = loaded[i].value();
    }
  }
  for (const auto& part : parts) {
    const Extent& e = part.extent;
    uint64_t b = std::max(offset, e.fileOffset);
    uint64_t eEnd = std::min(end, e.fileOffset + e.length);
    if (b >= eEnd) continue;
    size_t len = size_t(eEnd - b);
    char* dst = out + (b - offset);
    switch (e.kind) {
      case Extent::Kind::kHole: memset(dst, 0, len); break;
      case Extent::Kind::kInline:
        if (e.inlineData.size() < (b - e.fileOffset) + len) {
          return Status::error(Code::IO, "inline extent shorter than its length");
        }
        memcpy(dst, e.inlineData.data() + (b - e.fileOffset), len);
        break;
      case Extent::Kind::kChunk: {
        const auto& data = plain[e.chunk];
        uint64_t from = uint64_t(e.chunkOffset) + (b - e.fileOffset);
        if (!data || from + len > data->size()) {
          return Status::error(Code::IO, "extent outside its chunk " + toHex(e.chunk));
        }
        memcpy(dst, data->data() + from, len);
        break;
      }
    }
  }
  return {};
}

std::vector<Result<std::shared_ptr<const std::string>>> DataPath::loadChunks(
    const std::vector<const ChunkPlacement*>& chunks) {
  refreshClusterMap(false);
  std::unordered_map<uint32_t, std::pair<std::string, bool>> nodes;  // id -> address, up
  auto loadNodes = [&] {
    std::lock_guard<std::mutex> lock(clusterMu_);
    nodes.clear();
    for (const auto& n : cluster_.nodes) nodes[n.id] = {n.address, n.up};
  };
  loadNodes();
  bool unknownNode = false;
  for (const auto* c : chunks) {
    for (uint32_t id : c->nodes) unknownNode |= nodes.count(id) == 0;
  }
  if (unknownNode) {
    refreshClusterMap(true);
    loadNodes();
  }
  auto makeRequest = [&](const ChunkPlacement& c, const std::vector<bool>& skip, int need) {
    FetchRequest req;
    req.chunk = c.layout.id;
    int total = c.layout.k + c.layout.m;
    req.addresses.resize(total);
    std::vector<int> upFirst, downLast;
    for (int i = 0; i < total && i < int(c.nodes.size()); ++i) {
      auto it = nodes.find(c.nodes[i]);
      if (it == nodes.end()) continue;
      req.addresses[i] = it->second.first;
      if (skip[i]) continue;
      (it->second.second ? upFirst : downLast).push_back(i);
    }
    req.order = upFirst;
    req.order.insert(req.order.end(), downLast.begin(), downLast.end());
    req.need = need;
    return req;
  };
  std::vector<FetchRequest> requests;
  for (const auto* c : chunks) {
    requests.push_back(makeRequest(*c, std::vector<bool>(c->layout.k + c->layout.m, false),
                                   c->layout.k));
  }
  auto results = storage_.fetch(requests);
  std::vector<Result<std::shared_ptr<const std::string>>> out;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const ChunkPlacement& c = *chunks[i];
    stats_.failedFragmentGets += results[i].failures;
    dataPathMetrics().fragmentErrors.inc(uint64_t(results[i].failures));
    for (const auto& f : results[i].fragments) {
      if (f) dataPathMetrics().bytesIn.inc(f->size());
    }
    std::vector<int> bad;
    auto decoded = decodeChunk(c.layout, results[i].fragments, &bad);
    if (!decoded.ok()) {
      // Second round: fetch every fragment not yet tried or found bad.
      auto& frags = results[i].fragments;
      for (int b : bad) {
        if (b >= 0 && size_t(b) < frags.size()) frags[b].reset();
      }
      if (!bad.empty()) {
        stats_.badFragments += bad.size();
        dataPathMetrics().fragmentErrors.inc(bad.size());
        spdlog::warn("chunk {}: {} corrupt fragment(s) (first index {}); fetching parity",
                     toHex(c.layout.id), bad.size(), bad.front());
      }
      std::vector<bool> skip(frags.size(), false);
      for (size_t j = 0; j < frags.size(); ++j) skip[j] = frags[j].has_value();
      for (int b : bad) {
        if (b >= 0 && size_t(b) < skip.size()) skip[b] = true;
      }
      auto more = storage_.fetch({makeRequest(c, skip, int(frags.size()))});
      stats_.failedFragmentGets += more[0].failures;
      for (size_t j = 0; j < frags.size(); ++j) {
        if (!frags[j] && more[0].fragments[j] &&
            std::find(bad.begin(), bad.end(), int(j)) == bad.end()) {
          frags[j] = std::move(more[0].fragments[j]);
        }
      }
      std::vector<int> bad2;
      decoded = decodeChunk(c.layout, frags, &bad2);
      if (!bad2.empty()) {
        stats_.badFragments += bad2.size();
        spdlog::warn("chunk {}: {} more corrupt fragment(s)", toHex(c.layout.id), bad2.size());
      }
      if (!decoded.ok()) {
        spdlog::error("chunk {}: cannot be read: {}", toHex(c.layout.id), decoded.status().message);
        out.push_back(Status::error(Code::IO, "chunk " + toHex(c.layout.id) +
                                                  " unreadable: " + decoded.status().message));
        continue;
      }
    } else if (!bad.empty()) {
      stats_.badFragments += bad.size();
    }
    out.push_back(std::make_shared<const std::string>(std::move(decoded).value()));
  }
  return out;
}


}  // namespace dfs
