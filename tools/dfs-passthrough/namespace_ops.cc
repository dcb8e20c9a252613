// Names: mknod, mkdir, symlink, link, unlink, rmdir, rename, readlink.
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tools/dfs-passthrough/passthrough_ops.h"

namespace dfs::passthrough {
namespace {

// After a syscall that made `name` in `parent` (result 0) or failed (-1, errno): replies
// the new entry or the error.
void replyMade(fuse_req_t req, Inode& parent, const char* name, int result) {
  if (result != 0) return (void)fuse_reply_err(req, errno);
  PassthroughContext& c = contextOf(req);
  fuse_entry_param entry;
  int error = lookupEntry(c, parent, name, &entry);
  if (error != 0) return (void)fuse_reply_err(req, error);
  replyEntry(req, c, entry);
}

void opMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Inode& dir = contextOf(req).inodes->inodeOf(parent);
  replyMade(req, dir, name, mknodat(dir.fd, name, mode, rdev));
}

void opMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Inode& dir = contextOf(req).inodes->inodeOf(parent);
  replyMade(req, dir, name, mkdirat(dir.fd, name, mode));
}

void opSymlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Inode& dir = contextOf(req).inodes->inodeOf(parent);
  replyMade(req, dir, name, symlinkat(target, dir.fd, name));
}

void opLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newParent, const char* newName) {
  PassthroughContext& c = contextOf(req);
  Inode& inode = c.inodes->inodeOf(ino);
  Inode& dir = c.inodes->inodeOf(newParent);
  // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; without it, the /proc link names the file.
  int result = linkat(inode.fd, "", dir.fd, newName, AT_EMPTY_PATH);
  if (result != 0 && (errno == ENOENT || errno == EPERM)) {
    result = linkat(AT_FDCWD, ProcFdPath(inode.fd).text, dir.fd, newName, AT_SYMLINK_FOLLOW);
  }
  if (result != 0) return (void)fuse_reply_err(req, errno);
  fuse_entry_param entry;
  memset(&entry, 0, sizeof(entry));
  if (fstatat(inode.fd, "", &entry.attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    return (void)fuse_reply_err(req, errno);
  }
  c.inodes->addLookup(inode);
  entry.ino = ino;
  entry.attr_timeout = c.timeoutSec;
  entry.entry_timeout = c.timeoutSec;
  replyEntry(req, c, entry);
}

void opUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  int result = unlinkat(contextOf(req).inodes->inodeOf(parent).fd, name, 0);
  fuse_reply_err(req, result == 0 ? 0 : errno);
}

void opRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  int result = unlinkat(contextOf(req).inodes->inodeOf(parent).fd, name, AT_REMOVEDIR);
  fuse_reply_err(req, result == 0 ? 0 : errno);
}

void opRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newParent,
              const char* newName, unsigned int flags) {
  InodeTable& inodes = *contextOf(req).inodes;
  // flags: RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT, as the source supports them.
  int result =
      renameat2(inodes.inodeOf(parent).fd, name, inodes.inodeOf(newParent).fd, newName, flags);
  fuse_reply_err(req, result == 0 ? 0 : errno);
}

void opReadlink(fuse_req_t req, fuse_ino_t ino) {
  char target[PATH_MAX + 1];
  ssize_t n = readlinkat(contextOf(req).inodes->inodeOf(ino).fd, "", target, sizeof(target));
  if (n < 0) return (void)fuse_reply_err(req, errno);
  if (size_t(n) >= sizeof(target)) return (void)fuse_reply_err(req, ENAMETOOLONG);
  target[n] = '\0';
  fuse_reply_readlink(req, target);
}

}  // namespace

void addNamespaceOps(fuse_lowlevel_ops& ops) {
  ops.mknod = opMknod;
  ops.mkdir = opMkdir;
  ops.symlink = opSymlink;
  ops.link = opLink;
  ops.unlink = opUnlink;
  ops.rmdir = opRmdir;
  ops.rename = opRename;
  ops.readlink = opReadlink;
}

}  // namespace dfs::passthrough
