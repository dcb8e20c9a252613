// The operations table, session setup (init) and the lookup-count bookkeeping: lookup,
// forget, forget_multi and the helpers that hand inodes to the kernel.
#include "tools/dfs-passthrough/passthrough_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dfs::passthrough {

int lookupEntry(PassthroughContext& c, Inode& parent, const char* name, fuse_entry_param* entry) {
  memset(entry, 0, sizeof(*entry));
  int fd = openat(parent.fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  if (fstatat(fd, "", &entry->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    int error = errno;
    close(fd);
    return error;
  }
  Inode* inode = c.inodes->addLookup(fd, entry->attr);
  if (!inode) return ENOMEM;
  entry->ino = c.inodes->nodeIdOf(*inode);
  entry->attr_timeout = c.timeoutSec;
  entry->entry_timeout = c.timeoutSec;
  return 0;
}

void replyEntry(fuse_req_t req, PassthroughContext& c, const fuse_entry_param& entry) {
  if (fuse_reply_entry(req, &entry) != 0) c.inodes->forget(entry.ino, 1);
}

int backingOpenFlags(const PassthroughContext& c, int fuseFlags) {
  // O_NOFOLLOW would refuse the /proc/self/fd link; the kernel already resolved the path.
  // O_DIRECT would make libfuse's unaligned buffers fail; the kernel already bypasses its
  // page cache for such a file and sends every read and write here.
  int flags = fuseFlags & ~(O_NOFOLLOW | O_DIRECT);
  if (c.writebackCache.load(std::memory_order_relaxed)) {
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~O_APPEND;
  }
  return flags | O_CLOEXEC;
}

namespace {

void opInit(void* userdata, fuse_conn_info* conn) {
  auto& c = *static_cast<PassthroughContext*>(userdata);
  if (conn->capable & FUSE_CAP_WRITEBACK_CACHE) {
    conn->want |= FUSE_CAP_WRITEBACK_CACHE;
    c.writebackCache = true;
  }
  // Reads are spliced from the source file into the FUSE device (fuse_reply_data).
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  if (conn->capable & FUSE_CAP_SPLICE_MOVE) conn->want |= FUSE_CAP_SPLICE_MOVE;
  // The daemon writes as root, which keeps setuid/setgid bits (CAP_FSETID): let the kernel
  // clear them on write, truncate and chown instead.
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  conn->max_write = 1u << 20;  // as dfs-fuse
}

void opLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  PassthroughContext& c = contextOf(req);
  fuse_entry_param entry;
  int error = lookupEntry(c, c.inodes->inodeOf(parent), name, &entry);
  if (error == ENOENT) {
    // A negative entry the kernel may cache: nobody else creates files in the source tree.
    memset(&entry, 0, sizeof(entry));
    entry.entry_timeout = c.timeoutSec;
    fuse_reply_entry(req, &entry);
  } else if (error != 0) {
    fuse_reply_err(req, error);
  } else {
    replyEntry(req, c, entry);
  }
}

void opForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  contextOf(req).inodes->forget(ino, nlookup);
  fuse_reply_none(req);
}

void opForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  InodeTable& inodes = *contextOf(req).inodes;
  for (size_t i = 0; i < count; ++i) inodes.forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

fuse_lowlevel_ops makeOps() {
  fuse_lowlevel_ops ops;
  memset(&ops, 0, sizeof(ops));
  ops.init = opInit;
  ops.lookup = opLookup;
  ops.forget = opForget;
  ops.forget_multi = opForgetMulti;
  addAttributeOps(ops);
  addNamespaceOps(ops);
  addFileOps(ops);
  addDirectoryOps(ops);
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& passthroughOps() {
  static const fuse_lowlevel_ops ops = makeOps();
  return ops;
}

}  // namespace dfs::passthrough
