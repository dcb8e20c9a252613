// The FUSE low-level operations: a thin adapter that translates each request
// into calls on the client core (MetaClient, DataPath) and replies exactly once.
// All state is reached through fuse_req_userdata (a FuseContext); no globals.
// No lock is held across a fuse_reply_* call or an RPC wait.
#pragma once

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <cstdint>

#include "backend/client/client.h"
#include "backend/client/inode_refs.h"

namespace dfs {

struct FuseContext {
  Client* client = nullptr;
  uint64_t rootIno = 0;          // server inode number of the volume root
  double entryTimeoutSec = 1.0;
  double attrTimeoutSec = 1.0;
  InodeRefs refs;                // kernel lookup counts (nlookup) per server inode
};

const fuse_lowlevel_ops& fuseOps();

}  // namespace dfs
