// The FUSE low-level operations: a thin adapter that translates each request
// into calls on the client core (MetaClient, DataPath) and replies exactly once.
// All state is reached through fuse_req_userdata (a FuseContext); no globals.
// No lock is held across a fuse_reply_* call or an RPC wait.
#pragma once

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "backend/client/client.h"
#include "backend/client/inode_refs.h"

namespace dfs {

struct FuseContext {
  Client* client = nullptr;
  uint64_t rootIno = 0;          // server inode number of the volume root
  double entryTimeoutSec = 1.0;
  double attrTimeoutSec = 1.0;
  // Names in a directory delegated to this mount (positive entries only).
  double delegatedTimeoutSec = 60.0;
  InodeRefs refs;                // kernel lookup counts (nlookup) per server inode
  // Set once the FUSE session is mounted; kernel notifications need it.
  std::atomic<fuse_session*> session{nullptr};
  // Close-to-open: the dataVersion the kernel's page cache of an inode holds
  // (recorded at open, erased by invalidation and forget). An open replies
  // keep_cache only when the server's version still equals it. A leaf lock,
  // never held across an RPC or a reply.
  std::mutex cacheMu;
  std::unordered_map<uint64_t, uint64_t> kernelCachedVersion;  // guarded by cacheMu
  // Write-only opens in direct-I/O mode: the kernel hands the writer's own
  // pages to the daemon instead of copying them into its page cache first.
  // Such a file descriptor cannot be mapped, and from FUSE 7.39 (Linux 6.6) the
  // kernel drops the cached pages of a range before writing it directly, so
  // other opens of the file stay coherent; on older kernels writes go through
  // the page cache as before. main() sets the mount option; opInit turns it
  // off where the kernel's protocol version is older.
  std::atomic<bool> directWrites{true};
};

const fuse_lowlevel_ops& fuseOps();

// Applies invalidations from the metadata node to the kernel's caches
// (fuse_lowlevel_notify_inval_inode / _entry), skipping inodes the kernel does
// not know. Call on the invalidation thread only, never inside an op handler.
void invalidateKernel(FuseContext& c, const InvalidationBatch& batch);

}  // namespace dfs
