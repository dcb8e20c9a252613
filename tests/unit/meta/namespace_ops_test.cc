#include "backend/meta/namespace_ops.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

#include "backend/meta/meta_node.h"
#include "tests/unit/meta/temp_node.h"

using namespace dfs;
using namespace dfs::meta;

namespace {

using testing::TempNode;

const Caller kUser{1000, 1000};
const Caller kRoot{0, 0};

}  // namespace

TEST_CASE("namespace: name validation, 255 vs 256 bytes") {
  TempNode t;
  std::string n255(255, 'a'), n256(256, 'a');
  auto ok = t.ns().mknod(t.root(), n255, S_IFREG | 0644, 0, kUser);
  REQUIRE(ok.ok());
  CHECK(t.ns().lookup(t.root(), n255).value().ino == ok.value().ino);
  CHECK(t.ns().mknod(t.root(), n256, S_IFREG | 0644, 0, kUser).status().code == Code::NAME_TOO_LONG);
  CHECK(t.ns().lookup(t.root(), n256).status().code == Code::NAME_TOO_LONG);
  CHECK(t.ns().mkdir(t.root(), "", 0755, kUser).status().code == Code::INVALID);
  CHECK(t.ns().mkdir(t.root(), "a/b", 0755, kUser).status().code == Code::INVALID);
  CHECK(t.ns().mkdir(t.root(), std::string("a\0b", 3), 0755, kUser).status().code == Code::INVALID);
  CHECK(t.ns().mkdir(t.root(), ".", 0755, kUser).status().code == Code::EXISTS);
  CHECK(t.ns().mkdir(t.root(), "..", 0755, kUser).status().code == Code::EXISTS);
  CHECK(t.ns().mknod(t.root(), n255, S_IFREG | 0644, 0, kUser).status().code == Code::EXISTS);
  CHECK(t.ns().lookup(t.root(), "missing").status().code == Code::NOT_FOUND);
  CHECK(t.ns().lookup(999999, "x").status().code == Code::STALE);
  CHECK(t.ns().lookup(ok.value().ino, "x").status().code == Code::NOT_DIRECTORY);
}

TEST_CASE("namespace: node types, ownership, nlink, setgid inheritance") {
  TempNode t;
  uint64_t root = t.root();
  auto dir = t.ns().mkdir(root, "d", 0775, kUser);
  REQUIRE(dir.ok());
  CHECK(dir.value().nlink == 2);
  CHECK(dir.value().uid == 1000);
  CHECK(t.ns().getattr(root).value().nlink == 3);
  auto fifo = t.ns().mknod(dir.value().ino, "fifo", S_IFIFO | 0600, 0, kUser);
  REQUIRE(fifo.ok());
  CHECK(S_ISFIFO(fifo.value().mode));
  auto dev = t.ns().mknod(dir.value().ino, "dev", S_IFCHR | 0600, 0x0501, kRoot);
  REQUIRE(dev.ok());
  CHECK(dev.value().rdev == 0x0501);
  CHECK(t.ns().mknod(dir.value().ino, "sock", S_IFSOCK | 0600, 0, kUser).ok());
  CHECK(t.ns().mknod(dir.value().ino, "blk", S_IFBLK | 0600, 7, kRoot).ok());
  CHECK(t.ns().mknod(dir.value().ino, "x", S_IFDIR | 0600, 0, kUser).status().code == Code::INVALID);
  auto link = t.ns().symlink(dir.value().ino, "ln", "../target", kUser);
  REQUIRE(link.ok());
  CHECK(S_ISLNK(link.value().mode));
  CHECK(link.value().size == 9);
  CHECK(t.ns().readlink(link.value().ino).value() == "../target");
  CHECK(t.ns().readlink(dir.value().ino).status().code == Code::INVALID);

  // setgid directory: children get its group, subdirectories inherit the bit.
  SetAttrRequest set;
  set.setMode = true;
  set.mode = 02775;
  REQUIRE(t.ns().setattr(dir.value().ino, set, kUser).ok());
  auto sub = t.ns().mkdir(dir.value().ino, "sub", 0755, Caller{2000, 3000});
  REQUIRE(sub.ok());
  CHECK(sub.value().gid == 1000);
  CHECK((sub.value().mode & S_ISGID) != 0);
  auto file = t.ns().mknod(dir.value().ino, "f", S_IFREG | 0644, 0, Caller{2000, 3000});
  CHECK(file.value().gid == 1000);
  // Creating in a directory updates its mtime and ctime.
  t.clock += 5000;
  t.ns().mknod(dir.value().ino, "later", S_IFREG | 0644, 0, kUser);
  CHECK(t.ns().getattr(dir.value().ino).value().mtimeNs == t.clock);
  CHECK(t.ns().getattr(dir.value().ino).value().ctimeNs == t.clock);
}

