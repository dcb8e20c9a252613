#include "backend/meta/namespace_ops.h"

#include <sys/stat.h>

#include <optional>

#include "backend/meta/extent_map.h"
#include "backend/meta/inode_table.h"

namespace dfs::meta {

namespace {

constexpr size_t kMaxSymlinkTarget = 4095;

Status checkNameLength(std::string_view name) {
  if (name.empty()) return Status::error(Code::INVALID, "empty name");
  if (name.size() > kMaxNameLength) return Status::error(Code::NAME_TOO_LONG, "name longer than 255 bytes");
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return Status::error(Code::INVALID, "name contains '/' or NUL");
  }
  return {};
}

bool isDotName(std::string_view name) { return name == "." || name == ".."; }

Result<InodeRecord> loadDirectory(const LmdbTxn& txn, const MetaStore::Dbs& dbs, uint64_t ino) {
  auto dir = loadInode(txn, dbs, ino);
  if (!dir.ok()) return dir;
  if (!dir.value().isDirectory()) return Status::error(Code::NOT_DIRECTORY, "not a directory");
  return dir;
}

std::optional<DirentRecord> findEntry(const LmdbTxn& txn, const MetaStore::Dbs& dbs,
                                      uint64_t parent, std::string_view name) {
  auto v = txn.get(dbs.dirents, direntKey(parent, name));
  if (!v) return std::nullopt;
  auto decoded = decodeDirent(*v);
  if (!decoded.ok()) return std::nullopt;
  return decoded.value();
}

bool directoryEmpty(const LmdbTxn& txn, const MetaStore::Dbs& dbs, uint64_t ino) {
  std::string prefix = u64Key(ino);
  LmdbCursor cursor(txn, dbs.dirents);
  cursor.seek(prefix);
  return !(cursor.valid() && startsWith(cursor.key(), prefix));
}

// The sticky bit: in such a directory only root and the owners of the directory
// or of the entry may remove or rename the entry.
bool stickyDenies(const InodeRecord& dir, const InodeRecord& inode, const Caller& caller) {
  return (dir.mode & S_ISVTX) && caller.uid != 0 && caller.uid != dir.uid &&
         caller.uid != inode.uid;
}

void touch(WriteTxn& wtx, InodeRecord& dir) { dir.mtimeNs = dir.ctimeNs = wtx.now(); }

Status finish(WriteTxn& wtx) { return wtx.commit(); }

}  // namespace

Status validateName(std::string_view name) {
  auto status = checkNameLength(name);
  if (!status.ok()) return status;
  if (isDotName(name)) return Status::error(Code::INVALID, "'.' and '..' cannot be created");
  return {};
}

Result<InodeRecord> Namespace::createEntry(WriteTxn& wtx, uint64_t parentIno,
                                           std::string_view name, uint32_t mode, uint64_t rdev,
                                           std::string_view target, const Caller& caller) {
  auto nameStatus = validateName(name);
  if (!nameStatus.ok()) {
    if (isDotName(name)) return Status::error(Code::EXISTS, "'.' and '..' always exist");
    return nameStatus;
  }
  auto loaded = loadDirectory(wtx.txn(), wtx.dbs(), parentIno);
  if (!loaded.ok()) return loaded.status();
  InodeRecord parent = loaded.value();
  if (parent.nlink == 0) return Status::error(Code::NOT_FOUND, "directory was removed");
  if (uint64_t ino = wtx.clientIno(); ino != 0) {
    // Only numbers handed out by reserveInodes, and never one in use or used
    // before (an existing record; a removed inode's number is not checked).
    if (ino >= wtx.peekId(kNextInode, 1) || wtx.get(wtx.dbs().inodes, u64Key(ino))) {
      return Status::error(Code::INVALID, "inode number " + std::to_string(ino) +
                                              " was not reserved or is in use");
    }
  }
  if (findEntry(wtx.txn(), wtx.dbs(), parentIno, name)) {
    return Status::error(Code::EXISTS, "entry exists");
  }
  uint32_t type = mode & S_IFMT;
  if (type == 0) type = S_IFREG;
  switch (type) {
    case S_IFREG: case S_IFIFO: case S_IFSOCK: case S_IFCHR: case S_IFBLK: case S_IFDIR: case S_IFLNK:
      break;
    default:
      return Status::error(Code::INVALID, "unknown file type in mode");
  }
  if (type == S_IFLNK) {
    if (target.empty() || target.size() > kMaxSymlinkTarget ||
        target.find('\0') != std::string_view::npos) {
      return Status::error(Code::INVALID, "symlink target must be 1..4095 bytes without NUL");
    }
  }
  if (type == S_IFDIR && parent.nlink >= kMaxLinks) {
    return Status::error(Code::TOO_MANY_LINKS, "too many subdirectories");
  }
  uint32_t perms = type == S_IFLNK ? 0777 : (mode & 07777);
  uint32_t gid = caller.gid;
  if (parent.mode & S_ISGID) {
    gid = parent.gid;
    if (type == S_IFDIR) perms |= S_ISGID;
  }
  InodeRecord inode = allocateInode(wtx, parent.volume, type | perms, caller.uid, gid);
  if (type == S_IFCHR || type == S_IFBLK) inode.rdev = rdev;
  if (type == S_IFLNK) {
    inode.symlinkTarget = std::string(target);
    inode.size = target.size();
  }
  if (type == S_IFDIR) {
    inode.parent = parentIno;
    parent.nlink += 1;
  }
  saveInode(wtx, inode);
  wtx.put(wtx.dbs().dirents, direntKey(parentIno, name), encodeDirent({inode.ino, type}));
  touch(wtx, parent);
  saveInode(wtx, parent);
  return inode;
}

