// Open files: open, create, read, write_buf, flush, release, fsync, fallocate, lseek,
// copy_file_range. fi->fh is the real descriptor of the source file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "tools/dfs-passthrough/passthrough_ops.h"

namespace dfs::passthrough {
namespace {

int fdOf(const fuse_file_info* fi) {
  return int(fi->fh);
}

void opOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  PassthroughContext& c = contextOf(req);
  const Inode& inode = c.inodes->inodeOf(ino);
  int fd = open(ProcFdPath(inode.fd).text, backingOpenFlags(c, fi->flags));
  if (fd < 0) return (void)fuse_reply_err(req, errno);
  fi->fh = uint64_t(fd);
  fi->keep_cache = 1;  // nobody else writes the source file: cached pages stay valid
  if (fuse_reply_open(req, fi) != 0) close(fd);  // interrupted: no release will come
}

void opCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  PassthroughContext& c = contextOf(req);
  Inode& dir = c.inodes->inodeOf(parent);
  int fd = openat(dir.fd, name, backingOpenFlags(c, fi->flags) | O_CREAT, mode);
  if (fd < 0) return (void)fuse_reply_err(req, errno);
  fuse_entry_param entry;
  int error = lookupEntry(c, dir, name, &entry);
  if (error != 0) {
    close(fd);
    return (void)fuse_reply_err(req, error);
  }
  fi->fh = uint64_t(fd);
  fi->keep_cache = 1;
  if (fuse_reply_create(req, &entry, fi) != 0) {
    c.inodes->forget(entry.ino, 1);
    close(fd);
  }
}

void opRead(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t offset, fuse_file_info* fi) {
  // libfuse reads (or, with FUSE_CAP_SPLICE_WRITE, splices) the range from the descriptor
  // straight into the reply; a short read at end of file is a short reply.
  fuse_bufvec source = FUSE_BUFVEC_INIT(size);
  source.buf[0].flags = fuse_buf_flags(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  source.buf[0].fd = fdOf(fi);
  source.buf[0].pos = offset;
  fuse_reply_data(req, &source, FUSE_BUF_SPLICE_MOVE);  // replies the error itself on failure
}

void opWriteBuf(fuse_req_t req, fuse_ino_t /*ino*/, fuse_bufvec* data, off_t offset,
                fuse_file_info* fi) {
  fuse_bufvec destination = FUSE_BUFVEC_INIT(fuse_buf_size(data));
  destination.buf[0].flags = fuse_buf_flags(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  destination.buf[0].fd = fdOf(fi);
  destination.buf[0].pos = offset;
  ssize_t written = fuse_buf_copy(&destination, data, fuse_buf_copy_flags(0));
  if (written < 0) return (void)fuse_reply_err(req, int(-written));
  fuse_reply_write(req, size_t(written));
}

void opFlush(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  // close(2) of one of the application's descriptors: close a duplicate, so that the
  // source file system sees it too (and reports its errors), as a local close would.
  int duplicate = dup(fdOf(fi));
  if (duplicate < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_err(req, close(duplicate) == 0 ? 0 : errno);
}

void opRelease(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  close(fdOf(fi));
  fuse_reply_err(req, 0);
}

void opFsync(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) {
  int result = datasync ? fdatasync(fdOf(fi)) : fsync(fdOf(fi));
  fuse_reply_err(req, result == 0 ? 0 : errno);
}

void opFallocate(fuse_req_t req, fuse_ino_t /*ino*/, int mode, off_t offset, off_t length,
                 fuse_file_info* fi) {
  int result = fallocate(fdOf(fi), mode, offset, length);
  fuse_reply_err(req, result == 0 ? 0 : errno);
}

void opLseek(fuse_req_t req, fuse_ino_t /*ino*/, off_t offset, int whence, fuse_file_info* fi) {
  off_t position = lseek(fdOf(fi), offset, whence);  // SEEK_DATA / SEEK_HOLE
  if (position < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_lseek(req, position);
}

void opCopyFileRange(fuse_req_t req, fuse_ino_t /*inoIn*/, off_t offsetIn, fuse_file_info* fiIn,
                     fuse_ino_t /*inoOut*/, off_t offsetOut, fuse_file_info* fiOut, size_t length,
                     int flags) {
  loff_t in = offsetIn, out = offsetOut;
  ssize_t copied = copy_file_range(fdOf(fiIn), &in, fdOf(fiOut), &out, length, unsigned(flags));
  if (copied < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_write(req, size_t(copied));
}

}  // namespace

void addFileOps(fuse_lowlevel_ops& ops) {
  ops.open = opOpen;
  ops.create = opCreate;
  ops.read = opRead;
  ops.write_buf = opWriteBuf;
  ops.flush = opFlush;
  ops.release = opRelease;
  ops.fsync = opFsync;
  ops.fallocate = opFallocate;
  ops.lseek = opLseek;
  ops.copy_file_range = opCopyFileRange;
}

}  // namespace dfs::passthrough