TEST_CASE("namespace: hard links, unlink and rmdir") {
  TempNode t;
  uint64_t root = t.root();
  auto f = t.ns().mknod(root, "f", S_IFREG | 0644, 0, kUser);
  REQUIRE(f.ok());
  auto linked = t.ns().link(f.value().ino, root, "g");
  REQUIRE(linked.ok());
  CHECK(linked.value().nlink == 2);
  CHECK(t.ns().link(f.value().ino, root, "g").status().code == Code::EXISTS);
  auto d = t.ns().mkdir(root, "d", 0755, kUser);
  CHECK(t.ns().link(d.value().ino, root, "d2").status().code == Code::NOT_PERMITTED);
  REQUIRE(t.ns().unlink(root, "f", kUser).ok());
  CHECK(t.ns().getattr(f.value().ino).value().nlink == 1);
  CHECK(t.ns().unlink(root, "f", kUser).code == Code::NOT_FOUND);
  CHECK(t.ns().unlink(root, "d", kUser).code == Code::IS_DIRECTORY);
  CHECK(t.ns().rmdir(root, "g", kUser).code == Code::NOT_DIRECTORY);
  REQUIRE(t.ns().unlink(root, "g", kUser).ok());
  CHECK(t.ns().getattr(f.value().ino).status().code == Code::STALE);

  REQUIRE(t.ns().mknod(d.value().ino, "inner", S_IFREG | 0644, 0, kUser).ok());
  CHECK(t.ns().rmdir(root, "d", kUser).code == Code::NOT_EMPTY);
  REQUIRE(t.ns().unlink(d.value().ino, "inner", kUser).ok());
  uint64_t inodesBefore = t.node->store().stats().inodes;
  REQUIRE(t.ns().rmdir(root, "d", kUser).ok());
  CHECK(t.node->store().stats().inodes == inodesBefore - 1);
  CHECK(t.ns().getattr(root).value().nlink == 2);
  CHECK(t.ns().rmdir(root, ".", kUser).code == Code::INVALID);
  CHECK(t.ns().rmdir(root, "..", kUser).code == Code::NOT_EMPTY);
}

TEST_CASE("namespace: sticky directories protect other users' entries") {
  TempNode t;
  auto tmp = t.ns().mkdir(t.root(), "tmp", 01777, kRoot);
  REQUIRE(t.ns().mknod(tmp.value().ino, "mine", S_IFREG | 0644, 0, kUser).ok());
  CHECK(t.ns().unlink(tmp.value().ino, "mine", Caller{2000, 2000}).code == Code::NOT_PERMITTED);
  CHECK(t.ns().rename(tmp.value().ino, "mine", tmp.value().ino, "x", 0, Caller{2000, 2000}).code ==
        Code::NOT_PERMITTED);
  CHECK(t.ns().unlink(tmp.value().ino, "mine", kUser).ok());
}

