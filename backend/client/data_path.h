// THE client-side data path: every byte of every file goes through here.
//
// Writes are buffered per inode as dirty ranges (bounded per file and globally;
// writers wait when over the global bound, or over twice their file's bound
// until a flusher thread took the buffer) and committed by a flush:
//   FastCDC chunking -> SHA-256 ids -> findChunks (dedup) -> encodeChunk (zstd +
//   Reed-Solomon) -> placement over the up storage nodes -> parallel, pipelined
//   puts -> ONE commitWrite per flush.
// A flush happens on fsync, on close (handed to the flusher threads through a
// queue; close does not wait), when a file's buffer passes its bound, under
// global memory pressure, and in the background for data older than a few
// seconds. A bounded (non-final) flush keeps the bytes after the last cut point
// buffered, so a file written sequentially chunks exactly as if written at once.
// A streaming writer's flushes overlap: once a flush has cut its bytes, its last
// puts and its commit finish on a thread of their own while the next flush cuts
// (flushFile, `handedOff`); a file's commits stay in order.
// Small files (whole size <= the volume's inline threshold) are committed inline.
//
// Reads overlay the dirty bytes on the committed content (read-your-writes):
// extents from getExtents (cached per inode until the data version changes),
// holes -> zeros, inline -> bytes, chunks -> any k fragments fetched in parallel
// (data fragments first, parity on failure), decodeChunk verifies XXH3 and
// SHA-256, and fewer than k good fragments -> EIO; never wrong data. Decoded
// chunks sit in an LRU cache; sequential reads prefetch the next chunks.
//
// CPU work (chunking, hashing, encoding, decoding) runs on the calling thread and
// the helpers a flush starts (the cut-ahead, one encoding task per upload batch);
// only RPCs run on the RpcLoop thread.
//
// Threads: every public method from any thread except the RpcLoop thread.
// Internal threads: kFlushers flushers (each with at most one handed-off commit
// of the file it streams) and the read-ahead prefetcher.
// Lock order: FileState::flushMu -> FileState::commitMu -> FileState::mu ->
// DataPath::filesMu_ / clusterMu_ / memoryMu_ (leaves). No lock is held across an
// RPC except flushMu (which only serializes flushes of one file) and a shared
// commitMu held by readers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <unordered_set>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backend/client/chunk_cache.h"
#include "backend/client/chunk_cutter.h"
#include "backend/client/journal.h"
#include "backend/client/meta_client.h"
#include "backend/client/range_buffer.h"
#include "backend/client/storage_pool.h"
#include "backend/client/types.h"

namespace dfs {

struct DataPathOptions {
  uint64_t fileDirtyLimit = 32ull << 20;    // flush a file when its buffer passes this
  uint64_t totalDirtyLimit = 256ull << 20;  // writers wait above this
  uint64_t chunkCacheBytes = 64ull << 20;
  uint64_t uploadBatchBytes = 8ull << 20;   // plaintext per pipelined put batch
  // A flush cuts this much first, on its own thread, before anything else can
  // start; the rest is cut uploadBatchBytes at a time, one batch ahead, while the
  // batch before goes through findChunks and the upload. 1 MiB instead of a whole
  // batch took a sequential write from 266-364 to 294-386 MB/s, alternated
  // (docs/benchmarks.md, session 17); the upload still sends full batches.
  uint64_t firstCutBytes = 1ull << 20;
  // Chunks fetched ahead of a sequential reader, and the prefetcher's batch: 128
  // (~8 MiB at 64 KiB) read cold 10-20 % faster than 32 with a third less storage CPU
  // (docs/benchmarks.md, session 16); 256 was no better.
  int readAheadChunks = 128;
  int64_t flushAfterMs = 3000;              // background flush of older dirty data
  // Closed files are committed by at most closedWorkers flusher threads at a
  // time, each taking up to closedBatchFiles of them: new small files in one
  // batch share their RPCs (DataPath::flushClosed).
  int closedWorkers = 3;
  size_t closedBatchFiles = 32;
};

struct DataPathStats {
  std::atomic<uint64_t> badFragments{0};
  std::atomic<uint64_t> failedFragmentGets{0};
  std::atomic<uint64_t> chunksUploaded{0};
  std::atomic<uint64_t> chunksDeduped{0};
  std::atomic<uint64_t> commits{0};
};

class DataPath {
 public:
  DataPath(MetaClient& meta, StoragePool& storage, DataPathOptions options);
  // Stops the background flusher. Call flushAll() first to commit dirty data.
  ~DataPath();

