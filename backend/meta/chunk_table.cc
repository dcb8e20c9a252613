#include "backend/meta/chunk_table.h"

namespace dfs::meta {

std::optional<ChunkRecord> tryLoadChunk(const LmdbTxn& txn, const MetaStore::Dbs& dbs,
                                        std::string_view id) {
  auto v = txn.get(dbs.chunks, id);
  if (!v) return std::nullopt;
  auto decoded = decodeChunk(id, *v);
  if (!decoded.ok()) return std::nullopt;
  return std::move(decoded).value();
}

std::optional<ChunkRecord> tryLoadChunk(WriteTxn& wtx, std::string_view id) {
  auto v = wtx.get(wtx.dbs().chunks, id);
  if (!v) return std::nullopt;
  auto decoded = decodeChunk(id, *v);
  if (!decoded.ok()) {
    wtx.fail(decoded.status());
    return std::nullopt;
  }
  return std::move(decoded).value();
}

void insertChunk(WriteTxn& wtx, ChunkRecord record, uint32_t refs) {
  record.refcount = refs;
  record.zeroSinceNs = refs == 0 ? wtx.now() : 0;
  record.lastAccessNs = wtx.now();
  auto& stats = wtx.stats();
  stats.chunks += 1;
  stats.rawBytes += record.rawBytes();
  if (refs == 0) {
    stats.unreferencedChunks += 1;
  } else {
    stats.uniqueBytes += record.plainSize;
    stats.compressedBytes += record.storedSize;
  }
  wtx.put(wtx.dbs().chunks, record.id, encodeChunk(record));
}

void addChunkRef(WriteTxn& wtx, const std::string& id) {
  auto record = tryLoadChunk(wtx, id);
  if (!record) {
    wtx.fail(Status::error(Code::IO, "chunk table: reference to unknown chunk"));
    return;
  }
  if (record->refcount == 0) {
    auto& stats = wtx.stats();
    stats.unreferencedChunks -= 1;
    stats.uniqueBytes += record->plainSize;
    stats.compressedBytes += record->storedSize;
    record->zeroSinceNs = 0;
  }
  record->refcount += 1;
  wtx.put(wtx.dbs().chunks, id, encodeChunk(*record));
}

void dropChunkRef(WriteTxn& wtx, const std::string& id) {
  auto record = tryLoadChunk(wtx, id);
  if (!record || record->refcount == 0) {
    wtx.fail(Status::error(Code::IO, "chunk table: reference count underflow"));
    return;
  }
  record->refcount -= 1;
  if (record->refcount == 0) {
    auto& stats = wtx.stats();
    stats.unreferencedChunks += 1;
    stats.uniqueBytes -= record->plainSize;
    stats.compressedBytes -= record->storedSize;
    record->zeroSinceNs = wtx.now();
  }
  wtx.put(wtx.dbs().chunks, id, encodeChunk(*record));
}

std::vector<ChunkRecord> removeUnreferencedChunks(WriteTxn& wtx, int64_t zeroBeforeNs,
                                                  size_t max, std::string* after) {
  std::vector<ChunkRecord> removed;
  if (!wtx.status().ok()) {
    after->clear();
    return removed;
  }
  {
    LmdbCursor cursor(wtx.txn(), wtx.dbs().chunks);
    size_t scanned = 0;
    if (after->empty()) cursor.first();
    else cursor.seek(*after);
    if (cursor.valid() && !after->empty() && cursor.key() == *after) cursor.next();
    after->clear();
    for (; cursor.valid() && removed.size() < max && scanned < max * 64; cursor.next()) {
      ++scanned;
      *after = std::string(cursor.key());
      auto record = decodeChunk(cursor.key(), cursor.value());
      if (!record.ok()) continue;
      if (record.value().refcount != 0 || record.value().zeroSinceNs > zeroBeforeNs) continue;
      removed.push_back(std::move(record).value());
    }
    if (!cursor.valid()) after->clear();  // scan complete
  }
  for (const auto& record : removed) {
    wtx.del(wtx.dbs().chunks, record.id);
    auto& stats = wtx.stats();
    stats.chunks -= 1;
    stats.unreferencedChunks -= 1;
    stats.rawBytes -= record.rawBytes();
  }
  return removed;
}

size_t flushChunkAccessTimes(MetaStore& store) {
  auto accesses = store.takeChunkAccesses();
  if (accesses.empty()) return 0;
  WriteTxn wtx(store);
  size_t updated = 0;
  for (const auto& [id, ns] : accesses) {
    auto record = tryLoadChunk(wtx, id);
    if (!record || record->lastAccessNs >= ns) continue;
    record->lastAccessNs = ns;
    wtx.put(wtx.dbs().chunks, id, encodeChunk(*record));
    ++updated;
  }
  return wtx.commit().ok() ? updated : 0;
}

Status validateChunk(const ChunkRecord& r) {
  if (r.id.size() != kChunkIdSize) return Status::error(Code::INVALID, "chunk id must be 32 bytes");
  if (r.k < 1 || r.k > 32 || r.m > 16) return Status::error(Code::INVALID, "chunk k/m out of range");
  size_t n = size_t(r.k) + r.m;
  if (r.nodes.size() != n) return Status::error(Code::INVALID, "chunk needs k+m node ids");
  if (r.fragmentChecksums.size() != n) {
    return Status::error(Code::INVALID, "chunk needs k+m fragment checksums");
  }
  if (r.plainSize == 0) return Status::error(Code::INVALID, "chunk plainSize is 0");
  if (r.compression > 1) return Status::error(Code::INVALID, "unknown chunk compression");
  if (r.generation > 3) return Status::error(Code::INVALID, "chunk generation out of range");
  if (r.storedSize == 0 || uint64_t(r.fragmentSize) * r.k < r.storedSize) {
    return Status::error(Code::INVALID, "chunk k*fragmentSize smaller than storedSize");
  }
  return {};
}

}  // namespace dfs::meta
