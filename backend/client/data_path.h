// THE client-side data path: every byte of every file goes through here.
//
// Writes are buffered per inode as dirty ranges (bounded per file and globally;
// writers wait when over the global bound) and committed by a flush:
//   FastCDC chunking -> SHA-256 ids -> findChunks (dedup) -> encodeChunk (zstd +
//   Reed-Solomon) -> placement over the up storage nodes -> parallel, pipelined
//   puts -> ONE commitWrite per flush.
// A flush happens on fsync/flush/release, when a file's buffer passes its bound,
// under global memory pressure, and in the background for data older than a few
// seconds. A bounded (non-final) flush keeps the bytes after the last cut point
// buffered, so a file written sequentially chunks exactly as if written at once.
// Small files (whole size <= the volume's inline threshold) are committed inline.
//
// Reads overlay the dirty bytes on the committed content (read-your-writes):
// extents from getExtents (cached per inode until the data version changes),
// holes -> zeros, inline -> bytes, chunks -> any k fragments fetched in parallel
// (data fragments first, parity on failure), decodeChunk verifies XXH3 and
// SHA-256, and fewer than k good fragments -> EIO; never wrong data. Decoded
// chunks sit in an LRU cache; sequential reads prefetch the next chunks.
//
// CPU work (chunking, hashing, encoding, decoding) runs on the calling thread;
// only RPCs run on the RpcLoop thread.
//
// Threads: every public method from any thread except the RpcLoop thread. Two
// internal threads: the flusher and the read-ahead prefetcher.
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
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "backend/client/chunk_cache.h"
#include "backend/client/journal.h"
#include "backend/client/meta_client.h"
#include "backend/client/storage_pool.h"
#include "backend/client/types.h"

namespace dfs {

struct DataPathOptions {
  uint64_t fileDirtyLimit = 32ull << 20;    // flush a file when its buffer passes this
  uint64_t totalDirtyLimit = 256ull << 20;  // writers wait above this
  uint64_t chunkCacheBytes = 64ull << 20;
  uint64_t uploadBatchBytes = 8ull << 20;   // plaintext per pipelined put batch
  int readAheadChunks = 16;
  int64_t flushAfterMs = 3000;              // background flush of older dirty data
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

  // Buffers the bytes; may flush (and then fail) when over the file's bound.
  Result<size_t> write(uint64_t ino, uint64_t offset, const char* data, size_t size);
  // Reads up to `size` bytes into out; returns the count (0 at/after EOF).
  Result<size_t> read(uint64_t ino, uint64_t offset, size_t size, char* out);

  // Commits every buffered byte of the file; returns the first error of any
  // flush since the last call (like the kernel's errseq for fsync).
  Status flush(uint64_t ino);
  Status flushAll();
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

  struct FileState;
  // Bytes [begin, end) of a file written by journal record `seq`.
  struct JournalSpan {
    uint64_t seq, begin, end;
  };

 private:
  std::shared_ptr<FileState> file(uint64_t ino, bool create);
  Status flushFile(FileState& file, bool final);
  // `journaled`: the journal records whose bytes are in `ranges` (seq order).
  Status commitRanges(FileState& file, std::map<uint64_t, std::string>& ranges, bool final,
                      const std::vector<JournalSpan>& journaled, uint64_t* committedEnd,
                      uint64_t* tailOffset);
  Status readCommitted(FileState& file, uint64_t offset, size_t size, char* out);
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
  void addDirty(int64_t delta);

  MetaClient& meta_;
  StoragePool& storage_;
  Journal* journal_ = nullptr;
  const DataPathOptions options_;
  DataPathStats stats_;
  ChunkCache cache_;

  std::mutex filesMu_;
  std::unordered_map<uint64_t, std::shared_ptr<FileState>> files_;  // guarded by filesMu_

  std::mutex clusterMu_;
  ClusterMap cluster_;             // guarded by clusterMu_
  int64_t clusterFetchedNs_ = 0;   // guarded by clusterMu_
  std::unordered_map<uint32_t, int64_t> excludedUntilNs_;  // node id -> until; clusterMu_

  std::mutex memoryMu_;
  std::condition_variable memoryCv_;  // signalled when dirty bytes drop
  std::condition_variable flusherCv_;
  std::atomic<uint64_t> dirtyBytes_{0};
  bool stopping_ = false;  // guarded by memoryMu_
  std::thread flusher_;

  std::mutex prefetchMu_;
  std::condition_variable prefetchCv_;  // work queued or stopping
  std::condition_variable loadedCv_;    // a prefetched chunk finished loading
  std::deque<ChunkPlacement> prefetchQueue_;                   // guarded by prefetchMu_
  std::unordered_set<ChunkId, ChunkIdHash> prefetching_;       // queued or loading; prefetchMu_
  bool prefetchStop_ = false;                                  // guarded by prefetchMu_
  std::thread prefetcher_;
};

}  // namespace dfs
