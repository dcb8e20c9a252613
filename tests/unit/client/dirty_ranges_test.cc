#include "backend/client/dirty_ranges.h"

#include <catch2/catch.hpp>
#include <random>
#include <string>

using dfs::DirtyRanges;

namespace {
// Reference model: a byte array plus a mask of which bytes are recorded.
struct Model {
  std::string bytes;
  std::string mask;
  void write(uint64_t off, const std::string& d, bool gapsOnly = false) {
    if (bytes.size() < off + d.size()) {
      bytes.resize(off + d.size(), '\0');
      mask.resize(off + d.size(), '0');
    }
    for (size_t i = 0; i < d.size(); ++i) {
      if (gapsOnly && mask[off + i] == '1') continue;
      bytes[off + i] = d[i];
      mask[off + i] = '1';
    }
  }
};

void checkAgainst(const DirtyRanges& r, const Model& m) {
  uint64_t total = 0;
  uint64_t prevEnd = 0;
  bool first = true;
  for (const auto& [off, data] : r.ranges()) {
    REQUIRE(!data.empty());
    if (!first) REQUIRE(off > prevEnd);  // disjoint and never adjacent
    first = false;
    prevEnd = off + data.size();
    total += data.size();
  }
  REQUIRE(total == r.bytes());
  std::string out(m.bytes.size(), '#');
  r.overlay(0, out.size(), out.data());
  for (size_t i = 0; i < m.bytes.size(); ++i) {
    if (m.mask[i] == '1') {
      REQUIRE(out[i] == m.bytes[i]);
    } else {
      REQUIRE(out[i] == '#');
    }
  }
}
}  // namespace

TEST_CASE("dirty ranges merge appends, overlaps and adjacent writes") {
  DirtyRanges r;
  r.write(0, "hello");
  r.write(5, " world");
  REQUIRE(r.ranges().size() == 1);
  CHECK(r.ranges().begin()->second == "hello world");
  r.write(20, "x");
  CHECK(r.ranges().size() == 2);
  CHECK(r.end() == 21);
  r.write(3, std::string(20, 'z'));  // covers both
  REQUIRE(r.ranges().size() == 1);
  CHECK(r.ranges().begin()->second == "hel" + std::string(20, 'z'));
  CHECK(r.bytes() == 23);
  CHECK(r.overlaps(22, 5));
  CHECK_FALSE(r.overlaps(23, 5));
}

TEST_CASE("dirty ranges fillGaps keeps newer bytes") {
  DirtyRanges r;
  r.write(10, "NEW");
  r.fillGaps(5, "oldoldoldold");
  REQUIRE(r.ranges().size() == 1);
  CHECK(r.ranges().begin()->first == 5);
  CHECK(r.ranges().begin()->second == "oldolNEWdold");
}

TEST_CASE("dirty ranges truncate cuts and drops") {
  DirtyRanges r;
  r.write(0, "abcdef");
  r.write(100, "xyz");
  r.truncate(3);
  REQUIRE(r.ranges().size() == 1);
  CHECK(r.ranges().begin()->second == "abc");
  CHECK(r.bytes() == 3);
  r.truncate(0);
  CHECK(r.empty());
  CHECK(r.bytes() == 0);
}

TEST_CASE("dirty ranges match a byte model under random writes") {
  std::mt19937 rng(42);
  for (int round = 0; round < 50; ++round) {
    DirtyRanges r;
    Model m;
    for (int i = 0; i < 60; ++i) {
      uint64_t off = rng() % 300;
      std::string d(1 + rng() % 40, char('a' + rng() % 26));
      bool gaps = rng() % 4 == 0;
      if (gaps) r.fillGaps(off, d);
      else r.write(off, d);
      m.write(off, d, gaps);
      if (rng() % 15 == 0) {
        uint64_t size = rng() % 300;
        r.truncate(size);
        if (m.bytes.size() > size) {
          m.bytes.resize(size);
          m.mask.resize(size);
        }
      }
      checkAgainst(r, m);
    }
  }
}
