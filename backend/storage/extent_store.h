// The storage node's fragment store: fragments appended to extent files under
// DATA_DIR/extents/, indexed by LMDB under DATA_DIR/index/. Layouts in
// extent_format.h and docs/formats.md (storage section).
//
// Durability promise: put() returns OK only after the records' bytes are
// fdatasync'ed. The extent files are the store's log: every record carries its
// id, length and checksums, so the index can be rebuilt from them. Concurrent
// puts are group-committed (one fdatasync per touched extent per group); their
// index rows are kept in memory (PendingIndex, where readers find them) and
// committed to LMDB together, at most indexCommitIntervalMs or indexCommitBytes
// later, with every remove() and compaction step, and on close. remove() is
// durable when it returns. A group's records are staged and written in large
// pieces (ExtentAppender).
// A crash at any point leaves every fragment acknowledged before it readable:
// on the next open, the records past each extent's committed size (and in
// extent files created after the last index commit) are read back, verified
// and indexed; a torn or unverifiable tail is truncated. Compaction moves the
// index to a record's new, synced copy before it removes the old extent file.
//
// Thread: every public method may be called from any thread. Writers (put, remove,
// compactStep, commitIndex) are serialized internally; get, list and info run
// concurrently with them and see acknowledged state.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "backend/common/lmdb.h"
#include "backend/common/status.h"
#include "backend/storage/extent_appender.h"
#include "backend/storage/extent_file_cache.h"
#include "backend/storage/extent_format.h"
#include "backend/storage/file_system.h"
#include "backend/storage/pending_index.h"

namespace dfs {

struct ExtentStoreOptions {
  std::string dataDir;
  uint64_t capacityBytes = 0;              // 0: the size of the file system holding dataDir
  uint64_t maxExtentBytes = 256ull << 20;  // an extent is sealed once the next record would pass this
  size_t maxOpenExtents = 64;              // cached extent fds
  double compactGarbageRatio = 0.5;        // compact sealed extents with at least this much garbage
  uint64_t reserveBytes = 32ull << 20;     // left free on the disk for LMDB and the OS
  size_t indexMapBytes = size_t(64) << 30; // LMDB map size (virtual; the file grows as needed)
  size_t maxGroupBytes = 64ull << 20;      // bytes of fragments committed together at most
  size_t appendBufferBytes = 4ull << 20;   // appends are written in pieces of this size (ExtentAppender)
  // Rounds of 128 KiB or more go through O_DIRECT in whole 4 KiB blocks, padded to a
  // block (ExtentAppender's direct mode); smaller ones, and everything where the file
  // system has no direct I/O, through the page cache.
  bool directAppends = true;
  // Acknowledged puts reach the LMDB index at most this long after the first of
  // them (0: with every group, one LMDB commit per group) ...
  int64_t indexCommitIntervalMs = 1000;
  // ... or once this many record bytes are waiting, which bounds what a restart
  // after a crash reads back.
  uint64_t indexCommitBytes = 256ull << 20;
  FileSystem* fileSystem = nullptr;        // nullptr: posixFileSystem()
  std::function<int64_t()> clock;          // wall clock in ns; empty: nowNs()
};

// A fragment to store. The views must stay valid until put() returns.
struct FragmentWrite {
  std::string_view id;    // kFragmentIdSize bytes
  std::string_view data;
  uint64_t checksum = 0;  // XXH3-64 of data, verified by the caller (the RPC layer)
};

struct StoredFragment {
  std::string data;
  uint64_t checksum = 0;
};

struct StoreStats {
  uint64_t capacityBytes = 0;
  uint64_t usedBytes = 0;       // bytes in extent files (live + garbage)
  uint64_t liveBytes = 0;       // record bytes of stored fragments
  uint64_t fragments = 0;
  uint64_t corruptFragments = 0;  // checksum failures seen by get() since start
  uint64_t extents = 0;
  uint64_t groupCommits = 0;    // fdatasync rounds of puts (and removes, compaction steps) since start
  uint64_t indexCommits = 0;    // LMDB commits since start (a group's own commit counts here too)
  uint64_t pendingIndexBytes = 0;  // record bytes acknowledged but not yet in the LMDB index
};

// One put() request inside a group commit.
struct PutRequest {
  const std::vector<FragmentWrite>* fragments = nullptr;
  Status status;
};

class ExtentStore {
 public:
  // Opens or creates the store; recovers from a crash (indexes the verified records
  // past the index's committed sizes, truncates torn tails, removes extent files the
  // index dropped).
  static Result<std::unique_ptr<ExtentStore>> open(ExtentStoreOptions options);
  ~ExtentStore();  // commits the pending index rows
  ExtentStore(const ExtentStore&) = delete;
  ExtentStore& operator=(const ExtentStore&) = delete;