TEST_CASE("namespace: rename plain, over files and directories, flags") {
  TempNode t;
  uint64_t root = t.root();
  auto a = t.ns().mknod(root, "a", S_IFREG | 0644, 0, kUser).value();
  auto b = t.ns().mknod(root, "b", S_IFREG | 0644, 0, kUser).value();
  uint64_t inodes = t.node->store().stats().inodes;

  CHECK(t.ns().rename(root, "a", root, "b", 1, kUser).code == Code::EXISTS);
  CHECK(t.ns().rename(root, "a", root, "zz", 2, kUser).code == Code::NOT_FOUND);
  CHECK(t.ns().rename(root, "a", root, "b", 3, kUser).code == Code::INVALID);
  CHECK(t.ns().rename(root, "nope", root, "b", 0, kUser).code == Code::NOT_FOUND);

  // Exchange swaps atomically.
  REQUIRE(t.ns().rename(root, "a", root, "b", 2, kUser).ok());
  CHECK(t.ns().lookup(root, "a").value().ino == b.ino);
  CHECK(t.ns().lookup(root, "b").value().ino == a.ino);

  // Plain rename over an existing file replaces (and frees) it.
  REQUIRE(t.ns().rename(root, "a", root, "b", 0, kUser).ok());
  CHECK(t.ns().lookup(root, "b").value().ino == b.ino);
  CHECK(t.ns().lookup(root, "a").status().code == Code::NOT_FOUND);
  CHECK(t.ns().getattr(a.ino).status().code == Code::STALE);
  CHECK(t.node->store().stats().inodes == inodes - 1);

  // Directories: type checks, empty target, own subtree, nlink fix-ups.
  auto d1 = t.ns().mkdir(root, "d1", 0755, kUser).value();
  auto d2 = t.ns().mkdir(root, "d2", 0755, kUser).value();
  auto sub = t.ns().mkdir(d1.ino, "sub", 0755, kUser).value();
  CHECK(t.ns().rename(root, "d1", root, "b", 0, kUser).code == Code::NOT_DIRECTORY);
  CHECK(t.ns().rename(root, "b", root, "d2", 0, kUser).code == Code::IS_DIRECTORY);
  CHECK(t.ns().rename(root, "d2", root, "d1", 0, kUser).code == Code::NOT_EMPTY);
  CHECK(t.ns().rename(root, "d1", sub.ino, "x", 0, kUser).code == Code::INVALID);
  CHECK(t.ns().rename(root, "d1", d1.ino, "x", 0, kUser).code == Code::INVALID);
  uint32_t rootLinks = t.ns().getattr(root).value().nlink;
  // Move sub from d1 to d2.
  REQUIRE(t.ns().rename(d1.ino, "sub", d2.ino, "sub", 0, kUser).ok());
  CHECK(t.ns().getattr(d1.ino).value().nlink == 2);
  CHECK(t.ns().getattr(d2.ino).value().nlink == 3);
  CHECK(t.ns().lookup(sub.ino, "..").value().ino == d2.ino);
  // Replace empty directory d1 by d2 (which holds sub).
  REQUIRE(t.ns().rename(root, "d2", root, "d1", 0, kUser).ok());
  CHECK(t.ns().getattr(d1.ino).status().code == Code::STALE);
  CHECK(t.ns().getattr(root).value().nlink == rootLinks - 1);
  CHECK(t.ns().lookup(root, "d1").value().ino == d2.ino);
  // Exchange a file and a directory across parents keeps link counts right.
  auto other = t.ns().mkdir(root, "other", 0755, kUser).value();
  auto f = t.ns().mknod(other.ino, "f", S_IFREG | 0644, 0, kUser).value();
  REQUIRE(t.ns().rename(root, "d1", other.ino, "f", 2, kUser).ok());
  CHECK(t.ns().lookup(root, "d1").value().ino == f.ino);
  CHECK(t.ns().lookup(other.ino, "f").value().ino == d2.ino);
  CHECK(t.ns().getattr(other.ino).value().nlink == 3);
  CHECK(t.ns().getattr(root).value().nlink == rootLinks - 1);  // lost d2, kept other
  CHECK(t.ns().lookup(d2.ino, "..").value().ino == other.ino);
  // Renaming one hard link onto another is a no-op.
  REQUIRE(t.ns().link(b.ino, root, "b2").ok());
  REQUIRE(t.ns().rename(root, "b", root, "b2", 0, kUser).ok());
  CHECK(t.ns().getattr(b.ino).value().nlink == 2);
}

TEST_CASE("namespace: setattr mode, owner, times, chown clears setuid") {
  TempNode t;
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 06755, 0, kUser).value();
  SetAttrRequest set;
  set.setUid = true;
  set.uid = 1000;
  set.setGid = true;
  set.gid = 50;
  auto after = t.ns().setattr(f.ino, set, kUser);
  REQUIRE(after.ok());
  CHECK((after.value().mode & 07777) == 0755);
  CHECK(after.value().gid == 50);
  CHECK(S_ISREG(after.value().mode));
  SetAttrRequest times;
  times.setAtime = true;
  times.atimeNs = 123456789;
  times.setMtime = true;
  times.mtimeNow = true;
  t.clock += 777;
  auto timed = t.ns().setattr(f.ino, times, kUser).value();
  CHECK(timed.atimeNs == 123456789);
  CHECK(timed.mtimeNs == t.clock);
  CHECK(timed.ctimeNs == t.clock);
  SetAttrRequest dirSize;
  dirSize.setSize = true;
  CHECK(t.ns().setattr(t.root(), dirSize, kUser).status().code == Code::IS_DIRECTORY);
}

