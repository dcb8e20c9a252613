#include "backend/storage/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace dfs {

Status errnoStatus(const std::string& what, int err) {
  Code code = Code::IO;
  if (err == ENOSPC || err == EDQUOT) code = Code::NO_SPACE;
  if (err == ENOENT) code = Code::NOT_FOUND;
  return Status::error(code, what + ": " + std::strerror(err));
}

Result<int> PosixFileSystem::openFile(const std::string& path, bool create) {
  int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
  int fd;
  do {
    fd = ::open(path.c_str(), flags, 0640);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return errnoStatus("open " + path, errno);
  return fd;
}

Result<int> PosixFileSystem::openDirect(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0 && errno == EINVAL) {
    return Status::error(Code::NOT_SUPPORTED,
                         "open " + path + " with O_DIRECT: " + std::strerror(errno));
  }
  if (fd < 0) return errnoStatus("open " + path + " with O_DIRECT", errno);
  return fd;
}

void PosixFileSystem::willNeed(int fd, uint64_t offset, uint64_t size) {
  posix_fadvise(fd, off_t(offset), off_t(size), POSIX_FADV_WILLNEED);  // only a hint
}

void PosixFileSystem::closeFile(int fd) {
  ::close(fd);
}

Status PosixFileSystem::writeAt(int fd, const std::vector<iovec>& pieces, uint64_t offset) {
  std::vector<iovec> left(pieces);
  size_t first = 0;
  while (first < left.size()) {
    if (left[first].iov_len == 0) {
      ++first;
      continue;
    }
    int count = int(std::min<size_t>(left.size() - first, IOV_MAX));
    ssize_t n = ::pwritev(fd, left.data() + first, count, off_t(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoStatus("pwritev", errno);
    }
    if (n == 0) return errnoStatus("pwritev", ENOSPC);
    offset += uint64_t(n);
    // Step over what was written: whole pieces, then into the next one.
    for (size_t done = size_t(n); done > 0;) {
      size_t step = std::min(done, left[first].iov_len);
      left[first].iov_base = static_cast<char*>(left[first].iov_base) + step;
      left[first].iov_len -= step;
      done -= step;
      if (left[first].iov_len == 0) ++first;
    }
  }
  return {};
}

Status PosixFileSystem::readAt(int fd, void* data, size_t size, uint64_t offset) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = ::pread(fd, p, size, off_t(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoStatus("pread", errno);
    }
    if (n == 0) return Status::error(Code::IO, "pread: unexpected end of file");
    p += n;
    size -= size_t(n);
    offset += uint64_t(n);
  }
  return {};
}

Status PosixFileSystem::syncData(int fd) {
  if (::fdatasync(fd) != 0) return errnoStatus("fdatasync", errno);
  return {};
}

Status PosixFileSystem::truncateFile(int fd, uint64_t size) {
  if (::ftruncate(fd, off_t(size)) != 0) return errnoStatus("ftruncate", errno);
  return {};
}

Result<uint64_t> PosixFileSystem::fileSize(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return errnoStatus("fstat", errno);
  return uint64_t(st.st_size);
}

Status PosixFileSystem::removeFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errnoStatus("unlink " + path, errno);
  return {};
}

Status PosixFileSystem::syncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errnoStatus("open directory " + dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return errnoStatus("fsync directory " + dir, err);
  return {};
}

Result<std::vector<std::string>> PosixFileSystem::listDirectory(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return errnoStatus("opendir " + dir, errno);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(d);
  return names;
}

Result<SpaceInfo> PosixFileSystem::space(const std::string& path) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) return errnoStatus("statvfs " + path, errno);
  SpaceInfo info;
  info.totalBytes = uint64_t(st.f_blocks) * st.f_frsize;
  info.availableBytes = uint64_t(st.f_bavail) * st.f_frsize;
  return info;
}

FileSystem& posixFileSystem() {
  static PosixFileSystem fs;
  return fs;
}

}  // namespace dfs
