// What the metadata node answered, kept for the questions the kernel asks again
// and again without caching the answer itself:
//  - attributes: FUSE drops an inode's cached attributes after every write, and
//    the next chmod, chown, utimens or stat of that file asks for them again;
//  - absent extended attributes: before every write the kernel asks whether the
//    file has "security.capability" (to drop file capabilities), so a file
//    written in 1 MiB pieces costs one getxattr round trip per piece;
//  - absent names in a directory this client created: before each create the
//    kernel looks the name up (tar x, cp -a), and a directory created empty by
//    this client holds only the names it has added since;
//  - a directory's attributes after this client created an entry in it (the
//    kernel drops them and asks again for the next path walk): the metadata
//    node sets the directory's mtime and ctime to the new inode's ctime and
//    adds one link for a new subdirectory, in the same transaction.
//
// Answers are kept for `ttl` (the mount's attr_timeout, the same bound the kernel
// applies to its own attribute cache), except the attributes of an inode this
// client is the only writer of (an exclusive entry: a file it made in a
// directory delegated to it, Absorber), which are kept until the delegation
// ends or the inode changes; answers are dropped earlier when
//  - dfs-meta reports the inode changed by another client (invalidate(ino)),
//  - this client changes the inode (the change's reply replaces the attributes,
//    or invalidate(ino) for changes whose reply carries none),
//  - this client unlinks, renames or links anything through dfs-meta: every
//    cached attribute goes (the reply does not say which inode lost or gained
//    a name), while the names this client knows stay exact (renamed/removed),
//    or reconnects. An absorbed unlink or rename names its inodes
//    (entryRemoved, entryMoved): only theirs change.
// An answer that was on its way while an invalidation arrived is not stored:
// callers take a ticket() before the RPC and pass it back with the answer.
//
// Bounded: at most kMaxEntries inodes; past that, expired entries are dropped
// and, if none expired, everything.
//
// Threads: any. One leaf mutex.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "backend/client/types.h"

namespace dfs {

class MetaCache {
 public:
  static constexpr size_t kMaxEntries = 65536;
  static constexpr size_t kMaxNames = 100000;  // per directory

  // ttlNs <= 0 disables the cache (every lookup misses, nothing is stored).
  explicit MetaCache(int64_t ttlNs) : ttlNs_(ttlNs) {}

  bool enabled() const { return ttlNs_ > 0; }
  // The invalidation generation now; an answer fetched after this call is stored
  // only if no invalidation happened in between.
  uint64_t ticket() const;

  std::optional<Attr> attr(uint64_t ino, int64_t nowNs);
  // Replaces the attributes; an exclusive entry stays exclusive.
  void putAttr(const Attr& attr, uint64_t ticket, int64_t nowNs);
  // This client is the only writer of `ino` (cached attributes do not expire)
  // until dropExclusive or an invalidation of the inode.
  void makeExclusive(uint64_t ino);
  void dropExclusive(const std::vector<uint64_t>& inos);
  void dropAllExclusive();
  // The attributes of an exclusive entry (null: not exclusive, or none cached).
  std::optional<Attr> exclusiveAttr(uint64_t ino);

  // True when `name` is known to be absent on `ino`.
  bool xattrAbsent(uint64_t ino, std::string_view name, int64_t nowNs);
  void putXattrAbsent(uint64_t ino, std::string_view name, uint64_t ticket, int64_t nowNs);
  // `ino` has no xattr at all (it was just created).
  void putNoXattrs(uint64_t ino, uint64_t ticket, int64_t nowNs);

  // `dir` was just created (empty) by this client.
  void putEmptyDirectory(uint64_t dir, uint64_t ticket, int64_t nowNs);
  // True when `dir`'s names are known and `name` is not among them.
  bool nameAbsent(uint64_t dir, std::string_view name, int64_t nowNs);
  // This client created `child` as `dir`/`name`; the answer's ticket.
  void childCreated(uint64_t dir, std::string_view name, const Attr& child, uint64_t ticket);

  // This client removed (unlink, rmdir) `dir`/`name`, or renamed it to
  // `newDir`/`newName` (newDir 0: removed).
  void nameRemoved(uint64_t dir, std::string_view name, uint64_t newDir = 0,
                   std::string_view newName = {});

  // An absorbed unlink of `dir`/`name`, which named `ino` (that inode and the
  // directory change, nothing else).
  void entryRemoved(uint64_t dir, std::string_view name, uint64_t ino);
  // An absorbed rename of `ino` from `dir`/`name` to `newDir`/`newName` at
  // `ctimeNs` (dfs-meta sets the moved inode's ctime to the op's time), which
  // replaced `replaced` (0: none).
  void entryMoved(uint64_t dir, std::string_view name, uint64_t newDir, std::string_view newName,
                  uint64_t ino, int64_t ctimeNs, uint64_t replaced);

  // Every cached attribute goes (names and absent xattrs stay).
  void dropAttrs();

  void invalidate(uint64_t ino);
  void invalidateAll();

  size_t size() const;
  uint64_t hits() const;

 private:
  struct Entry {
    std::optional<Attr> attr;
    int64_t attrExpiresNs = 0;
    uint64_t attrEpoch = 0;  // valid while it equals attrEpoch_
    uint64_t exclusiveEpoch = 0;  // exclusive while it equals exclusiveEpoch_ (> 0)
    std::set<std::string, std::less<>> absentXattrs;
    bool noXattrs = false;  // every name is absent
    // Directories created by this client: every name in it (since creation).
    bool namesKnown = false;
    int64_t namesExpiresNs = 0;
    std::set<std::string, std::less<>> names;
    int64_t xattrsExpiresNs = 0;
  };
  // REQUIRES: mu_ held. The entry for `ino`, made room for if new.
  Entry& slot(uint64_t ino, int64_t nowNs);
  // REQUIRES: mu_ held. `name` leaves `dir`'s known names and enters `newDir`'s
  // (0: removed).
  void moveNameLocked(uint64_t dir, std::string_view name, uint64_t newDir,
                      std::string_view newName);

  const int64_t ttlNs_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_;  // guarded by mu_
  uint64_t generation_ = 0;                      // guarded by mu_
  uint64_t attrEpoch_ = 0;                       // bumped to drop every attr; mu_
  uint64_t exclusiveEpoch_ = 1;                  // bumped to end every exclusivity; mu_
  uint64_t hits_ = 0;                            // guarded by mu_
};

}  // namespace dfs
