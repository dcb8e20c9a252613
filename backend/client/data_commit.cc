// The commit path of DataPath (the rest is in data_path.cc): a flush takes a
// file's buffered bytes (beginFlush), cuts them into chunks, asks which the
// cluster lacks, encodes and uploads those, commits the file's new extents in
// one metadata transaction and applies the outcome (endFlush). flushClosed does
// the same for a batch of closed files at once.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <future>
#include <optional>
#include <system_error>
#include <unordered_set>
#include <utility>

#include "backend/client/chunk_upload.h"
#include "backend/client/data_path.h"
#include "backend/client/data_path_internal.h"

namespace dfs {

using namespace data_path_detail;

struct DataPath::CommitJob {
  VolumeInfo vol;
  CommitArgs c;
  std::deque<Piece> pieces;  // a deque: byId and the upload point at its elements
  PieceIndex byId;
  std::unique_ptr<Upload> upload;  // made at the first new chunk
  uint64_t committedEnd = 0;
  uint64_t tailOffset = UINT64_MAX;
  bool nothing = false;  // everything is tail: nothing to commit yet (no pieces and
                         // not inline; pieces empty otherwise: c.extents are inline)
};

Status DataPath::flushFile(FileState& f, bool final, bool background,
                           std::future<void>* handedOff) {
  std::unique_lock<std::mutex> flushLock(f.flushMu);
  bool pipelined = handedOff != nullptr && !final;
  if (pipelined) {
    // Deferred attributes go with a commit in order, never beside one in flight.
    // The committed size must be known and past inline storage: prepareCommit
    // re-chunks an inline head, which must not be read before the commit in
    // flight (that may change it) lands.
    const uint64_t inlineThreshold = meta_.volume().inlineThreshold;
    std::lock_guard<std::mutex> lock(f.mu);
    pipelined = !f.dirty.empty() && !f.attrsPending && f.attrKnown &&
                (f.attr.size == 0 || f.attr.size > inlineThreshold);
  }
  if (!pipelined) awaitCommit(f);
  Taken taken;
  Status early;
  if (!beginFlush(f, final, &taken, &early)) return early;
  auto job = std::make_unique<CommitJob>();
  const SetAttrRequest* attrs = taken.attrs ? &*taken.attrs : nullptr;
  Status status = prepareCommit(f, f.flushing, final, attrs, &taken.caller, job.get());
  if (pipelined) {
    // The commit before this one goes first. Had it failed, this one's journal
    // mark would vouch for records it did not commit: fail too, bytes back.
    Status before = awaitCommit(f);
    if (status.ok() && !before.ok()) status = before;
    if (status.ok() && !job->nothing && !attrs) {
      handOff(f, std::move(flushLock), std::move(job), std::move(taken), background, handedOff);
      return {};
    }
  }
  bool attrsSent = false;
  if (status.ok()) status = completeCommit(f, *job, taken.journaled, &attrsSent);
  endFlush(f, final, background, taken, status, job->tailOffset, attrsSent);
  if (status.ok() && final && !background) {
    // fsync reports an earlier background failure once, like the kernel's
    // errseq, even when this commit (which took its bytes again) succeeded.
    std::lock_guard<std::mutex> lock(f.mu);
    return std::exchange(f.error, Status{});
  }
  return status;
}

void DataPath::handOff(FileState& f, std::unique_lock<std::mutex> flushLock,
                       std::unique_ptr<CommitJob> job, Taken taken, bool background,
                       std::future<void>* out) {
  {
    std::lock_guard<std::mutex> lock(f.mu);
    f.committing = std::move(f.flushing);
    f.flushing.clear();
    // The next flush cuts the tail with what was written since.
    returnTail(f, f.committing, job->tailOffset);
    f.commitRunning = true;
    addDirty(reaccount(f));
  }
  flushLock.unlock();
  // Shared and copyable (std::function): if no thread can be had, it runs here.
  auto rest = std::make_shared<std::function<void()>>(
      [this, &f, background, job = std::shared_ptr<CommitJob>(std::move(job)),
       taken = std::move(taken)]() {
        job->c.caller = &taken.caller;  // the copy this task owns
        bool attrsSent = false;
        Status s = completeCommit(f, *job, taken.journaled, &attrsSent);
        if (!s.ok()) spdlog::warn("background flush of inode {} failed: {}", f.ino, s.message);
        endFlush(f, /*final=*/false, background, taken, s, job->tailOffset, attrsSent,
                 /*handedOff=*/true);
        std::lock_guard<std::mutex> lock(f.mu);
        f.commitRunning = false;
        f.committedStatus = s;
        f.commitDone.notify_all();
      });
  try {
    *out = std::async(std::launch::async, [rest] { (*rest)(); });
  } catch (const std::system_error&) {
    (*rest)();  // no thread to be had: finish here
  }
}

void DataPath::returnTail(FileState& f, const RangeMap& bytes, uint64_t tailOffset) {
  if (tailOffset == UINT64_MAX) return;
  for (auto& [off, data] : bytes) {
    uint64_t end = off + data.size();
    if (end <= tailOffset) continue;
    uint64_t b = std::max(off, tailOffset);
    f.dirty.fillGaps(b, data.view().substr(b - off));
  }
  if (!f.dirty.empty()) markActive(f.ino);
  if (!f.dirty.empty() && f.firstDirtyNs == 0) f.firstDirtyNs = nowNs();
}

Status DataPath::awaitCommit(FileState& f) {
  std::unique_lock<std::mutex> lock(f.mu);
  f.commitDone.wait(lock, [&] { return !f.commitRunning; });
  return std::exchange(f.committedStatus, Status{});
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
                        const Status& status, uint64_t tailOffset, bool attrsSent,
                        bool handedOff) {
  std::vector<std::function<void()>> releases;
  {
    std::unique_lock<std::shared_mutex> commit(f.commitMu);
    std::lock_guard<std::mutex> lock(f.mu);
    RangeMap& bytes = handedOff ? f.committing : f.flushing;
    if (status.ok()) {
      // The bytes after the last cut point stay buffered for the next flush (a
      // handed-off flush gave them back when it handed off).
      if (!handedOff) returnTail(f, f.flushing, tailOffset);
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
      // Newer bytes win: the buffer's, and a later flush's still in flight.
      for (auto& [off, data] : bytes) {
        if (handedOff) {
          f.dirty.fillGapsOutside(off, data.view(), f.flushing);
        } else {
          f.dirty.fillGaps(off, data.view());
        }
      }
      markActive(f.ino);
      if (f.firstDirtyNs == 0) f.firstDirtyNs = nowNs();
      f.retryAfterNs = nowNs() + kFailedFlushRetryNs;
      if (f.error.ok()) f.error = status;
    }
    bytes.clear();
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
    std::deque<Piece> pieces;
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
    // A handed-off commit runs only while the flusher that streams the file
    // holds its claim, and these files were claimed here: this returns at once.
    awaitCommit(f);
    Taken taken;
    if (!beginFlush(f, true, &taken, &out[i])) continue;
    bool batchable;
    int64_t mtime;
    uint64_t baseVersion;
    {
      std::lock_guard<std::mutex> lock(f.mu);
      batchable = f.attrKnown && f.attr.size == 0 && mapEnd(f.flushing) <= kBatchFileBytes;
      mtime = commitMtime(f);
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
      // A chunk collected since findChunks: this file's commit alone is retried.
      out[m.index] = settleCommit(*m.f, vol, commits[j], &byId, std::move(results[j]));
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
  CommitJob job;
  Status s = prepareCommit(f, ranges, final, attrs, caller, &job);
  *committedEnd = job.committedEnd;
  *tailOffset = job.tailOffset;
  if (s.ok()) s = completeCommit(f, job, journaled, attrsSent);
  return s;
}

Status DataPath::prepareCommit(FileState& f, RangeMap& ranges, bool final,
                               const SetAttrRequest* attrs, const Caller* caller, CommitJob* job) {
  job->vol = meta_.volume();
  const VolumeInfo& vol = job->vol;
  uint64_t committedSize;
  int64_t mtime;
  uint64_t baseVersion;
  {
    std::lock_guard<std::mutex> lock(f.mu);
    committedSize = f.attrKnown ? f.attr.size : 0;
    mtime = commitMtime(f);
    baseVersion = f.dirtyBase;
  }
  if (!f.attrKnown) {
    // Unknown committed size (should not happen after open): ask.
    auto attr = meta_.getattr(f.ino);
    if (!attr.ok()) return attr.status();
    noteAttr(attr.value(), false);
    committedSize = attr.value().size;
  }
  uint64_t newEnd = mapEnd(ranges);
  uint64_t finalSize = std::max(committedSize, newEnd);
  CommitArgs& c = job->c;
  c.ino = f.ino;
  c.mtimeNs = mtime;
  c.baseVersion = baseVersion;
  c.attrs = attrs;
  c.caller = caller;
  if (finalSize <= vol.inlineThreshold) {
    c.extents = inlineExtents(ranges);
    job->committedEnd = newEnd;
    return {};
  }
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
  // Streamed: each batch's new chunks are on their way to the storage nodes
  // while the next batch is cut and hashed, on a helper thread, as this one asks
  // dfs-meta which chunks it lacks and hands them to the upload. Only the first
  // cut keeps everything else waiting, so it is a small one.
  ChunkCutter cutter(ranges, final, vol);
  const uint64_t batchBytes = options_.uploadBatchBytes;
  std::deque<Piece> next;
  bool more = cutter.cut(std::min(options_.firstCutBytes, batchBytes), &next);
  while (more) {
    std::deque<Piece> current;
    current.swap(next);
    auto cutNext = [&cutter, &next, batchBytes] { return cutter.cut(batchBytes, &next); };
    std::future<bool> ahead;  // waited for by its destructor on an early return
    try {
      ahead = std::async(std::launch::async, cutNext);
    } catch (const std::system_error&) {
      ahead = std::async(std::launch::deferred, cutNext);  // no thread to be had
    }
    std::vector<const Piece*> batch, toUpload;
    for (Piece& p : current) {
      job->pieces.push_back(p);  // a deque: earlier pieces stay where they are
      batch.push_back(&job->pieces.back());
    }
    if (!batch.empty()) {
      Status s = findMissing(batch, &job->byId, &toUpload);
      if (!s.ok()) return s;
    }
    if (!toUpload.empty()) {
      if (!job->upload) job->upload = std::make_unique<Upload>(*this, f.ino, vol);
      Status s = job->upload->add(toUpload);
      if (!s.ok()) return s;
    }
    more = ahead.get();
  }
  job->committedEnd = cutter.committedEnd();
  job->tailOffset = cutter.tailOffset();
  job->nothing = job->pieces.empty();  // everything is tail; nothing to commit yet
  return {};
}

Status DataPath::completeCommit(FileState& f, CommitJob& job,
                                const std::vector<JournalSpan>& journaled, bool* attrsSent) {
  if (job.nothing) return {};
  CommitArgs& c = job.c;
  const bool chunked = !job.pieces.empty();  // else c.extents are inline
  if (chunked) {
    if (job.upload) {
      Status s = job.upload->finish(&c.newChunks);
      if (!s.ok()) return s;
    }
    c.extents = chunkExtents(job.pieces);
  }
  c.newSize = job.committedEnd;
  c.journalSeq = journalMark(journaled, job.tailOffset);
  Status s = sendCommit(f, job.vol, c, chunked ? &job.byId : nullptr);
  if (s.ok()) *attrsSent = c.attrs != nullptr;
  return s;
}

void DataPath::cutPieces(const RangeMap& ranges, bool final, const VolumeInfo& vol,
                         std::deque<Piece>* pieces, uint64_t* committedEnd, uint64_t* tailOffset) {
  ChunkCutter cutter(ranges, final, vol);
  while (cutter.cut(UINT64_MAX, pieces)) {
  }
  *committedEnd = cutter.committedEnd();
  if (cutter.tailOffset() != UINT64_MAX) *tailOffset = cutter.tailOffset();
}

std::vector<Extent> DataPath::chunkExtents(const std::deque<Piece>& pieces) {
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

Status DataPath::sendCommit(FileState& f, const VolumeInfo& vol, CommitArgs& c,
                            const PieceIndex* byId) {
  return settleCommit(f, vol, c, byId, std::move(meta_.commitWrites({c}).front()));
}

Status DataPath::settleCommit(FileState& f, const VolumeInfo& vol, CommitArgs& c,
                              const PieceIndex* byId, CommitResult r) {
  for (int attempt = 1;
       byId != nullptr && r.status.code == Code::MISSING_CHUNKS && attempt < kCommitAttempts;
       ++attempt) {
    // Collected between findChunks and commit: upload them again.
    spdlog::info("inode {}: {} chunks vanished before commit; re-uploading", f.ino,
                 r.missing.size());
    std::vector<const Piece*> again;
    for (const auto& id : r.missing) {
      auto it = byId->find(id);
      if (it != byId->end()) again.push_back(it->second);
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

}  // namespace dfs
