#include "backend/client/dirty_ranges.h"

#include <catch2/catch.hpp>
#include <random>
#include <string>

using dfs::DirtyRanges;
using dfs::RangeBuffer;
using dfs::RangeMap;

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

TEST_CASE("dirty ranges fillGapsOutside keeps both the buffer's and a newer flush's bytes") {
  DirtyRanges r;
  r.write(10, "NEW");
  RangeMap newer;
  newer.emplace(0, RangeBuffer(std::string("nn")));
  newer.emplace(14, RangeBuffer(std::string("nnn")));
  newer.emplace(40, RangeBuffer(std::string("n")));
  r.fillGapsOutside(1, "ooooooooooooooooooooo", newer);  // [1, 22)
  // [1,2) is newer's, [10,13) the buffer's, [14,17) newer's.
  // Nothing of `newer` itself is copied (its range at 40 stays out).
  REQUIRE(r.ranges().size() == 2);
  auto it = r.ranges().begin();
  CHECK(it->first == 2);
  CHECK(it->second == "ooooooooNEWo");
  ++it;
  CHECK(it->first == 17);
  CHECK(it->second == "ooooo");
}

TEST_CASE("fillGapsOutside matches a byte model: older bytes only where nothing newer is") {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    DirtyRanges r;
    Model m;
    for (int i = 0; i < 8; ++i) {
      uint64_t off = rng() % 200;
      std::string d(1 + rng() % 30, char('A' + rng() % 26));
      r.write(off, d);
      m.write(off, d);
    }
    // Disjoint, non-adjacent newer ranges, marked in the model first (newer wins).
    RangeMap newer;
    uint64_t pos = rng() % 20;
    while (pos < 220) {
      std::string d(1 + rng() % 25, char('a' + rng() % 26));
      newer.emplace(pos, RangeBuffer(d));
      pos += d.size() + 1 + rng() % 30;
    }
    Model reference = m;
    std::string older(1 + rng() % 180, '.');
    for (auto& c : older) c = char('0' + rng() % 10);
    uint64_t off = rng() % 60;
    r.fillGapsOutside(off, older, newer);
    for (size_t k = 0; k < older.size(); ++k) {
      uint64_t at = off + k;
      bool inNewer = false;
      for (const auto& [start, data] : newer) inNewer |= at >= start && at < start + data.size();
      if (!inNewer) reference.write(at, std::string(1, older[k]), /*gapsOnly=*/true);
    }
    checkAgainst(r, reference);
  }
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

TEST_CASE("a streamed range takes a flush's tail back in its headroom, without moving") {
  DirtyRanges r;
  r.setGrowthReserve(8u << 20);
  Model m;
  std::mt19937 rng(7);
  auto block = [&](size_t n) {
    std::string d(n, '\0');
    for (auto& c : d) c = char(rng());
    return d;
  };
  // A writer streams 3 MiB; a flush takes it all.
  uint64_t off = 4096;
  for (int i = 0; i < 48; ++i, off += 65536) r.write(off, block(65536));
  RangeMap taken = r.take();
  REQUIRE(taken.size() == 1);
  CHECK(r.empty());
  // The writer goes on past the streaming threshold while the flush runs.
  uint64_t resume = off;
  for (int i = 0; i < 40; ++i, off += 65536) {
    std::string d = block(65536);
    r.write(off, d);
    m.write(off, d);
  }
  REQUIRE(r.ranges().size() == 1);
  const RangeBuffer& streamed = r.ranges().begin()->second;
  REQUIRE(streamed.headroom() == DirtyRanges::kStreamHeadroom);
  const char* before = streamed.data();
  // The flush committed up to a cut 100,000 bytes before its end: the tail goes back.
  std::string_view all = taken.begin()->second.view();
  std::string_view tail = all.substr(all.size() - 100000);
  r.fillGaps(resume - tail.size(), tail);
  m.write(resume - tail.size(), std::string(tail));
  REQUIRE(r.ranges().size() == 1);
  const RangeBuffer& merged = r.ranges().begin()->second;
  CHECK(r.ranges().begin()->first == resume - tail.size());
  CHECK(merged.headroom() == DirtyRanges::kStreamHeadroom - tail.size());
  CHECK(merged.data() + tail.size() == before);  // the range's bytes did not move
  checkAgainst(r, m);
}

TEST_CASE("streamed ranges match a byte model under random writes, puts back and truncates") {
  std::mt19937 rng(11);
  for (int round = 0; round < 4; ++round) {
    DirtyRanges r;
    r.setGrowthReserve(6u << 20);
    Model m;
    for (int i = 0; i < 120; ++i) {
      uint64_t off = rng() % (5u << 20);
      std::string d(1 + rng() % (700u << 10), char('a' + rng() % 26));
      bool gaps = rng() % 3 == 0;
      if (gaps) r.fillGaps(off, d);
      else r.write(off, d);
      m.write(off, d, gaps);
      if (rng() % 20 == 0) {
        uint64_t size = rng() % (5u << 20);
        r.truncate(size);
        if (m.bytes.size() > size) {
          m.bytes.resize(size);
          m.mask.resize(size);
        }
      }
      if (i % 10 == 9) checkAgainst(r, m);
    }
    checkAgainst(r, m);
  }
}
