// Stages the records appended to the current extent file in one buffer and writes
// them with one pwrite per `bufferBytes` (and at commit), instead of two pwrites (header,
// data) per fragment. A storage node receives fragments of ~16 KiB (64 KiB chunks,
// 4+2): per-record writes cost two syscalls and two page-cache lookups each, and the
// unaligned ends of each write made the kernel zero and merge partial pages.
// docs/benchmarks.md (session 9) has the measurements, and the O_DIRECT variant that
// was measured and not adopted.
//
// Thread: not thread-safe; the extent store's writer (commitMutex_) owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "backend/common/status.h"
#include "backend/storage/file_system.h"

namespace dfs {

class ExtentAppender {
 public:
  ExtentAppender(FileSystem& fs, size_t bufferBytes);
  ExtentAppender(const ExtentAppender&) = delete;
  ExtentAppender& operator=(const ExtentAppender&) = delete;

  // Directs appends to extent `number`, open as `fd` (owned by the caller, kept open
  // until close()), whose committed bytes end at `offset`.
  void open(uint32_t number, int fd, uint64_t offset);
  bool isOpenOn(uint32_t number) const { return fd_ >= 0 && number_ == number; }
  bool isOpen() const { return fd_ >= 0; }

  // Stages `bytes` at end(); writes the buffer whenever it fills. After a failure the
  // file may hold part of what was staged: the caller truncates it and close()s.
  Status append(std::string_view bytes);
  // Writes every staged byte. Not durable until the file is fdatasync'ed.
  Status flush();
  // Forgets the file and whatever is staged.
  void close();
  // File offset just after the last appended byte.
  uint64_t end() const { return base_ + length_; }

 private:
  FileSystem& fs_;
  const size_t capacity_;
  std::unique_ptr<char[]> buffer_;
  int fd_ = -1;
  uint32_t number_ = 0;
  uint64_t base_ = 0;  // file offset of buffer_[0]
  size_t length_ = 0;  // bytes staged in buffer_
};

}  // namespace dfs
