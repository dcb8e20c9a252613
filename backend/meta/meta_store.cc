#include "backend/meta/meta_store.h"

#include <sys/stat.h>

#include "backend/common/clock.h"

namespace dfs::meta {

bool Decoder::need(size_t n) {
  if (!ok_ || in_.size() - pos_ < n) {
    ok_ = false;
    return false;
  }
  return true;
}

uint8_t Decoder::u8() {
  if (!need(1)) return 0;
  return uint8_t(in_[pos_++]);
}

uint16_t Decoder::u16() {
  uint16_t hi = u8();
  return uint16_t((hi << 8) | u8());
}

uint32_t Decoder::u32() {
  if (!need(4)) return 0;
  uint32_t v = readBigEndian32(in_, pos_);
  pos_ += 4;
  return v;
}

uint64_t Decoder::u64() {
  if (!need(8)) return 0;
  uint64_t v = readBigEndian64(in_, pos_);
  pos_ += 8;
  return v;
}

std::string Decoder::bytes(size_t n) {
  if (!need(n)) return {};
  std::string s(in_.substr(pos_, n));
  pos_ += n;
  return s;
}

bool InodeRecord::isDirectory() const { return S_ISDIR(mode); }
bool InodeRecord::isRegular() const { return S_ISREG(mode); }
bool InodeRecord::isSymlink() const { return S_ISLNK(mode); }
uint32_t InodeRecord::type() const { return mode & S_IFMT; }

ExtentRecord ExtentRecord::slice(uint64_t from, uint64_t to) const {
  ExtentRecord out = *this;
  out.fileOffset = from;
  out.length = to - from;
  if (kind == Kind::kChunk) {
    out.chunkOffset = uint32_t(chunkOffset + (from - fileOffset));
  } else {
    out.inlineData = inlineData.substr(from - fileOffset, to - from);
  }
  return out;
}

namespace {

Status corrupt(const char* what) {
  return Status::error(Code::IO, std::string("corrupt ") + what + " record in metadata store");
}

// Starts decoding a value: checks the format version byte.
bool versionOk(Decoder& d) { return d.u8() == kFormatVersion; }

}  // namespace

std::string encodeInode(const InodeRecord& r) {
  Encoder e;
  e.u8(kFormatVersion);
  e.u32(r.volume);
  e.u32(r.mode);
  e.u32(r.nlink);
  e.u32(r.uid);
  e.u32(r.gid);
  e.u64(r.rdev);
  e.u64(r.size);
  e.i64(r.atimeNs);
  e.i64(r.mtimeNs);
  e.i64(r.ctimeNs);
  e.u64(r.dataVersion);
  e.u64(r.storedBytes);
  e.u64(r.parent);
  e.bytes(r.symlinkTarget);
  return e.take();
}

Result<InodeRecord> decodeInode(uint64_t ino, std::string_view value) {
  Decoder d(value);
  InodeRecord r;
  r.ino = ino;
  if (!versionOk(d)) return corrupt("inode");
  r.volume = d.u32();
  r.mode = d.u32();
  r.nlink = d.u32();
  r.uid = d.u32();
  r.gid = d.u32();
  r.rdev = d.u64();
  r.size = d.u64();
  r.atimeNs = d.i64();
  r.mtimeNs = d.i64();
  r.ctimeNs = d.i64();
  r.dataVersion = d.u64();
  r.storedBytes = d.u64();
  r.parent = d.u64();
  r.symlinkTarget = d.rest();
  if (!d.ok()) return corrupt("inode");
  return r;
}

std::string encodeDirent(const DirentRecord& r) {
  Encoder e;
  e.u8(kFormatVersion);
  e.u64(r.ino);
  e.u32(r.type);
  return e.take();
}

Result<DirentRecord> decodeDirent(std::string_view value) {
  Decoder d(value);
  DirentRecord r;
  if (!versionOk(d)) return corrupt("directory entry");
  r.ino = d.u64();
  r.type = d.u32();
  if (!d.ok()) return corrupt("directory entry");
  return r;
}

std::string encodeExtent(const ExtentRecord& r) {
  Encoder e;
  e.u8(kFormatVersion);
  e.u64(r.length);
  e.u8(uint8_t(r.kind));
  if (r.kind == ExtentRecord::Kind::kChunk) {
    e.bytes(r.chunkId);
    e.u32(r.chunkOffset);
  } else {
    e.bytes(r.inlineData);
  }
  return e.take();
}

Result<ExtentRecord> decodeExtent(uint64_t fileOffset, std::string_view value) {
  Decoder d(value);
  ExtentRecord r;
  r.fileOffset = fileOffset;
  if (!versionOk(d)) return corrupt("extent");
  r.length = d.u64();
  uint8_t kind = d.u8();
  if (kind == uint8_t(ExtentRecord::Kind::kChunk)) {
    r.kind = ExtentRecord::Kind::kChunk;
    r.chunkId = d.bytes(kChunkIdSize);
    r.chunkOffset = d.u32();
  } else if (kind == uint8_t(ExtentRecord::Kind::kInline)) {
    r.kind = ExtentRecord::Kind::kInline;
    r.inlineData = d.rest();
    if (r.inlineData.size() != r.length) return corrupt("extent");
  } else {
    return corrupt("extent");
  }
  if (!d.ok()) return corrupt("extent");
  return r;
}

// Version 1 is written while the chunk was never tiered (generation and tier level
// 0); version 2 appends those two bytes. Both decode.
constexpr uint8_t kChunkTieredVersion = 2;

std::string encodeChunk(const ChunkRecord& r) {
  bool tiered = r.generation != 0 || r.tierLevel != 0;
  Encoder e;
  e.u8(tiered ? kChunkTieredVersion : kFormatVersion);
  e.u64(r.refcount);
  e.u32(r.plainSize);
  e.u32(r.storedSize);
  e.u8(r.compression);
  e.u8(r.k);
  e.u8(r.m);
  e.u32(r.fragmentSize);
  e.i64(r.zeroSinceNs);
  e.i64(r.lastAccessNs);
  for (uint32_t n : r.nodes) e.u32(n);
  for (uint64_t c : r.fragmentChecksums) e.u64(c);
  if (tiered) {
    e.u8(r.generation);
    e.u8(r.tierLevel);
  }
  return e.take();
}

Result<ChunkRecord> decodeChunk(std::string_view id, std::string_view value) {
  Decoder d(value);
  ChunkRecord r;
  r.id = std::string(id);
  uint8_t version = d.u8();
  if (version != kFormatVersion && version != kChunkTieredVersion) return corrupt("chunk");
  r.refcount = d.u64();
  r.plainSize = d.u32();
  r.storedSize = d.u32();
  r.compression = d.u8();
  r.k = d.u8();
  r.m = d.u8();
  r.fragmentSize = d.u32();
  r.zeroSinceNs = d.i64();
  r.lastAccessNs = d.i64();
  size_t n = size_t(r.k) + r.m;
  for (size_t i = 0; i < n; ++i) r.nodes.push_back(d.u32());
  for (size_t i = 0; i < n; ++i) r.fragmentChecksums.push_back(d.u64());
  if (version == kChunkTieredVersion) {
    r.generation = d.u8();
    r.tierLevel = d.u8();
    if (r.generation > 3) return corrupt("chunk");
  }
  if (!d.ok() || !d.atEnd()) return corrupt("chunk");
  return r;
}

std::string encodeVolume(const VolumeRecord& r) {
  Encoder e;
  e.u8(kFormatVersion);
  e.u64(r.rootIno);
  e.u8(r.ecK);
  e.u8(r.ecM);
  e.u32(r.chunkMin);
  e.u32(r.chunkAvg);
  e.u32(r.chunkMax);
  e.u8(uint8_t(r.compressionLevel));
  e.u32(r.inlineThreshold);
  e.bytes(r.name);
  return e.take();
}

Result<VolumeRecord> decodeVolume(uint32_t id, std::string_view value) {
  Decoder d(value);
  VolumeRecord r;
  r.id = id;
  if (!versionOk(d)) return corrupt("volume");
  r.rootIno = d.u64();
  r.ecK = d.u8();
  r.ecM = d.u8();
  r.chunkMin = d.u32();
  r.chunkAvg = d.u32();
  r.chunkMax = d.u32();
  r.compressionLevel = int8_t(d.u8());
  r.inlineThreshold = d.u32();
  r.name = d.rest();
  if (!d.ok()) return corrupt("volume");
  return r;
}

std::string encodeNode(const NodeRecord& r) {
  Encoder e;
  e.u8(kFormatVersion);
  e.u32(r.id);
  e.u64(r.capacityBytes);
  e.u64(r.usedBytes);
  e.u64(r.fragments);
  e.i64(r.lastHeartbeatNs);
  e.shortBytes(r.address);
  e.shortBytes(r.label);
  return e.take();
}

Result<NodeRecord> decodeNode(std::string_view uuid, std::string_view value) {
  Decoder d(value);
  NodeRecord r;
  r.uuid = std::string(uuid);
  if (!versionOk(d)) return corrupt("node");
  r.id = d.u32();
  r.capacityBytes = d.u64();
  r.usedBytes = d.u64();
  r.fragments = d.u64();
  r.lastHeartbeatNs = d.i64();
  r.address = d.shortBytes();
  r.label = d.shortBytes();
  if (!d.ok()) return corrupt("node");
  return r;
}

std::string encodeSession(const SessionRecord& r) {
  Encoder e;
  e.u8(kFormatVersion);
  e.u32(r.volume);
  e.i64(r.createdNs);
  e.bytes(r.client);
  return e.take();
}

Result<SessionRecord> decodeSession(uint64_t id, std::string_view value) {
  Decoder d(value);
  SessionRecord r;
  r.id = id;
  if (!versionOk(d)) return corrupt("session");
  r.volume = d.u32();
  r.createdNs = d.i64();
  r.client = d.rest();
  if (!d.ok()) return corrupt("session");
  return r;
}

std::string encodeStats(const StatsRecord& r) {
  Encoder e;
  e.u8(kFormatVersion);
  for (uint64_t v : {r.logicalBytes, r.uniqueBytes, r.compressedBytes, r.rawBytes, r.chunks,
                     r.files, r.inodes, r.unreferencedChunks}) {
    e.u64(v);
  }
  return e.take();
}

Result<StatsRecord> decodeStats(std::string_view value) {
  Decoder d(value);
  StatsRecord r;
  if (!versionOk(d)) return corrupt("stats");
  for (uint64_t* v : {&r.logicalBytes, &r.uniqueBytes, &r.compressedBytes, &r.rawBytes, &r.chunks,
                      &r.files, &r.inodes, &r.unreferencedChunks}) {
    *v = d.u64();
  }
  if (!d.ok()) return corrupt("stats");
  return r;
}

std::string encodeCounter(uint64_t value) {
  Encoder e;
  e.u8(kFormatVersion);
  e.u64(value);
  return e.take();
}

Result<uint64_t> decodeCounter(std::string_view value) {
  Decoder d(value);
  if (!versionOk(d)) return corrupt("counter");
  uint64_t v = d.u64();
  if (!d.ok()) return corrupt("counter");
  return v;
}

std::string encodeJournalMark(const JournalMarkRecord& r) {
  Encoder e;
  e.u8(kFormatVersion);
  e.u64(r.seq);
  e.i64(r.timeNs);
  return e.take();
}

Result<JournalMarkRecord> decodeJournalMark(std::string_view value) {
  Decoder d(value);
  if (!versionOk(d)) return corrupt("journal mark");
  JournalMarkRecord r;
  r.seq = d.u64();
  r.timeNs = d.i64();
  if (!d.ok() || !d.atEnd()) return corrupt("journal mark");
  return r;
}

// A counter's layout (version byte, then 8 bytes), read strictly.
std::string encodeClientSeen(int64_t timeNs) {
  return encodeCounter(uint64_t(timeNs));
}

Result<int64_t> decodeClientSeen(std::string_view value) {
  auto v = decodeCounter(value);
  if (!v.ok() || value.size() != 1 + sizeof(uint64_t)) return corrupt("client stamp");
  return int64_t(v.value());
}

std::string u64Key(uint64_t a) {
  std::string k;
  appendBigEndian64(k, a);
  return k;
}

std::string u64PairKey(uint64_t a, uint64_t b) {
  std::string k;
  appendBigEndian64(k, a);
  appendBigEndian64(k, b);
  return k;
}

std::string u32Key(uint32_t a) {
  std::string k;
  appendBigEndian32(k, a);
  return k;
}

std::string direntKey(uint64_t parent, std::string_view name) {
  std::string k = u64Key(parent);
  k.append(name.data(), name.size());
  return k;
}

std::string xattrKey(uint64_t ino, std::string_view name) { return direntKey(ino, name); }

int64_t MetaStore::defaultNow() { return nowNs(); }

Result<std::unique_ptr<MetaStore>> MetaStore::open(const std::string& dir, size_t mapSize,
                                                   unsigned lmdbFlags) {
  auto env = LmdbEnv::open(
      dir, mapSize,
      {"inodes", "dirents", "extents", "xattrs", "chunks", "volumes", "nodes", "sessions", "opens",
       "openers", "orphans", "counters", "replies", "journals", "clients"},
      lmdbFlags);
  if (!env.ok()) return env.status();
  std::unique_ptr<MetaStore> store(new MetaStore());
  store->env_ = std::move(env).value();
  auto& e = *store->env_;
  store->dbs_ = Dbs{e.dbi("inodes"),  e.dbi("dirents"),  e.dbi("extents"), e.dbi("xattrs"),
                    e.dbi("chunks"),  e.dbi("volumes"),  e.dbi("nodes"),   e.dbi("sessions"),
                    e.dbi("opens"),   e.dbi("openers"),  e.dbi("orphans"), e.dbi("counters"),
                    e.dbi("replies"), e.dbi("journals"), e.dbi("clients")};
  LmdbTxn txn(e, LmdbTxn::Mode::kRead);
  if (!txn.status().ok()) return txn.status();
  if (auto v = txn.get(store->dbs_.counters, kStatsKey)) {
    auto stats = decodeStats(*v);
    if (!stats.ok()) return stats.status();
    store->stats_ = stats.value();
  }
  return store;
}

WriteTxn::WriteTxn(MetaStore& store)
    : store_(store), batched_(bool(store.onBatchOpened_)), now_(store.now()) {
  if (store.stampNow_ != 0) now_ = store.stampNow_;
  clientIno_ = store.stampIno_;
  store.stampNow_ = 0;
  store.stampIno_ = 0;
  if (batched_) {
    if (!store.batch_) {
      store.batch_ = std::make_unique<LmdbTxn>(store.env(), LmdbTxn::Mode::kWrite);
      store.batchStats_ = store.stats_;
      store.batchError_ = {};
      store.onBatchOpened_();
    }
    txn_ = store.batch_.get();
    stats_ = store.batchStats_;
  } else {
    owned_ = std::make_unique<LmdbTxn>(store.env(), LmdbTxn::Mode::kWrite);
    txn_ = owned_.get();
    stats_ = store.stats_;
  }
}

WriteTxn::~WriteTxn() {
  // A batched operation that wrote without committing left partial changes in
  // the shared transaction: the batch must not commit.
  if (batched_ && wrote_ && !committed_ && store_.batchError_.ok()) {
    store_.batchError_ = Status::error(Code::IO, "an operation in this group commit failed after writing");
  }
}

void WriteTxn::put(MDB_dbi dbi, std::string_view key, std::string_view value) {
  wrote_ = true;
  if (!error_.ok() || txn_->get() == nullptr) return;
  auto status = txn_->put(dbi, key, value);
  if (!status.ok()) error_ = status;
}

void WriteTxn::fail(Status status) {
  if (error_.ok()) error_ = std::move(status);
}

uint64_t WriteTxn::peekId(const char* counter, uint64_t first) {
  if (auto v = get(store_.dbs().counters, counter)) {
    auto decoded = decodeCounter(*v);
    if (!decoded.ok()) {
      fail(decoded.status());
      return 0;
    }
    return decoded.value();
  }
  return first;
}

uint64_t WriteTxn::nextId(const char* counter, uint64_t first, uint64_t count) {
  uint64_t value = peekId(counter, first);
  if (value == 0) return 0;
  put(store_.dbs().counters, counter, encodeCounter(value + count));
  return value;
}

Status WriteTxn::commit() {
  if (!status().ok()) {
    Status s = status();
    if (!batched_) txn_->abort();
    return s;  // a batched one is poisoned by the destructor if it wrote
  }
  if (batched_) {
    store_.batchStats_ = stats_;
    committed_ = true;
    return {};
  }
  put(store_.dbs().counters, kStatsKey, encodeStats(stats_));
  if (!error_.ok()) {
    txn_->abort();
    return error_;
  }
  auto status = txn_->commit();
  if (status.ok()) store_.stats_ = stats_;
  if (status.ok()) store_.unsynced_ = true;
  committed_ = true;
  return status;
}

Status MetaStore::commitBatch() {
  if (!batch_) return {};
  std::unique_ptr<LmdbTxn> batch = std::move(batch_);
  Status status = batchError_;
  if (status.ok()) status = batch->status();
  if (status.ok()) status = batch->put(dbs_.counters, kStatsKey, encodeStats(batchStats_));
  if (status.ok()) status = batch->commit();
  if (status.ok()) stats_ = batchStats_;
  if (status.ok()) unsynced_ = true;
  batch->abort();
  batchError_ = {};
  auto waiters = std::move(batchWaiters_);
  batchWaiters_.clear();
  for (auto& waiter : waiters) waiter(status);
  return status;
}

Status MetaStore::sync() {
  if (!unsynced_) return {};
  Status status = env_->sync();
  if (status.ok()) unsynced_ = false;
  return status;
}

void MetaStore::whenCommitted(std::function<void(const Status&)> done) {
  if (!batch_) {
    done(Status::success());
    return;
  }
  batchWaiters_.push_back(std::move(done));
}

}  // namespace dfs::meta
