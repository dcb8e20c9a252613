#include "backend/storage/pending_index.h"

#include <catch2/catch.hpp>

namespace {

dfs::FragmentLocation at(uint32_t extent, uint64_t offset, int64_t storedAt = 10) {
  dfs::FragmentLocation location;
  location.extent = extent;
  location.offset = offset;
  location.length = 100;
  location.storedAtNs = storedAt;
  return location;
}

dfs::PendingIndex::Delta delta(std::map<std::string, dfs::FragmentLocation, std::less<>> rows,
                               uint32_t extent, uint64_t bytes) {
  dfs::PendingIndex::Delta d;
  d.fragments = std::move(rows);
  d.extents = {extent};
  d.recordBytes = bytes;
  return d;
}

}  // namespace

TEST_CASE("pending index: rows are found until their commit is done, in id order when listed") {
  dfs::PendingIndex pending;
  CHECK(pending.empty());
  CHECK(pending.oldestNs() == 0);
  pending.add(delta({{"b", at(1, 0)}, {"a", at(1, 180, 30)}}, 1, 360), 1000);
  CHECK(pending.find("a")->offset == 180);
  CHECK_FALSE(pending.find("c"));
  CHECK(pending.recordBytes() == 360);
  CHECK(pending.oldestNs() == 1000);

  auto ids = pending.idsAfter("");
  REQUIRE(ids.size() == 2);
  CHECK(ids[0].first == "a");
  CHECK(ids[0].second == 30);
  CHECK(ids[1].first == "b");
  CHECK(pending.idsAfter("a").size() == 1);
  CHECK(pending.idsAfter("b").empty());

  {
    dfs::PendingIndex::Commit commit(pending);
    CHECK(commit.rows().fragments.size() == 2);
    CHECK(commit.rows().extents.count(1));
    // Readers still find the rows while they are written.
    CHECK(pending.find("a"));
    CHECK(pending.idsAfter("").size() == 2);
    CHECK(pending.recordBytes() == 360);
    commit.done();
  }
  CHECK(pending.empty());
  CHECK_FALSE(pending.find("a"));
  CHECK(pending.recordBytes() == 0);
  CHECK(pending.oldestNs() == 0);
}

TEST_CASE("pending index: a commit that is not done leaves every row pending") {
  dfs::PendingIndex pending;
  pending.add(delta({{"x", at(2, 0)}}, 2, 180), 500);
  auto stale = delta({{"y", at(2, 180)}}, 3, 180);
  stale.staleLocations = {"old-y"};
  pending.add(std::move(stale), 600);
  {
    dfs::PendingIndex::Commit commit(pending);
    CHECK(commit.rows().staleLocations.count("old-y"));
  }  // e.g. the LMDB commit failed
  CHECK(pending.find("x"));
  CHECK(pending.find("y"));
  CHECK(pending.recordBytes() == 360);
  CHECK(pending.oldestNs() == 500);
  dfs::PendingIndex::Commit again(pending);
  CHECK(again.rows().fragments.size() == 2);
  CHECK(again.rows().staleLocations.size() == 1);
  CHECK(again.rows().extents.size() == 2);
  again.done();
}
