// The chunk table: one record per stored chunk (id = SHA-256 of its plaintext) with
// its placement and a reference count that counts the extents, over all files,
// that point into it. A chunk whose count drops to 0 stays (and can be revived by
// a commit) until the garbage collector removes it after a grace period.
// All functions work inside a caller's WriteTxn and keep StatsRecord in step.
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "backend/meta/meta_store.h"

namespace dfs::meta {

// The chunk `id`, or nullopt when unknown (a corrupt record fails the transaction).
std::optional<ChunkRecord> tryLoadChunk(const LmdbTxn& txn, const MetaStore::Dbs& dbs,
                                        std::string_view id);
std::optional<ChunkRecord> tryLoadChunk(WriteTxn& wtx, std::string_view id);

// Adds a chunk with `refs` references (REQUIRES: not present): one write of
// its row. Counts its raw bytes, and with refs > 0 its unique and compressed
// bytes; with 0 it starts its grace period.
void insertChunk(WriteTxn& wtx, ChunkRecord record, uint32_t refs = 0);
// refcount += 1 (REQUIRES: the chunk exists); revives a chunk awaiting GC.
void addChunkRef(WriteTxn& wtx, const std::string& id);
// refcount -= 1; at 0 the chunk starts its grace period.
void dropChunkRef(WriteTxn& wtx, const std::string& id);

// Removes up to `max` chunk records with refcount 0 since `zeroBeforeNs` or earlier and
// returns them, so that their fragments can be deleted once the transaction
// committed. `after` continues a scan (empty: from the first id).
std::vector<ChunkRecord> removeUnreferencedChunks(WriteTxn& wtx, int64_t zeroBeforeNs,
                                                  size_t max, std::string* after);

// Writes the chunk accesses noted in the store (MetaStore::noteChunkAccess) to
// the chunk records, in one write transaction; returns how many were updated.
size_t flushChunkAccessTimes(MetaStore& store);

// Validates a chunk description from a client (REQUIRES nothing); INVALID on error.
Status validateChunk(const ChunkRecord& record);

}  // namespace dfs::meta
