#include "fuse/fuse_ops.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include <map>
#include <mutex>
#include <unordered_map>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "backend/client/dir_cursor.h"
#include "backend/common/metrics.h"
#include "backend/common/status.h"

namespace dfs {

namespace {

constexpr size_t kMaxName = 255;
constexpr uint32_t kBlockSize = 1u << 20;  // st_blksize: makes cp & co. use 1 MiB buffers

FuseContext& ctx(fuse_req_t req) { return *static_cast<FuseContext*>(fuse_req_userdata(req)); }

// FUSE node ids are the server's inode numbers, except that the volume root is
// FUSE_ROOT_ID.
uint64_t toServer(const FuseContext& c, fuse_ino_t ino) {
  return ino == FUSE_ROOT_ID ? c.rootIno : uint64_t(ino);
}
fuse_ino_t toFuse(const FuseContext& c, uint64_t ino) {
  return ino == c.rootIno ? FUSE_ROOT_ID : fuse_ino_t(ino);
}

Caller callerOf(fuse_req_t req) {
  const fuse_ctx* fc = fuse_req_ctx(req);
  return Caller{uint32_t(fc->uid), uint32_t(fc->gid), uint32_t(fc->pid)};
}

void toTimespec(int64_t ns, timespec* ts) {
  ts->tv_sec = ns / 1000000000;
  ts->tv_nsec = ns % 1000000000;
  if (ts->tv_nsec < 0) {
    ts->tv_nsec += 1000000000;
    ts->tv_sec -= 1;
  }
}

struct stat toStat(const FuseContext& c, const Attr& a) {
  struct stat st;
  memset(&st, 0, sizeof(st));
  st.st_ino = toFuse(c, a.ino);
  st.st_mode = a.mode;
  st.st_nlink = a.nlink;
  st.st_uid = a.uid;
  st.st_gid = a.gid;
  st.st_rdev = a.rdev;
  st.st_size = off_t(a.size);
  st.st_blksize = kBlockSize;
  uint64_t backed = S_ISREG(a.mode) ? std::max(a.storedBytes, uint64_t(0)) : a.size;
  st.st_blocks = blkcnt_t((backed + 511) / 512);
  toTimespec(a.atimeNs, &st.st_atim);
  toTimespec(a.mtimeNs, &st.st_mtim);
  toTimespec(a.ctimeNs, &st.st_ctim);
  return st;
}

void replyError(fuse_req_t req, const Status& status) { fuse_reply_err(req, toErrno(status.code)); }

// How long the kernel may keep the name `parent`/... it is handed now: longer
// in a directory delegated to this mount (nobody else changes its names without
// a recall, and the end of a delegation invalidates them in the kernel).
double entryTimeout(FuseContext& c, uint64_t parent) {
  if (c.delegatedTimeoutSec > c.entryTimeoutSec && parent != 0 &&
      c.client->meta().delegated(parent)) {
    return c.delegatedTimeoutSec;
  }
  return c.entryTimeoutSec;
}

// Hands an inode, named in `parent` (server inode), to the kernel: counts the
// lookup, then replies.
void replyEntry(fuse_req_t req, FuseContext& c, uint64_t parent, Attr attr) {
  c.client->data().patchAttr(&attr);
  fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  e.ino = toFuse(c, attr.ino);
  e.generation = 1;
  e.attr = toStat(c, attr);
  e.attr_timeout = c.attrTimeoutSec;
  e.entry_timeout = entryTimeout(c, parent);
  c.refs.add(attr.ino);
  if (fuse_reply_entry(req, &e) != 0) {
    // The request was interrupted: the kernel did not take the reference.
    if (c.refs.forget(attr.ino, 1)) c.client->data().forget(attr.ino);
  }
}

bool badName(fuse_req_t req, const char* name) {
  if (strlen(name) > kMaxName) {
    fuse_reply_err(req, ENAMETOOLONG);
    return true;
  }
  return false;
}

// Open file handle stored in fi->fh. The only place that casts fi->fh.
struct OpenFile {
  uint64_t ino;
  int flags;
};
uint64_t toHandle(std::unique_ptr<OpenFile> file) { return reinterpret_cast<uint64_t>(file.release()); }
std::unique_ptr<OpenFile> takeHandle(fuse_file_info* fi) {
  auto* file = reinterpret_cast<OpenFile*>(fi->fh);
  fi->fh = 0;
  return std::unique_ptr<OpenFile>(file);
}

// Open directory handle stored in fi->fh (opendir/readdir/releasedir).
struct OpenDir {
  uint64_t ino;
  std::mutex mu;      // guards cursor and pending; never held across a reply
  DirCursor cursor;
  // Entries fetched from the server but not yet returned; valid for a readdir
  // at pendingCookie.
  std::vector<DirEntry> pending;
  uint64_t pendingCookie = UINT64_MAX;
  bool pendingEof = false;
};
OpenDir* dirHandle(fuse_file_info* fi) { return reinterpret_cast<OpenDir*>(fi->fh); }

// Runs one handler; any escaped exception becomes EIO instead of killing the daemon.
// REQUIRES: `body` replies exactly once unless it throws before replying.
// Per-operation Prometheus series. `op` is always a string literal, so its address
// identifies it; each thread caches the lookup to keep the registry lock off the hot path.
struct FuseOpMetrics {
  Counter& ops;
  Histogram& seconds;
};
FuseOpMetrics& fuseOpMetrics(const char* op) {
  thread_local std::unordered_map<const char*, FuseOpMetrics*> cache;
  auto cached = cache.find(op);
  if (cached != cache.end()) return *cached->second;
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<FuseOpMetrics>> all;  // guarded by mutex
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = all[op];
  if (!slot) {
    MetricLabels labels{{"op", op}};
    slot.reset(new FuseOpMetrics{
        metrics().counter("dfs_fuse_ops_total", "FUSE operations handled, by operation", labels),
        metrics().histogram("dfs_fuse_op_duration_seconds",
                            "FUSE operation latency until the reply, by operation", labels)});
  }
  cache[op] = slot.get();
  return *slot;
}

template <typename Body>
void guarded(fuse_req_t req, const char* op, Body&& body) {
  FuseOpMetrics& m = fuseOpMetrics(op);
  m.ops.inc();
  ScopedLatencyTimer timer(m.seconds);
  try {
    body();
  } catch (const std::exception& e) {
    spdlog::error("{}: unexpected error: {}", op, e.what());
    fuse_reply_err(req, EIO);
  } catch (const kj::Exception& e) {
    spdlog::error("{}: unexpected error: {}", op, e.getDescription().cStr());
    fuse_reply_err(req, EIO);
  } catch (...) {
    spdlog::error("{}: unexpected error", op);
    fuse_reply_err(req, EIO);
  }
}

void opInit(void* userdata, fuse_conn_info* conn) {
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO) conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  conn->max_write = 1u << 20;
  auto* c = static_cast<FuseContext*>(userdata);
  bool wanted = c->directWrites;
  bool coherent = conn->proto_major > 7 || (conn->proto_major == 7 && conn->proto_minor >= 39);
  c->directWrites = wanted && coherent;
  spdlog::info(
      "fuse: protocol {}.{}, max_write {}, max_readahead {}, readdirplus {}, direct "
      "writes {}",
      conn->proto_major, conn->proto_minor, conn->max_write, conn->max_readahead,
      (conn->want & FUSE_CAP_READDIRPLUS) != 0,
      !wanted    ? "off"
      : coherent ? "on"
                 : "off (needs FUSE 7.39)");
}

void opDestroy(void* userdata) {
  auto* c = static_cast<FuseContext*>(userdata);
  Status s = c->client->data().flushAll();
  if (!s.ok()) spdlog::error("flush at unmount failed: {}", s.message);
}

void opLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guarded(req, "lookup", [&] {
    if (badName(req, name)) return;
    FuseContext& c = ctx(req);
    auto r = c.client->meta().lookup(toServer(c, parent), name);
    if (!r.ok()) {
      if (r.status().code == Code::NOT_FOUND) {
        // Negative entry, cached by the kernel for entry_timeout.
        fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.entry_timeout = c.entryTimeoutSec;
        fuse_reply_entry(req, &e);
        return;
      }
      return replyError(req, r.status());
    }
    replyEntry(req, c, toServer(c, parent), r.value());
  });
}

