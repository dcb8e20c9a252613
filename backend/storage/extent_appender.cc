#include "backend/storage/extent_appender.h"

#include <algorithm>
#include <cstring>

namespace dfs {

ExtentAppender::ExtentAppender(FileSystem& fs, size_t bufferBytes)
    : fs_(fs), capacity_(std::max<size_t>(bufferBytes, 4096)), buffer_(new char[capacity_]) {}

void ExtentAppender::open(uint32_t number, int fd, uint64_t offset) {
  fd_ = fd;
  number_ = number;
  base_ = offset;
  length_ = 0;
}

Status ExtentAppender::append(std::string_view bytes) {
  while (!bytes.empty()) {
    size_t n = std::min(capacity_ - length_, bytes.size());
    std::memcpy(buffer_.get() + length_, bytes.data(), n);
    length_ += n;
    bytes.remove_prefix(n);
    if (length_ == capacity_) {
      Status s = flush();
      if (!s.ok()) return s;
    }
  }
  return {};
}

Status ExtentAppender::flush() {
  if (fd_ < 0 || length_ == 0) return {};
  Status s = fs_.writeAt(fd_, buffer_.get(), length_, base_);
  if (!s.ok()) return s;
  base_ += length_;
  length_ = 0;
  return {};
}

void ExtentAppender::close() {
  fd_ = -1;
  number_ = 0;
  base_ = 0;
  length_ = 0;
}

}  // namespace dfs
