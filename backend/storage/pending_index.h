// Index changes whose records are durable in extent files but not yet committed
// to LMDB. A put is acknowledged once its records are fdatasync'ed; its index
// rows wait here and reach LMDB with the next index commit (ExtentStore's
// checkpoint, every indexCommitIntervalMs or indexCommitBytes, and with every
// remove or compaction step). Until then readers find them here first. After a
// crash, the records past each extent's committed size are read back and
// indexed again (ExtentStore::recover), so nothing acknowledged depends on this
// memory.
//
// Readers must look here BEFORE they begin their LMDB read transaction: the
// writer clears an entry only after the commit holding it, so a reader that
// misses it here then sees it in LMDB.
//
// Thread: find()/idsAfter()/empty() from any thread; add() and Commit from the
// store's writer (holding the store's commitMutex_). One internal mutex, a leaf.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "backend/storage/extent_format.h"

namespace dfs {

class PendingIndex {
 public:
  // What one group adds: the new location of each id, the locations rows its
  // records replaced (ids put again with other data), and its record bytes.
  struct Delta {
    std::map<std::string, FragmentLocation, std::less<>> fragments;
    std::vector<std::string> staleLocations;  // locationKey()s to delete
    std::set<uint32_t> extents;               // extents whose accounting changed
    uint64_t recordBytes = 0;
  };
  // Rows waiting for LMDB.
  struct Rows {
    std::unordered_map<std::string, FragmentLocation> fragments;
    std::unordered_set<std::string> staleLocations;
    std::set<uint32_t> extents;
    bool empty() const { return fragments.empty() && staleLocations.empty() && extents.empty(); }
  };

  // The writer's commit of the rows: they move aside, where readers still find
  // them, while the caller writes them into its LMDB transaction; done() after
  // the commit forgets them, otherwise they are pending again. add() is not
  // called meanwhile (the writer holds the store's commitMutex_ throughout).
  class Commit {
   public:
    explicit Commit(PendingIndex& index);
    ~Commit();
    Commit(const Commit&) = delete;
    Commit& operator=(const Commit&) = delete;
    const Rows& rows() const { return index_.committing_; }  // no lock: only readers run meanwhile
    void done() { done_ = true; }

   private:
    PendingIndex& index_;
    bool done_ = false;
  };

  void add(Delta&& delta, int64_t nowNs);
  std::optional<FragmentLocation> find(std::string_view id) const;
  // Pending ids strictly after `after` with their stored-at times, in id order.
  std::vector<std::pair<std::string, int64_t>> idsAfter(std::string_view after) const;

  bool empty() const;
  uint64_t recordBytes() const;  // appended since the last commit
  int64_t oldestNs() const;      // when the oldest pending row was added; 0 if none

 private:
  mutable std::mutex mu_;
  Rows rows_;                       // guarded by mu_
  Rows committing_;                 // written by a Commit; guarded by mu_ (swapped under it)
  uint64_t recordBytes_ = 0;        // mu_
  int64_t oldestNs_ = 0;            // mu_
  uint64_t committingBytes_ = 0;    // mu_
  int64_t committingOldestNs_ = 0;  // mu_
};

}  // namespace dfs