  // Committed attributes seen by the caller (getattr, lookup, open, setattr).
  // `opened`: close-to-open; a changed data version drops cached extents.
  void noteAttr(const Attr& attr, bool opened);
  // Fills in what the metadata node does not know yet: size and mtime of
  // buffered writes.
  void patchAttr(Attr* attr);

  // chmod/chown/utimens of a file whose written bytes are still buffered: the
  // change is journaled and acknowledged now and sent with the file's next
  // commit (same metadata transaction), saving a synchronous round trip per
  // attribute (tar, cp -a and rsync set three right after writing). Returns the
  // attributes to report, or nullopt when it cannot be deferred (size change,
  // nothing buffered, unknown attributes, an earlier failed flush, another
  // caller's change pending, the journal refused it): then use setattr.
  std::optional<Attr> absorbSetattr(uint64_t ino, const SetAttrRequest& set, const Caller& caller);
  // The file has deferred attribute changes (a direct setattr must flush first).
  bool attrsPending(uint64_t ino);
  // Buffers the bytes; past twice the file's bound waits for the flusher (or
  // flushes itself, and may then fail, after a failed background flush).
  Result<size_t> write(uint64_t ino, uint64_t offset, const char* data, size_t size);
  // Reads up to `size` bytes into out; returns the count (0 at/after EOF).
  Result<size_t> read(uint64_t ino, uint64_t offset, size_t size, char* out);

  // Commits every buffered byte of the file; returns the first error of any
  // flush since the last call (like the kernel's errseq for fsync).
  Status flush(uint64_t ino);
  Status flushAll();
  // close(2): the file's buffered bytes are committed by the flusher right
  // away, without waiting here (they are journaled; close-to-open for other
  // clients holds because the handle is released only after the commit, and
  // dfs-meta has writers commit before another client's open). Returns, and
  // clears, the error of an earlier failed flush of the file, if any.
  Status startFlush(uint64_t ino);
  // The last close of a file handle: `release` runs once nothing of the file is
  // left to commit (now, if nothing is buffered).
  void afterFlush(uint64_t ino, std::function<void()> release);
  // Drops buffered bytes at or beyond `size` (truncate, O_TRUNC) and cached
  // extents. Call after flush() and before the metadata change.
  void truncated(uint64_t ino, uint64_t size);
  // The kernel forgot the inode: drop its state unless it has unflushed bytes.
  void forget(uint64_t ino);
  // Another client changed the inode: drop its cached attributes and extents so
  // the next read or commit asks the metadata node. Buffered bytes stay. Decoded
  // chunks are keyed by content (SHA-256), so they are never stale.
  void invalidate(uint64_t ino);
  // invalidate() for every inode the data path knows.
  void invalidateAll();

  // Every write is appended to `journal` before it is acknowledged and marked
  // done there once a commit covers it (null: no journal). Set before use.
  void setJournal(Journal* journal) { journal_ = journal; }

  const DataPathStats& stats() const { return stats_; }
  // Bytes written by applications and not yet committed to the cluster. Any thread.
  uint64_t dirtyBytes() const { return dirtyBytes_.load(std::memory_order_relaxed); }
  // Inodes with per-file state (buffered bytes, cached extents, attributes).
  size_t trackedFiles() const;

  struct FileState;
  // Bytes [begin, end) of a file written by journal record `seq`.
  // A deferred attribute change is a span with attrs set (and no bytes).
  struct JournalSpan {
    uint64_t seq, begin, end;
    bool attrs = false;
  };

