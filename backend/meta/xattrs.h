// Extended attributes: (inode, name) -> value, one transaction per call.
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "backend/meta/meta_store.h"

namespace dfs::meta {

constexpr uint32_t kXattrCreate = 1;
constexpr uint32_t kXattrReplace = 2;
constexpr size_t kMaxXattrValue = 64 * 1024;
constexpr size_t kMaxXattrName = 255;

class Xattrs {
 public:
  explicit Xattrs(MetaStore& store) : store_(store) {}
  // EXISTS with XATTR_CREATE when present, NO_DATA with XATTR_REPLACE when absent,
  // RANGE for values over 64 KiB or names over 255 bytes.
  Status set(uint64_t ino, std::string_view name, std::string_view value, uint32_t flags);
  Result<std::string> get(uint64_t ino, std::string_view name);
  Result<std::vector<std::string>> list(uint64_t ino);
  Status remove(uint64_t ino, std::string_view name);

 private:
  MetaStore& store_;
};

}  // namespace dfs::meta