TEST_CASE("namespace: readdir pages over 10,000 entries in name order") {
  TempNode t;
  auto d = t.ns().mkdir(t.root(), "big", 0755, kUser).value();
  constexpr int kCount = 10000;
  std::vector<std::string> names;
  for (int i = 0; i < kCount; ++i) {
    std::string name = "f" + std::to_string((i * 7919) % kCount);
    names.push_back(name);
    REQUIRE(t.ns().mknod(d.ino, name, S_IFREG | 0644, 0, kUser).ok());
  }
  std::sort(names.begin(), names.end());
  std::vector<std::string> seen;
  std::string after;
  int pages = 0;
  while (true) {
    auto page = t.ns().readdir(d.ino, after, 333, pages % 2 == 0);
    REQUIRE(page.ok());
    ++pages;
    REQUIRE(page.value().entries.size() <= 333);
    for (const auto& e : page.value().entries) {
      seen.push_back(e.name);
      CHECK(e.type == S_IFREG);
      if (pages % 2 == 1) CHECK(e.hasAttr);
    }
    if (page.value().eof) break;
    REQUIRE(!page.value().entries.empty());
    after = page.value().entries.back().name;
  }
  CHECK(seen == names);
  CHECK(pages == (kCount + 332) / 333 + (kCount % 333 == 0 ? 1 : 0));
  CHECK(t.ns().readdir(t.root(), "", 0, false).value().entries.size() == 1);
}

TEST_CASE("namespace: state survives reopen") {
  TempNode t;
  auto d = t.ns().mkdir(t.root(), "keep", 0700, kUser).value();
  auto f = t.ns().mknod(d.ino, "file", S_IFREG | 0600, 0, kUser).value();
  REQUIRE(t.node->xattrs().set(f.ino, "user.k", "v", 0).ok());
  auto stats = t.node->store().stats();
  t.reopen();
  CHECK(t.ns().lookup(d.ino, "file").value().ino == f.ino);
  CHECK(t.node->xattrs().get(f.ino, "user.k").value() == "v");
  CHECK(t.node->store().stats().inodes == stats.inodes);
  CHECK(t.node->store().stats().files == stats.files);
  CHECK(t.node->volumes().list().size() == 1);
  auto g = t.ns().mknod(d.ino, "file2", S_IFREG | 0600, 0, kUser).value();
  CHECK(g.ino > f.ino);
}

TEST_CASE("xattrs: flags, limits, list, remove") {
  TempNode t;
  auto f = t.ns().mknod(t.root(), "f", S_IFREG | 0644, 0, kUser).value();
  auto& x = t.node->xattrs();
  CHECK(x.get(f.ino, "user.a").status().code == Code::NO_DATA);
  CHECK(x.set(f.ino, "user.a", "1", kXattrReplace).code == Code::NO_DATA);
  REQUIRE(x.set(f.ino, "user.a", "1", kXattrCreate).ok());
  CHECK(x.set(f.ino, "user.a", "2", kXattrCreate).code == Code::EXISTS);
  REQUIRE(x.set(f.ino, "user.a", "2", kXattrReplace).ok());
  CHECK(x.get(f.ino, "user.a").value() == "2");
  REQUIRE(x.set(f.ino, "user.b", std::string(65536, 'x'), 0).ok());
  CHECK(x.set(f.ino, "user.c", std::string(65537, 'x'), 0).code == Code::RANGE);
  CHECK(x.list(f.ino).value() == std::vector<std::string>{"user.a", "user.b"});
  REQUIRE(x.remove(f.ino, "user.a").ok());
  CHECK(x.remove(f.ino, "user.a").code == Code::NO_DATA);
  CHECK(x.list(f.ino).value() == std::vector<std::string>{"user.b"});
  CHECK(x.set(999999, "user.a", "1", 0).code == Code::STALE);
  // ACLs are refused, so that cp -a / setfacl fall back to chmod instead of a silent no-op.
  CHECK(x.set(f.ino, "system.posix_acl_access", std::string(28, '\2'), 0).code == Code::NOT_SUPPORTED);
}
