#include "backend/client/meta_cache.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>

using dfs::Attr;
using dfs::MetaCache;

namespace {
constexpr int64_t kSec = 1000000000;

Attr attrOf(uint64_t ino, uint64_t size) {
  Attr a;
  a.ino = ino;
  a.size = size;
  return a;
}
}  // namespace

TEST_CASE("meta cache answers attributes until they expire") {
  MetaCache cache(kSec);
  CHECK_FALSE(cache.attr(5, 0));
  cache.putAttr(attrOf(5, 100), cache.ticket(), 0);
  REQUIRE(cache.attr(5, kSec - 1));
  CHECK(cache.attr(5, kSec - 1)->size == 100);
  CHECK_FALSE(cache.attr(5, kSec));  // expired at exactly ttl
  // A newer answer replaces the old one and restarts the clock.
  cache.putAttr(attrOf(5, 200), cache.ticket(), kSec);
  CHECK(cache.attr(5, kSec + 10)->size == 200);
  CHECK(cache.hits() == 3);
}

TEST_CASE("meta cache drops what an invalidation names, and everything on invalidateAll") {
  MetaCache cache(kSec);
  cache.putAttr(attrOf(1, 1), cache.ticket(), 0);
  cache.putAttr(attrOf(2, 2), cache.ticket(), 0);
  cache.putXattrAbsent(2, "security.capability", cache.ticket(), 0);
  cache.invalidate(1);
  CHECK_FALSE(cache.attr(1, 1));
  CHECK(cache.attr(2, 1));
  CHECK(cache.xattrAbsent(2, "security.capability", 1));
  cache.invalidate(2);
  CHECK_FALSE(cache.xattrAbsent(2, "security.capability", 1));
  cache.putAttr(attrOf(3, 3), cache.ticket(), 0);
  cache.invalidateAll();
  CHECK_FALSE(cache.attr(3, 1));
  CHECK(cache.size() == 0);
}

TEST_CASE("meta cache refuses an answer that an invalidation overtook") {
  MetaCache cache(kSec);
  uint64_t ticket = cache.ticket();  // the RPC starts
  cache.invalidate(9);               // another client changes inode 9 meanwhile
  cache.putAttr(attrOf(9, 1), ticket, 0);
  CHECK_FALSE(cache.attr(9, 1));
  cache.putXattrAbsent(9, "user.a", ticket, 0);
  CHECK_FALSE(cache.xattrAbsent(9, "user.a", 1));
  cache.putNoXattrs(9, ticket, 0);
  CHECK_FALSE(cache.xattrAbsent(9, "user.b", 1));
  // An unrelated invalidation also refuses it: the cache cannot tell them apart.
  ticket = cache.ticket();
  cache.invalidate(10);
  cache.putAttr(attrOf(9, 1), ticket, 0);
  CHECK_FALSE(cache.attr(9, 1));
}

TEST_CASE("meta cache knows absent xattrs by name, or all of them for a new inode") {
  MetaCache cache(kSec);
  cache.putXattrAbsent(4, "security.capability", cache.ticket(), 0);
  CHECK(cache.xattrAbsent(4, "security.capability", 1));
  CHECK_FALSE(cache.xattrAbsent(4, "user.other", 1));
  CHECK_FALSE(cache.xattrAbsent(4, "security.capability", kSec));  // expired
  cache.putNoXattrs(6, cache.ticket(), 0);
  CHECK(cache.xattrAbsent(6, "user.anything", 1));
  CHECK(cache.xattrAbsent(6, "security.capability", 1));
  // Expired names do not come back with a later answer for another name.
  cache.putXattrAbsent(6, "user.x", cache.ticket(), 2 * kSec);
  CHECK(cache.xattrAbsent(6, "user.x", 2 * kSec + 1));
  CHECK_FALSE(cache.xattrAbsent(6, "user.anything", 2 * kSec + 1));
}

TEST_CASE("meta cache disabled with a zero ttl") {
  MetaCache cache(0);
  cache.putAttr(attrOf(1, 1), cache.ticket(), 0);
  cache.putNoXattrs(1, cache.ticket(), 0);
  CHECK_FALSE(cache.attr(1, 0));
  CHECK_FALSE(cache.xattrAbsent(1, "user.a", 0));
  CHECK(cache.size() == 0);
}