Result<InodeRecord> Namespace::lookup(uint64_t parentIno, std::string_view name) {
  auto status = checkNameLength(name);
  if (!status.ok()) return status;
  LmdbTxn txn(store_.env(), LmdbTxn::Mode::kRead);
  if (!txn.status().ok()) return txn.status();
  auto parent = loadDirectory(txn, store_.dbs(), parentIno);
  if (!parent.ok()) return parent.status();
  if (name == ".") return parent;
  if (name == "..") {
    uint64_t up = parent.value().parent ? parent.value().parent : parentIno;
    return loadInode(txn, store_.dbs(), up);
  }
  auto entry = findEntry(txn, store_.dbs(), parentIno, name);
  if (!entry) return Status::error(Code::NOT_FOUND, "no such entry");
  return loadInode(txn, store_.dbs(), entry->ino);
}

Result<InodeRecord> Namespace::getattr(uint64_t ino) {
  LmdbTxn txn(store_.env(), LmdbTxn::Mode::kRead);
  if (!txn.status().ok()) return txn.status();
  return loadInode(txn, store_.dbs(), ino);
}

Result<InodeRecord> Namespace::setattr(uint64_t ino, const SetAttrRequest& set,
                                       const Caller& caller) {
  WriteTxn wtx(store_);
  auto loaded = loadInode(wtx, ino);
  if (!loaded.ok()) return loaded.status();
  InodeRecord inode = loaded.value();
  int64_t now = wtx.now();
  if (set.setSize) {
    if (inode.isDirectory()) return Status::error(Code::IS_DIRECTORY, "cannot truncate a directory");
    if (!inode.isRegular()) return Status::error(Code::INVALID, "can only truncate regular files");
    if (set.size > kMaxFileSize) return Status::error(Code::FILE_TOO_BIG, "size too large");
    truncateData(wtx, inode, set.size);
    inode.dataVersion += 1;
    inode.mtimeNs = now;
  }
  if (set.setMode) inode.mode = inode.type() | (set.mode & 07777);
  bool ownerChanged = (set.setUid && set.uid != inode.uid) || (set.setGid && set.gid != inode.gid);
  if (set.setUid) inode.uid = set.uid;
  if (set.setGid) inode.gid = set.gid;
  // POSIX: chown by an unprivileged process clears set-user-ID and set-group-ID
  // (the latter only when it means something, i.e. group execute is set).
  if ((set.setUid || set.setGid) && !set.setMode && caller.uid != 0 && !inode.isDirectory()) {
    (void)ownerChanged;
    inode.mode &= ~uint32_t(S_ISUID);
    if (inode.mode & S_IXGRP) inode.mode &= ~uint32_t(S_ISGID);
  }
  if (set.setAtime) inode.atimeNs = set.atimeNow ? now : set.atimeNs;
  if (set.setMtime) inode.mtimeNs = set.mtimeNow ? now : set.mtimeNs;
  inode.ctimeNs = set.ctimeNs != 0 ? set.ctimeNs : now;
  saveInode(wtx, inode);
  auto status = finish(wtx);
  if (!status.ok()) return status;
  return inode;
}