  // Stores fragments durably (see the durability promise above). An id already
  // stored with the same checksum is a no-op; with a different checksum the new
  // data replaces the old. Fails with NO_SPACE when the capacity or the disk is
  // full (nothing stored is touched), IO on disk errors. All or nothing per call
  // only in the sense that a failed call acknowledges nothing; some of its
  // fragments may have been stored.
  Status put(const std::vector<FragmentWrite>& fragments);
  // The group-commit core: stores several requests with one sync, setting each
  // request's status, and commits the index when that is due. Used by put() and
  // by the RPC layer's writer thread, which batches requests itself.
  void putGroup(std::vector<PutRequest*>& requests);
  // Commits the pending index rows to LMDB (a no-op when there are none).
  Status commitIndex();
  // commitIndex() if the oldest pending row is indexCommitIntervalMs old or
  // indexCommitBytes are waiting; a failure is logged (the rows stay pending).
  void commitIndexIfDue();
  bool indexPending() const { return !pending_.empty(); }

  // Reads a fragment and verifies its checksum. NOT_FOUND if absent; IO (counted
  // as corrupt, logged) if the bytes on disk do not match.
  Result<StoredFragment> get(std::string_view id);
  // Called by getMany() once per requested id, in disk order (not request order).
  // `status` is what get() would return; `data` and `checksum` are set only when it
  // is ok, and `data` is valid only during the call.
  using FragmentVisitor = std::function<void(size_t index, const Status& status,
                                             std::string_view data, uint64_t checksum)>;
  // Reads many fragments like get() does, each verified the same way (a mismatch is
  // counted, logged and answered IO), with one index transaction for all of them,
  // reads sorted by extent and offset, and one pread per fragment into one reused
  // buffer. Returns INVALID, without reading or visiting anything, if an id is not
  // kFragmentIdSize bytes or the index says the data of the found fragments adds up
  // to more than `maxBytes`; otherwise visits every index of `ids` once and
  // returns OK.
  Status getMany(const std::vector<std::string_view>& ids, uint64_t maxBytes,
                 const FragmentVisitor& visit);
  // Drops fragments from the index; returns how many existed.
  Result<uint32_t> remove(const std::vector<std::string>& ids);
  // Ids stored strictly before `beforeNs`, in id order, strictly after `after`,
  // at most `max`, pending rows included. `eof` is set when there are no more ids.
  Status list(std::string_view after, uint32_t max, int64_t beforeNs,
              std::vector<std::string>* ids, bool* eof);

  // Background scrub: re-reads and verifies (like get()) the fragments after
  // `*cursor` in id order, up to about `maxBytes` of data, and advances `*cursor`
  // (empty again after the last id: a pass is complete). Walks the LMDB index; a
  // pass begins with an index commit, so rows put during it wait for the next. Corrupt fragments are
  // logged and counted; returns how many were found in this step.
  Result<uint64_t> scrubStep(std::string* cursor, uint64_t maxBytes);

  // Whether some sealed extent is due for compaction.
  bool needsCompaction() const;
  // Moves up to `maxBytes` of live records out of the most garbage-laden sealed
  // extent into the current one, and removes the extent once it holds no live
  // record. Returns true if it did any work.
  Result<bool> compactStep(uint64_t maxBytes = 16ull << 20);

  StoreStats stats() const;
  const std::string& dataDir() const { return options_.dataDir; }
  size_t openExtentFiles() const { return files_.size(); }

