// Stages the records appended to the current extent file and writes them with one
// pwritev per `bufferBytes` (and at commit), instead of two pwrites (header, data)
// per fragment. Small pieces (record headers, small fragments) are copied into one
// buffer; big ones whose caller keeps them alive until the next flush (a group's
// fragments) are written from where they are, so a fragment's bytes are not copied
// once more on their way to the page cache. A storage node receives fragments of
// ~16 KiB to ~1 MiB: per-record writes cost two syscalls and two page-cache lookups
// each, and the unaligned ends of each write made the kernel zero and merge partial
// pages. docs/benchmarks.md (sessions 9 and 11) has the measurements.
//
// Direct mode (open() with a second descriptor from FileSystem::openDirect): every
// byte is copied into the block-aligned buffer, laid out so that buffer and file
// offsets agree modulo 4 KiB. A round of at least kDirectMinBytes (and every full
// buffer) goes to the disk through O_DIRECT in whole blocks, so the kernel neither
// copies it into the page cache nor writes it back later (docs/benchmarks.md,
// session 15): padToBlock() stages zeros up to the next block, which the extent
// store counts as garbage, and the bytes before the round's first block boundary
// (the rest of a block a buffered round began) are written buffered. A smaller
// round is written buffered and not padded, so a small put costs no padding. Each
// block is written by one path, once, so buffered reads never see a stale page.
//
// Thread: not thread-safe; the extent store's writer (commitMutex_) owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include "backend/common/status.h"
#include "backend/storage/file_system.h"

namespace dfs {

class ExtentAppender {
 public:
  ExtentAppender(FileSystem& fs, size_t bufferBytes);
  ExtentAppender(const ExtentAppender&) = delete;
  ExtentAppender& operator=(const ExtentAppender&) = delete;

  static constexpr size_t kBlockBytes = 4096;
  // Rounds at least this big go through O_DIRECT (padding wastes at most 3 %).
  static constexpr size_t kDirectMinBytes = 128 << 10;

  // Directs appends to extent `number`, open as `fd` (owned by the caller, kept open
  // until close()), whose committed bytes end at `offset`. With `directFd` (the same
  // file from FileSystem::openDirect, also the caller's), big rounds are written
  // through it (direct mode).
  void open(uint32_t number, int fd, uint64_t offset, int directFd = -1);
  bool isOpenOn(uint32_t number) const { return fd_ >= 0 && number_ == number; }
  bool isOpen() const { return fd_ >= 0; }
  bool direct() const { return directFd_ >= 0; }
  uint32_t number() const { return number_; }

  // Stages `bytes` at end(); writes what is staged whenever `bufferBytes` are. With
  // `borrow`, the caller keeps `bytes` valid until the next flush() or close(), and
  // pieces of 4 KiB or more are not copied. After a failure the file may hold part
  // of what was staged: the caller truncates it and close()s.
  Status append(std::string_view bytes, bool borrow = false);
  // Ends a round: in direct mode, when at least kDirectMinBytes are staged, stages
  // zeros up to the next block boundary and returns how many (else 0).
  size_t padToBlock();
  // Writes every staged byte. Not durable until the file is fdatasync'ed. Direct
  // mode writes kDirectMinBytes or more only when end() is on a block (padToBlock()).
  Status flush();
  // Forgets the file and whatever is staged.
  void close();
  // File offset just after the last appended byte.
  uint64_t end() const { return base_ + staged_; }

 private:
  static constexpr size_t kBorrowBytes = 4096;  // smaller borrowed pieces are copied anyway
  static constexpr size_t kMaxPieces = 512;     // per pwritev (IOV_MAX is 1024)
  void stage(const char* data, size_t size);
  // Direct mode: writes buffer_[from, to) at the file offset it stands for.
  Status writeBuffer(size_t from, size_t to, bool direct);
  Status flushDirect();

  FileSystem& fs_;
  const size_t capacity_;
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, FreeDeleter> buffer_;  // kBlockBytes-aligned
  std::vector<iovec> pieces_;  // what the next write holds, in file order
  int fd_ = -1;
  int directFd_ = -1;
  uint32_t number_ = 0;
  uint64_t base_ = 0;    // file offset of the first staged byte
  size_t staged_ = 0;    // bytes in pieces_
  size_t buffered_ = 0;  // bytes of buffer_ in use (direct mode: after lead_)
  size_t lead_ = 0;      // direct mode: base_ % kBlockBytes, where buffer_ begins
};

}  // namespace dfs