Result<InodeRecord> Namespace::mknod(uint64_t parent, std::string_view name, uint32_t mode,
                                     uint64_t rdev, const Caller& caller) {
  uint32_t type = mode & S_IFMT;
  if (type == S_IFDIR || type == S_IFLNK) {
    return Status::error(Code::INVALID, "mknod cannot create directories or symlinks");
  }
  WriteTxn wtx(store_);
  auto inode = createEntry(wtx, parent, name, mode, rdev, {}, caller);
  if (!inode.ok()) return inode;
  auto status = finish(wtx);
  if (!status.ok()) return status;
  return inode;
}

Result<InodeRecord> Namespace::mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                                     const Caller& caller) {
  WriteTxn wtx(store_);
  auto inode = createEntry(wtx, parent, name, S_IFDIR | (mode & 07777), 0, {}, caller);
  if (!inode.ok()) return inode;
  auto status = finish(wtx);
  if (!status.ok()) return status;
  return inode;
}

Result<InodeRecord> Namespace::symlink(uint64_t parent, std::string_view name,
                                       std::string_view target, const Caller& caller) {
  WriteTxn wtx(store_);
  auto inode = createEntry(wtx, parent, name, S_IFLNK | 0777, 0, target, caller);
  if (!inode.ok()) return inode;
  auto status = finish(wtx);
  if (!status.ok()) return status;
  return inode;
}

Result<std::string> Namespace::readlink(uint64_t ino) {
  auto inode = getattr(ino);
  if (!inode.ok()) return inode.status();
  if (!inode.value().isSymlink()) return Status::error(Code::INVALID, "not a symlink");
  return inode.value().symlinkTarget;
}

Result<InodeRecord> Namespace::link(uint64_t ino, uint64_t newParentIno, std::string_view newName) {
  auto nameStatus = validateName(newName);
  if (!nameStatus.ok()) return isDotName(newName) ? Status::error(Code::EXISTS, "entry exists") : nameStatus;
  WriteTxn wtx(store_);
  auto loaded = loadInode(wtx, ino);
  if (!loaded.ok()) return loaded.status();
  InodeRecord inode = loaded.value();
  if (inode.isDirectory()) return Status::error(Code::NOT_PERMITTED, "hard links to directories are not allowed");
  auto parentLoaded = loadDirectory(wtx.txn(), wtx.dbs(), newParentIno);
  if (!parentLoaded.ok()) return parentLoaded.status();
  InodeRecord parent = parentLoaded.value();
  if (parent.nlink == 0) return Status::error(Code::NOT_FOUND, "directory was removed");
  if (parent.volume != inode.volume) return Status::error(Code::CROSS_DEVICE, "link across volumes");
  if (inode.nlink == 0) return Status::error(Code::NOT_FOUND, "file was removed");
  if (inode.nlink >= kMaxLinks) return Status::error(Code::TOO_MANY_LINKS, "too many links");
  if (findEntry(wtx.txn(), wtx.dbs(), newParentIno, newName)) return Status::error(Code::EXISTS, "entry exists");
  inode.nlink += 1;
  inode.ctimeNs = wtx.now();
  saveInode(wtx, inode);
  wtx.put(wtx.dbs().dirents, direntKey(newParentIno, newName), encodeDirent({ino, inode.type()}));
  touch(wtx, parent);
  saveInode(wtx, parent);
  auto status = finish(wtx);
  if (!status.ok()) return status;
  return inode;
}

Status Namespace::unlink(uint64_t parentIno, std::string_view name, const Caller& caller) {
  auto nameStatus = checkNameLength(name);
  if (!nameStatus.ok()) return nameStatus;
  if (isDotName(name)) return Status::error(Code::IS_DIRECTORY, "cannot unlink '.' or '..'");
  WriteTxn wtx(store_);
  auto parentLoaded = loadDirectory(wtx.txn(), wtx.dbs(), parentIno);
  if (!parentLoaded.ok()) return parentLoaded.status();
  InodeRecord parent = parentLoaded.value();
  auto entry = findEntry(wtx.txn(), wtx.dbs(), parentIno, name);
  if (!entry) return Status::error(Code::NOT_FOUND, "no such entry");
  auto loaded = loadInode(wtx, entry->ino);
  if (!loaded.ok()) return loaded.status();
  InodeRecord inode = loaded.value();
  if (inode.isDirectory()) return Status::error(Code::IS_DIRECTORY, "is a directory");
  if (stickyDenies(parent, inode, caller)) return Status::error(Code::NOT_PERMITTED, "sticky directory");
  wtx.del(wtx.dbs().dirents, direntKey(parentIno, name));
  dropLink(wtx, inode);
  touch(wtx, parent);
  saveInode(wtx, parent);
  return finish(wtx);
}

