#include "tools/dfs-passthrough/inode_table.h"

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <new>

namespace dfs::passthrough {

InodeTable::InodeTable(int rootFd, const struct stat& rootStat) : root_(rootFd, rootStat) {}

InodeTable::~InodeTable() {
  for (auto& [key, inode] : inodes_) close(inode->fd);
  close(root_.fd);
}

Inode* InodeTable::addLookup(int fd, const struct stat& st) {
  Key key{st.st_dev, st.st_ino};
  Inode* inode = nullptr;
  int unused = fd;  // closed after unlocking unless a new inode keeps it
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = inodes_.find(key);
    if (found != inodes_.end()) {
      inode = found->second.get();
    } else {
      try {
        auto inserted = inodes_.emplace(key, std::make_unique<Inode>(fd, st));
        inode = inserted.first->second.get();
        unused = -1;
      } catch (const std::bad_alloc&) {
        inode = nullptr;  // the caller replies ENOMEM
      }
    }
    if (inode) ++inode->nlookup;
  }
  if (unused >= 0) close(unused);
  return inode;
}

void InodeTable::addLookup(Inode& inode) {
  if (&inode == &root_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  ++inode.nlookup;
}

void InodeTable::forget(fuse_ino_t nodeId, uint64_t count) {
  if (nodeId == FUSE_ROOT_ID) return;
  Inode* inode = reinterpret_cast<Inode*>(nodeId);
  std::unique_ptr<Inode> erased;
  uint64_t held = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    held = inode->nlookup;
    inode->nlookup -= std::min(count, held);  // more than held: a bug; keep serving
    if (inode->nlookup > 0) return;
    auto found = inodes_.find(Key{inode->dev, inode->ino});
    if (found != inodes_.end() && found->second.get() == inode) {
      erased = std::move(found->second);
      inodes_.erase(found);
    }
  }
  if (count > held) {
    fprintf(stderr, "dfs-passthrough: forget of %" PRIu64 " lookups, %" PRIu64 " held\n", count,
            held);
  }
  if (erased) close(erased->fd);
}

}  // namespace dfs::passthrough
