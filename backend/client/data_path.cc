#include "backend/client/data_path.h"
#include "backend/client/data_path_internal.h"

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

#include "backend/client/chunk_fetch.h"
#include "backend/client/dirty_ranges.h"
#include "backend/common/chunk_codec.h"
#include "backend/common/clock.h"
#include "backend/common/fastcdc.h"
#include "backend/common/placement.h"

namespace dfs {

using namespace data_path_detail;


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
  if (it != files_.end()) {
    // Used again (read, write, open): the kernel knows the inode again.
    if (create) it->second->forgotten.store(false, std::memory_order_relaxed);
    return it->second;
  }
  if (!create) return nullptr;
  auto state = std::make_shared<FileState>(ino);
  // A writer waits at twice the bound; one write (max_write) may cross it.
  state->dirty.setGrowthReserve(2 * options_.fileDirtyLimit + (1u << 20));
  files_.emplace(ino, state);
  return state;
}

size_t DataPath::trackedFiles() const {
  std::lock_guard<std::mutex> lock(filesMu_);
  return files_.size();
}

void DataPath::addDirty(int64_t delta) {
  if (delta >= 0) {
    dirtyBytes_ += uint64_t(delta);
  } else {
    dirtyBytes_ -= uint64_t(-delta);
    memoryCv_.notify_all();
  }
}


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
  bool committing = f->dirty.empty() && inFlight(*f) && f->closeRequested;
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
  if (change.setMtime) {
    p.mtimeNs = change.mtimeNs, p.setMtime = true;
    f->mtimeSet = change.mtimeNs;
  }
  p.ctimeNs = now;
  f->pendingCaller = caller;
  f->attrsPending = true;
  markActive(f->ino);
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
    if (f->dirty.empty() && !inFlight(*f)) f->dirtyBase = f->seenVersion;
    // A write after a deferred utimens sets mtime to its own time (POSIX).
    if (f->attrsPending) f->pendingSet.setMtime = false;
    f->mtimeSet.reset();
    f->dirty.write(offset, std::string_view(data, size));
    markActive(ino);
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
      std::vector<uint64_t> candidates;
      {
        std::lock_guard<std::mutex> active(activeMu_);
        candidates.assign(active_.begin(), active_.end());
      }
      std::lock_guard<std::mutex> files(filesMu_);
      std::shared_ptr<FileState> largest;
      uint64_t largestBytes = 0;
      for (uint64_t ino : candidates) {
        auto found = files_.find(ino);
        if (found == files_.end()) {
          std::lock_guard<std::mutex> active(activeMu_);
          active_.erase(ino);
          continue;
        }
        std::shared_ptr<FileState> f = found->second;  // a copy: the entry may go below
        std::unique_lock<std::mutex> fl(f->mu);
        if (f->claimed) continue;  // another flusher thread has it
        if (f->dirty.empty() && !inFlight(*f) && !f->closeRequested && !f->attrsPending) {
          {
            std::lock_guard<std::mutex> active(activeMu_);  // clean: nothing for the scan
            active_.erase(ino);
          }
          if (f->forgotten.load(std::memory_order_relaxed) && f->releases.empty()) {
            // The kernel forgot it while it was dirty (forget()): nothing holds it now.
            dropJournaled(*f);
            fl.unlock();
            files_.erase(found);
          }
          continue;
        }
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
      // A writer streaming into the file passes its bound again while a flush
      // runs: the next flush takes that buffer at once (the writer keeps
      // writing) and cuts it while the commit before it is still under way.
      std::future<void> committing;
      for (;;) {
        std::future<void> next;
        Status status = flushFile(*f, final, /*background=*/true, &next);
        if (next.valid()) committing = std::move(next);  // the one before has ended
        if (!status.ok()) {
          spdlog::warn("background flush of inode {} failed: {}", f->ino, status.message);
        }
        std::unique_lock<std::mutex> fl(f->mu);
        if (status.ok() && !final && f->flushRequested && !f->closeRequested) {
          f->flushRequested = false;
          continue;
        }
        if (committing.valid()) {
          // The claim goes only with the last commit done.
          fl.unlock();
          committing.wait();
          committing = {};
          fl.lock();
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
#if !defined(__SANITIZE_ADDRESS__)  // AddressSanitizer's allocator is not glibc's
      malloc_trim(0);
#endif
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
    if (f->dirty.empty() && !inFlight(*f) && !f->attrsPending) return earlier;
    f->closeRequested = true;
    markActive(ino);
    if (!earlier.ok()) return earlier;
  }
  queueClosed(std::move(f));
  return {};
}

void DataPath::afterFlush(uint64_t ino, std::function<void()> release) {
  auto f = file(ino, false);
  if (f) {
    std::unique_lock<std::mutex> lock(f->mu);
    if (!f->dirty.empty() || inFlight(*f) || f->attrsPending) {
      f->releases.push_back(std::move(release));
      if (!f->closeRequested) {
        f->closeRequested = true;
        markActive(ino);
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
  if (f->dirty.empty() && !inFlight(*f)) dropJournaled(*f);
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
  if (!it->second->dirty.empty() || inFlight(*it->second) || it->second->attrsPending ||
      !it->second->releases.empty()) {
    it->second->forgotten.store(true, std::memory_order_relaxed);  // dropped once clean
    return;
  }
  dropJournaled(*it->second);
  files_.erase(it);
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
    fileSize = std::max({committedSize, f->dirty.end(), inFlightEnd(*f)});
  }
  if (offset >= fileSize) return size_t(0);
  size_t n = size_t(std::min<uint64_t>(size, fileSize - offset));
  memset(out, 0, n);
  if (offset < committedSize) {
    Status s = readCommitted(*f, offset, size_t(std::min<uint64_t>(n, committedSize - offset)), out);
    if (!s.ok()) return s;
  }
  std::lock_guard<std::mutex> lock(f->mu);
  overlayMap(f->committing, offset, n, out);
  overlayMap(f->flushing, offset, n, out);
  f->dirty.overlay(offset, n, out);
  f->lastReadEnd = offset + n;
  return n;
}

Status DataPath::readCommitted(FileState& f, uint64_t offset, size_t size, char* out,
                               bool refetched) {
  uint64_t end = offset + size;
  std::shared_ptr<const FileState::ExtentWindow> window;
  {
    std::lock_guard<std::mutex> lock(f.mu);
    if (f.window && offset >= f.window->start && end <= f.window->end) window = f.window;
  }
  bool cachedWindow = window != nullptr;
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
  std::vector<const ChunkPlacement*> chunkInfos;  // in *window, which this keeps alive
  std::vector<ChunkPlacement> ahead;
  {
    bool sequential;
    {
      std::lock_guard<std::mutex> lock(f.mu);
      // Near the end of the previous read (async reads may arrive slightly out of order).
      sequential = offset + (1u << 20) >= f.lastReadEnd && offset <= f.lastReadEnd + (1u << 20);
    }
    // The read-ahead: the next readAheadChunks chunk extents past this read. What
    // an earlier read of this window queued already is not looked at again, so a
    // read costs O(its own extents), not O(the read-ahead).
    int aheadSeen = 0;
    const uint64_t queuedEnd =
        sequential ? window->queuedEnd.load(std::memory_order_relaxed) : 0;
    uint64_t aheadEnd = 0;
    std::set<ChunkId> seen;
    for (const auto& e : window->extents) {
      uint64_t eEnd = e.fileOffset + e.length;
      if (eEnd <= offset) continue;
      if (e.fileOffset >= end) {
        if (!sequential || aheadSeen >= options_.readAheadChunks) break;
        if (e.kind == Extent::Kind::kChunk) {
          ++aheadSeen;
          aheadEnd = eEnd;
          if (eEnd <= queuedEnd) continue;
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
        chunkInfos.push_back(&it->second);
      }
    }
    if (!sequential) {
      window->queuedEnd.store(0, std::memory_order_relaxed);
    } else if (aheadEnd > queuedEnd) {
      window->queuedEnd.store(aheadEnd, std::memory_order_relaxed);
    }
  }
  // Load chunks not in the cache (plus read-ahead), in parallel.
  std::unordered_map<ChunkId, std::shared_ptr<const std::string>, ChunkIdHash> plain;
  std::vector<const ChunkPlacement*> missing;
  if (!ahead.empty()) prefetch(ahead);
  for (const ChunkPlacement* c : chunkInfos) {
    auto data = cache_.get(c->layout.id);
    if (!data && awaitPrefetch(c->layout.id)) data = cache_.get(c->layout.id);
    if (data) plain[c->layout.id] = data;
    else missing.push_back(c);
  }
  if (!missing.empty()) {
    auto loaded = loadChunks(missing);
    for (size_t i = 0; i < missing.size(); ++i) {
      if (!loaded[i].ok() && cachedWindow && !refetched) {
        // The window may describe fragments that tiering replaced since
        // (Meta.retierChunks) and the garbage collector deleted: ask again once.
        spdlog::info("ino {}: chunk unreadable with a cached extent window; fetching it again",
                     f.ino);
        {
          std::lock_guard<std::mutex> lock(f.mu);
          if (f.window == window) f.window.reset();
        }
        return readCommitted(f, offset, size, out, true);
      }
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
  NodeDirectory nodes;
  auto loadNodes = [&] {
    std::lock_guard<std::mutex> lock(clusterMu_);
    nodes.clear();
    for (const auto& n : cluster_.nodes) nodes[n.id] = NodeAddress{n.address, n.up};
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
  auto reads = readChunks(storage_, chunks, nodes);
  std::vector<Result<std::shared_ptr<const std::string>>> out;
  out.reserve(chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    const ChunkId& id = chunks[i]->layout.id;
    ChunkRead& read = reads[i];
    stats_.failedFragmentGets += uint64_t(read.failedGets);
    stats_.badFragments += uint64_t(read.corrupt);
    dataPathMetrics().fragmentErrors.inc(uint64_t(read.failedGets + read.corrupt));
    dataPathMetrics().bytesIn.inc(read.bytesIn);
    if (read.corrupt > 0) {
      spdlog::warn("chunk {}: {} corrupt fragment(s), read from the others", toHex(id),
                   read.corrupt);
    }
    if (!read.plain.ok()) {
      spdlog::error("chunk {}: cannot be read: {}", toHex(id), read.plain.status().message);
      out.push_back(Status::error(Code::IO, "chunk " + toHex(id) +
                                                " unreadable: " + read.plain.status().message));
      continue;
    }
    out.push_back(std::make_shared<const std::string>(std::move(read.plain).value()));
  }
  return out;
}


}  // namespace dfs