 private:
  explicit ExtentStore(ExtentStoreOptions options);
  Status recover();
  // Recovery of one extent: indexes the verified records from `info->committedSize`
  // on (in `txn`, updating `extents` and `*fragments`), truncates what follows them.
  Status recoverTail(LmdbTxn& txn, uint32_t number, ExtentInfo* info,
                     std::map<uint32_t, ExtentInfo>* extents, uint64_t* fragments);
  // Reading helpers shared by get() and getMany(). Look in pending_ first, then
  // begin the read transaction (see PendingIndex).
  Result<FragmentLocation> lookup(LmdbTxn& txn, std::string_view id);
  // Empty if `headerBytes` is a valid record header for `id` at `location`, else why not.
  static std::string checkRecordHeader(std::string_view id, const FragmentLocation& location,
                                       std::string_view headerBytes);
  // Counts and logs a corrupt fragment; returns the IO status a reader gets.
  Status reportCorrupt(std::string_view id, const FragmentLocation& location,
                       const std::string& problem);
  struct Group;  // one writer round: extents touched, files created, rollback points
  // The functions below REQUIRE commitMutex_ held.
  // Appends one record to the current extent (rolling over when full). Not durable
  // until syncGroup(). `borrowData`: `data` stays valid until the round is synced or
  // rolled back, and is written from where it is (ExtentAppender).
  Result<FragmentLocation> appendRecord(Group& group, std::string_view id, std::string_view data,
                                        uint64_t checksum, int64_t storedAtNs, bool borrowData);
  // Seals the current extent (writing what is staged for it) and starts a new one.
  // A failed write sets group.writeError: the whole round is then rolled back.
  Status rollExtent(Group& group);
  // Points the appender at the current extent at `offset`, through O_DIRECT when
  // that is on and possible.
  void openAppender(uint64_t offset);
  void closeDirect();
  // Pads the appender's round to a block (direct mode; counted as garbage of its
  // extent) and writes what is staged. A failure sets group.writeError.
  Status flushAppender(Group& group);
  // The status a put gets for a failed extent write: NO_SPACE or IO, saying so.
  Status extentWriteError(const Status& s) const;
  // Writes what the appender staged, then fdatasync of every touched extent and a
  // directory sync for new files. On failure, rolls the group back.
  Status syncGroup(Group& group);
  // syncGroup(), then the LMDB commit of `txn` with the group's accounting (the
  // caller wrote the pending rows into `txn` first, see writePending).
  Status commitGroup(Group& group, LmdbTxn& txn);
  // Puts the rows (fragments and locations) into `txn`.
  Status putRows(LmdbTxn& txn, const PendingIndex::Rows& rows);
  // putRows(), then the rows' extents' accounting, the fragment count and the
  // next extent number.
  Status writePending(LmdbTxn& txn, const PendingIndex::Rows& pending);
  Status commitIndexLocked();
  bool indexCommitDue() const;
  // Makes a synced group's accounting the published one.
  void publish(const Group& group);
  void rollback(Group& group);
  uint64_t usedBytes() const;  // REQUIRES: statsMutex_ held
  Status checkSpace(uint64_t used, uint64_t available, uint64_t needed) const;
  int64_t now() const;
  std::string extentsDir() const { return options_.dataDir + "/extents"; }

  ExtentStoreOptions options_;
  FileSystem& fs_;
  std::unique_ptr<LmdbEnv> env_;
  MDB_dbi fragmentsDb_ = 0, locationsDb_ = 0, extentsDb_ = 0, metaDb_ = 0;
  ExtentFileCache files_;

  int lockFd_ = -1;  // flock on DATA_DIR/lock: one process per data directory

  // Serializes writers (group leaders, remove, compaction). Lock order:
  // commitMutex_ before statsMutex_; queueMutex_ is never held with either.
  std::mutex commitMutex_;
  // Writer-owned state (guarded by commitMutex_).
  uint32_t currentExtent_ = 0;      // 0: none yet (extent numbers start at 1)
  uint32_t nextExtent_ = 1;
  std::shared_ptr<ExtentFile> currentFile_;
  int directFd_ = -1;               // currentExtent_ opened with O_DIRECT, when in use
  uint32_t directExtent_ = 0;       // the extent directFd_ writes
  bool directOk_ = true;            // false once the file system refused O_DIRECT
  uint32_t directRefusedExtent_ = 0;  // an extent whose O_DIRECT open failed otherwise
  ExtentAppender appender_;         // stages appends to the current extent
  uint32_t compactingExtent_ = 0;   // 0: none
  PendingIndex pending_;            // rows of acknowledged puts not yet in LMDB (own mutex)
  std::string compactCursor_;       // locations key to resume from

  // Group-commit queue for put() (LevelDB's writer queue).
  struct Waiter {
    PutRequest request;
    bool done = false;
    std::condition_variable cv;
  };
  std::mutex queueMutex_;
  std::deque<Waiter*> waiters_;  // guarded by queueMutex_

  // Committed accounting, read by stats()/needsCompaction() from any thread.
  mutable std::mutex statsMutex_;
  std::map<uint32_t, ExtentInfo> extents_;  // guarded by statsMutex_
  uint64_t fragments_ = 0;                  // guarded by statsMutex_
  uint64_t groupCommits_ = 0;               // guarded by statsMutex_
  uint64_t indexCommits_ = 0;               // guarded by statsMutex_
  std::atomic<uint64_t> corrupt_{0};
};

// The node's persistent identity: DATA_DIR/uuid, created on first start.
Result<std::string> loadOrCreateNodeUuid(const std::string& dataDir);

}  // namespace dfs
