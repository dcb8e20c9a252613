// The metadata node's persistent state: one LMDB environment with one named
// database per table, the key layouts (big-endian integers so that range scans
// follow numeric order), the versioned value encodings and the write transaction
// that keeps the storage statistics in step with every change.
// Byte layouts: docs/formats.md (metadata section).
//
// Thread: the whole metadata node runs on one KJ event-loop thread; MetaStore and
// WriteTxn are used from that thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backend/common/lmdb.h"
#include "backend/common/status.h"

namespace dfs::meta {

// Every stored value starts with this byte; a reader refuses versions it does not know.
constexpr uint8_t kFormatVersion = 1;
constexpr size_t kChunkIdSize = 32;
constexpr size_t kMaxNameLength = 255;
constexpr uint32_t kMaxLinks = 65000;
// Largest file size we accept (keeps offset + length arithmetic far from overflow).
constexpr uint64_t kMaxFileSize = uint64_t(1) << 60;

// Appends big-endian integers and raw bytes.
class Encoder {
 public:
  void u8(uint8_t v) { out_.push_back(char(v)); }
  void u16(uint16_t v) { u8(uint8_t(v >> 8)); u8(uint8_t(v)); }
  void u32(uint32_t v) { appendBigEndian32(out_, v); }
  void u64(uint64_t v) { appendBigEndian64(out_, v); }
  void i64(int64_t v) { u64(uint64_t(v)); }
  void bytes(std::string_view b) { out_.append(b.data(), b.size()); }
  // A 16-bit length followed by the bytes (REQUIRES: b.size() < 65536).
  void shortBytes(std::string_view b) { u16(uint16_t(b.size())); bytes(b); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads what Encoder wrote. A short or malformed input clears ok() instead of
// reading out of bounds; callers check ok() once at the end.
class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}
  uint8_t u8();
  uint16_t u16();
  uint32_t u32();
  uint64_t u64();
  int64_t i64() { return int64_t(u64()); }
  std::string bytes(size_t n);
  std::string shortBytes() { return bytes(u16()); }
  std::string rest() { return bytes(in_.size() - pos_); }
  bool ok() const { return ok_; }
  bool atEnd() const { return pos_ == in_.size(); }

 private:
  bool need(size_t n);
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

struct InodeRecord {
  uint64_t ino = 0;  // the key, not part of the value
  uint32_t volume = 0;
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  int64_t atimeNs = 0;
  int64_t mtimeNs = 0;
  int64_t ctimeNs = 0;
  uint64_t dataVersion = 0;
  uint64_t storedBytes = 0;  // sum of lengths of chunk and inline extents
  uint64_t parent = 0;       // directories only: the directory holding it (for rename loops)
  std::string symlinkTarget;

  bool isDirectory() const;
  bool isRegular() const;
  bool isSymlink() const;
  uint32_t type() const;
};

struct DirentRecord {
  uint64_t ino = 0;
  uint32_t type = 0;  // S_IFMT bits of the child
};

struct ExtentRecord {
  // kHole only appears in requests (it punches a range); holes are never stored.
  enum class Kind : uint8_t { kHole = 0, kChunk = 1, kInline = 2 };
  uint64_t fileOffset = 0;  // the key, not part of the value
  uint64_t length = 0;
  Kind kind = Kind::kChunk;
  std::string chunkId;      // kChunk: 32 bytes
  uint32_t chunkOffset = 0; // kChunk: offset in the chunk's plaintext
  std::string inlineData;   // kInline: exactly `length` bytes

  uint64_t end() const { return fileOffset + length; }
  // The part [from, to) of this extent (REQUIRES: fileOffset <= from < to <= end()).
  ExtentRecord slice(uint64_t from, uint64_t to) const;
};

struct ChunkRecord {
  std::string id;  // the key (32 bytes), not part of the value
  uint64_t refcount = 0;  // number of extents (over all files) that reference the chunk
  uint32_t plainSize = 0;
  uint32_t storedSize = 0;
  uint8_t compression = 0;  // proto::ChunkInfo::Compression
  uint8_t k = 0;
  uint8_t m = 0;
  uint32_t fragmentSize = 0;
  int64_t zeroSinceNs = 0;  // when refcount last dropped to 0 (0 while referenced)
  int64_t lastAccessNs = 0;
  std::vector<uint32_t> nodes;          // k+m storage node ids, fragment i on nodes[i]
  std::vector<uint64_t> fragmentChecksums;  // k+m XXH3-64
  uint8_t generation = 0;  // current fragment set, 0..3 (fragment id byte = index | gen << 6)
  uint8_t tierLevel = 0;   // zstd level tiering last tried (0: never tiered)