void forgetOne(FuseContext& c, fuse_ino_t ino, uint64_t nlookup) {
  uint64_t server = toServer(c, ino);
  if (c.refs.forget(server, nlookup)) {
    c.client->data().forget(server);
    std::lock_guard<std::mutex> lock(c.cacheMu);
    c.kernelCachedVersion.erase(server);
  }
}

// A write-only open bypasses the page cache (FuseContext::directWrites).
bool directWrite(FuseContext& c, int flags) {
  return c.directWrites && (flags & O_ACCMODE) == O_WRONLY;
}

// Close-to-open: may the kernel keep the pages it cached for `attr.ino`? Only
// if they hold exactly this data version; records the version either way.
bool keepCache(FuseContext& c, const Attr& attr, bool truncated) {
  std::lock_guard<std::mutex> lock(c.cacheMu);
  auto [it, inserted] = c.kernelCachedVersion.try_emplace(attr.ino, attr.dataVersion);
  bool keep = !inserted && !truncated && it->second == attr.dataVersion;
  it->second = attr.dataVersion;
  return keep;
}

void opForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  try {
    forgetOne(ctx(req), ino, nlookup);
  } catch (...) {
  }
  fuse_reply_none(req);
}

void opForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  try {
    FuseContext& c = ctx(req);
    for (size_t i = 0; i < count; ++i) forgetOne(c, forgets[i].ino, forgets[i].nlookup);
  } catch (...) {
  }
  fuse_reply_none(req);
}

void opGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  guarded(req, "getattr", [&] {
    FuseContext& c = ctx(req);
    auto r = c.client->meta().getattrCached(toServer(c, ino));
    if (!r.ok()) return replyError(req, r.status());
    Attr attr = r.value();
    c.client->data().noteAttr(attr, false);
    c.client->data().patchAttr(&attr);
    struct stat st = toStat(c, attr);
    fuse_reply_attr(req, &st, c.attrTimeoutSec);
  });
}

int64_t toNs(const timespec& ts) { return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec; }

void opSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int toSet, fuse_file_info*) {
  guarded(req, "setattr", [&] {
    FuseContext& c = ctx(req);
    uint64_t server = toServer(c, ino);
    SetAttrRequest set;
    if (toSet & FUSE_SET_ATTR_MODE) {
      set.setMode = true;
      set.mode = attr->st_mode;
    }
    if (toSet & FUSE_SET_ATTR_UID) {
      set.setUid = true;
      set.uid = attr->st_uid;
    }
    if (toSet & FUSE_SET_ATTR_GID) {
      set.setGid = true;
      set.gid = attr->st_gid;
    }
    if (toSet & FUSE_SET_ATTR_ATIME) {
      set.setAtime = true;
      set.atimeNs = toNs(attr->st_atim);
    }
    if (toSet & FUSE_SET_ATTR_ATIME_NOW) {
      set.setAtime = true;
      set.atimeNow = true;
    }
    if (toSet & FUSE_SET_ATTR_MTIME) {
      set.setMtime = true;
      set.mtimeNs = toNs(attr->st_mtim);
    }
    if (toSet & FUSE_SET_ATTR_MTIME_NOW) {
      set.setMtime = true;
      set.mtimeNow = true;
    }
    DataPath& data = c.client->data();
    if (toSet & FUSE_SET_ATTR_SIZE) {
      set.setSize = true;
      set.size = uint64_t(attr->st_size);
    }
    // A file being written: the change goes with its next commit (journaled now).
    if (auto deferred = data.absorbSetattr(server, set, callerOf(req))) {
      struct stat st = toStat(c, *deferred);
      return (void)fuse_reply_attr(req, &st, c.attrTimeoutSec);
    }
    // Buffered bytes are committed first: a truncate applies to them, buffered
    // writes would otherwise bump mtime after an explicit set, and deferred
    // changes would land after this one.
    if (set.setSize || set.setMtime || data.attrsPending(server)) {
      Status flushed = data.flush(server);
      if (!flushed.ok()) return replyError(req, flushed);
    }
    auto r = c.client->meta().setattr(server, set, callerOf(req));
    if (!r.ok()) return replyError(req, r.status());
    if (set.setSize) data.truncated(server, set.size);
    Attr a = r.value();
    data.noteAttr(a, false);
    data.patchAttr(&a);
    struct stat st = toStat(c, a);
    fuse_reply_attr(req, &st, c.attrTimeoutSec);
  });
}

