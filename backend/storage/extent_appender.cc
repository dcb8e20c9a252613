#include "backend/storage/extent_appender.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>

namespace dfs {

namespace {

// A whole number of blocks, at least one, so direct writes of a full buffer are aligned.
size_t roundToBlocks(size_t bytes) {
  size_t block = ExtentAppender::kBlockBytes;
  return std::max(block, (bytes + block - 1) / block * block);
}

}  // namespace

ExtentAppender::ExtentAppender(FileSystem& fs, size_t bufferBytes)
    : fs_(fs),
      capacity_(roundToBlocks(bufferBytes)),
      buffer_(static_cast<char*>(std::aligned_alloc(kBlockBytes, capacity_))) {
  if (!buffer_) throw std::bad_alloc();
}

void ExtentAppender::open(uint32_t number, int fd, uint64_t offset, int directFd) {
  close();
  fd_ = fd;
  number_ = number;
  base_ = offset;
  directFd_ = directFd;
  lead_ = directFd_ >= 0 ? size_t(offset % kBlockBytes) : 0;
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
  if (directFd_ >= 0) {
    // Copied, laid out as in the file; a full buffer ends on a block.
    while (!bytes.empty()) {
      size_t n = std::min(capacity_ - lead_ - buffered_, bytes.size());
      std::memcpy(buffer_.get() + lead_ + buffered_, bytes.data(), n);
      buffered_ += n;
      staged_ += n;
      bytes.remove_prefix(n);
      if (lead_ + buffered_ == capacity_) {
        Status s = flushDirect();
        if (!s.ok()) return s;
      }
    }
    return {};
  }
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

size_t ExtentAppender::padToBlock() {
  if (directFd_ < 0 || staged_ < kDirectMinBytes) return 0;
  size_t pad = (kBlockBytes - end() % kBlockBytes) % kBlockBytes;
  // The buffer is whole blocks laid out as the file: the zeros fit.
  std::memset(buffer_.get() + lead_ + buffered_, 0, pad);
  buffered_ += pad;
  staged_ += pad;
  return pad;
}

Status ExtentAppender::writeBuffer(size_t from, size_t to, bool direct) {
  if (from >= to) return {};
  std::vector<iovec> piece{iovec{buffer_.get() + from, to - from}};
  return fs_.writeAt(direct ? directFd_ : fd_, piece, base_ - lead_ + from);
}

Status ExtentAppender::flushDirect() {
  size_t end = lead_ + buffered_;
  Status s;
  if (staged_ < kDirectMinBytes && end < capacity_) {
    s = writeBuffer(lead_, end, /*direct=*/false);  // a small round: no padding
  } else {
    if (end % kBlockBytes != 0) {
      return Status::error(Code::IO, "direct append of " + std::to_string(staged_) + " bytes at " +
                                         std::to_string(base_) + " does not end on a block");
    }
    // The rest of a block that buffered writes began stays theirs.
    size_t head = lead_ > 0 ? kBlockBytes : 0;
    s = writeBuffer(lead_, std::min(head, end), /*direct=*/false);
    if (s.ok()) s = writeBuffer(head, end, /*direct=*/true);
  }
  if (!s.ok()) return s;
  base_ += staged_;
  staged_ = 0;
  buffered_ = 0;
  lead_ = size_t(base_ % kBlockBytes);
  return {};
}

Status ExtentAppender::flush() {
  if (fd_ < 0 || staged_ == 0) return {};
  if (directFd_ >= 0) return flushDirect();
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
  directFd_ = -1;
  number_ = 0;
  base_ = 0;
  staged_ = 0;
  buffered_ = 0;
  lead_ = 0;
  pieces_.clear();
}

}  // namespace dfs
