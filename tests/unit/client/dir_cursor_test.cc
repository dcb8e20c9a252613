#include "backend/client/dir_cursor.h"

#include <catch2/catch.hpp>

using dfs::DirCursor;

TEST_CASE("dir cursor maps cookies to resume names") {
  DirCursor c;
  CHECK(c.resumeAfter(0).value() == "");
  CHECK(c.resumeAfter(DirCursor::kDot).value() == "");
  CHECK(c.resumeAfter(DirCursor::kDotDot).value() == "");
  CHECK_FALSE(c.resumeAfter(5).has_value());  // never handed out
  uint64_t cookie = DirCursor::kDotDot;
  for (const char* name : {"a", "b", "c"}) {
    cookie = DirCursor::next(cookie);
    c.record(cookie, name);
  }
  CHECK(cookie == DirCursor::kFirstEntry + 2);
  CHECK(c.resumeAfter(DirCursor::kFirstEntry).value() == "a");
  CHECK(c.resumeAfter(DirCursor::kFirstEntry + 2).value() == "c");
  // Rewind and re-list: cookies are reassigned to the current names.
  c.record(DirCursor::kFirstEntry, "a2");
  CHECK(c.resumeAfter(DirCursor::kFirstEntry).value() == "a2");
}
