// The storage node's view of its disk: the handful of POSIX file calls the extent
// store makes, behind an interface so tests can inject faults (fail the Nth write
// with ENOSPC, fail fdatasync, count open descriptors). DESIGN §STYLE rule 8.
// Thread: PosixFileSystem is stateless and may be called from any thread; a fake
// must be too (the extent store reads from the event loop while its writer thread
// appends and syncs).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "backend/common/status.h"

namespace dfs {

struct SpaceInfo {
  uint64_t totalBytes = 0;
  uint64_t availableBytes = 0;  // to unprivileged users (f_bavail)
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Opens (creating when `create`) `path` for reading and writing; returns the fd.
  // A missing file without `create` is Code::NOT_FOUND.
  virtual Result<int> openFile(const std::string& path, bool create) = 0;
  // Opens an existing `path` for writing with O_DIRECT (ExtentAppender's direct
  // appends): writes from 4 KiB-aligned memory, at aligned offsets, in whole blocks
  // go to the disk without a page-cache copy. Code::NOT_SUPPORTED where the file
  // system has no direct I/O (tmpfs before Linux 6.6); the default says so too.
  virtual Result<int> openDirect(const std::string& path) {
    return Status::error(Code::NOT_SUPPORTED, "no direct I/O for " + path);
  }
  virtual void closeFile(int fd) = 0;
  // Writes the pieces back to back from `offset` (pwritev), all of them or fails;
  // ENOSPC/EDQUOT map to Code::NO_SPACE. After a failure the file may hold a
  // partial write past `offset`: the caller truncates it.
  virtual Status writeAt(int fd, const std::vector<iovec>& pieces, uint64_t offset) = 0;
  // Reads exactly `size` bytes at `offset`; a short read is Code::IO.
  virtual Status readAt(int fd, void* data, size_t size, uint64_t offset) = 0;
  // A hint that [offset, offset + size) is read soon (POSIX_FADV_WILLNEED): the
  // kernel starts reading it from the disk now. The default ignores it.
  virtual void willNeed(int /*fd*/, uint64_t /*offset*/, uint64_t /*size*/) {}
  // fdatasync: the durability point of appended records.
  virtual Status syncData(int fd) = 0;
  virtual Status truncateFile(int fd, uint64_t size) = 0;
  virtual Result<uint64_t> fileSize(int fd) = 0;
  virtual Status removeFile(const std::string& path) = 0;
  // fsync of a directory, so that created/removed/renamed names are durable.
  virtual Status syncDirectory(const std::string& dir) = 0;
  // Names (not paths) of the entries of `dir`, without "." and "..".
  virtual Result<std::vector<std::string>> listDirectory(const std::string& dir) = 0;
  virtual Result<SpaceInfo> space(const std::string& path) = 0;
};

// The real thing: pread/pwrite/fdatasync on the local file system.
class PosixFileSystem : public FileSystem {
 public:
  Result<int> openFile(const std::string& path, bool create) override;
  Result<int> openDirect(const std::string& path) override;
  void closeFile(int fd) override;
  Status writeAt(int fd, const std::vector<iovec>& pieces, uint64_t offset) override;
  Status readAt(int fd, void* data, size_t size, uint64_t offset) override;
  void willNeed(int fd, uint64_t offset, uint64_t size) override;
  Status syncData(int fd) override;
  Status truncateFile(int fd, uint64_t size) override;
  Result<uint64_t> fileSize(int fd) override;
  Status removeFile(const std::string& path) override;
  Status syncDirectory(const std::string& dir) override;
  Result<std::vector<std::string>> listDirectory(const std::string& dir) override;
  Result<SpaceInfo> space(const std::string& path) override;
};

// A process-wide PosixFileSystem (stateless, so sharing it is safe).
FileSystem& posixFileSystem();

// "what: strerror(err)" with NO_SPACE for ENOSPC/EDQUOT, NOT_FOUND for ENOENT, else IO.
Status errnoStatus(const std::string& what, int err);

}  // namespace dfs
