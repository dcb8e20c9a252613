// Open directories: opendir, readdir, readdirplus, fsyncdir, releasedir.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "tools/dfs-passthrough/passthrough_ops.h"

namespace dfs::passthrough {
namespace {

// An open directory stream, stored in fi->fh.
struct DirHandle {
  explicit DirHandle(DIR* stream) : stream(stream) {}
  ~DirHandle() { closedir(stream); }
  DirHandle(const DirHandle&) = delete;
  DirHandle& operator=(const DirHandle&) = delete;

  DIR* const stream;
  std::mutex mutex;  // guards the fields below; never held across a reply
  // The readdir cookie (telldir position) the stream stands at; `pending`, if set, is the
  // entry read there that did not fit into the previous reply (valid until the stream
  // moves).
  off_t offset = 0;
  dirent* pending = nullptr;
};

// The only places that cast fi->fh for directories: opendir stores a handle, releasedir
// takes it back, the operations in between borrow it.
uint64_t toHandle(std::unique_ptr<DirHandle> dir) {
  return reinterpret_cast<uint64_t>(dir.release());
}
std::unique_ptr<DirHandle> takeHandle(fuse_file_info* fi) {
  auto* dir = reinterpret_cast<DirHandle*>(fi->fh);
  fi->fh = 0;
  return std::unique_ptr<DirHandle>(dir);
}
DirHandle& dirOf(const fuse_file_info* fi) {
  return *reinterpret_cast<DirHandle*>(fi->fh);
}

bool isDotOrDotDot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

void opOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  const Inode& inode = contextOf(req).inodes->inodeOf(ino);
  int fd = openat(inode.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return (void)fuse_reply_err(req, errno);
  DIR* stream = fdopendir(fd);
  if (!stream) {
    int error = errno;
    close(fd);
    return (void)fuse_reply_err(req, error);
  }
  std::unique_ptr<DirHandle> dir(new (std::nothrow) DirHandle(stream));
  if (!dir) {
    closedir(stream);
    return (void)fuse_reply_err(req, ENOMEM);
  }
  fi->fh = toHandle(std::move(dir));
  // Only this daemon changes the tree, and the kernel drops its cached listing of a
  // directory whenever a change goes through the mount.
  fi->keep_cache = 1;
  fi->cache_readdir = 1;
  if (fuse_reply_open(req, fi) != 0) takeHandle(fi);  // interrupted: no releasedir will come
}

// fuse_direntplus: 152 bytes before the name, the name padded to 8 bytes.
constexpr size_t kMinDirentPlusBytes = 160;

// readdir and readdirplus. Plus entries other than "." and ".." hand the kernel a lookup
// each; those of a reply the kernel did not take are given back.
void readDirectory(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi,
                   bool plus) {
  PassthroughContext& c = contextOf(req);
  Inode& parent = c.inodes->inodeOf(ino);
  DirHandle& dir = dirOf(fi);
  std::unique_ptr<char[]> buffer(new (std::nothrow) char[size]);
  std::vector<fuse_ino_t> counted;  // reserved up front: push_back never allocates below
  try {
    if (plus) counted.reserve(size / kMinDirentPlusBytes + 1);
  } catch (const std::bad_alloc&) {
    buffer.reset();
  }
  if (!buffer) return (void)fuse_reply_err(req, ENOMEM);

  size_t used = 0;
  int error = 0;
  {
    std::lock_guard<std::mutex> lock(dir.mutex);
    if (offset != dir.offset) {
      seekdir(dir.stream, offset);
      dir.offset = offset;
      dir.pending = nullptr;
    }
    while (true) {
      dirent* entry = dir.pending;
      if (!entry) {
        errno = 0;
        entry = readdir(dir.stream);
        if (!entry) {
          error = errno;  // 0 at the end of the directory
          break;
        }
      }
      dir.pending = entry;
      fuse_entry_param e;
      bool looked = false;
      if (plus && !isDotOrDotDot(entry->d_name)) {
        error = lookupEntry(c, parent, entry->d_name, &e);
        if (error == ENOENT) {  // unlinked through the mount since it was read: skip it
          error = 0;
          dir.offset = entry->d_off;
          dir.pending = nullptr;
          continue;
        }
        if (error != 0) break;
        looked = true;
      } else {
        // The kernel takes only the type and inode number of these.
        memset(&e, 0, sizeof(e));
        e.attr.st_ino = entry->d_ino;
        e.attr.st_mode = DTTOIF(entry->d_type);
      }
      size_t room = size - used;
      size_t needed = plus ? fuse_add_direntry_plus(req, buffer.get() + used, room, entry->d_name,
                                                    &e, entry->d_off)
                           : fuse_add_direntry(req, buffer.get() + used, room, entry->d_name,
                                               &e.attr, entry->d_off);
      if (needed > room) {
        if (looked) c.inodes->forget(e.ino, 1);
        break;  // stays pending for the next call
      }
      if (looked) counted.push_back(e.ino);
      used += needed;
      dir.offset = entry->d_off;
      dir.pending = nullptr;
    }
  }
  // An error after some entries: reply those; the next call meets the error again.
  if (error != 0 && used == 0) return (void)fuse_reply_err(req, error);
  if (fuse_reply_buf(req, buffer.get(), used) != 0) {
    for (fuse_ino_t node : counted) c.inodes->forget(node, 1);
  }
}

void opReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi) {
  readDirectory(req, ino, size, offset, fi, false);
}

void opReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi) {
  readDirectory(req, ino, size, offset, fi, true);
}

void opFsyncdir(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) {
  int fd = dirfd(dirOf(fi).stream);
  int result = datasync ? fdatasync(fd) : fsync(fd);
  fuse_reply_err(req, result == 0 ? 0 : errno);
}

void opReleasedir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  takeHandle(fi);
  fuse_reply_err(req, 0);
}

}  // namespace

void addDirectoryOps(fuse_lowlevel_ops& ops) {
  ops.opendir = opOpendir;
  ops.readdir = opReaddir;
  ops.readdirplus = opReaddirplus;
  ops.fsyncdir = opFsyncdir;
  ops.releasedir = opReleasedir;
}

}  // namespace dfs::passthrough