TEST_CASE("meta cache stays bounded") {
  MetaCache cache(kSec);
  for (uint64_t ino = 1; ino <= MetaCache::kMaxEntries; ++ino) {
    cache.putAttr(attrOf(ino, ino), cache.ticket(), 0);
  }
  CHECK(cache.size() == MetaCache::kMaxEntries);
  // Full and nothing expired: everything goes, the newest is kept.
  cache.putAttr(attrOf(MetaCache::kMaxEntries + 1, 1), cache.ticket(), 1);
  CHECK(cache.size() == 1);
  CHECK(cache.attr(MetaCache::kMaxEntries + 1, 2));
  for (uint64_t ino = 1; ino < MetaCache::kMaxEntries; ++ino) {
    cache.putAttr(attrOf(ino, ino), cache.ticket(), kSec / 2);
  }
  CHECK(cache.size() == MetaCache::kMaxEntries);
  // Full again: only the one entry that expired (put at 1) is dropped.
  cache.putAttr(attrOf(MetaCache::kMaxEntries + 2, 1), cache.ticket(), kSec + 1);
  CHECK(cache.size() == MetaCache::kMaxEntries);
  CHECK_FALSE(cache.attr(MetaCache::kMaxEntries + 1, kSec + 1));
  CHECK(cache.attr(7, kSec + 1));
}

TEST_CASE("meta cache knows the names of a directory it created, until told otherwise") {
  MetaCache cache(kSec);
  cache.putEmptyDirectory(10, cache.ticket(), 0);
  CHECK(cache.nameAbsent(10, "a", 1));
  Attr child = attrOf(11, 0);
  child.mode = S_IFREG | 0644;
  cache.childCreated(10, "a", child, cache.ticket());
  CHECK_FALSE(cache.nameAbsent(10, "a", 1));  // now present: ask dfs-meta
  CHECK(cache.nameAbsent(10, "b", 1));
  CHECK_FALSE(cache.nameAbsent(10, "b", kSec));  // expired
  CHECK_FALSE(cache.nameAbsent(12, "b", 1));     // a directory it did not create
  cache.invalidate(10);                          // another client changed it
  CHECK_FALSE(cache.nameAbsent(10, "b", 1));
}

TEST_CASE("meta cache updates a directory's attributes for an entry this client created") {
  MetaCache cache(kSec);
  Attr dir = attrOf(20, 0);
  dir.mode = S_IFDIR | 0755;
  dir.nlink = 2;
  dir.mtimeNs = dir.ctimeNs = 5;
  cache.putAttr(dir, cache.ticket(), 0);
  Attr sub = attrOf(21, 0);
  sub.mode = S_IFDIR | 0755;
  sub.ctimeNs = 77;
  cache.childCreated(20, "sub", sub, cache.ticket());
  REQUIRE(cache.attr(20, 1));
  CHECK(cache.attr(20, 1)->mtimeNs == 77);
  CHECK(cache.attr(20, 1)->ctimeNs == 77);
  CHECK(cache.attr(20, 1)->nlink == 3);
  Attr file = attrOf(22, 0);
  file.mode = S_IFREG | 0644;
  file.ctimeNs = 78;
  uint64_t ticket = cache.ticket();
  cache.invalidate(99);  // an unrelated change overtook the create's answer
  cache.childCreated(20, "f", file, ticket);
  CHECK_FALSE(cache.attr(20, 1));  // not guessed: asked again
  // An answer read before the create is refused afterwards (and what is
  // cached is dropped too: the cache cannot tell which is newer).
  cache.putAttr(dir, cache.ticket(), 0);
  ticket = cache.ticket();
  cache.childCreated(20, "g", file, cache.ticket());
  REQUIRE(cache.attr(20, 1));
  CHECK(cache.attr(20, 1)->mtimeNs == 78);
  cache.putAttr(dir, ticket, 0);
  CHECK_FALSE(cache.attr(20, 1));
}

