// The extent store's deferred index commits and what open() rebuilds from the
// extents after a crash (extent_recovery.cc). A "crash" is a copy of the data
// directory taken while the store is open: what a kill -9 leaves (the page cache
// holds every write), without the index commit a clean close would make.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "backend/storage/extent_format.h"
#include "tests/unit/storage/store_test_util.h"

namespace {

using namespace dfs::testing::store;

ExtentStoreOptions deferred(const std::string& dir) {
  auto options = optionsFor(dir);
  options.indexCommitIntervalMs = 3600 * 1000;  // only remove, compaction and close commit
  return options;
}

// Puts fragments 0..count-1 of `size` bytes one by one.
std::vector<Owned> putMany(ExtentStore& store, uint32_t count, size_t size) {
  std::vector<Owned> fragments;
  for (uint32_t i = 0; i < count; ++i) {
    fragments.push_back(make(i, size));
    REQUIRE(putOne(store, fragments.back()).ok());
  }
  return fragments;
}

// A store that acknowledged `count` fragments of `size` bytes, none of them in its
// index yet, copied to `image` as a crash would leave it.
struct Crashed {
  std::vector<Owned> fragments;
  std::string lastExtent;  // in the image
  uintmax_t size = 0;      // of lastExtent
};

void crashImage(const std::string& from, const std::string& to) {
  std::filesystem::copy(
      from, to,
      std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove(to + "/lock");
}

Crashed crashAfterPuts(const std::string& dir, const std::string& image, uint32_t count,
                       size_t size, bool direct = true) {
  auto options = deferred(dir);
  options.directAppends = direct;
  auto store = openStore(options);
  Crashed crashed;
  crashed.fragments = putMany(*store, count, size);
  crashImage(dir, image);
  crashed.lastExtent = extentFiles(image).back();
  crashed.size = std::filesystem::file_size(crashed.lastExtent);
  return crashed;
}

}  // namespace

TEST_CASE(
    "extent recovery: acknowledged puts whose index rows were never committed are read back") {
  TempDir dir, image;
  auto options = deferred(dir.path);
  options.maxExtentBytes = 64 * 1024;  // extents rolled after the last index commit too
  auto store = openStore(options);
  std::vector<Owned> fragments;
  for (uint32_t i = 0; i < 60; ++i) {
    fragments.push_back(make(i, 700 + 301 * (i % 13)));
    REQUIRE(putOne(*store, fragments.back()).ok());
  }
  auto before = store->stats();
  CHECK(before.indexCommits == 0);
  CHECK(before.pendingIndexBytes > 0);
  CHECK(before.fragments == 60);
  REQUIRE(extentFiles(dir.path).size() >= 3);
  // Readers find pending rows: get, getMany and list.
  for (auto& f : fragments) REQUIRE(store->get(f.id).value().data == f.data);
  std::vector<std::string_view> ids;
  for (auto& f : fragments) ids.push_back(f.id);
  size_t visited = 0;
  REQUIRE(store
              ->getMany(ids, 1 << 30,
                        [&](size_t index, const dfs::Status& s, std::string_view data, uint64_t) {
                          CHECK(s.ok());
                          CHECK(data == fragments[index].data);
                          ++visited;
                        })
              .ok());
  CHECK(visited == fragments.size());
  std::vector<std::string> listed;
  bool eof = false;
  REQUIRE(store->list("", 1000, INT64_MAX, &listed, &eof).ok());
  CHECK(eof);
  CHECK(listed.size() == fragments.size());
  CHECK(std::is_sorted(listed.begin(), listed.end()));

  crashImage(dir.path, image.path);
  auto reopened = openStore(deferred(image.path));
  CHECK(reopened->stats().fragments == 60);
  CHECK(reopened->stats().usedBytes == before.usedBytes);
  CHECK(reopened->stats().liveBytes == before.liveBytes);
  for (auto& f : fragments) REQUIRE(reopened->get(f.id).value().data == f.data);
  // Reopened once more, from the index alone.
  reopened.reset();
  reopened = openStore(deferred(image.path));
  CHECK(reopened->stats().fragments == 60);
  for (auto& f : fragments) CHECK(reopened->get(f.id).value().data == f.data);
}

TEST_CASE("extent recovery: a remove commits the pending rows, so no removed fragment comes back") {
  TempDir dir, image;
  auto store = openStore(deferred(dir.path));
  auto fragments = putMany(*store, 20, 1500);
  REQUIRE(store->remove({fragments[4].id, fragments[11].id}).value() == 2);
  CHECK(store->stats().indexCommits == 1);
  CHECK(store->stats().pendingIndexBytes == 0);
  auto later = make(100, 900);
  REQUIRE(putOne(*store, later).ok());  // pending again
  crashImage(dir.path, image.path);
  auto reopened = openStore(deferred(image.path));
  CHECK(reopened->stats().fragments == 19);
  for (uint32_t i = 0; i < 20; ++i) {
    auto got = reopened->get(fragments[i].id);
    if (i == 4 || i == 11) {
      CHECK(got.status().code == Code::NOT_FOUND);
    } else {
      CHECK(got.value().data == fragments[i].data);
    }
  }
  CHECK(reopened->get(later.id).value().data == later.data);
}

TEST_CASE(
    "extent recovery: a replacement after the last index commit wins, and its old record is "
    "garbage") {
  TempDir dir, image;
  auto store = openStore(deferred(dir.path));
  auto a = make(1, 3000), b = make(2, 2000);
  REQUIRE(store->put({a.write(), b.write()}).ok());
  REQUIRE(store->commitIndex().ok());
  Owned a2{a.id, payload(77, 1234)};
  REQUIRE(putOne(*store, a2).ok());
  CHECK(store->get(a.id).value().data == a2.data);
  auto live = store->stats().liveBytes;
  crashImage(dir.path, image.path);
  auto reopened = openStore(deferred(image.path));
  CHECK(reopened->get(a.id).value().data == a2.data);
  CHECK(reopened->get(b.id).value().data == b.data);
  CHECK(reopened->stats().fragments == 2);
  CHECK(reopened->stats().liveBytes == live);
}

TEST_CASE("extent recovery: a torn record after acknowledged ones is cut, they are kept") {
  TempDir dir, image;
  auto [fragments, file, acknowledged] = crashAfterPuts(dir.path, image.path, 10, 2500);
  {
    // A round that crashed mid-write: a whole record, then one cut inside its data.
    auto whole = make(50, 400), torn = make(51, 4000);
    std::ofstream out(file, std::ios::app | std::ios::binary);
    for (auto* f : {&whole, &torn}) {
      dfs::RecordHeader h;
      h.length = uint32_t(f->data.size());
      h.checksum = dfs::xxh3(f->data.data(), f->data.size());
      h.id = f->id;
      std::string bytes = dfs::encodeRecordHeader(h) + f->data;
      out << (f == &torn ? bytes.substr(0, bytes.size() / 2) : bytes);
    }
  }
  auto reopened = openStore(deferred(image.path));
  CHECK(std::filesystem::file_size(file) == acknowledged + dfs::kRecordHeaderSize + 400);
  for (auto& f : fragments) CHECK(reopened->get(f.id).value().data == f.data);
  CHECK(reopened->get(make(50, 400).id).value().data == make(50, 400).data);
  CHECK(reopened->get(make(51, 4000).id).status().code == Code::NOT_FOUND);
  // Appends go on after the last whole record.
  auto more = make(60, 999);
  REQUIRE(putOne(*reopened, more).ok());
  reopened.reset();
  reopened = openStore(deferred(image.path));
  CHECK(reopened->get(more.id).value().data == more.data);
}

TEST_CASE("extent recovery: the index is committed when due, per group when the interval is 0") {
  TempDir dir;
  SECTION("interval") {
    auto options = optionsFor(dir.path);
    options.indexCommitIntervalMs = 50;
    auto store = openStore(options);
    REQUIRE(putOne(*store, make(1, 100)).ok());
    CHECK(store->indexPending());
    store->commitIndexIfDue();  // not due yet
    CHECK(store->stats().indexCommits == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    store->commitIndexIfDue();
    CHECK(store->stats().indexCommits == 1);
    CHECK_FALSE(store->indexPending());
  }
  SECTION("bytes") {
    auto options = optionsFor(dir.path);
    options.indexCommitIntervalMs = 3600 * 1000;
    options.indexCommitBytes = 10000;
    auto store = openStore(options);
    for (uint32_t i = 0; i < 10; ++i) REQUIRE(putOne(*store, make(i, 3000)).ok());
    auto stats = store->stats();
    CHECK(stats.indexCommits >= 2);
    CHECK(stats.indexCommits <= 3);
    CHECK(stats.pendingIndexBytes < 10000);
  }
  SECTION("every group") {
    auto options = optionsFor(dir.path);
    options.indexCommitIntervalMs = 0;
    auto store = openStore(options);
    for (uint32_t i = 0; i < 5; ++i) REQUIRE(putOne(*store, make(i, 3000)).ok());
    CHECK(store->stats().indexCommits == 5);
    CHECK_FALSE(store->indexPending());
  }
}

TEST_CASE(
    "extent recovery: a rotten record in the unindexed tail is skipped, the ones after it are "
    "kept") {
  TempDir dir, image;
  // Buffered appends, so the records lie back to back.
  auto [fragments, file, size] = crashAfterPuts(dir.path, image.path, 12, 3000, false);
  {
    // A flipped byte inside the data of the 5th record (none of them is indexed yet).
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4 * (dfs::kRecordHeaderSize + 3000) + dfs::kRecordHeaderSize + 100);
    f.write("\x5a\xa5", 2);
  }
  auto reopened = openStore(deferred(image.path));
  CHECK(std::filesystem::file_size(file) == size);
  for (uint32_t i = 0; i < 12; ++i) {
    auto got = reopened->get(fragments[i].id);
    if (i == 4) {
      CHECK(got.status().code == Code::NOT_FOUND);  // an erasure for the reader, never bad bytes
    } else {
      REQUIRE(got.ok());
      CHECK(got.value().data == fragments[i].data);
    }
  }
  CHECK(reopened->stats().fragments == 11);
  CHECK(reopened->stats().liveBytes == 11 * (dfs::kRecordHeaderSize + 3000));
}

TEST_CASE(
    "extent recovery: the padding after a direct round is skipped, the records after it kept") {
  TempDir dir, image;
  if (!directIoWorks(dir.path)) return;
  auto store = openStore(deferred(dir.path));
  std::vector<Owned> fragments;
  uint32_t n = 0;
  // Small (buffered) and big (direct, padded) rounds mixed, none of them indexed yet.
  for (size_t size : {3000, 150000, 5000, 7000, 200000, 100, 140000, 90}) {
    fragments.push_back(make(n++, size));
    REQUIRE(putOne(*store, fragments.back()).ok());
  }
  auto before = store->stats();
  CHECK(before.indexCommits == 0);
  CHECK(before.usedBytes > before.liveBytes);  // three rounds padded
  CHECK(before.usedBytes - before.liveBytes < 3 * 4096);
  crashImage(dir.path, image.path);
  auto reopened = openStore(deferred(image.path));
  CHECK(reopened->stats().fragments == fragments.size());
  CHECK(reopened->stats().usedBytes == before.usedBytes);
  CHECK(reopened->stats().liveBytes == before.liveBytes);
  for (auto& f : fragments) CHECK(reopened->get(f.id).value().data == f.data);
}
