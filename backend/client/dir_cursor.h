// Paging state of one open directory handle. The FUSE readdir cookie ("offset")
// is a position counter; the metadata node pages by name (readdir after=name).
// This maps each cookie handed to the kernel to the last name returned before it,
// so a readdir at any earlier cookie (rewinddir, seekdir to a telldir value,
// a short kernel buffer) resumes at the right name.
//
// Cookie 0 is the start; "." and ".." get cookies 1 and 2; entries from the
// server get 3, 4, ...
//
// Threads: not thread-safe; the directory handle's mutex guards it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace dfs {

class DirCursor {
 public:
  static constexpr uint64_t kDot = 1;
  static constexpr uint64_t kDotDot = 2;
  static constexpr uint64_t kFirstEntry = 3;

  // The server name to page after, for a readdir that starts at `cookie`
  // ("" = from the first entry). nullopt: unknown cookie (never handed out).
  std::optional<std::string> resumeAfter(uint64_t cookie) const;
  // Records that the entry `name` was returned with `cookie` (the position right
  // after it). REQUIRES: cookie >= kFirstEntry.
  void record(uint64_t cookie, const std::string& name) { names_[cookie] = name; }
  // The cookie for the entry that follows the one at `cookie`.
  static uint64_t next(uint64_t cookie) { return cookie + 1; }

 private:
  std::map<uint64_t, std::string> names_;  // cookie -> last name returned before it
};

}  // namespace dfs