 private:
  std::shared_ptr<FileState> file(uint64_t ino, bool create);
  // `background` (the flusher): a failure stays recorded for the next
  // flush()/startFlush() of the file to report, even when `final`.
  // `handedOff` (the flusher streaming a writer's file, non-final flushes only):
  // once the bytes are cut and their new chunks are on their way, the rest of
  // the flush (the last puts, the commit, endFlush) may go on as *handedOff, on
  // a thread of its own, and the call returns; the next flush of the file then
  // cuts while this one commits. The caller waits for *handedOff before it lets
  // go of the file. Every flush that is not handed off waits for a handed-off
  // one before it starts; a handed-off one waits for the one before it, and fails
  // if that one failed, before it hands off.
  Status flushFile(FileState& file, bool final, bool background = false,
                   std::future<void>* handedOff = nullptr);
  // Puts the bytes of `bytes` at and after `tailOffset` (UINT64_MAX: none) back
  // into the buffer, under any newer ones. REQUIRES: f.mu held.
  void returnTail(FileState& f, const RangeMap& bytes, uint64_t tailOffset);
  // Waits until no handed-off commit of the file runs; returns the outcome of
  // the last one (once). REQUIRES: f.mu not held.
  Status awaitCommit(FileState& f);
  // `journaled`: the journal records whose bytes are in `ranges` (seq order).
  // `attrs`/`caller` (null: none) ride on the commit; *attrsSent tells whether
  // a commit carried them.
  Status commitRanges(FileState& file, RangeMap& ranges, bool final,
                      const std::vector<JournalSpan>& journaled, uint64_t* committedEnd,
                      uint64_t* tailOffset, const SetAttrRequest* attrs, const Caller* caller,
                      bool* attrsSent);
  using Piece = ChunkPiece;
  using PieceIndex = std::unordered_map<ChunkId, const Piece*, ChunkIdHash>;
  // A commit in the making: the pieces cut, the upload of the new ones, the
  // commit's arguments (data_commit.cc). Heap-allocated: the index and the
  // upload point at the pieces, which must not move when it is handed off.
  struct CommitJob;
  // The first half of commitRanges: cuts `ranges` (or takes them inline), asks
  // which chunks the cluster lacks and starts their upload.
  Status prepareCommit(FileState& f, RangeMap& ranges, bool final, const SetAttrRequest* attrs,
                       const Caller* caller, CommitJob* job);
  // The second half: waits for the upload and sends the commit.
  Status completeCommit(FileState& f, CommitJob& job, const std::vector<JournalSpan>& journaled,
                        bool* attrsSent);
  // What a flush took from a file besides its bytes (moved to f.flushing): the
  // journal records and deferred attribute changes its commit covers.
  struct Taken {
    std::vector<JournalSpan> journaled;
    std::optional<SetAttrRequest> attrs;
    Caller caller;
    uint64_t attrsGeneration = 0;
  };
  // The hand-off of flushFile: moves f.flushing to f.committing (its tail back
  // into the buffer), releases flushLock and finishes the commit of `job` as
  // *out. REQUIRES: f.flushMu held by `flushLock`; no commit running.
  void handOff(FileState& f, std::unique_lock<std::mutex> flushLock,
               std::unique_ptr<CommitJob> job, Taken taken, bool background,
               std::future<void>* out);
  // Moves the file's buffered bytes to f.flushing. False when nothing was
  // buffered: *early is then the flush's outcome (deferred attributes sent,
  // an earlier background failure). REQUIRES: f.flushMu held.
  bool beginFlush(FileState& f, bool final, Taken* taken, Status* early);
  // Applies a commit's outcome: on success the tail after the last cut goes
  // back to the buffer and the covered journal records are done; on failure
  // the bytes go back and the error is kept. REQUIRES: f.flushMu held, or
  // `handedOff`: the commit of f.committing (its tail went back at the hand-off;
  // on failure its bytes go back only where no newer ones are).
  void endFlush(FileState& f, bool final, bool background, const Taken& taken,
                const Status& status, uint64_t tailOffset, bool attrsSent, bool handedOff = false);
  // Final flushes of closed files (the flusher threads). New files of at most
  // kBatchFileBytes (untar, cp -a) share one findChunks, one put per storage
  // node and one pipelined round of commits, which dfs-meta applies in one
  // group; the others are flushed one by one. One status per file.
  std::vector<Status> flushClosed(const std::vector<std::shared_ptr<FileState>>& files);
  class Upload;  // sends new chunks' fragments while a flush still cuts (chunk_upload.h)
  // Cuts all of `ranges` into chunks (FastCDC); a non-final cut leaves the
  // bytes after the last cut point (*tailOffset) for later.
  static void cutPieces(const RangeMap& ranges, bool final, const VolumeInfo& vol,
                        std::deque<Piece>* pieces, uint64_t* committedEnd, uint64_t* tailOffset);
  static std::vector<Extent> chunkExtents(const std::deque<Piece>& pieces);
  // Dedup: indexes `pieces` by id and lists (each id once) those the cluster lacks.
  Status findMissing(const std::vector<const Piece*>& pieces, PieceIndex* byId,
                     std::vector<const Piece*>* toUpload);
  // Encodes and uploads `list` (pipelined batches, re-placed on failed nodes)
  // and appends each chunk's placement to *placed. `ino` is for the logs.
  Status uploadPieces(uint64_t ino, const VolumeInfo& vol, const std::vector<const Piece*>& list,
                      std::vector<ChunkPlacement>* placed);
  // commitWrite, then settleCommit.
  Status sendCommit(FileState& f, const VolumeInfo& vol, CommitArgs& c, const PieceIndex* byId);
  // The outcome of a commit `r` of `c`: chunks collected since findChunks
  // (MISSING_CHUNKS) are uploaded again from `byId` (null: none to offer) and
  // the commit retried; the error is logged; success counted.
  Status settleCommit(FileState& f, const VolumeInfo& vol, CommitArgs& c, const PieceIndex* byId,
                      CommitResult r);
  // Sends deferred attribute changes of a file with nothing buffered (setattr).
  // REQUIRES: file.flushMu held, file.mu not held.
  Status commitPendingAttrs(FileState& file);
  // `refetched`: the extent window was already fetched again after a chunk could
  // not be read with the cached one (tiering may have replaced its fragments).
  Status readCommitted(FileState& file, uint64_t offset, size_t size, char* out,
                       bool refetched = false);
  std::vector<Result<std::shared_ptr<const std::string>>> loadChunks(
      const std::vector<const ChunkPlacement*>& chunks);
  void refreshClusterMap(bool force);
  // Marks every journal record of the file done. REQUIRES: file.mu held.
  void dropJournaled(FileState& file);
  void flusherMain();
  void prefetcherMain();
  // Queues chunks for background loading (sequential read-ahead).
  void prefetch(std::vector<ChunkPlacement> chunks);
  // Waits while `id` is being prefetched; true if it is in the cache now.
  bool awaitPrefetch(const ChunkId& id);
  void waitForMemory();
  // Back-pressure for a writer whose file holds twice its bound: waits while a
  // flusher thread commits the buffer, so writing and committing overlap; the
  // writer commits itself after a failed background flush or past the op
  // deadline. REQUIRES: f.mu not held.
  Status awaitFlusher(FileState& f);
  // Hands a closed file to the flusher threads.
  void queueClosed(std::shared_ptr<FileState> file);
  void addDirty(int64_t delta);

