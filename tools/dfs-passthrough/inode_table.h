// The inodes of the source tree that the kernel currently knows, keyed by (st_dev, st_ino).
// Each holds an O_PATH descriptor of its file and the kernel's lookup count (nlookup).
//
// FUSE node ids are the addresses of the Inode objects (the source root is FUSE_ROOT_ID).
// An Inode lives from the first lookup that returns it until a forget brings its lookup
// count to zero. The kernel sends no request naming a node id after that, so handlers use
// an Inode without holding any lock.
//
// Thread safety: every method may be called from any FUSE worker thread. One mutex guards
// the map and all lookup counts (find-or-insert plus the increment, and the decrement plus
// the erase, are each one critical section, so a lookup racing a forget of the same inode
// either revives it or creates a fresh one, never uses a dying one). It is a leaf lock:
// no syscall and no fuse_reply_* runs under it; descriptors are closed after dropping it.
#pragma once

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace dfs::passthrough {

struct Inode {
  Inode(int fd, const struct stat& st)
      : fd(fd), dev(st.st_dev), ino(st.st_ino), type(st.st_mode & S_IFMT) {}
  Inode(const Inode&) = delete;
  Inode& operator=(const Inode&) = delete;

  const int fd;     // O_PATH | O_NOFOLLOW, owned by the table
  const dev_t dev;  // identity in the source tree
  const ino_t ino;
  const mode_t type;     // S_IFMT bits: symlinks need calls that do not follow them
  uint64_t nlookup = 0;  // guarded by InodeTable::mutex_
};

class InodeTable {
 public:
  // Takes ownership of `rootFd`, an O_PATH descriptor of the source directory.
  InodeTable(int rootFd, const struct stat& rootStat);
  ~InodeTable();  // closes every descriptor
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  // REQUIRES: the kernel holds a lookup on `nodeId` (it named it in a request).
  Inode& inodeOf(fuse_ino_t nodeId) {
    return nodeId == FUSE_ROOT_ID ? root_ : *reinterpret_cast<Inode*>(nodeId);
  }
  fuse_ino_t nodeIdOf(const Inode& inode) const {
    return &inode == &root_ ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(&inode);
  }

  // Counts one lookup of the file that `fd` (O_PATH, owned from now on) refers to, whose
  // attributes are `st`. Returns the known inode (and closes `fd`) or a new one holding
  // `fd`; nullptr (fd closed) when out of memory.
  Inode* addLookup(int fd, const struct stat& st);

  // Counts one more lookup of an inode the kernel already holds (hard link).
  void addLookup(Inode& inode);

  // The kernel dropped `count` lookups of `nodeId`; at zero the inode is erased and its
  // descriptor closed. The root is never erased.
  void forget(fuse_ino_t nodeId, uint64_t count);

 private:
  struct Key {
    dev_t dev;
    ino_t ino;
    bool operator==(const Key& other) const { return dev == other.dev && ino == other.ino; }
  };
  struct KeyHash {
    size_t operator()(const Key& key) const {
      return std::hash<uint64_t>()(uint64_t(key.ino) * 0x9e3779b97f4a7c15ull ^ uint64_t(key.dev));
    }
  };

  Inode root_;  // FUSE_ROOT_ID; not in inodes_, no lookup count
  mutable std::mutex mutex_;
  std::unordered_map<Key, std::unique_ptr<Inode>, KeyHash> inodes_;  // guarded by mutex_
};

}  // namespace dfs::passthrough
