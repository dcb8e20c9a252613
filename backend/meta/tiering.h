// Cold tiering on the metadata node's side (DESIGN §8): finding chunks that were
// not read for a while, and swapping in chunk records that `dfsctl tier` re-encoded
// (recompressed at a high zstd level) after it stored their new fragments under the
// next generation's fragment ids. The old fragments become orphans that the garbage
// collector's orphan scan deletes; a reader that still holds the old record fails
// to read them and asks for the extents again (DataPath::readCommitted).
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/common/status.h"
#include "backend/meta/meta_store.h"

namespace dfs::meta {

struct ColdPage {
  std::vector<ChunkRecord> chunks;
  std::string next;  // key to continue after
  bool eof = false;  // the scan reached the end of the chunk table
};

// Records from after `after` (empty: the first) with refcount > 0, lastAccess
// before `beforeNs` and tierLevel < `belowLevel`: at most `max` of them, looking
// at no more than `max` * 16 records. Flushes the noted chunk accesses first, so a
// chunk read a moment ago is not cold.
Result<ColdPage> coldChunks(MetaStore& store, int64_t beforeNs, uint8_t belowLevel,
                            const std::string& after, size_t max);

// Replaces chunk `expected.id`'s record by `replacement`, tried at zstd `level`.
// NOT_FOUND when the chunk is gone, BUSY when its record differs from `expected`
// (generation, nodes, checksums or sizes), INVALID when `replacement` changes what
// a re-encoding may not (id, plainSize, k, m, nodes) or is inconsistent; in those
// cases nothing is written. Keeps the raw and compressed byte counts in step.
Status retierChunk(WriteTxn& wtx, const ChunkRecord& expected, const ChunkRecord& replacement,
                   uint8_t level);

}  // namespace dfs::meta