void opReadlink(fuse_req_t req, fuse_ino_t ino) {
  guarded(req, "readlink", [&] {
    FuseContext& c = ctx(req);
    auto r = c.client->meta().readlink(toServer(c, ino));
    if (!r.ok()) return replyError(req, r.status());
    fuse_reply_readlink(req, r.value().c_str());
  });
}

void opMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  guarded(req, "mknod", [&] {
    if (badName(req, name)) return;
    FuseContext& c = ctx(req);
    auto r = c.client->meta().mknod(toServer(c, parent), name, mode, rdev, callerOf(req));
    if (!r.ok()) return replyError(req, r.status());
    replyEntry(req, c, toServer(c, parent), r.value());
  });
}

void opMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  guarded(req, "mkdir", [&] {
    if (badName(req, name)) return;
    FuseContext& c = ctx(req);
    auto r = c.client->meta().mkdir(toServer(c, parent), name, mode | S_IFDIR, callerOf(req));
    if (!r.ok()) return replyError(req, r.status());
    replyEntry(req, c, toServer(c, parent), r.value());
  });
}

void opSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  guarded(req, "symlink", [&] {
    if (badName(req, name)) return;
    FuseContext& c = ctx(req);
    auto r = c.client->meta().symlink(toServer(c, parent), name, link, callerOf(req));
    if (!r.ok()) return replyError(req, r.status());
    replyEntry(req, c, toServer(c, parent), r.value());
  });
}

void opLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newParent, const char* newName) {
  guarded(req, "link", [&] {
    if (badName(req, newName)) return;
    FuseContext& c = ctx(req);
    auto r = c.client->meta().link(toServer(c, ino), toServer(c, newParent), newName);
    if (!r.ok()) return replyError(req, r.status());
    replyEntry(req, c, toServer(c, newParent), r.value());
  });
}

void opUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guarded(req, "unlink", [&] {
    FuseContext& c = ctx(req);
    fuse_reply_err(req, toErrno(c.client->meta().unlink(toServer(c, parent), name, callerOf(req)).code));
  });
}

void opRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guarded(req, "rmdir", [&] {
    FuseContext& c = ctx(req);
    fuse_reply_err(req, toErrno(c.client->meta().rmdir(toServer(c, parent), name, callerOf(req)).code));
  });
}

void opRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newParent,
              const char* newName, unsigned int flags) {
  guarded(req, "rename", [&] {
    if (badName(req, newName)) return;
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return (void)fuse_reply_err(req, EINVAL);
    FuseContext& c = ctx(req);
    Status s = c.client->meta().rename(toServer(c, parent), name, toServer(c, newParent), newName,
                                       flags, callerOf(req));
    fuse_reply_err(req, toErrno(s.code));
  });
}

void opOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  guarded(req, "open", [&] {
    FuseContext& c = ctx(req);
    uint64_t server = toServer(c, ino);
    bool truncate = (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY;
    if (truncate) {
      Status flushed = c.client->data().flush(server);  // keep errors of earlier writes visible
      (void)flushed;
      c.client->data().truncated(server, 0);
    }
    auto r = c.client->meta().open(server, truncate, (fi->flags & O_ACCMODE) != O_RDONLY);
    if (!r.ok()) return replyError(req, r.status());
    c.client->data().noteAttr(r.value(), true);
    fi->fh = toHandle(std::make_unique<OpenFile>(OpenFile{server, fi->flags}));
    // The attributes come fresh from the metadata node (open RPC), never a cache,
    // unless this mount is the file's only writer (an absorbed open).
    fi->keep_cache = keepCache(c, r.value(), truncate) ? 1 : 0;
    fi->direct_io = directWrite(c, fi->flags) ? 1 : 0;
    if (fuse_reply_open(req, fi) != 0) {
      takeHandle(fi);
      c.client->meta().release(server);
    }
  });
}

void opCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  guarded(req, "create", [&] {
    if (badName(req, name)) return;
    FuseContext& c = ctx(req);
    auto r = c.client->meta().create(toServer(c, parent), name, mode, (fi->flags & O_EXCL) != 0,
                                     callerOf(req));
    if (!r.ok()) return replyError(req, r.status());
    Attr attr = r.value();
    c.client->data().noteAttr(attr, true);
    fi->keep_cache = keepCache(c, attr, false) ? 1 : 0;
    fi->direct_io = directWrite(c, fi->flags) ? 1 : 0;
    c.client->data().patchAttr(&attr);
    fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.ino = toFuse(c, attr.ino);
    e.generation = 1;
    e.attr = toStat(c, attr);
    e.attr_timeout = c.attrTimeoutSec;
    e.entry_timeout = entryTimeout(c, toServer(c, parent));
    fi->fh = toHandle(std::make_unique<OpenFile>(OpenFile{attr.ino, fi->flags}));
    c.refs.add(attr.ino);
    if (fuse_reply_create(req, &e, fi) != 0) {
      takeHandle(fi);
      c.client->meta().release(attr.ino);
      if (c.refs.forget(attr.ino, 1)) c.client->data().forget(attr.ino);
    }
  });
}

// Per-thread read buffer: reads are at most max_read (1 MiB) and never reentrant.
std::vector<char>& readBuffer(size_t size) {
  thread_local std::vector<char> buffer;
  if (buffer.size() < size) buffer.resize(size);
  return buffer;
}

void opRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  guarded(req, "read", [&] {
    FuseContext& c = ctx(req);
    if (off < 0) return (void)fuse_reply_err(req, EINVAL);
    auto& buffer = readBuffer(size);
    auto r = c.client->data().read(toServer(c, ino), uint64_t(off), size, buffer.data());
    if (!r.ok()) return replyError(req, r.status());
    fuse_reply_buf(req, buffer.data(), r.value());
  });
}

void opWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info*) {
  guarded(req, "write", [&] {
    FuseContext& c = ctx(req);
    if (off < 0) return (void)fuse_reply_err(req, EINVAL);
    auto r = c.client->data().write(toServer(c, ino), uint64_t(off), buf, size);
    if (!r.ok()) return replyError(req, r.status());
    fuse_reply_write(req, r.value());
  });
}

// close(2): starts the commit of what the file buffered and returns (the bytes
// are journaled); an earlier failed flush of the file is reported here.
void opFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  guarded(req, "flush", [&] {
    FuseContext& c = ctx(req);
    fuse_reply_err(req, toErrno(c.client->data().startFlush(toServer(c, ino)).code));
  });
}

void opRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  guarded(req, "release", [&] {
    FuseContext& c = ctx(req);
    auto file = takeHandle(fi);
    uint64_t server = file ? file->ino : toServer(c, ino);
    // Nobody waits for a release (close(2) returned at flush). The handle is
    // released on dfs-meta only once the file's bytes are committed: until then
    // dfs-meta has this mount commit before another client opens the file.
    MetaClient* meta = &c.client->meta();
    c.client->data().afterFlush(server, [meta, server] { meta->releaseAsync(server); });
    fuse_reply_err(req, 0);
  });
}

