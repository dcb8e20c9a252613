// Bounded cache of open extent file descriptors. A node holds at most `capacity`
// cached descriptors however many fragments or extents it stores (the process fd
// limit is shared with every RPC connection); least recently used ones are closed.
// A handle handed out stays valid (the fd stays open) until its last holder drops
// it, even if it was evicted or the file unlinked meanwhile.
// Thread: all methods may be called from any thread (internal mutex).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "backend/common/status.h"
#include "backend/storage/file_system.h"

namespace dfs {

// An open extent file. Closes its fd when destroyed.
class ExtentFile {
 public:
  ExtentFile(FileSystem& fs, uint32_t number, int fd) : fs_(fs), number_(number), fd_(fd) {}
  ~ExtentFile() { fs_.closeFile(fd_); }
  ExtentFile(const ExtentFile&) = delete;
  ExtentFile& operator=(const ExtentFile&) = delete;
  uint32_t number() const { return number_; }
  int fd() const { return fd_; }

 private:
  FileSystem& fs_;
  uint32_t number_;
  int fd_;
};

class ExtentFileCache {
 public:
  ExtentFileCache(FileSystem& fs, std::string directory, size_t capacity);

  // Returns the open file for extent `number`, opening (and with `create`, creating)
  // it if needed. A missing file without `create` is Code::NOT_FOUND.
  Result<std::shared_ptr<ExtentFile>> acquire(uint32_t number, bool create = false);
  // Forgets extent `number` (before its file is removed).
  void evict(uint32_t number);
  void clear();
  size_t size() const;
  std::string pathOf(uint32_t number) const;

 private:
  struct Entry {
    std::shared_ptr<ExtentFile> file;
    std::list<uint32_t>::iterator lruPosition;
  };
  FileSystem& fs_;
  const std::string directory_;
  const size_t capacity_;
  mutable std::mutex mutex_;
  std::list<uint32_t> lru_;  // front: most recently used; guarded by mutex_
  std::unordered_map<uint32_t, Entry> entries_;  // guarded by mutex_
};

}  // namespace dfs
