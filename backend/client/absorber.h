// Namespace operations acknowledged before dfs-meta applies them ("absorbed").
//
// A directory this mount makes (Meta.mkdirDelegated, or an absorbed mkdir) is
// delegated to its session: until another session touches it, which dfs-meta
// first recalls (ClientCallback.flush), nobody else adds or removes names in
// it. Inside such a directory this mount knows every name, so it can decide a
// create, mkdir, symlink, unlink, rmdir or rename (files), or a chmod/chown/
// utimens of a delegated directory, exactly as dfs-meta would, and answer at
// once. The change is appended to the journal (so a kill -9 loses nothing
// acknowledged), queued, and sent in order, in batches (Meta.applyOps), by one
// sender thread; inode numbers come from ranges reserved ahead
// (Meta.reserveInodes) and times from this client's clock.
//
// Order: every other call this mount makes to dfs-meta first waits until what
// is queued has been applied (barrier()), so dfs-meta never sees an inode
// before its create. A recall, a change this mount makes synchronously inside
// a delegated directory, or a new session (after a dfs-meta restart, which
// forgets delegations) ends absorption in that directory (or all of them).
//
// An absorbed op that dfs-meta refuses (only a bug or a crash in between can
// cause that) is logged and counted (dfs_fuse_absorbed_failed_total); the
// mount's cached attributes are dropped.
//
// The files made here are this mount's alone while the directory is delegated,
// so their cached attributes do not expire (MetaCache::makeExclusive) until the
// delegation ends; an absorbed unlink or rename changes only the inodes it names.
// The kernel may keep names in a delegated directory longer than entry_timeout
// (the mount's delegated_timeout): when the delegation ends, for whatever
// reason, every name it knows there is invalidated in the kernel.
//
// Threads: any; one mutex (never held across an RPC; only MetaCache's leaf
// mutex is taken under it) and the sender.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backend/client/journal.h"
#include "backend/client/types.h"
#include "backend/common/status.h"

namespace dfs {

class MetaClient;

class Absorber {
 public:
  static constexpr uint32_t kReserve = 1024;     // inode numbers per reserveInodes
  static constexpr size_t kBatch = 1024;         // ops per applyOps
  static constexpr size_t kMaxDirectories = 65536;  // delegated directories kept (past it, others are given up)
  static constexpr size_t kMaxNames = 100000;    // names per delegated directory

  Absorber(MetaClient& meta, Journal& journal);
  // Sends what is queued (bounded by the op timeout) and stops the sender.
  ~Absorber();
  Absorber(const Absorber&) = delete;
  Absorber& operator=(const Absorber&) = delete;

  // True on the sender thread (its calls do not wait for the barrier).
  static bool onSenderThread();

  // This mount made `attr.ino` (empty) with Meta.mkdirDelegated.
  void adopt(const Attr& attr);
  bool delegated(uint64_t dir);

  // Each returns nullopt when the change cannot be absorbed (the caller asks
  // dfs-meta instead), else its outcome as dfs-meta would have answered.
  // `mode` carries the type: S_IFREG (`open`: the caller holds it open, as
  // Meta.create), S_IFDIR or S_IFLNK (`target`).
  std::optional<Result<Attr>> create(uint64_t parent, std::string_view name, uint32_t mode,
                                     std::string_view target, bool open, const Caller& caller);
  // chmod/chown/utimens of a delegated directory, or of a file made in one
  // (its exclusive cached attributes are the base).
  std::optional<Result<Attr>> setattr(uint64_t ino, const SetAttrRequest& set, const Caller& caller);
  std::optional<Status> remove(uint64_t parent, std::string_view name, bool directory,
                               const Caller& caller);
  std::optional<Status> rename(uint64_t parent, std::string_view name, uint64_t newParent,
                               std::string_view newName, uint32_t flags, const Caller& caller);
  // Queues the release of a handle (in order after the create); false: not
  // absorbing, the caller releases itself.
  bool release(uint64_t ino);
  // An open (no truncate) of a file made in a delegated directory: its
  // attributes, the open queued in order (not journaled: a handle dies with
  // the process); nullopt when not such a file.
  std::optional<Result<Attr>> open(uint64_t ino, bool write);
  // In a delegated directory: NOT_FOUND, or the entry's attributes when known.
  std::optional<Result<Attr>> lookup(uint64_t parent, std::string_view name);
  // `name` is in the delegated directory `parent`.
  bool hasName(uint64_t parent, std::string_view name);
  // The exact attributes of a delegated directory.
  std::optional<Attr> directoryAttr(uint64_t ino);

  // This mount changes `dir` synchronously (link, mknod, a directory rename...):
  // no more absorbing there.
  void giveUp(uint64_t dir);
  // dfs-meta recalled `inodes`: gives up those that are delegated directories
  // and returns once everything queued was applied.
  void recall(const std::vector<uint64_t>& inodes);
  // A new session: dfs-meta no longer knows this mount's delegations.
  void sessionChanged();
  // Returns once every op queued before the call has been applied (or
  // refused, logged); IO after the op timeout.
  Status barrier();

  uint64_t absorbed() const;
  size_t pending() const;

 private:
  struct Child {
    uint64_t ino;
    uint32_t mode;
  };
  struct Directory {
    Attr attr;
    std::map<std::string, Child, std::less<>> names;
  };
  struct Pending {
    uint64_t opSeq;       // MetaClient OpId seq
    uint64_t journalSeq;  // 0: not journaled (release)
    std::string bytes;    // a NamespaceOp message
  };
  // The names of directories whose delegation ended: the kernel was allowed
  // to keep them longer, so they are invalidated once mu_ is released.
  using Forgotten = std::vector<std::pair<uint64_t, std::string>>;
  // REQUIRES: mu_. Gives up directories (not `keep`) until one more fits.
  void makeRoom(uint64_t keep, Forgotten& out);
  // REQUIRES: mu_. The delegated directory, or null.
  Directory* directory(uint64_t dir);
  // REQUIRES: mu_. No more absorbing in `dir`; its files stop being exclusive
  // (MetaCache, unless `keepExclusive`: the caller ends all at once); its names
  // are added to `out`, for endDelegation() after mu_.
  void forget(uint64_t dir, Forgotten& out, bool keepExclusive = false);
  void endDelegation(Forgotten&& forgotten);
  // REQUIRES: mu_ held by `lock`. A fresh inode number (may drop the lock to reserve).
  Result<uint64_t> takeIno(std::unique_lock<std::mutex>& lock);
  // REQUIRES: mu_. Journals and queues the op `build` fills in.
  template <typename Fn>
  Status enqueue(int64_t timeNs, const Caller& caller, bool journaled, Fn&& build);
  void senderMain();

  MetaClient& meta_;
  Journal& journal_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<uint64_t, Directory> dirs_;  // delegated directories; mu_
  uint64_t nextIno_ = 0, endIno_ = 0;             // reserved range; mu_
  bool reserving_ = false;                        // mu_
  std::deque<Pending> queue_;                     // mu_
  uint64_t queued_ = 0, applied_ = 0;             // ops ever queued / applied; mu_
  uint64_t absorbed_ = 0;                         // mu_
  bool stop_ = false;                             // mu_
  std::thread sender_;
};

}  // namespace dfs
