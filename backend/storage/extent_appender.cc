#include "backend/storage/extent_appender.h"

#include <algorithm>
#include <cstring>

namespace dfs {

ExtentAppender::ExtentAppender(FileSystem& fs, size_t bufferBytes)
    : fs_(fs), capacity_(std::max<size_t>(bufferBytes, 4096)), buffer_(new char[capacity_]) {}

void ExtentAppender::open(uint32_t number, int fd, uint64_t offset) {
  close();
  fd_ = fd;
  number_ = number;
  base_ = offset;
}

void ExtentAppender::stage(const char* data, size_t size) {
  if (!pieces_.empty()) {
    iovec& last = pieces_.back();
    if (static_cast<const char*>(last.iov_base) + last.iov_len == data) {
      last.iov_len += size;  // continues the previous piece (the buffer, mostly)
      staged_ += size;
      return;
    }
  }
  pieces_.push_back(iovec{const_cast<char*>(data), size});
  staged_ += size;
}

Status ExtentAppender::append(std::string_view bytes, bool borrow) {
  if (borrow && bytes.size() >= kBorrowBytes) {
    stage(bytes.data(), bytes.size());
    if (staged_ >= capacity_ || pieces_.size() >= kMaxPieces) return flush();
    return {};
  }
  while (!bytes.empty()) {
    size_t n = std::min(capacity_ - buffered_, bytes.size());
    std::memcpy(buffer_.get() + buffered_, bytes.data(), n);
    stage(buffer_.get() + buffered_, n);
    buffered_ += n;
    bytes.remove_prefix(n);
    if (buffered_ == capacity_ || staged_ >= capacity_ || pieces_.size() >= kMaxPieces) {
      Status s = flush();
      if (!s.ok()) return s;
    }
  }
  return {};
}

Status ExtentAppender::flush() {
  if (fd_ < 0 || staged_ == 0) return {};
  Status s = fs_.writeAt(fd_, pieces_, base_);
  if (!s.ok()) return s;
  base_ += staged_;
  staged_ = 0;
  buffered_ = 0;
  pieces_.clear();
  return {};
}

void ExtentAppender::close() {
  fd_ = -1;
  number_ = 0;
  base_ = 0;
  staged_ = 0;
  buffered_ = 0;
  pieces_.clear();
}

}  // namespace dfs
