// File contents as a map from file offset to extents: each extent points into a
// chunk's plaintext or holds inline bytes; ranges without an extent are holes.
// Extents of one file never overlap. This module reads the map, commits new
// extents (the one atomic write of a file's data) and truncates.
//
// Invariants kept in every transaction: chunk refcount == number of extents that
// reference the chunk; inode.storedBytes == sum of the inode's extent lengths;
// stats.logicalBytes == sum of all extent lengths (inline bytes also count in
// uniqueBytes and compressedBytes).
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <string>
#include <vector>

#include "backend/meta/meta_store.h"

namespace dfs::meta {

// Removes the data in [from, to) of `inode` (clipping extents that straddle the
// bounds), dropping chunk references. Updates inode.storedBytes; the caller saves.
void removeExtents(WriteTxn& wtx, InodeRecord& inode, uint64_t from, uint64_t to);
// Sets the size, dropping data past a smaller size. Does not touch times/versions.
void truncateData(WriteTxn& wtx, InodeRecord& inode, uint64_t newSize);

// Extents overlapping [from, to) in file order, clipped to that range.
std::vector<ExtentRecord> readExtents(const LmdbTxn& txn, const MetaStore::Dbs& dbs, uint64_t ino,
                                      uint64_t from, uint64_t to);

struct ExtentsResult {
  InodeRecord inode;
  std::vector<ExtentRecord> extents;
  std::vector<ChunkRecord> chunks;  // every chunk referenced by `extents`, once
};
// Read transaction; range clipped to the file size.
Result<ExtentsResult> getExtents(MetaStore& store, uint64_t ino, uint64_t offset, uint64_t length);

// Which ids name a known chunk (including refcount-0 chunks awaiting GC).
std::vector<bool> findChunks(MetaStore& store, const std::vector<std::string>& ids);

struct CommitRequest {
  uint64_t ino = 0;
  std::vector<ExtentRecord> extents;  // kHole punches, kChunk/kInline replace
  std::vector<ChunkRecord> newChunks;
  uint64_t newSize = 0;
  bool setSize = false;
  int64_t mtimeNs = 0;  // 0: now
};
struct CommitResult {
  Status status;
  InodeRecord inode;
  std::vector<std::string> missing;  // with MISSING_CHUNKS
};
// One write transaction: all or nothing.
CommitResult commitWrite(MetaStore& store, const CommitRequest& request);

}  // namespace dfs::meta
