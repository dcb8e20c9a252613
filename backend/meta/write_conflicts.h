// Detection and last-writer-wins resolution of concurrent writes to one file.
//
// Each commitWrite carries the writer's hybrid logical clock timestamp (HLC)
// and the file's dataVersion the writer based its write on. The tracker keeps,
// per inode and in memory only, the byte ranges of recent commits (the last
// kMaxCommits per inode, none older than kMaxAgeNs) with their HLC, session and
// resulting dataVersion. An incoming commit whose ranges overlap a range that
// ANOTHER session committed with a dataVersion > the incoming baseVersion is a
// conflict: the writers did not see each other. Resolution is last-writer-wins
// by HLC: the parts of the incoming extents overlapping a range with a newer
// HLC are dropped (the newer data stays), everything else is applied. Ranges
// of different writers that do not overlap simply merge (commitWrite replaces
// only the ranges it names).
//
// After a metadata node restart the history is empty: conflicts in flight at
// that moment resolve as "last commit wins" (no worse than without tracking).
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/meta/meta_store.h"

namespace dfs::meta {

struct ConflictOutcome {
  uint64_t conflicts = 0;  // overlapping ranges from other sessions since the base version
  uint64_t droppedBytes = 0;  // incoming bytes dropped because a newer-HLC range holds them
  std::string detail;       // human-readable, for the log line (empty without conflict)
};

class WriteConflicts {
 public:
  static constexpr size_t kMaxCommits = 64;
  static constexpr int64_t kMaxAgeNs = int64_t(60) * 1000000000;

  // Checks `extents` (incoming commit of `session` on `ino`) against the recent
  // commits; on conflict removes from `extents` the parts that lose to a newer
  // HLC. `hlc` 0 (a client without HLC) never wins against a tracked range and
  // never conflicts with anything (it cannot be ordered).
  ConflictOutcome resolve(uint64_t ino, uint64_t session, uint64_t baseVersion, uint64_t hlc,
                          std::vector<ExtentRecord>& extents, int64_t nowNs);
  // Records a committed write (its extents as applied) that produced `version`.
  void record(uint64_t ino, uint64_t session, uint64_t version, uint64_t hlc,
              const std::vector<ExtentRecord>& extents, int64_t nowNs);
  // The inode is gone (or truncated by setattr): its history no longer matters.
  void forget(uint64_t ino) { recent_.erase(ino); }

  // Counts conflicts of a commit that was applied (resolve() does not count, so
  // that a commit retried after missingChunks is counted once).
  void count(uint64_t conflicts);
  uint64_t total() const { return total_; }

 private:
  struct Range {
    uint64_t begin = 0, end = 0;
    uint64_t hlc = 0;
    uint64_t session = 0;
    uint64_t version = 0;
    int64_t atNs = 0;
  };
  void prune(std::deque<Range>& ranges, int64_t nowNs);

  std::unordered_map<uint64_t, std::deque<Range>> recent_;
  uint64_t total_ = 0;
};

// The part of `e` in [from, to) (holes included; REQUIRES overlap).
ExtentRecord clipExtent(const ExtentRecord& e, uint64_t from, uint64_t to);

}  // namespace dfs::meta
