// Replays the write-back journals that earlier client instances left in a
// cache directory (dfs-fuse killed or crashed before committing). For each, in
// the order they were written: ask the metadata node which records are already
// committed (Meta.journalApplied: a mark per inode), re-apply the others
// through the data path (which journals them anew), commit, then delete the
// old journal and tell the metadata node to forget its marks. Writes to files
// that no longer exist are dropped and logged. Idempotent: a crash during
// replay leaves the old journal in place and the next mount replays again.
//
// Thread: the caller's (before the file system is served).
#pragma once

#include "backend/client/data_path.h"
#include "backend/client/journal.h"
#include "backend/client/meta_client.h"

namespace dfs {

struct ReplayStats {
  uint64_t journals = 0;
  uint64_t replayed = 0;  // records re-applied
  uint64_t skipped = 0;   // records already committed
  uint64_t dropped = 0;   // records of files that are gone
  uint64_t bytes = 0;     // bytes re-applied
};

Result<ReplayStats> replayJournals(Journal& journal, MetaClient& meta, DataPath& data);

}  // namespace dfs