  MetaClient& meta_;
  StoragePool& storage_;
  Journal* journal_ = nullptr;
  const DataPathOptions options_;
  DataPathStats stats_;
  ChunkCache cache_;

  mutable std::mutex filesMu_;
  std::unordered_map<uint64_t, std::shared_ptr<FileState>> files_;  // guarded by filesMu_
  // Files that may have work for the flusher's periodic scan: buffered bytes, a
  // close waiting for its commit, deferred attributes. Added with the file's mu
  // held when that state appears; removed by the scan, also under the file's mu,
  // once the file is clean. files_ holds every inode the kernel still knows
  // (hundreds of thousands after a big copy); scanning only these keeps the
  // flusher from spending a core on clean files. activeMu_ is a leaf.
  std::mutex activeMu_;
  std::unordered_set<uint64_t> active_;  // guarded by activeMu_
  void markActive(uint64_t ino) {
    std::lock_guard<std::mutex> lock(activeMu_);
    active_.insert(ino);
  }

  std::mutex clusterMu_;
  ClusterMap cluster_;             // guarded by clusterMu_
  int64_t clusterFetchedNs_ = 0;   // guarded by clusterMu_
  std::unordered_map<uint32_t, int64_t> excludedUntilNs_;  // node id -> until; clusterMu_

  std::mutex memoryMu_;
  std::condition_variable memoryCv_;  // signalled when dirty bytes drop
  std::condition_variable flusherCv_;
  std::atomic<uint64_t> dirtyBytes_{0};
  bool stopping_ = false;  // guarded by memoryMu_
  bool wakeFlusher_ = false;  // a file passed its bound or memory is short: scan now; memoryMu_
  // Closed files to commit now (startFlush, afterFlush); memoryMu_.
  std::deque<std::shared_ptr<FileState>> closedQueue_;
  // Flusher threads committing closed files right now (memoryMu_), at most
  // closedWorkers_ (options), each taking up to closedBatch_ queued files.
  int closedBusy_ = 0;
  int closedWorkers_;
  size_t closedBatch_;
  // Flusher threads: a commit mostly waits for RPCs, so two overlap well
  // (closed files are committed in the background).
  static constexpr int kFlushers = 8;
  std::vector<std::thread> flushers_;

  std::mutex prefetchMu_;
  std::condition_variable prefetchCv_;  // work queued or stopping
  std::condition_variable loadedCv_;    // a prefetched chunk finished loading
  std::deque<ChunkPlacement> prefetchQueue_;                   // guarded by prefetchMu_
  std::unordered_set<ChunkId, ChunkIdHash> prefetching_;       // queued or loading; prefetchMu_
  bool prefetchStop_ = false;                                  // guarded by prefetchMu_
  std::thread prefetcher_;
};

}  // namespace dfs
