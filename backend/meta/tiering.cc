#include "backend/meta/tiering.h"

#include "backend/meta/chunk_table.h"

namespace dfs::meta {
namespace {

constexpr size_t kScanFactor = 16;

bool sameFragments(const ChunkRecord& a, const ChunkRecord& b) {
  return a.generation == b.generation && a.storedSize == b.storedSize &&
         a.compression == b.compression && a.fragmentSize == b.fragmentSize &&
         a.fragmentChecksums == b.fragmentChecksums;
}

}  // namespace

Result<ColdPage> coldChunks(MetaStore& store, int64_t beforeNs, uint8_t belowLevel,
                            const std::string& after, size_t max) {
  flushChunkAccessTimes(store);
  auto committed = store.commitBatch();
  if (!committed.ok()) return committed;
  ColdPage page;
  LmdbTxn txn(store.env(), LmdbTxn::Mode::kRead);
  if (!txn.status().ok()) return txn.status();
  LmdbCursor cursor(txn, store.dbs().chunks);
  if (after.empty()) cursor.first();
  else cursor.seek(after);
  if (cursor.valid() && !after.empty() && cursor.key() == after) cursor.next();
  size_t scanned = 0;
  for (; cursor.valid() && page.chunks.size() < max && scanned < max * kScanFactor;
       cursor.next()) {
    ++scanned;
    page.next = std::string(cursor.key());
    auto record = decodeChunk(cursor.key(), cursor.value());
    if (!record.ok()) continue;
    const ChunkRecord& r = record.value();
    if (r.refcount == 0 || r.lastAccessNs >= beforeNs || r.tierLevel >= belowLevel) continue;
    page.chunks.push_back(std::move(record).value());
  }
  page.eof = !cursor.valid();
  return page;
}

Status retierChunk(WriteTxn& wtx, const ChunkRecord& expected, const ChunkRecord& replacement,
                   uint8_t level) {
  if (auto s = validateChunk(replacement); !s.ok()) return s;
  if (replacement.id != expected.id || replacement.plainSize != expected.plainSize ||
      replacement.k != expected.k || replacement.m != expected.m ||
      replacement.nodes != expected.nodes) {
    return Status::error(Code::INVALID,
                         "retier: a re-encoding keeps the id, size, k, m and nodes");
  }
  if (replacement.compression == 0 ? replacement.storedSize != replacement.plainSize
                                   : replacement.storedSize >= replacement.plainSize) {
    return Status::error(Code::INVALID, "retier: stored size does not match the compression");
  }
  if (replacement.generation == expected.generation && !sameFragments(replacement, expected)) {
    return Status::error(Code::INVALID, "retier: new fragments need a new generation");
  }
  if (level == 0) return Status::error(Code::INVALID, "retier: level 0");
  auto current = tryLoadChunk(wtx, expected.id);
  if (!wtx.status().ok()) return wtx.status();
  if (!current) return Status::error(Code::NOT_FOUND, "retier: chunk no longer exists");
  if (!sameFragments(*current, expected) || current->nodes != expected.nodes ||
      current->k != expected.k || current->m != expected.m) {
    return Status::error(Code::BUSY, "retier: chunk record changed meanwhile");
  }
  ChunkRecord updated = *current;
  updated.storedSize = replacement.storedSize;
  updated.compression = replacement.compression;
  updated.fragmentSize = replacement.fragmentSize;
  updated.fragmentChecksums = replacement.fragmentChecksums;
  updated.generation = replacement.generation;
  updated.tierLevel = level;
  auto& stats = wtx.stats();
  stats.rawBytes = stats.rawBytes - current->rawBytes() + updated.rawBytes();
  if (current->refcount > 0) {
    stats.compressedBytes = stats.compressedBytes - current->storedSize + updated.storedSize;
  }
  wtx.put(wtx.dbs().chunks, updated.id, encodeChunk(updated));
  return {};
}

}  // namespace dfs::meta