  uint64_t rawBytes() const { return uint64_t(k + m) * fragmentSize; }
};

struct VolumeRecord {
  uint32_t id = 0;  // the key
  std::string name;
  uint64_t rootIno = 0;
  uint8_t ecK = 4;
  uint8_t ecM = 2;
  uint32_t chunkMin = 16384;
  uint32_t chunkAvg = 65536;
  uint32_t chunkMax = 262144;
  int8_t compressionLevel = 1;
  uint32_t inlineThreshold = 4096;
};

struct NodeRecord {
  std::string uuid;  // the key
  uint32_t id = 0;
  std::string address;
  std::string label;
  uint64_t capacityBytes = 0;
  uint64_t usedBytes = 0;
  uint64_t fragments = 0;
  int64_t lastHeartbeatNs = 0;
};

struct SessionRecord {
  uint64_t id = 0;  // the key
  uint32_t volume = 0;
  int64_t createdNs = 0;
  std::string client;
};

// `journals` value: the highest write-back journal seq a commit made durable
// for (journal, ino), and when it was stored (ClientOps).
struct JournalMarkRecord {
  uint64_t seq = 0;
  int64_t timeNs = 0;
};

// Storage accounting, updated in the same transaction as the change it counts.
struct StatsRecord {
  uint64_t logicalBytes = 0;
  uint64_t uniqueBytes = 0;
  uint64_t compressedBytes = 0;
  uint64_t rawBytes = 0;
  uint64_t chunks = 0;
  uint64_t files = 0;
  uint64_t inodes = 0;
  uint64_t unreferencedChunks = 0;
};

std::string encodeInode(const InodeRecord& r);
Result<InodeRecord> decodeInode(uint64_t ino, std::string_view value);
std::string encodeDirent(const DirentRecord& r);
Result<DirentRecord> decodeDirent(std::string_view value);
std::string encodeExtent(const ExtentRecord& r);
Result<ExtentRecord> decodeExtent(uint64_t fileOffset, std::string_view value);
std::string encodeChunk(const ChunkRecord& r);
Result<ChunkRecord> decodeChunk(std::string_view id, std::string_view value);
std::string encodeVolume(const VolumeRecord& r);
Result<VolumeRecord> decodeVolume(uint32_t id, std::string_view value);
std::string encodeNode(const NodeRecord& r);
Result<NodeRecord> decodeNode(std::string_view uuid, std::string_view value);
std::string encodeSession(const SessionRecord& r);
Result<SessionRecord> decodeSession(uint64_t id, std::string_view value);
std::string encodeStats(const StatsRecord& r);
Result<StatsRecord> decodeStats(std::string_view value);
std::string encodeCounter(uint64_t value);
Result<uint64_t> decodeCounter(std::string_view value);
std::string encodeJournalMark(const JournalMarkRecord& r);
Result<JournalMarkRecord> decodeJournalMark(std::string_view value);
// `clients` value: when the client last stored a reply or journal mark.
std::string encodeClientSeen(int64_t timeNs);
Result<int64_t> decodeClientSeen(std::string_view value);

// Keys.
std::string u64Key(uint64_t a);
std::string u64PairKey(uint64_t a, uint64_t b);
std::string u32Key(uint32_t a);
std::string direntKey(uint64_t parent, std::string_view name);
std::string xattrKey(uint64_t ino, std::string_view name);

// Named counters in the `counters` database.
constexpr const char* kNextInode = "next_inode";
constexpr const char* kNextSession = "next_session";
constexpr const char* kNextVolume = "next_volume";
constexpr const char* kNextNode = "next_node";
constexpr const char* kStatsKey = "stats";

class MetaStore {
 public:
  struct Dbs {
    MDB_dbi inodes, dirents, extents, xattrs, chunks, volumes, nodes, sessions, opens, openers,
        orphans, counters, replies, journals, clients;
  };

  // Opens or creates the store in `dir`. `mapSize` bounds the data file.
  // `lmdbFlags` may add MDB_NOSYNC (tests); by default every commit is fsynced.
  static Result<std::unique_ptr<MetaStore>> open(const std::string& dir,
                                                 size_t mapSize = size_t(64) << 30,
                                                 unsigned lmdbFlags = 0);

  LmdbEnv& env() { return *env_; }
  const Dbs& dbs() const { return dbs_; }
  const StatsRecord& stats() const { return stats_; }
  // Wall clock in ns; tests replace it to step over grace periods and leases.
  int64_t now() const { return clock_ ? clock_() : defaultNow(); }
  void setClockForTest(std::function<int64_t()> clock) { clock_ = std::move(clock); }

  // Chunk reads are noted here in memory and written to the chunk records in
  // batches (flushChunkAccessTimes), so a read costs no write transaction. At
  // most kMaxPendingAccesses are kept; beyond that, further notes are dropped
  // until the next flush (last access is a hint for tiering, not an invariant).
  static constexpr size_t kMaxPendingAccesses = 1 << 20;
  void noteChunkAccess(const std::string& id, int64_t ns) {
    if (pendingAccess_.size() < kMaxPendingAccesses || pendingAccess_.count(id)) pendingAccess_[id] = ns;
  }
  std::map<std::string, int64_t> takeChunkAccesses() { return std::move(pendingAccess_); }

