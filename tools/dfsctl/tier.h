// `dfsctl tier`: cold tiering (DESIGN §8). Chunks that were not read for
// `coldAfterSeconds` are fetched from the storage nodes, decoded and verified,
// recompressed at a high zstd level and, where that makes them smaller,
// re-encoded onto the same nodes under the chunk's next fragment generation; the
// metadata node then swaps the chunk record (Meta.retierChunks) and the old
// fragments become orphans for `dfsctl gc`. Chunks where recompressing does not pay
// are only marked as tried at that level. Runs in dfsctl, so the CPU work stays off
// the metadata node. Wider EC profiles on nodes labelled cold are not done (yet).
#pragma once

#include <kj/async-io.h>

#include <cstdint>
#include <string>

#include "protocol/dfs.capnp.h"

namespace dfs {

struct TierOptions {
  int64_t coldAfterSeconds = 30 * 86400;
  int level = 19;
  uint64_t maxChunks = 0;  // 0: no limit
  int threads = 2;
};

struct TierReport {
  uint64_t examined = 0;      // cold chunks looked at
  uint64_t recompressed = 0;  // re-encoded and swapped in
  uint64_t unchanged = 0;     // recompressing did not make them smaller: marked as tried
  uint64_t changed = 0;       // the record changed meanwhile (written, deleted): skipped
  uint64_t failed = 0;        // unreadable or a storage node refused the new fragments
  uint64_t storedBefore = 0, storedAfter = 0;  // compressed bytes of the recompressed chunks
  uint64_t rawBefore = 0, rawAfter = 0;        // their bytes on storage nodes (incl. parity)
};

// Tiers every cold chunk; throws kj::Exception when the metadata node cannot be
// reached or answers with an error. `timeoutSeconds` bounds each metadata call.
TierReport runTier(proto::Meta::Client meta, kj::AsyncIoContext& io, int timeoutSeconds,
                   const TierOptions& options);

}  // namespace dfs
