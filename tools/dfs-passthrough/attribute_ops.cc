// Attributes: getattr, setattr, statfs and extended attributes.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <new>

#include "tools/dfs-passthrough/passthrough_ops.h"

namespace dfs::passthrough {
namespace {

void replyAttr(fuse_req_t req, PassthroughContext& c, const Inode& inode) {
  struct stat st;
  if (fstatat(inode.fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_reply_attr(req, &st, c.timeoutSec);
}

void opGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  PassthroughContext& c = contextOf(req);
  replyAttr(req, c, c.inodes->inodeOf(ino));
}

// Applies the times of a setattr: a given time, "now" or unchanged (UTIME_OMIT).
int setTimes(const Inode& inode, int fd, const struct stat& attr, int toSet) {
  timespec times[2];
  times[0].tv_sec = times[1].tv_sec = 0;
  times[0].tv_nsec = times[1].tv_nsec = UTIME_OMIT;
  if (toSet & FUSE_SET_ATTR_ATIME_NOW)
    times[0].tv_nsec = UTIME_NOW;
  else if (toSet & FUSE_SET_ATTR_ATIME)
    times[0] = attr.st_atim;
  if (toSet & FUSE_SET_ATTR_MTIME_NOW)
    times[1].tv_nsec = UTIME_NOW;
  else if (toSet & FUSE_SET_ATTR_MTIME)
    times[1] = attr.st_mtim;
  if (fd >= 0) return futimens(fd, times);
  // The /proc link would be followed to a symlink's target; the descriptor itself is not.
  if (inode.type == S_IFLNK) return utimensat(inode.fd, "", times, AT_EMPTY_PATH);
  return utimensat(AT_FDCWD, ProcFdPath(inode.fd).text, times, 0);
}

void opSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int toSet, fuse_file_info* fi) {
  PassthroughContext& c = contextOf(req);
  Inode& inode = c.inodes->inodeOf(ino);
  // The kernel sends fi for regular files it has open (ftruncate, writeback of times);
  // only there fi->fh is a descriptor.
  int fd = fi && inode.type == S_IFREG ? int(fi->fh) : -1;
  if (toSet & FUSE_SET_ATTR_MODE) {
    int result;
    if (inode.type == S_IFLNK) {
      result = -1;  // the /proc link would change the target; Linux symlinks have no mode
      errno = EOPNOTSUPP;
    } else {
      result =
          fd >= 0 ? fchmod(fd, attr->st_mode) : chmod(ProcFdPath(inode.fd).text, attr->st_mode);
    }
    if (result != 0) return (void)fuse_reply_err(req, errno);
  }
  if (toSet & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    uid_t uid = (toSet & FUSE_SET_ATTR_UID) ? attr->st_uid : uid_t(-1);
    gid_t gid = (toSet & FUSE_SET_ATTR_GID) ? attr->st_gid : gid_t(-1);
    if (fchownat(inode.fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      return (void)fuse_reply_err(req, errno);
    }
  }
  if (toSet & FUSE_SET_ATTR_SIZE) {
    int result =
        fd >= 0 ? ftruncate(fd, attr->st_size) : truncate(ProcFdPath(inode.fd).text, attr->st_size);
    if (result != 0) return (void)fuse_reply_err(req, errno);
  }
  if (toSet & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
    if (setTimes(inode, fd, *attr, toSet) != 0) return (void)fuse_reply_err(req, errno);
  }
  replyAttr(req, c, inode);
}

void opStatfs(fuse_req_t req, fuse_ino_t ino) {
  struct statvfs st;
  if (fstatvfs(contextOf(req).inodes->inodeOf(ino).fd, &st) != 0) {
    return (void)fuse_reply_err(req, errno);
  }
  fuse_reply_statfs(req, &st);
}

// Extended attributes go through /proc/self/fd/N, which the *xattr calls follow to the
// file. For a symlink that would reach its target, and there is no race-free way to name
// the link itself, so symlinks show no extended attributes.

void opGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  const Inode& inode = contextOf(req).inodes->inodeOf(ino);
  if (inode.type == S_IFLNK) return (void)fuse_reply_err(req, ENODATA);
  ProcFdPath path(inode.fd);
  if (size == 0) {
    ssize_t needed = getxattr(path.text, name, nullptr, 0);
    if (needed < 0) return (void)fuse_reply_err(req, errno);
    return (void)fuse_reply_xattr(req, size_t(needed));
  }
  std::unique_ptr<char[]> value(new (std::nothrow) char[size]);
  if (!value) return (void)fuse_reply_err(req, ENOMEM);
  ssize_t got = getxattr(path.text, name, value.get(), size);
  if (got < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_buf(req, value.get(), size_t(got));
}

void opListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  const Inode& inode = contextOf(req).inodes->inodeOf(ino);
  if (inode.type == S_IFLNK) {
    if (size == 0) return (void)fuse_reply_xattr(req, 0);
    return (void)fuse_reply_buf(req, nullptr, 0);
  }
  ProcFdPath path(inode.fd);
  if (size == 0) {
    ssize_t needed = listxattr(path.text, nullptr, 0);
    if (needed < 0) return (void)fuse_reply_err(req, errno);
    return (void)fuse_reply_xattr(req, size_t(needed));
  }
  std::unique_ptr<char[]> names(new (std::nothrow) char[size]);
  if (!names) return (void)fuse_reply_err(req, ENOMEM);
  ssize_t got = listxattr(path.text, names.get(), size);
  if (got < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_buf(req, names.get(), size_t(got));
}

void opSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags) {
  const Inode& inode = contextOf(req).inodes->inodeOf(ino);
  if (inode.type == S_IFLNK) return (void)fuse_reply_err(req, EOPNOTSUPP);
  int result = setxattr(ProcFdPath(inode.fd).text, name, value, size, flags);
  fuse_reply_err(req, result == 0 ? 0 : errno);
}

void opRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  const Inode& inode = contextOf(req).inodes->inodeOf(ino);
  if (inode.type == S_IFLNK) return (void)fuse_reply_err(req, EOPNOTSUPP);
  int result = removexattr(ProcFdPath(inode.fd).text, name);
  fuse_reply_err(req, result == 0 ? 0 : errno);
}

}  // namespace

void addAttributeOps(fuse_lowlevel_ops& ops) {
  ops.getattr = opGetattr;
  ops.setattr = opSetattr;
  ops.statfs = opStatfs;
  ops.getxattr = opGetxattr;
  ops.listxattr = opListxattr;
  ops.setxattr = opSetxattr;
  ops.removexattr = opRemovexattr;
}

}  // namespace dfs::passthrough
