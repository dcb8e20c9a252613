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

}  // namespace

TEST_CASE("pending index: rows are found until committed; later rows survive the commit") {
  dfs::PendingIndex pending;
  CHECK(pending.empty());
  CHECK(pending.oldestNs() == 0);
  dfs::PendingIndex::Delta first;
  first.fragments["b"] = at(1, 0);
  first.fragments["a"] = at(1, 180, 30);
  first.extents = {1};
  first.recordBytes = 360;
  pending.add(std::move(first), 1000);
  CHECK(pending.find("a")->offset == 180);
  CHECK_FALSE(pending.find("c"));
  CHECK(pending.recordBytes() == 360);
  CHECK(pending.oldestNs() == 1000);

  auto ids = pending.idsAfter("");
  REQUIRE(ids.size() == 2);
  CHECK(ids[0].first == "a");
  CHECK(ids[0].second == 30);
  CHECK(pending.idsAfter("a").size() == 1);
  CHECK(pending.idsAfter("b").empty());

  auto snapshot = pending.snapshot();
  // "b" is put again (other data) after the snapshot was taken.
  dfs::PendingIndex::Delta second;
  second.fragments["b"] = at(2, 0);
  second.staleLocations = {"loc-b"};
  second.extents = {2};
  second.recordBytes = 180;
  pending.add(std::move(second), 2000);
  CHECK(pending.oldestNs() == 1000);
  pending.committed(snapshot);
  CHECK_FALSE(pending.find("a"));
  REQUIRE(pending.find("b"));
  CHECK(pending.find("b")->extent == 2);  // the newer row stays
  CHECK_FALSE(pending.empty());

  pending.committed(pending.snapshot());
  CHECK(pending.empty());
  CHECK(pending.recordBytes() == 0);
  CHECK(pending.oldestNs() == 0);
}