Status Namespace::rmdir(uint64_t parentIno, std::string_view name, const Caller& caller) {
  auto nameStatus = checkNameLength(name);
  if (!nameStatus.ok()) return nameStatus;
  if (name == ".") return Status::error(Code::INVALID, "cannot remove '.'");
  if (name == "..") return Status::error(Code::NOT_EMPTY, "cannot remove '..'");
  WriteTxn wtx(store_);
  auto parentLoaded = loadDirectory(wtx.txn(), wtx.dbs(), parentIno);
  if (!parentLoaded.ok()) return parentLoaded.status();
  InodeRecord parent = parentLoaded.value();
  auto entry = findEntry(wtx.txn(), wtx.dbs(), parentIno, name);
  if (!entry) return Status::error(Code::NOT_FOUND, "no such entry");
  auto loaded = loadInode(wtx, entry->ino);
  if (!loaded.ok()) return loaded.status();
  InodeRecord dir = loaded.value();
  if (!dir.isDirectory()) return Status::error(Code::NOT_DIRECTORY, "not a directory");
  if (!directoryEmpty(wtx.txn(), wtx.dbs(), dir.ino)) return Status::error(Code::NOT_EMPTY, "directory not empty");
  if (stickyDenies(parent, dir, caller)) return Status::error(Code::NOT_PERMITTED, "sticky directory");
  wtx.del(wtx.dbs().dirents, direntKey(parentIno, name));
  parent.nlink -= 1;
  dropLink(wtx, dir);
  touch(wtx, parent);
  saveInode(wtx, parent);
  return finish(wtx);
}