  // Group commit (used by the daemon). Without it every WriteTxn is its own
  // durable LMDB transaction: one fsync pair (~10 ms on this VM) per operation.
  // With it, the WriteTxns of one event-loop burst share one LMDB write
  // transaction that commitBatch() commits and syncs once; the RPC layer answers
  // only after that (whenCommitted), so every acknowledged change is durable and
  // no change is visible to another client's reads before it is acknowledged.
  // `onBatchOpened` runs when the first WriteTxn of a batch begins and must
  // arrange for commitBatch() to run soon (the daemon: when the event queue is
  // empty). An operation that wrote and then failed poisons its batch: the whole
  // batch is aborted and every operation in it answered with the error.
  void enableGroupCommit(std::function<void()> onBatchOpened) { onBatchOpened_ = std::move(onBatchOpened); }
  bool batchOpen() const { return batch_ != nullptr; }
  // Commits the open batch (if any) and calls the waiters with the outcome.
  Status commitBatch();
  // Calls `done` with the outcome of the open batch once it is committed, or at
  // once with OK when no batch is open.
  void whenCommitted(std::function<void(const Status&)> done);

  // The daemon opens LMDB with MDB_NOMETASYNC: a commit fdatasyncs its data
  // pages but not the meta page, which reaches the disk with the next commit's
  // sync or with sync(). Integrity is never at risk; an OS crash or power loss
  // may undo the last commit(s) since the previous sync. sync() forces
  // everything committed so far to disk (fsync/fsyncdir from a client, the
  // periodic tick); it is a no-op when nothing was committed since.
  Status sync();

  // Absorbed operations (Meta.applyOps): the next WriteTxn takes its time from
  // the client's clock (`nowNs`, 0: the server's) and gives the inode it
  // creates the number `ino` the client chose from its reserved range (0: a
  // fresh one). Consumed by that WriteTxn; single-threaded like the rest.
  void stampNextTxn(int64_t nowNs, uint64_t ino) {
    stampNow_ = nowNs;
    stampIno_ = ino;
  }

 private:
  friend class WriteTxn;
  static int64_t defaultNow();
  std::unique_ptr<LmdbEnv> env_;
  Dbs dbs_{};
  StatsRecord stats_;
  std::function<int64_t()> clock_;
  std::map<std::string, int64_t> pendingAccess_;
  std::function<void()> onBatchOpened_;
  std::unique_ptr<LmdbTxn> batch_;  // open batch (group commit only)
  StatsRecord batchStats_;          // statistics including the batch's changes
  Status batchError_;               // set when an operation poisoned the batch
  std::vector<std::function<void(const Status&)>> batchWaiters_;
  bool unsynced_ = true;  // a commit since the last sync()
  int64_t stampNow_ = 0;   // stampNextTxn
  uint64_t stampIno_ = 0;  // stampNextTxn
};

// One operation's write transaction: its own LMDB transaction, or with group
// commit a share of the store's open batch. Write errors are sticky: the first
// failing put is remembered and commit() returns it (and aborts), so operation
// code can issue several writes and check once. The statistics delta is written
// with the transaction and published to MetaStore::stats() only once committed.
// An operation that returns an expected error must do so before its first write.
class WriteTxn {
 public:
  explicit WriteTxn(MetaStore& store);
  ~WriteTxn();
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;
  Status status() const { return error_.ok() ? txn_->status() : error_; }
  LmdbTxn& txn() { return *txn_; }
  const MetaStore::Dbs& dbs() const { return store_.dbs(); }
  MetaStore& store() { return store_; }
  StatsRecord& stats() { return stats_; }
  // One timestamp for the whole transaction, so all times it sets agree.
  int64_t now() const { return now_; }
  // The inode number the client chose for the inode this transaction creates
  // (MetaStore::stampNextTxn); 0: allocate one.
  uint64_t clientIno() const { return clientIno_; }

  // get/put/del are safe (no-ops) when the transaction failed to begin.
  std::optional<std::string_view> get(MDB_dbi dbi, std::string_view key) const {
    if (txn_->get() == nullptr) return std::nullopt;
    return txn_->get(dbi, key);
  }
  void put(MDB_dbi dbi, std::string_view key, std::string_view value);
  bool del(MDB_dbi dbi, std::string_view key) {
    wrote_ = true;
    return txn_->get() != nullptr && txn_->del(dbi, key);
  }
  void fail(Status status);  // records an error found while decoding
  // Returns a counter and advances it by `count` (starting at `first` when absent).
  uint64_t nextId(const char* counter, uint64_t first = 1, uint64_t count = 1);
  // The counter's current value (`first` when absent), unchanged.
  uint64_t peekId(const char* counter, uint64_t first = 1);
  Status commit();

 private:
  MetaStore& store_;
  std::unique_ptr<LmdbTxn> owned_;  // without group commit
  LmdbTxn* txn_;                    // owned_ or the store's batch
  bool batched_;
  bool wrote_ = false;
  bool committed_ = false;
  StatsRecord stats_;
  int64_t now_;
  uint64_t clientIno_ = 0;
  Status error_;
};

}  // namespace dfs::meta
