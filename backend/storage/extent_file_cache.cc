#include "backend/storage/extent_file_cache.h"

#include "backend/storage/extent_format.h"

namespace dfs {

ExtentFileCache::ExtentFileCache(FileSystem& fs, std::string directory, size_t capacity)
    : fs_(fs), directory_(std::move(directory)), capacity_(capacity < 1 ? 1 : capacity) {}

std::string ExtentFileCache::pathOf(uint32_t number) const {
  return directory_ + "/" + extentFileName(number);
}

Result<std::shared_ptr<ExtentFile>> ExtentFileCache::acquire(uint32_t number, bool create) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(number);
    if (it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lruPosition);
      return it->second.file;
    }
  }
  // Open outside the lock: open() may block on a slow disk and other extents'
  // readers must not wait for it.
  auto fd = fs_.openFile(pathOf(number), create);
  if (!fd.ok()) return fd.status();
  auto file = std::make_shared<ExtentFile>(fs_, number, fd.value());
  std::shared_ptr<ExtentFile> evicted;  // closed after the lock is released
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(number);
  if (it != entries_.end()) {  // another thread opened it meanwhile: use theirs
    lru_.splice(lru_.begin(), lru_, it->second.lruPosition);
    return it->second.file;
  }
  while (entries_.size() >= capacity_) {
    uint32_t victim = lru_.back();
    lru_.pop_back();
    evicted = std::move(entries_[victim].file);
    entries_.erase(victim);
  }
  lru_.push_front(number);
  entries_[number] = Entry{file, lru_.begin()};
  return file;
}

void ExtentFileCache::evict(uint32_t number) {
  std::shared_ptr<ExtentFile> evicted;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(number);
  if (it == entries_.end()) return;
  lru_.erase(it->second.lruPosition);
  evicted = std::move(it->second.file);
  entries_.erase(it);
}

void ExtentFileCache::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.clear();
  lru_.clear();
}

size_t ExtentFileCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size();
}

}  // namespace dfs