// fsync/fdatasync: the file's buffered bytes are committed and the metadata
// node's store is on disk (the commit, and any earlier one, e.g. at close).
void opFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  guarded(req, "fsync", [&] {
    FuseContext& c = ctx(req);
    Status status = c.client->data().flush(toServer(c, ino));
    if (status.ok()) status = c.client->meta().sync();
    fuse_reply_err(req, toErrno(status.code));
  });
}

// fsync on a directory: its entries (all namespace changes so far) are on
// dfs-meta's disk. Like an ext4 journal commit it also commits every byte the
// mount buffered (closed files are committed in the background): `sync DIR`
// after a `tar x` returns once all of it is in the cluster. (FUSE has no syncfs
// in libfuse 3.14, so `sync -f` cannot do this.)
void opFsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  guarded(req, "fsyncdir", [&] {
    FuseContext& c = ctx(req);
    Status status = c.client->data().flushAll();
    if (status.ok()) status = c.client->meta().sync();
    fuse_reply_err(req, toErrno(status.code));
  });
}

void opOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  guarded(req, "opendir", [&] {
    FuseContext& c = ctx(req);
    auto dir = std::make_unique<OpenDir>();
    dir->ino = toServer(c, ino);
    fi->fh = reinterpret_cast<uint64_t>(dir.get());
    if (fuse_reply_open(req, fi) == 0) dir.release();
  });
}

void opReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete dirHandle(fi);
  fi->fh = 0;
  fuse_reply_err(req, 0);
}

// readdir and readdirplus. Entries come from the server in name order, paged by
// name; cookies map to names through the handle's DirCursor.
void readdirCommon(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, fuse_file_info* fi,
                   bool plus) {
  FuseContext& c = ctx(req);
  OpenDir* dir = dirHandle(fi);
  if (!dir) return (void)fuse_reply_err(req, EBADF);
  std::vector<char> buf(size);
  size_t used = 0;
  uint64_t cookie = uint64_t(off);
  std::vector<uint64_t> counted;  // inodes whose lookup count this reply adds
  const double entryTtl = plus ? entryTimeout(c, dir->ino) : 0;

  auto addEntry = [&](const std::string& name, const Attr& attr, uint64_t next,
                      bool countLookup) -> bool {
    size_t need;
    if (plus) {
      fuse_entry_param e;
      memset(&e, 0, sizeof(e));
      e.ino = toFuse(c, attr.ino);
      e.generation = 1;
      e.attr = toStat(c, attr);
      e.attr_timeout = c.attrTimeoutSec;
      e.entry_timeout = entryTtl;
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &e, off_t(next));
    } else {
      struct stat st;
      memset(&st, 0, sizeof(st));
      st.st_ino = toFuse(c, attr.ino);
      st.st_mode = attr.mode;
      need = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st, off_t(next));
    }
    if (need > size - used) return false;
    used += need;
    if (plus && countLookup) counted.push_back(attr.ino);
    return true;
  };

  std::unique_lock<std::mutex> lock(dir->mu);
  if (cookie < DirCursor::kDot) {
    Attr self;
    self.ino = dir->ino;
    self.mode = S_IFDIR;
    if (!addEntry(".", self, DirCursor::kDot, false)) goto done;
    cookie = DirCursor::kDot;
  }
  if (cookie < DirCursor::kDotDot) {
    Attr parent;
    parent.ino = dir->ino;  // the kernel ignores ".." attributes
    parent.mode = S_IFDIR;
    if (!addEntry("..", parent, DirCursor::kDotDot, false)) goto done;
    cookie = DirCursor::kDotDot;
  }
  {
    auto after = dir->cursor.resumeAfter(cookie);
    if (!after) {
      lock.unlock();
      return (void)fuse_reply_err(req, EINVAL);
    }
    std::string resume = *after;
    bool eof = false;
    while (!eof) {
      std::vector<DirEntry> page;
      if (dir->pendingCookie == cookie && !dir->pending.empty()) {
        page = std::move(dir->pending);
        eof = dir->pendingEof;
      } else {
        uint32_t max = uint32_t(std::min<size_t>(std::max<size_t>(size / 48, 16), 1024));
        lock.unlock();  // no lock across an RPC
        auto r = c.client->meta().readdir(dir->ino, resume, max, plus);
        lock.lock();
        if (!r.ok()) {
          if (used > 0) break;  // return what we have; the error shows on the next call
          lock.unlock();
          return replyError(req, r.status());
        }
        page = std::move(r.value().entries);
        eof = r.value().eof;
      }
      dir->pending.clear();
      dir->pendingCookie = UINT64_MAX;
      if (page.empty()) break;
      size_t i = 0;
      for (; i < page.size(); ++i) {
        DirEntry& e = page[i];
        Attr attr;
        if (e.attr) {
          attr = *e.attr;
          c.client->data().patchAttr(&attr);
        } else {
          attr.ino = e.ino;
          attr.mode = e.mode;
        }
        if (plus && !e.attr) {
          // The server did not send attributes: readdirplus entries need them.
          lock.unlock();
          auto r = c.client->meta().getattr(e.ino);
          lock.lock();
          if (!r.ok()) continue;
          attr = r.value();
        }
        uint64_t next = DirCursor::next(cookie);
        if (!addEntry(e.name, attr, next, true)) break;
        dir->cursor.record(next, e.name);
        cookie = next;
        resume = e.name;
      }
      if (i < page.size()) {
        // Buffer full: keep the rest for the next readdir at this cookie.
        dir->pending.assign(std::make_move_iterator(page.begin() + i),
                            std::make_move_iterator(page.end()));
        dir->pendingCookie = cookie;
        dir->pendingEof = eof;
        break;
      }
    }
  }