Status Namespace::rename(uint64_t parentIno, std::string_view name, uint64_t newParentIno,
                         std::string_view newName, uint32_t flags, const Caller& caller) {
  if (flags & ~(kRenameNoReplace | kRenameExchange) ||
      flags == (kRenameNoReplace | kRenameExchange)) {
    return Status::error(Code::INVALID, "unsupported rename flags");
  }
  for (auto n : {name, newName}) {
    auto s = checkNameLength(n);
    if (!s.ok()) return s;
    if (isDotName(n)) return Status::error(Code::BUSY, "cannot rename '.' or '..'");
  }
  WriteTxn wtx(store_);
  auto srcDirLoaded = loadDirectory(wtx.txn(), wtx.dbs(), parentIno);
  if (!srcDirLoaded.ok()) return srcDirLoaded.status();
  InodeRecord srcDir = srcDirLoaded.value();
  InodeRecord dstDirStorage;
  bool sameDir = parentIno == newParentIno;
  if (!sameDir) {
    auto loaded = loadDirectory(wtx.txn(), wtx.dbs(), newParentIno);
    if (!loaded.ok()) return loaded.status();
    dstDirStorage = loaded.value();
  }
  InodeRecord& dstDir = sameDir ? srcDir : dstDirStorage;
  auto srcEntry = findEntry(wtx.txn(), wtx.dbs(), parentIno, name);
  if (!srcEntry) return Status::error(Code::NOT_FOUND, "no such entry");
  if (srcDir.volume != dstDir.volume) return Status::error(Code::CROSS_DEVICE, "rename across volumes");
  if (dstDir.nlink == 0) return Status::error(Code::NOT_FOUND, "target directory was removed");
  auto dstEntry = findEntry(wtx.txn(), wtx.dbs(), newParentIno, newName);
  if ((flags & kRenameNoReplace) && dstEntry) return Status::error(Code::EXISTS, "target exists");
  if ((flags & kRenameExchange) && !dstEntry) return Status::error(Code::NOT_FOUND, "no target to exchange with");
  // Two names of the same inode: POSIX says do nothing.
  if (dstEntry && dstEntry->ino == srcEntry->ino) return Status::success();

  auto srcLoaded = loadInode(wtx, srcEntry->ino);
  if (!srcLoaded.ok()) return srcLoaded.status();
  InodeRecord src = srcLoaded.value();
  if (stickyDenies(srcDir, src, caller)) return Status::error(Code::NOT_PERMITTED, "sticky directory");
  std::optional<InodeRecord> dst;
  if (dstEntry) {
    auto loaded = loadInode(wtx, dstEntry->ino);
    if (!loaded.ok()) return loaded.status();
    dst = loaded.value();
    if (stickyDenies(dstDir, *dst, caller)) return Status::error(Code::NOT_PERMITTED, "sticky directory");
  }
  // A directory may not move below itself: walk up from the destination.
  auto movesIntoItself = [&](uint64_t moved, uint64_t start) -> bool {
    for (uint64_t at = start, steps = 0; at != 0 && steps < 100000; ++steps) {
      if (at == moved) return true;
      auto inode = loadInode(wtx, at);
      if (!inode.ok() || inode.value().parent == at) break;
      at = inode.value().parent;
    }
    return false;
  };
  if (!sameDir && src.isDirectory() && movesIntoItself(src.ino, newParentIno)) {
    return Status::error(Code::INVALID, "cannot move a directory into itself");
  }
  int64_t now = wtx.now();
  if (flags & kRenameExchange) {
    if (!sameDir && dst->isDirectory() && movesIntoItself(dst->ino, parentIno)) {
      return Status::error(Code::INVALID, "cannot move a directory into itself");
    }
    wtx.put(wtx.dbs().dirents, direntKey(parentIno, name), encodeDirent({dst->ino, dst->type()}));
    wtx.put(wtx.dbs().dirents, direntKey(newParentIno, newName), encodeDirent({src.ino, src.type()}));
    if (!sameDir) {
      if (src.isDirectory()) {
        srcDir.nlink -= 1;
        dstDir.nlink += 1;
        src.parent = newParentIno;
      }
      if (dst->isDirectory()) {
        dstDir.nlink -= 1;
        srcDir.nlink += 1;
        dst->parent = parentIno;
      }
    }
    src.ctimeNs = dst->ctimeNs = now;
    saveInode(wtx, *dst);
  } else {
    if (dst) {
      if (src.isDirectory()) {
        if (!dst->isDirectory()) return Status::error(Code::NOT_DIRECTORY, "target is not a directory");
        if (!directoryEmpty(wtx.txn(), wtx.dbs(), dst->ino)) return Status::error(Code::NOT_EMPTY, "target directory not empty");
      } else if (dst->isDirectory()) {
        return Status::error(Code::IS_DIRECTORY, "target is a directory");
      }
    }
    wtx.del(wtx.dbs().dirents, direntKey(parentIno, name));
    wtx.put(wtx.dbs().dirents, direntKey(newParentIno, newName), encodeDirent({src.ino, src.type()}));
    if (dst) {
      if (dst->isDirectory()) dstDir.nlink -= 1;
      dropLink(wtx, *dst);
    }
    if (!sameDir && src.isDirectory()) {
      srcDir.nlink -= 1;
      dstDir.nlink += 1;
      src.parent = newParentIno;
    }
    src.ctimeNs = now;
  }
  saveInode(wtx, src);
  touch(wtx, srcDir);
  saveInode(wtx, srcDir);
  if (!sameDir) {
    touch(wtx, dstDir);
    saveInode(wtx, dstDir);
  }
  return finish(wtx);
}

Result<ReaddirPage> Namespace::readdir(uint64_t ino, std::string_view after, uint32_t max,
                                       bool plus) {
  if (after.size() > kMaxNameLength) return Status::error(Code::NAME_TOO_LONG, "cookie name too long");
  if (max == 0 || max > kMaxReaddirPage) max = kMaxReaddirPage;
  LmdbTxn txn(store_.env(), LmdbTxn::Mode::kRead);
  if (!txn.status().ok()) return txn.status();
  auto dir = loadDirectory(txn, store_.dbs(), ino);
  if (!dir.ok()) return dir.status();
  ReaddirPage page;
  std::string prefix = u64Key(ino);
  LmdbCursor cursor(txn, store_.dbs().dirents);
  cursor.seek(direntKey(ino, after));
  if (!after.empty() && cursor.valid() && cursor.key() == direntKey(ino, after)) cursor.next();
  for (; cursor.valid() && startsWith(cursor.key(), prefix); cursor.next()) {
    if (page.entries.size() >= max) return page;  // more follow: eof stays false
    auto dirent = decodeDirent(cursor.value());
    if (!dirent.ok()) return dirent.status();
    ReaddirEntry entry;
    entry.name = std::string(cursor.key().substr(8));
    entry.ino = dirent.value().ino;
    entry.type = dirent.value().type;
    if (plus) {
      auto attr = loadInode(txn, store_.dbs(), entry.ino);
      if (attr.ok()) {
        entry.attr = attr.value();
        entry.hasAttr = true;
      }
    }
    page.entries.push_back(std::move(entry));
  }
  page.eof = true;
  return page;
}

}  // namespace dfs::meta
