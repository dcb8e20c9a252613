// POSIX namespace operations on the metadata store: each public call is exactly
// one LMDB transaction (read-only for lookups, one write transaction for every
// change), so rename, link and unlink are atomic and crash-safe. All arguments
// are validated here, since they come straight from the network.
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "backend/meta/meta_store.h"

namespace dfs::meta {

struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// Mirrors proto::SetAttr.
struct SetAttrRequest {
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  int64_t atimeNs = 0;
  int64_t mtimeNs = 0;
  int64_t ctimeNs = 0;  // 0: now
  bool setMode = false, setUid = false, setGid = false, setSize = false;
  bool setAtime = false, setMtime = false, atimeNow = false, mtimeNow = false;
};

struct ReaddirEntry {
  std::string name;
  uint64_t ino = 0;
  uint32_t type = 0;
  bool hasAttr = false;
  InodeRecord attr;
};

struct ReaddirPage {
  std::vector<ReaddirEntry> entries;
  bool eof = false;
};

constexpr uint32_t kRenameNoReplace = 1;
constexpr uint32_t kRenameExchange = 2;
// Cap on one readdir page (the caller's `max` is clipped to it).
constexpr uint32_t kMaxReaddirPage = 4096;

// OK, or INVALID / NAME_TOO_LONG for names that cannot be created.
Status validateName(std::string_view name);

class Namespace {
 public:
  explicit Namespace(MetaStore& store) : store_(store) {}

  Result<InodeRecord> lookup(uint64_t parent, std::string_view name);
  Result<InodeRecord> getattr(uint64_t ino);
  Result<InodeRecord> setattr(uint64_t ino, const SetAttrRequest& set, const Caller& caller);
  Result<InodeRecord> mknod(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                            const Caller& caller);
  Result<InodeRecord> mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                            const Caller& caller);
  Result<InodeRecord> symlink(uint64_t parent, std::string_view name, std::string_view target,
                              const Caller& caller);
  Result<std::string> readlink(uint64_t ino);
  Result<InodeRecord> link(uint64_t ino, uint64_t newParent, std::string_view newName);
  Status unlink(uint64_t parent, std::string_view name, const Caller& caller);
  Status rmdir(uint64_t parent, std::string_view name, const Caller& caller);
  Status rename(uint64_t parent, std::string_view name, uint64_t newParent,
                std::string_view newName, uint32_t flags, const Caller& caller);
  Result<ReaddirPage> readdir(uint64_t ino, std::string_view after, uint32_t max, bool plus);

  // Creates a named inode inside `wtx` (shared with SessionTable::create).
  // mode's type bits pick the kind; `target` is for symlinks.
  static Result<InodeRecord> createEntry(WriteTxn& wtx, uint64_t parent, std::string_view name,
                                         uint32_t mode, uint64_t rdev, std::string_view target,
                                         const Caller& caller);

 private:
  MetaStore& store_;
};

}  // namespace dfs::meta