done:
  lock.unlock();
  for (uint64_t ino : counted) c.refs.add(ino);
  if (fuse_reply_buf(req, buf.data(), used) != 0) {
    for (uint64_t ino : counted) {
      if (c.refs.forget(ino, 1)) c.client->data().forget(ino);
    }
  }
}

void opReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  guarded(req, "readdir", [&] { readdirCommon(req, ino, size, off, fi, false); });
}

void opReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  guarded(req, "readdirplus", [&] { readdirCommon(req, ino, size, off, fi, true); });
}

void opStatfs(fuse_req_t req, fuse_ino_t) {
  guarded(req, "statfs", [&] {
    FuseContext& c = ctx(req);
    auto r = c.client->meta().statfs();
    if (!r.ok()) return replyError(req, r.status());
    VolumeInfo vol = c.client->meta().volume();
    int k = std::max(vol.ecK, 1), m = std::max(vol.ecM, 0);
    // Raw capacity counts parity; users see what fits as data.
    auto scale = [&](uint64_t raw) { return raw / uint64_t(k + m) * uint64_t(k); };
    struct statvfs st;
    memset(&st, 0, sizeof(st));
    st.f_bsize = 4096;
    st.f_frsize = 4096;
    st.f_blocks = scale(r.value().totalBytes) / st.f_frsize;
    st.f_bfree = scale(r.value().freeBytes) / st.f_frsize;
    st.f_bavail = st.f_bfree;
    st.f_files = r.value().totalInodes;
    st.f_ffree = r.value().freeInodes;
    st.f_favail = st.f_ffree;
    st.f_namemax = kMaxName;
    fuse_reply_statfs(req, &st);
  });
}

void opSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags) {
  guarded(req, "setxattr", [&] {
    FuseContext& c = ctx(req);
    Status s = c.client->meta().setxattr(toServer(c, ino), name, std::string_view(value, size),
                                         uint32_t(flags));
    fuse_reply_err(req, toErrno(s.code));
  });
}

void opGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  guarded(req, "getxattr", [&] {
    FuseContext& c = ctx(req);
    auto r = c.client->meta().getxattr(toServer(c, ino), name);
    if (!r.ok()) return replyError(req, r.status());
    const std::string& v = r.value();
    if (size == 0) return (void)fuse_reply_xattr(req, v.size());
    if (v.size() > size) return (void)fuse_reply_err(req, ERANGE);
    fuse_reply_buf(req, v.data(), v.size());
  });
}

void opListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  guarded(req, "listxattr", [&] {
    FuseContext& c = ctx(req);
    auto r = c.client->meta().listxattr(toServer(c, ino));
    if (!r.ok()) return replyError(req, r.status());
    std::string list;
    for (const auto& n : r.value()) {
      list += n;
      list.push_back('\0');
    }
    if (size == 0) return (void)fuse_reply_xattr(req, list.size());
    if (list.size() > size) return (void)fuse_reply_err(req, ERANGE);
    fuse_reply_buf(req, list.data(), list.size());
  });
}

void opRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  guarded(req, "removexattr", [&] {
    FuseContext& c = ctx(req);
    fuse_reply_err(req, toErrno(c.client->meta().removexattr(toServer(c, ino), name).code));
  });
}

fuse_lowlevel_ops makeOps() {
  fuse_lowlevel_ops ops;
  memset(&ops, 0, sizeof(ops));
  ops.init = opInit;
  ops.destroy = opDestroy;
  ops.lookup = opLookup;
  ops.forget = opForget;
  ops.forget_multi = opForgetMulti;
  ops.getattr = opGetattr;
  ops.setattr = opSetattr;
  ops.readlink = opReadlink;
  ops.mknod = opMknod;
  ops.mkdir = opMkdir;
  ops.symlink = opSymlink;
  ops.link = opLink;
  ops.unlink = opUnlink;
  ops.rmdir = opRmdir;
  ops.rename = opRename;
  ops.open = opOpen;
  ops.create = opCreate;
  ops.read = opRead;
  ops.write = opWrite;
  ops.flush = opFlush;
  ops.release = opRelease;
  ops.fsync = opFsync;
  ops.fsyncdir = opFsyncdir;
  ops.opendir = opOpendir;
  ops.readdir = opReaddir;
  ops.readdirplus = opReaddirplus;
  ops.releasedir = opReleasedir;
  ops.statfs = opStatfs;
  ops.setxattr = opSetxattr;
  ops.getxattr = opGetxattr;
  ops.listxattr = opListxattr;
  ops.removexattr = opRemovexattr;
  return ops;
}

}  // namespace

void invalidateKernel(FuseContext& c, const InvalidationBatch& batch) {
  fuse_session* se = c.session.load();
  std::vector<uint64_t> inodes = batch.inodes;
  if (batch.all) {
    // Dentries cannot be enumerated: they expire with entry_timeout.
    inodes = c.refs.known();
    inodes.push_back(c.rootIno);
  }
  for (uint64_t ino : inodes) {
    {
      std::lock_guard<std::mutex> lock(c.cacheMu);
      c.kernelCachedVersion.erase(ino);
    }
    if (!se || (ino != c.rootIno && c.refs.count(ino) == 0)) continue;
    int rc = fuse_lowlevel_notify_inval_inode(se, toFuse(c, ino), 0, 0);
    if (rc != 0 && rc != -ENOENT) {
      spdlog::debug("invalidate inode {}: {}", ino, strerror(-rc));
    }
  }
  for (const auto& [parent, name] : batch.entries) {
    if (!se || (parent != c.rootIno && c.refs.count(parent) == 0)) continue;
    int rc = fuse_lowlevel_notify_inval_entry(se, toFuse(c, parent), name.data(), name.size());
    if (rc != 0 && rc != -ENOENT) {
      spdlog::debug("invalidate entry {}/{}: {}", parent, name, strerror(-rc));
    }
  }
}

const fuse_lowlevel_ops& fuseOps() {
  static const fuse_lowlevel_ops kOps = makeOps();
  return kOps;
}

}  // namespace dfs
