#include "backend/meta/extent_map.h"

#include <map>
#include <set>

#include "backend/meta/chunk_table.h"
#include "backend/meta/inode_table.h"

namespace dfs::meta {

namespace {

// Largest inline extent we store (the volume's inlineThreshold is the client's
// policy; this bound only protects the store).
constexpr uint64_t kMaxInlineExtent = 1 << 20;
constexpr size_t kMaxExtentsPerCommit = 1 << 20;

std::string extentKey(uint64_t ino, uint64_t offset) { return u64PairKey(ino, offset); }

// Adds (sign = +1) or removes (-1) the statistics and references of one extent.
// `refCounted`: the chunk's row already counts this extent (commitWrite inserts
// new chunks with their references).
void account(WriteTxn& wtx, InodeRecord& inode, const ExtentRecord& e, int sign,
             bool refCounted = false) {
  auto& stats = wtx.stats();
  if (sign > 0) {
    stats.logicalBytes += e.length;
    inode.storedBytes += e.length;
  } else {
    stats.logicalBytes -= e.length;
    inode.storedBytes -= e.length;
  }
  if (e.kind == ExtentRecord::Kind::kInline) {
    if (sign > 0) {
      stats.uniqueBytes += e.length;
      stats.compressedBytes += e.length;
    } else {
      stats.uniqueBytes -= e.length;
      stats.compressedBytes -= e.length;
    }
  } else if (sign > 0) {
    if (!refCounted) addChunkRef(wtx, e.chunkId);
  } else {
    dropChunkRef(wtx, e.chunkId);
  }
}

void putExtent(WriteTxn& wtx, InodeRecord& inode, const ExtentRecord& e, bool refCounted = false) {
  wtx.put(wtx.dbs().extents, extentKey(inode.ino, e.fileOffset), encodeExtent(e));
  account(wtx, inode, e, +1, refCounted);
}

}  // namespace

std::vector<ExtentRecord> readExtents(const LmdbTxn& txn, const MetaStore::Dbs& dbs, uint64_t ino,
                                      uint64_t from, uint64_t to) {
  std::vector<ExtentRecord> out;
  if (from >= to) return out;
  std::string prefix = u64Key(ino);
  LmdbCursor cursor(txn, dbs.extents);
  cursor.seek(extentKey(ino, from));
  // The extent starting before `from` may reach into the range.
  if (cursor.valid()) {
    cursor.prev();
  } else {
    cursor.last();
  }
  if (!cursor.valid() || !startsWith(cursor.key(), prefix)) cursor.seek(extentKey(ino, from));
  for (; cursor.valid() && startsWith(cursor.key(), prefix); cursor.next()) {
    uint64_t offset = readBigEndian64(cursor.key(), 8);
    if (offset >= to) break;
    auto extent = decodeExtent(offset, cursor.value());
    if (!extent.ok()) continue;
    const auto& e = extent.value();
    if (e.end() <= from) continue;
    out.push_back(e.slice(std::max(from, e.fileOffset), std::min(to, e.end())));
  }
  return out;
}

void removeExtents(WriteTxn& wtx, InodeRecord& inode, uint64_t from, uint64_t to) {
  if (from >= to) return;
  std::vector<ExtentRecord> overlapping;
  {
    std::string prefix = u64Key(inode.ino);
    LmdbCursor cursor(wtx.txn(), wtx.dbs().extents);
    cursor.seek(extentKey(inode.ino, from));
    if (cursor.valid()) cursor.prev();
    else cursor.last();
    if (!cursor.valid() || !startsWith(cursor.key(), prefix)) cursor.seek(extentKey(inode.ino, from));
    for (; cursor.valid() && startsWith(cursor.key(), prefix); cursor.next()) {
      uint64_t offset = readBigEndian64(cursor.key(), 8);
      if (offset >= to) break;
      auto extent = decodeExtent(offset, cursor.value());
      if (!extent.ok()) {
        wtx.fail(extent.status());
        return;
      }
      if (extent.value().end() <= from) continue;
      overlapping.push_back(std::move(extent).value());
    }
  }
  for (const auto& e : overlapping) {
    bool keepsKey = false;
    // Pieces first, so that a chunk referenced by both never passes through 0.
    if (e.fileOffset < from) {
      putExtent(wtx, inode, e.slice(e.fileOffset, from));
      keepsKey = true;
    }
    if (e.end() > to) putExtent(wtx, inode, e.slice(to, e.end()));
    if (!keepsKey) wtx.del(wtx.dbs().extents, extentKey(inode.ino, e.fileOffset));
    account(wtx, inode, e, -1);
  }
}

void truncateData(WriteTxn& wtx, InodeRecord& inode, uint64_t newSize) {
  if (newSize < inode.size) removeExtents(wtx, inode, newSize, UINT64_MAX);
  inode.size = newSize;
}

Result<ExtentsResult> getExtents(MetaStore& store, uint64_t ino, uint64_t offset,
                                 uint64_t length) {
  LmdbTxn txn(store.env(), LmdbTxn::Mode::kRead);
  if (!txn.status().ok()) return txn.status();
  auto inode = loadInode(txn, store.dbs(), ino);
  if (!inode.ok()) return inode.status();
  ExtentsResult result;
  result.inode = inode.value();
  if (!result.inode.isRegular()) {
    return Status::error(result.inode.isDirectory() ? Code::IS_DIRECTORY : Code::INVALID,
                         "not a regular file");
  }
  uint64_t end = length > UINT64_MAX - offset ? UINT64_MAX : offset + length;
  end = std::min(end, result.inode.size);
  result.extents = readExtents(txn, store.dbs(), ino, offset, end);
  std::set<std::string> seen;
  for (const auto& e : result.extents) {
    if (e.kind != ExtentRecord::Kind::kChunk || !seen.insert(e.chunkId).second) continue;
    auto chunk = tryLoadChunk(txn, store.dbs(), e.chunkId);
    if (!chunk) return Status::error(Code::IO, "extent references a chunk that is not in the table");
    store.noteChunkAccess(e.chunkId, store.now());
    result.chunks.push_back(std::move(*chunk));
  }
  return result;
}

std::vector<bool> findChunks(MetaStore& store, const std::vector<std::string>& ids) {
  std::vector<bool> present(ids.size(), false);
  LmdbTxn txn(store.env(), LmdbTxn::Mode::kRead);
  if (!txn.status().ok()) return present;
  for (size_t i = 0; i < ids.size(); ++i) {
    present[i] = ids[i].size() == kChunkIdSize && txn.get(store.dbs().chunks, ids[i]).has_value();
  }
  return present;
}

CommitResult commitWrite(MetaStore& store, const CommitRequest& request) {
  CommitResult result;
  auto fail = [&](Code code, std::string message) {
    result.status = Status::error(code, std::move(message));
    return result;
  };
  if (request.extents.size() > kMaxExtentsPerCommit) return fail(Code::INVALID, "too many extents");
  if (request.newSize > kMaxFileSize) return fail(Code::FILE_TOO_BIG, "file size too large");
  std::map<std::string, const ChunkRecord*> offered;
  for (const auto& chunk : request.newChunks) {
    auto status = validateChunk(chunk);
    if (!status.ok()) {
      result.status = status;
      return result;
    }
    offered.emplace(chunk.id, &chunk);
  }

  WriteTxn wtx(store);
  if (!wtx.status().ok()) {
    result.status = wtx.status();
    return result;
  }
  auto loaded = loadInode(wtx, request.ino);
  if (!loaded.ok()) {
    result.status = loaded.status();
    return result;
  }
  InodeRecord inode = loaded.value();
  if (!inode.isRegular()) {
    return fail(inode.isDirectory() ? Code::IS_DIRECTORY : Code::INVALID, "not a regular file");
  }

  // Validate every extent and find the chunks it needs before changing anything.
  std::map<std::string, uint32_t> plainSizes;  // stored or offered chunks
  // Of those, the offered chunks not in the table, with how many extents name
  // them: their rows are written once, with the references already counted
  // (not inserted and then looked up and rewritten for each reference).
  std::map<std::string, uint32_t> freshRefs;
  std::set<std::string> missing;
  for (const auto& e : request.extents) {
    if (e.length == 0) return fail(Code::INVALID, "extent of length 0");
    if (e.fileOffset > kMaxFileSize || e.length > kMaxFileSize - e.fileOffset) {
      return fail(Code::FILE_TOO_BIG, "extent ends past the largest file size");
    }
    if (e.kind == ExtentRecord::Kind::kInline) {
      if (e.inlineData.size() != e.length) return fail(Code::INVALID, "inline extent length != data size");
      if (e.length > kMaxInlineExtent) return fail(Code::INVALID, "inline extent too large");
    } else if (e.kind == ExtentRecord::Kind::kChunk) {
      if (e.chunkId.size() != kChunkIdSize) return fail(Code::INVALID, "chunk id must be 32 bytes");
      auto it = plainSizes.find(e.chunkId);
      if (it == plainSizes.end()) {
        if (auto stored = tryLoadChunk(wtx, e.chunkId)) {
          it = plainSizes.emplace(e.chunkId, stored->plainSize).first;
        } else if (auto o = offered.find(e.chunkId); o != offered.end()) {
          it = plainSizes.emplace(e.chunkId, o->second->plainSize).first;
          freshRefs.emplace(e.chunkId, 0);
        } else {
          missing.insert(e.chunkId);
          continue;
        }
      }
      if (uint64_t(e.chunkOffset) + e.length > it->second) {
        return fail(Code::INVALID, "extent reaches past the end of its chunk");
      }
      if (auto fresh = freshRefs.find(e.chunkId); fresh != freshRefs.end()) fresh->second += 1;
    }
  }
  if (!missing.empty()) {
    result.missing.assign(missing.begin(), missing.end());
    return fail(Code::MISSING_CHUNKS,
                std::to_string(missing.size()) + " referenced chunks are not stored; re-upload");
  }

  for (const auto& [id, refs] : freshRefs) insertChunk(wtx, *offered.at(id), refs);
  for (const auto& chunk : request.newChunks) {
    // Offered but named by no extent: stored unreferenced, unless it is stored.
    if (!plainSizes.count(chunk.id) && !wtx.get(wtx.dbs().chunks, chunk.id))
      insertChunk(wtx, chunk);
  }
  uint64_t maxEnd = 0;
  for (const auto& e : request.extents) {
    // An earlier extent of this commit that this one overlaps drops its
    // reference here, from the row inserted above.
    removeExtents(wtx, inode, e.fileOffset, e.end());
    bool counted = e.kind == ExtentRecord::Kind::kChunk && freshRefs.count(e.chunkId) > 0;
    if (e.kind != ExtentRecord::Kind::kHole) putExtent(wtx, inode, e, counted);
    maxEnd = std::max(maxEnd, e.end());
  }
  uint64_t newSize = request.setSize ? request.newSize : std::max(inode.size, request.newSize);
  // Data committed past the final size would be invisible; drop it.
  if (maxEnd > newSize) removeExtents(wtx, inode, newSize, UINT64_MAX);
  truncateData(wtx, inode, newSize);
  inode.dataVersion += 1;
  inode.mtimeNs = request.mtimeNs != 0 ? request.mtimeNs : wtx.now();
  inode.ctimeNs = wtx.now();
  saveInode(wtx, inode);
  result.status = wtx.commit();
  result.inode = inode;
  return result;
}

}  // namespace dfs::meta
