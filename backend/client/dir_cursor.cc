#include "backend/client/dir_cursor.h"

namespace dfs {

std::optional<std::string> DirCursor::resumeAfter(uint64_t cookie) const {
  if (cookie < kFirstEntry) return std::string();
  auto it = names_.find(cookie);
  if (it == names_.end()) return std::nullopt;
  return it->second;
}

}  // namespace dfs
