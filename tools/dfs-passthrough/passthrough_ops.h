// The FUSE low-level operations of dfs-passthrough: each request becomes one or two *at()
// syscalls on the O_PATH descriptors of the InodeTable, then exactly one reply. Errors
// are the syscalls' errno values. State is reached through fuse_req_userdata (a
// PassthroughContext), never a global; no lock is held across a fuse_reply_* call.
//
// File handles (fi->fh): the real descriptor for files, a DirHandle* for directories
// (dir_ops.cc owns that pair of helpers).
#pragma once

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <atomic>
#include <cstdio>
#include <memory>

#include "tools/dfs-passthrough/inode_table.h"

namespace dfs::passthrough {

struct PassthroughContext {
  std::unique_ptr<InodeTable> inodes;
  // Entry, attribute and negative-entry timeout. Long, because this daemon is the only
  // writer of the source tree, so the kernel's caches never go stale.
  double timeoutSec = 86400;
  // Set by init when the kernel agreed to the writeback cache: it may then read from files
  // opened write-only and handles O_APPEND itself (open/create adapt their flags).
  std::atomic<bool> writebackCache{false};
};

const fuse_lowlevel_ops& passthroughOps();

// --- Shared by the operation files ---------------------------------------------------

inline PassthroughContext& contextOf(fuse_req_t req) {
  return *static_cast<PassthroughContext*>(fuse_req_userdata(req));
}

// "/proc/self/fd/N": reaches the file behind an O_PATH descriptor for the calls that do
// not accept one (open, chmod, truncate, *xattr).
struct ProcFdPath {
  explicit ProcFdPath(int fd) { snprintf(text, sizeof(text), "/proc/self/fd/%d", fd); }
  char text[32];
};

// Looks `name` up in `parent`, counts one lookup and fills `entry`. Returns 0 or an errno.
int lookupEntry(PassthroughContext& c, Inode& parent, const char* name, fuse_entry_param* entry);

// Replies an entry counted by lookupEntry; gives the lookup back if the kernel did not take
// it (interrupted request).
void replyEntry(fuse_req_t req, PassthroughContext& c, const fuse_entry_param& entry);

// Flags for the real open(2) of a FUSE open/create with `fuseFlags`.
int backingOpenFlags(const PassthroughContext& c, int fuseFlags);

// Each operation file adds its handlers to the table.
void addAttributeOps(fuse_lowlevel_ops& ops);  // attribute_ops.cc: getattr, setattr, xattrs, statfs
void addNamespaceOps(fuse_lowlevel_ops& ops);  // namespace_ops.cc: mknod ... rename, readlink
void addFileOps(fuse_lowlevel_ops& ops);       // file_ops.cc: open ... copy_file_range
void addDirectoryOps(fuse_lowlevel_ops& ops);  // dir_ops.cc: opendir ... releasedir

}  // namespace dfs::passthrough