TEST_CASE("meta cache keeps names exact across this client's unlink and rename, drops attributes") {
  MetaCache cache(kSec);
  cache.putEmptyDirectory(30, cache.ticket(), 0);
  cache.putEmptyDirectory(31, cache.ticket(), 0);
  Attr f = attrOf(32, 1);
  f.mode = S_IFREG | 0644;
  cache.childCreated(30, "tmp", f, cache.ticket());
  cache.putAttr(f, cache.ticket(), 0);
  CHECK_FALSE(cache.nameAbsent(30, "tmp", 1));
  cache.nameRemoved(30, "tmp", 31, "final");  // rename 30/tmp -> 31/final
  CHECK(cache.nameAbsent(30, "tmp", 1));
  CHECK_FALSE(cache.nameAbsent(31, "final", 1));
  CHECK_FALSE(cache.attr(32, 1));  // its ctime changed: asked again
  cache.putAttr(f, cache.ticket(), 0);
  cache.nameRemoved(31, "final");  // unlink
  CHECK(cache.nameAbsent(31, "final", 1));
  CHECK_FALSE(cache.attr(32, 1));
}

TEST_CASE("meta cache keeps exclusive attributes past the ttl until exclusivity ends") {
  MetaCache cache(kSec);
  cache.putAttr(attrOf(4, 1), cache.ticket(), 0);
  cache.putAttr(attrOf(5, 1), cache.ticket(), 0);
  cache.putAttr(attrOf(6, 1), cache.ticket(), 0);
  cache.makeExclusive(4);
  cache.makeExclusive(5);
  cache.makeExclusive(6);
  CHECK(cache.attr(4, 10 * kSec));
  // A commit's reply replaces the attributes and keeps the entry exclusive.
  cache.putAttr(attrOf(4, 77), cache.ticket(), 0);
  REQUIRE(cache.attr(4, 10 * kSec));
  CHECK(cache.attr(4, 10 * kSec)->size == 77);
  // The delegation of 5's directory ends: back to the ttl (long past).
  cache.dropExclusive({5});
  CHECK_FALSE(cache.attr(5, 10 * kSec));
  CHECK(cache.attr(4, 10 * kSec));
  // An invalidation removes the entry; a new answer is not exclusive.
  cache.invalidate(4);
  cache.putAttr(attrOf(4, 1), cache.ticket(), 20 * kSec);
  CHECK_FALSE(cache.attr(4, 22 * kSec));
  // A new session ends every exclusivity.
  CHECK(cache.attr(6, 30 * kSec));
  cache.dropAllExclusive();
  CHECK_FALSE(cache.attr(6, 30 * kSec));
  // A synchronous unlink or rename elsewhere still drops exclusive attributes.
  cache.putAttr(attrOf(7, 1), cache.ticket(), 0);
  cache.makeExclusive(7);
  cache.nameRemoved(1, "x");
  CHECK_FALSE(cache.attr(7, 1));
}

TEST_CASE("meta cache: an absorbed unlink or rename changes only the inodes it names") {
  MetaCache cache(kSec);
  Attr dir = attrOf(1, 0);
  dir.mode = S_IFDIR | 0755;
  cache.putAttr(dir, cache.ticket(), 0);
  cache.putEmptyDirectory(1, cache.ticket(), 0);
  for (uint64_t ino : {10, 11, 12, 13}) {
    Attr a = attrOf(ino, ino);
    a.mode = S_IFREG | 0644;
    a.ctimeNs = 5;
    cache.childCreated(1, "f" + std::to_string(ino), a, cache.ticket());
    cache.putAttr(a, cache.ticket(), 0);
  }
  uint64_t before = cache.ticket();
  cache.entryRemoved(1, "f10", 10);
  CHECK(cache.ticket() != before);  // answers on their way are not stored
  CHECK_FALSE(cache.attr(10, 1));
  CHECK_FALSE(cache.attr(1, 1));  // the directory's mtime changed
  CHECK(cache.attr(11, 1));
  CHECK(cache.nameAbsent(1, "f10", 1));
  // f11 moves over f12: 11 gets the rename's ctime, 12 lost its name.
  cache.entryMoved(1, "f11", 1, "f12", 11, 999, 12);
  REQUIRE(cache.attr(11, 1));
  CHECK(cache.attr(11, 1)->ctimeNs == 999);
  CHECK_FALSE(cache.attr(12, 1));
  CHECK(cache.attr(13, 1));
  CHECK(cache.nameAbsent(1, "f11", 1));
  CHECK_FALSE(cache.nameAbsent(1, "f12", 1));
}
