#include "backend/storage/extent_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "backend/common/hash.h"
#include "tests/unit/storage/store_test_util.h"

namespace {

using namespace dfs::testing::store;

size_t openFdCount() {
  size_t n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (readdir(d)) ++n;
  closedir(d);
  return n;
}

}  // namespace

TEST_CASE("extent store: put/get round trip, no-op re-put, replace, not found") {
  TempDir dir;
  auto store = openStore(optionsFor(dir.path));
  auto a = make(1, 1000), b = make(2, 0), c = make(3, 70000);
  REQUIRE(store->put({a.write(), b.write(), c.write()}).ok());
  for (auto* f : {&a, &b, &c}) {
    auto got = store->get(f->id);
    REQUIRE(got.ok());
    CHECK(got.value().data == f->data);
  }
  auto used = store->stats().usedBytes;
  REQUIRE(putOne(*store, a).ok());  // same checksum: no-op
  CHECK(store->stats().usedBytes == used);
  CHECK(store->stats().fragments == 3);

  Owned a2{a.id, payload(99, 500)};
  REQUIRE(putOne(*store, a2).ok());  // different checksum: replace
  CHECK(store->get(a.id).value().data == a2.data);
  CHECK(store->stats().fragments == 3);
  CHECK(store->get(fragmentId(42)).status().code == Code::NOT_FOUND);
  CHECK(store->get("short").status().code == Code::INVALID);
}

// Buffered appends: records lie back to back, so the byte counts below are exact.
ExtentStoreOptions buffered(const std::string& dir) {
  auto options = optionsFor(dir);
  options.directAppends = false;
  return options;
}

TEST_CASE("extent store: an id sent twice in one put is stored once per distinct data") {
  TempDir dir;
  auto store = openStore(buffered(dir.path));
  auto a = make(1, 1000), b = make(2, 3000);
  Owned a2{a.id, payload(99, 500)};
  // a twice with the same bytes, then a with other bytes: the last bytes win,
  // and the record a2 replaced counts as garbage, not as a live fragment.
  REQUIRE(store->put({a.write(), b.write(), a.write(), a2.write()}).ok());
  CHECK(store->get(a.id).value().data == a2.data);
  CHECK(store->get(b.id).value().data == b.data);
  auto stats = store->stats();
  CHECK(stats.fragments == 2);
  CHECK(stats.liveBytes == 2 * dfs::kRecordHeaderSize + a2.data.size() + b.data.size());
  CHECK(stats.usedBytes ==
        3 * dfs::kRecordHeaderSize + a.data.size() + a2.data.size() + b.data.size());
  // New bytes for a stored id, twice in one put: the stored record is replaced once.
  auto c = make(3, 700);
  Owned c2{c.id, payload(98, 600)};
  REQUIRE(putOne(*store, c).ok());
  uint64_t used = store->stats().usedBytes;
  REQUIRE(store->put({c2.write(), c2.write()}).ok());
  CHECK(store->get(c.id).value().data == c2.data);
  CHECK(store->stats().fragments == 3);
  CHECK(store->stats().usedBytes == used + dfs::kRecordHeaderSize + c2.data.size());
  store.reset();
  store = openStore(buffered(dir.path));
  CHECK(store->get(a.id).value().data == a2.data);
  CHECK(store->get(c.id).value().data == c2.data);
  CHECK(store->stats().fragments == 3);
  CHECK(store->stats().liveBytes ==
        3 * dfs::kRecordHeaderSize + a2.data.size() + b.data.size() + c2.data.size());
}

TEST_CASE("extent store: data survives close and reopen; uuid is persistent") {
  TempDir dir;
  std::vector<Owned> fragments;
  for (uint32_t i = 0; i < 50; ++i) fragments.push_back(make(i, 100 + i * 37));
  auto uuid = dfs::loadOrCreateNodeUuid(dir.path);
  REQUIRE(uuid.ok());
  {
    auto store = openStore(optionsFor(dir.path));
    for (auto& f : fragments) REQUIRE(putOne(*store, f).ok());
    REQUIRE(store->remove({fragments[7].id}).value() == 1);
  }
  auto store = openStore(optionsFor(dir.path));
  CHECK(store->stats().fragments == 49);
  for (uint32_t i = 0; i < 50; ++i) {
    auto got = store->get(fragments[i].id);
    if (i == 7) {
      CHECK(got.status().code == Code::NOT_FOUND);
    } else {
      REQUIRE(got.ok());
      CHECK(got.value().data == fragments[i].data);
    }
  }
  CHECK(dfs::loadOrCreateNodeUuid(dir.path).value() == uuid.value());
  CHECK(uuid.value().size() == 36);
}

TEST_CASE("extent store: a second process cannot open the same data directory") {
  TempDir dir;
  auto store = openStore(optionsFor(dir.path));
  auto second = ExtentStore::open(optionsFor(dir.path));
  CHECK(second.status().code == Code::BUSY);
}

TEST_CASE("extent store: concurrent puts are group-committed") {
  TempDir dir;
  auto store = openStore(optionsFor(dir.path));
  constexpr int kThreads = 16, kPerThread = 20;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto f = make(uint32_t(t * 1000 + i), 4096);
        if (!putOne(*store, f).ok()) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  auto stats = store->stats();
  CHECK(stats.fragments == kThreads * kPerThread);
  // Every put waits for an fdatasync, so while one group syncs the others queue up
  // and share the next one.
  CHECK(stats.groupCommits < uint64_t(kThreads * kPerThread));
  WARN("group commits for " << kThreads * kPerThread << " puts: " << stats.groupCommits);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto f = make(uint32_t(t * 1000 + i), 4096);
      REQUIRE(store->get(f.id).value().data == f.data);
    }
  }
}

TEST_CASE("extent store: a flipped byte on disk is reported as IO and counted, never returned") {
  TempDir dir;
  auto store = openStore(optionsFor(dir.path));
  auto a = make(1, 5000), b = make(2, 5000);
  REQUIRE(store->put({a.write(), b.write()}).ok());
  auto files = extentFiles(dir.path);
  REQUIRE(files.size() == 1);
  {
    // Flip a byte in a's data (the first record: header of 80 bytes, then data).
    std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(80 + 1234);
    char c;
    f.read(&c, 1);
    c ^= 0x10;
    f.seekp(80 + 1234);
    f.write(&c, 1);
  }
  auto got = store->get(a.id);
  CHECK(got.status().code == Code::IO);
  CHECK(store->stats().corruptFragments == 1);
  CHECK(store->get(b.id).value().data == b.data);
  CHECK(store->get(a.id).status().code == Code::IO);
  CHECK(store->stats().corruptFragments == 2);
}

TEST_CASE("extent store: delete and compaction keep live fragments and free the file") {
  TempDir dir;
  auto options = optionsFor(dir.path);
  options.maxExtentBytes = 64 * 1024;
  auto store = openStore(options);
  std::vector<Owned> fragments;
  for (uint32_t i = 0; i < 60; ++i) {
    fragments.push_back(make(i, 3000));
    REQUIRE(putOne(*store, fragments.back()).ok());
  }
  auto before = extentFiles(dir.path);
  REQUIRE(before.size() >= 3);
  std::vector<std::string> doomed;
  for (uint32_t i = 0; i < 60; ++i) {
    if (i % 3 != 0) doomed.push_back(fragments[i].id);
  }
  REQUIRE(store->remove(doomed).value() == doomed.size());
  auto usedBefore = store->stats().usedBytes;
  REQUIRE(store->needsCompaction());
  int steps = 0;
  while (store->needsCompaction() && steps < 100) {
    auto step = store->compactStep(8 * 1024);
    REQUIRE(step.ok());
    ++steps;
  }
  CHECK_FALSE(store->needsCompaction());
  CHECK(store->stats().usedBytes < usedBefore);
  auto after = extentFiles(dir.path);
  CHECK(std::find(after.begin(), after.end(), before[0]) == after.end());  // first extent gone
  for (uint32_t i = 0; i < 60; ++i) {
    auto got = store->get(fragments[i].id);
    if (i % 3 == 0) {
      REQUIRE(got.ok());
      CHECK(got.value().data == fragments[i].data);
    } else {
      CHECK(got.status().code == Code::NOT_FOUND);
    }
  }
  store.reset();
  store = openStore(options);
  for (uint32_t i = 0; i < 60; i += 3) CHECK(store->get(fragments[i].id).value().data == fragments[i].data);
  CHECK(store->stats().fragments == 20);
}

TEST_CASE("extent store: garbage appended after the last commit is discarded on reopen") {
  TempDir dir;
  std::vector<Owned> fragments;
  for (uint32_t i = 0; i < 10; ++i) fragments.push_back(make(i, 2000));
  {
    auto store = openStore(optionsFor(dir.path));
    for (auto& f : fragments) REQUIRE(putOne(*store, f).ok());
  }
  auto files = extentFiles(dir.path);
  REQUIRE(files.size() == 1);
  auto committed = std::filesystem::file_size(files[0]);
  {
    // A crash mid-append: a torn record at the tail, plus a stray extent file from
    // a rollover that never committed.
    std::ofstream f(files[0], std::ios::app | std::ios::binary);
    f << std::string("DFSX") << payload(5, 3001);
    std::ofstream stray(dir.path + "/extents/00000099.ext", std::ios::binary);
    stray << payload(6, 100);
  }
  auto store = openStore(optionsFor(dir.path));
  CHECK(std::filesystem::file_size(files[0]) == committed);
  CHECK_FALSE(std::filesystem::exists(dir.path + "/extents/00000099.ext"));
  for (auto& f : fragments) CHECK(store->get(f.id).value().data == f.data);
  auto more = make(100, 777);
  REQUIRE(putOne(*store, more).ok());
  CHECK(store->get(more.id).value().data == more.data);
}

TEST_CASE("extent store: NO_SPACE at capacity leaves earlier data intact") {
  TempDir dir;
  auto options = optionsFor(dir.path);
  options.capacityBytes = 100 * 1024;
  auto store = openStore(options);
  std::vector<Owned> stored;
  dfs::Status last;
  for (uint32_t i = 0; i < 100; ++i) {
    auto f = make(i, 8000);
    last = putOne(*store, f);
    if (!last.ok()) break;
    stored.push_back(f);
  }
  REQUIRE(last.code == Code::NO_SPACE);
  CHECK(last.message.find("full") != std::string::npos);
  CHECK(stored.size() >= 10);
  CHECK(stored.size() < 13);
  CHECK(store->stats().usedBytes <= options.capacityBytes);
  for (auto& f : stored) CHECK(store->get(f.id).value().data == f.data);
  // A smaller fragment that still fits is accepted; deleting frees space after compaction.
  store.reset();
  store = openStore(options);
  for (auto& f : stored) CHECK(store->get(f.id).value().data == f.data);
}

namespace {
// Fails the Nth write with ENOSPC after writing half of it (a torn write).
class FailingFileSystem : public dfs::PosixFileSystem {
 public:
  dfs::Status writeAt(int fd, const std::vector<iovec>& pieces, uint64_t offset) override {
    if (++writes == failAt) {
      size_t half = 0;
      for (const iovec& piece : pieces) half += piece.iov_len / 2;
      std::vector<iovec> torn;
      for (const iovec& piece : pieces) {
        size_t take = std::min(piece.iov_len, half);
        if (take == 0) break;
        torn.push_back(iovec{piece.iov_base, take});
        half -= take;
      }
      PosixFileSystem::writeAt(fd, torn, offset);
      return dfs::errnoStatus("pwritev", ENOSPC);
    }
    return PosixFileSystem::writeAt(fd, pieces, offset);
  }
  dfs::Status syncData(int fd) override {
    if (failSync) return dfs::errnoStatus("fdatasync", EIO);
    return PosixFileSystem::syncData(fd);
  }
  std::atomic<int> writes{0};
  int failAt = -1;
  bool failSync = false;
};
}  // namespace

TEST_CASE("extent store: ENOSPC from write truncates the torn record; EIO from sync acknowledges nothing") {
  TempDir dir;
  FailingFileSystem fs;
  auto options = optionsFor(dir.path);
  options.fileSystem = &fs;
  auto store = openStore(options);
  auto a = make(1, 3000), b = make(2, 3000), c = make(3, 3000);
  REQUIRE(putOne(*store, a).ok());
  auto size = std::filesystem::file_size(extentFiles(dir.path)[0]);
  fs.failAt = fs.writes + 1;  // b's round is one write (ExtentAppender); half of it lands
  auto s = putOne(*store, b);
  CHECK(s.code == Code::NO_SPACE);
  CHECK(std::filesystem::file_size(extentFiles(dir.path)[0]) == size);
  CHECK(store->get(b.id).status().code == Code::NOT_FOUND);
  fs.failSync = true;
  CHECK(putOne(*store, c).code == Code::IO);
  CHECK(store->get(c.id).status().code == Code::NOT_FOUND);
  fs.failSync = false;
  REQUIRE(putOne(*store, b).ok());
  REQUIRE(putOne(*store, c).ok());
  store.reset();
  store = openStore(options);
  for (auto* f : {&a, &b, &c}) CHECK(store->get(f->id).value().data == f->data);
}

TEST_CASE("extent store: open descriptors stay bounded with thousands of fragments") {
  TempDir dir;
  auto options = optionsFor(dir.path);
  options.maxExtentBytes = 16 * 1024;
  options.maxOpenExtents = 8;
  auto store = openStore(options);
  size_t fdsBefore = openFdCount();
  std::vector<Owned> fragments;
  for (uint32_t i = 0; i < 3000; ++i) fragments.push_back(make(i, 1000));
  for (size_t i = 0; i < fragments.size(); i += 10) {
    std::vector<FragmentWrite> batch;
    for (size_t j = i; j < i + 10; ++j) batch.push_back(fragments[j].write());
    REQUIRE(store->put(batch).ok());
  }
  REQUIRE(extentFiles(dir.path).size() > 100);
  for (size_t i = 0; i < fragments.size(); i += 7) {
    REQUIRE(store->get(fragments[i].id).value().data == fragments[i].data);
  }
  CHECK(store->openExtentFiles() <= 8);
  CHECK(openFdCount() <= fdsBefore + 8 + 2);
}

TEST_CASE("extent store: list in id order, after a key, before a time") {
  TempDir dir;
  auto options = optionsFor(dir.path);
  int64_t clock = 1000;
  options.clock = [&] { return clock; };
  auto store = openStore(options);
  for (uint32_t i = 0; i < 10; ++i) {
    clock = 1000 + i;
    REQUIRE(putOne(*store, make(i, 10)).ok());
  }
  std::vector<std::string> ids;
  bool eof = false;
  REQUIRE(store->list("", 4, 2000, &ids, &eof).ok());
  CHECK(ids.size() == 4);
  CHECK_FALSE(eof);
  CHECK(ids[0] == fragmentId(0));
  REQUIRE(store->list(ids.back(), 100, 2000, &ids, &eof).ok());
  CHECK(ids.size() == 6);
  CHECK(ids[0] == fragmentId(4));
  CHECK(eof);
  REQUIRE(store->list("", 100, 1005, &ids, &eof).ok());
  CHECK(ids.size() == 5);
  CHECK(eof);
}

TEST_CASE("extent store: an index written by a newer format is refused with a clear error") {
  TempDir dir;
  { auto store = openStore(optionsFor(dir.path)); }
  {
    auto env = dfs::LmdbEnv::open(dir.path + "/index", size_t(1) << 30, {"meta"});
    REQUIRE(env.ok());
    dfs::LmdbTxn txn(*env.value(), dfs::LmdbTxn::Mode::kWrite);
    std::string next;
    dfs::appendBigEndian32(next, dfs::kStoreFormatVersion + 1);
    REQUIRE(txn.put(env.value()->dbi("meta"), "format", next).ok());
    REQUIRE(txn.commit().ok());
  }
  auto store = ExtentStore::open(optionsFor(dir.path));
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code == Code::INVALID);
  CHECK(store.status().message.find(
            "format version " + std::to_string(dfs::kStoreFormatVersion + 1)) != std::string::npos);
}

TEST_CASE("extent store: a version 1 store is upgraded in place, its records kept") {
  TempDir dir;
  auto f = make(1, 3000);
  {
    auto store = openStore(optionsFor(dir.path));
    REQUIRE(putOne(*store, f).ok());
  }
  auto setFormat = [&](uint32_t version) {
    auto env = dfs::LmdbEnv::open(dir.path + "/index", size_t(1) << 30, {"meta"});
    REQUIRE(env.ok());
    dfs::LmdbTxn txn(*env.value(), dfs::LmdbTxn::Mode::kWrite);
    std::string bytes;
    dfs::appendBigEndian32(bytes, version);
    REQUIRE(txn.put(env.value()->dbi("meta"), "format", bytes).ok());
    REQUIRE(txn.commit().ok());
  };
  auto format = [&] {
    auto env = dfs::LmdbEnv::open(dir.path + "/index", size_t(1) << 30, {"meta"});
    REQUIRE(env.ok());
    dfs::LmdbTxn txn(*env.value(), dfs::LmdbTxn::Mode::kRead);
    auto v = txn.get(env.value()->dbi("meta"), "format");
    REQUIRE(v);
    return dfs::readBigEndian32(*v);
  };
  setFormat(1);
  {
    auto store = openStore(optionsFor(dir.path));
    CHECK(store->get(f.id).value().data == f.data);
  }
  CHECK(format() == dfs::kStoreFormatVersion);
  setFormat(0);  // never written by any version
  CHECK_FALSE(ExtentStore::open(optionsFor(dir.path)).ok());
}

TEST_CASE("extent store: put throughput with concurrent writers", "[.bench]") {
  TempDir dir;
  auto store = openStore(optionsFor(dir.path));
  constexpr int kThreads = 8, kPerThread = 64;
  constexpr size_t kSize = 1 << 20;
  std::vector<Owned> fragments;
  for (int i = 0; i < kThreads * kPerThread; ++i) fragments.push_back(make(uint32_t(i), kSize));
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) REQUIRE(putOne(*store, fragments[t * kPerThread + i]).ok());
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("put: " << (kThreads * kPerThread * kSize / seconds / 1e6) << " MB/s, "
               << store->stats().groupCommits << " group commits");
  start = std::chrono::steady_clock::now();
  for (auto& f : fragments) REQUIRE(store->get(f.id).ok());
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("get (page cache): " << (kThreads * kPerThread * kSize / seconds / 1e6) << " MB/s");
}

namespace {
// Lets a compaction fail at its sync, or "crash" before it unlinks the old extent.
class CompactionFaultFileSystem : public dfs::PosixFileSystem {
 public:
  dfs::Status syncData(int fd) override {
    if (failSync) return dfs::errnoStatus("fdatasync", EIO);
    return PosixFileSystem::syncData(fd);
  }
  dfs::Status removeFile(const std::string& path) override {
    if (keepFiles) return dfs::errnoStatus("unlink " + path, EIO);
    return PosixFileSystem::removeFile(path);
  }
  bool failSync = false;
  bool keepFiles = false;
};
}  // namespace

TEST_CASE("extent store: compaction interrupted by a failed sync or a crash before unlink loses nothing") {
  TempDir dir;
  CompactionFaultFileSystem fs;
  auto options = optionsFor(dir.path);
  options.fileSystem = &fs;
  options.maxExtentBytes = 32 * 1024;
  std::vector<Owned> fragments;
  for (uint32_t i = 0; i < 40; ++i) fragments.push_back(make(i, 2000));
  std::string firstExtent = dir.path + "/extents/00000001.ext";
  {
    auto store = openStore(options);
    for (auto& f : fragments) REQUIRE(putOne(*store, f).ok());
    std::vector<std::string> doomed;
    for (uint32_t i = 0; i < 40; i += 2) doomed.push_back(fragments[i].id);
    REQUIRE(store->remove(doomed).value() == doomed.size());
    REQUIRE(store->needsCompaction());

    fs.failSync = true;
    CHECK(store->compactStep().status().code == Code::IO);
    fs.failSync = false;
    for (uint32_t i = 1; i < 40; i += 2) REQUIRE(store->get(fragments[i].id).value().data == fragments[i].data);

    fs.keepFiles = true;  // the index forgets extent 1, then the "crash" leaves its file behind
    while (store->needsCompaction()) REQUIRE(store->compactStep().ok());
    CHECK(std::filesystem::exists(firstExtent));
  }
  fs.keepFiles = false;
  auto store = openStore(options);
  CHECK_FALSE(std::filesystem::exists(firstExtent));  // removed at open as unknown
  CHECK(store->stats().fragments == 20);
  for (uint32_t i = 0; i < 40; ++i) {
    auto got = store->get(fragments[i].id);
    if (i % 2) {
      REQUIRE(got.ok());
      CHECK(got.value().data == fragments[i].data);
    } else {
      CHECK(got.status().code == Code::NOT_FOUND);
    }
  }
}

TEST_CASE("extent store: scrub passes find a corrupt fragment") {
  TempDir dir;
  auto store = openStore(buffered(dir.path));
  std::vector<Owned> fragments;
  for (uint32_t i = 0; i < 30; ++i) {
    fragments.push_back(make(i, 1000));
    REQUIRE(putOne(*store, fragments.back()).ok());
  }
  std::string cursor;
  uint64_t found = 0;
  int steps = 0;
  do {
    auto step = store->scrubStep(&cursor, 5000);
    REQUIRE(step.ok());
    found += step.value();
    ++steps;
  } while (!cursor.empty() && steps < 100);
  CHECK(found == 0);
  CHECK(steps > 3);  // bounded steps, not one big read
  {
    std::fstream f(extentFiles(dir.path)[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5 * (80 + 1000) + 80 + 10);  // inside the 6th record's data
    f.write("\x42\x42", 2);
  }
  do {
    auto step = store->scrubStep(&cursor, 5000);
    REQUIRE(step.ok());
    found += step.value();
  } while (!cursor.empty());
  CHECK(found == 1);
  CHECK(store->stats().corruptFragments == 1);
}

TEST_CASE("extent store: a crash image taken while open, rounds written in pieces, loses nothing") {
  TempDir dir, image;
  auto options = optionsFor(dir.path);
  options.maxExtentBytes = 64 * 1024;     // several sealed extents
  options.appendBufferBytes = 8 * 1024;   // rounds written in several pieces
  auto store = openStore(options);
  std::vector<Owned> fragments;
  for (uint32_t i = 0; i < 80; ++i) {
    fragments.push_back(make(i, 1000 + 397 * (i % 11)));
    REQUIRE(putOne(*store, fragments.back()).ok());
  }
  std::vector<FragmentWrite> batch;  // one round crossing the buffer and an extent roll
  for (uint32_t i = 80; i < 100; ++i) fragments.push_back(make(i, 6000));
  for (uint32_t i = 80; i < 100; ++i) batch.push_back(fragments[i].write());
  REQUIRE(store->put(batch).ok());
  REQUIRE(store->remove({fragments[3].id}).value() == 1);
  REQUIRE(extentFiles(dir.path).size() > 2);
  std::filesystem::copy(dir.path, image.path, std::filesystem::copy_options::recursive |
                                                  std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove(image.path + "/lock");
  store.reset();

  auto reopened = openStore(optionsFor(image.path));
  for (uint32_t i = 0; i < 100; ++i) {
    auto got = reopened->get(fragments[i].id);
    if (i == 3) {
      CHECK(got.status().code == Code::NOT_FOUND);
    } else {
      REQUIRE(got.ok());
      CHECK(got.value().data == fragments[i].data);
    }
  }
  // Appends continue after the last committed record.
  auto more = make(1000, 5555);
  REQUIRE(putOne(*reopened, more).ok());
  reopened.reset();
  reopened = openStore(optionsFor(image.path));
  CHECK(reopened->get(more.id).value().data == more.data);
  CHECK(reopened->get(fragments[99].id).value().data == fragments[99].data);
}

TEST_CASE("extent store: a write failing inside a group commit refuses every request of the round") {
  TempDir dir;
  FailingFileSystem fs;
  auto options = optionsFor(dir.path);
  options.fileSystem = &fs;
  options.appendBufferBytes = 16 * 1024;  // the round is written in several pieces
  auto store = openStore(options);
  auto before = make(1, 3000);
  REQUIRE(putOne(*store, before).ok());
  auto committed = std::filesystem::file_size(extentFiles(dir.path)[0]);
  std::vector<Owned> first, second;
  std::vector<FragmentWrite> firstWrites, secondWrites;
  for (uint32_t i = 10; i < 15; ++i) first.push_back(make(i, 7000));
  for (uint32_t i = 20; i < 25; ++i) second.push_back(make(i, 7000));
  for (auto& f : first) firstWrites.push_back(f.write());
  for (auto& f : second) secondWrites.push_back(f.write());
  dfs::PutRequest a{&firstWrites, {}}, b{&secondWrites, {}};
  std::vector<dfs::PutRequest*> round = {&a, &b};
  fs.failAt = fs.writes + 3;  // a piece in the middle of the round (inside b's records)
  store->putGroup(round);
  CHECK(a.status.code == Code::NO_SPACE);
  CHECK(b.status.code == Code::NO_SPACE);
  CHECK(std::filesystem::file_size(extentFiles(dir.path)[0]) == committed);
  for (auto* list : {&first, &second}) {
    for (auto& f : *list) CHECK(store->get(f.id).status().code == Code::NOT_FOUND);
  }
  store->putGroup(round);  // the next round works again
  CHECK(a.status.ok());
  CHECK(b.status.ok());
  store.reset();
  store = openStore(options);
  for (auto* list : {&first, &second}) {
    for (auto& f : *list) CHECK(store->get(f.id).value().data == f.data);
  }
  CHECK(store->get(before.id).value().data == before.data);
}

TEST_CASE("extent store: a write failing when a round rolls to a new extent refuses the round") {
  TempDir dir;
  FailingFileSystem fs;
  auto options = optionsFor(dir.path);
  options.fileSystem = &fs;
  options.maxExtentBytes = 16 * 1024;  // b's record starts a new extent
  auto store = openStore(options);
  std::vector<Owned> first = {make(1, 6000), make(2, 6000)}, second = {make(3, 6000)};
  std::vector<FragmentWrite> firstWrites, secondWrites;
  for (auto& f : first) firstWrites.push_back(f.write());
  for (auto& f : second) secondWrites.push_back(f.write());
  dfs::PutRequest a{&firstWrites, {}}, b{&secondWrites, {}};
  std::vector<dfs::PutRequest*> round = {&a, &b};
  fs.failAt = fs.writes + 1;  // sealing the first extent: a's staged records never land
  store->putGroup(round);
  CHECK(a.status.code == Code::NO_SPACE);
  CHECK(b.status.code == Code::NO_SPACE);
  for (auto* list : {&first, &second}) {
    for (auto& f : *list) CHECK(store->get(f.id).status().code == Code::NOT_FOUND);
  }
  store->putGroup(round);
  REQUIRE(a.status.ok());
  REQUIRE(b.status.ok());
  store.reset();
  store = openStore(options);
  for (auto* list : {&first, &second}) {
    for (auto& f : *list) CHECK(store->get(f.id).value().data == f.data);
  }
}

TEST_CASE("extent store: big rounds are appended directly and padded, small ones are not") {
  TempDir dir;
  if (!directIoWorks(dir.path)) return;
  // An extent written before direct appends (buffered: it ends off a block).
  std::vector<Owned> fragments;
  {
    auto store = openStore(buffered(dir.path));
    for (uint32_t i = 0; i < 3; ++i) {
      fragments.push_back(make(i, 1000 + i));
      REQUIRE(putOne(*store, fragments.back()).ok());
    }
  }
  auto store = openStore(optionsFor(dir.path));
  uint64_t live = 0;
  auto putRound = [&](uint32_t first, uint32_t count, size_t size) {
    std::vector<Owned> round;
    for (uint32_t i = first; i < first + count; ++i) round.push_back(make(i, size + i));
    std::vector<FragmentWrite> writes;
    for (const auto& f : round) {
      writes.push_back(f.write());
      live += dfs::kRecordHeaderSize + f.data.size();
    }
    REQUIRE(store->put(writes).ok());
    fragments.insert(fragments.end(), round.begin(), round.end());
  };
  for (const auto& f : fragments) live += dfs::kRecordHeaderSize + f.data.size();
  // Small rounds: no padding, appended to the old extent where it ends.
  for (uint32_t i = 3; i < 20; ++i) putRound(i, 1, 700 * i + 13);
  auto files = extentFiles(dir.path);
  REQUIRE(files.size() == 1);
  CHECK(store->stats().usedBytes == live);
  CHECK(std::filesystem::file_size(files[0]) == live);
  REQUIRE(live % 4096 != 0);
  // A big round (6 x 40 KiB) goes through O_DIRECT: the file ends on a block, and
  // the padding (less than a block) counts as garbage.
  putRound(20, 6, 40 << 10);
  auto size = std::filesystem::file_size(files[0]);
  CHECK(size % 4096 == 0);
  auto stats = store->stats();
  CHECK(stats.liveBytes == live);
  CHECK(stats.usedBytes == size);
  CHECK(stats.usedBytes - stats.liveBytes < 4096);
  // Small again after it: no padding.
  uint64_t liveBefore = live;
  putRound(26, 2, 3000);
  CHECK(store->stats().usedBytes == size + (live - liveBefore));
  for (const auto& f : fragments) CHECK(store->get(f.id).value().data == f.data);

  // Reopened, every fragment reads back and the accounting is the same.
  stats = store->stats();
  store.reset();
  store = openStore(optionsFor(dir.path));
  CHECK(store->stats().usedBytes == stats.usedBytes);
  CHECK(store->stats().liveBytes == stats.liveBytes);
  for (const auto& f : fragments) CHECK(store->get(f.id).value().data == f.data);
}

namespace {
// Refuses the first `refusals` O_DIRECT opens with EMFILE (a full descriptor table).
class DirectRefusingFileSystem : public dfs::PosixFileSystem {
 public:
  dfs::Result<int> openDirect(const std::string& path) override {
    ++attempts;
    if (refusals > 0) {
      --refusals;
      return dfs::errnoStatus("open " + path + " with O_DIRECT", EMFILE);
    }
    return PosixFileSystem::openDirect(path);
  }
  int refusals = 0;
  int attempts = 0;
};
}  // namespace

TEST_CASE("extent store: O_DIRECT refused for a passing reason is tried again on the next extent") {
  TempDir dir;
  if (!directIoWorks(dir.path)) return;
  DirectRefusingFileSystem fs;
  fs.refusals = 1;
  auto options = optionsFor(dir.path);
  options.fileSystem = &fs;
  options.maxExtentBytes = 256 << 10;
  auto store = openStore(options);
  std::vector<Owned> fragments;
  auto putRound = [&](uint32_t first) {
    std::vector<Owned> round;
    for (uint32_t i = first; i < first + 6; ++i) round.push_back(make(i, (40 << 10) + i));
    std::vector<FragmentWrite> writes;
    for (const auto& f : round) writes.push_back(f.write());
    REQUIRE(store->put(writes).ok());
    fragments.insert(fragments.end(), round.begin(), round.end());
  };
  // The first extent's open was refused: its big round is appended buffered, unpadded.
  putRound(0);
  auto files = extentFiles(dir.path);
  REQUIRE(files.size() == 1);
  uint64_t live = 0;
  for (const auto& f : fragments) live += dfs::kRecordHeaderSize + f.data.size();
  REQUIRE(live % 4096 != 0);
  CHECK(std::filesystem::file_size(files[0]) == live);
  CHECK(fs.attempts == 1);
  // The next round does not fit: a new extent, opened with O_DIRECT again (padded).
  putRound(6);
  files = extentFiles(dir.path);
  REQUIRE(files.size() == 2);
  CHECK(fs.attempts == 2);
  CHECK(std::filesystem::file_size(files[0]) == live);
  CHECK(std::filesystem::file_size(files[1]) % 4096 == 0);
  CHECK(store->stats().usedBytes - store->stats().liveBytes < 4096);
  for (const auto& f : fragments) CHECK(store->get(f.id).value().data == f.data);
}

namespace {
// Records the read-ahead hints and the reads a getMany makes.
class HintRecordingFileSystem : public dfs::PosixFileSystem {
 public:
  void willNeed(int fd, uint64_t offset, uint64_t size) override {
    std::lock_guard<std::mutex> lock(mu);
    hints.push_back({offset, size});
    PosixFileSystem::willNeed(fd, offset, size);
  }
  dfs::Status readAt(int fd, void* data, size_t size, uint64_t offset) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      reads.push_back({offset, size});
    }
    return PosixFileSystem::readAt(fd, data, size, offset);
  }
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> hints, reads;
};
}  // namespace

TEST_CASE("extent store: getMany asks the disk for a run of adjacent records at once") {
  TempDir dir;
  HintRecordingFileSystem fs;
  auto options = optionsFor(dir.path);
  options.fileSystem = &fs;
  auto store = openStore(options);
  std::vector<Owned> fragments;
  for (uint32_t i = 0; i < 12; ++i) {
    fragments.push_back(make(i, 3000 + 500 * i));
    REQUIRE(putOne(*store, fragments.back()).ok());  // one round each: padded when direct
  }
  // Every other fragment, asked in reverse: read in disk order, hinted as one run
  // (the gaps are single records, well under the 64 KiB allowed).
  std::vector<std::string_view> ids;
  for (int i = 10; i >= 0; i -= 2) ids.push_back(fragments[i].id);
  fs.hints.clear();
  fs.reads.clear();
  size_t visited = 0;
  REQUIRE(store
              ->getMany(ids, 1 << 30,
                        [&](size_t index, const dfs::Status& s, std::string_view data, uint64_t) {
                          REQUIRE(s.ok());
                          CHECK(data == fragments[10 - 2 * index].data);
                          ++visited;
                        })
              .ok());
  CHECK(visited == ids.size());
  REQUIRE(fs.reads.size() == ids.size());
  CHECK(std::is_sorted(fs.reads.begin(), fs.reads.end()));
  // One run hinted, covering every read.
  CHECK(fs.hints.size() == 1);
  for (const auto& [offset, size] : fs.reads) {
    bool covered = false;
    for (const auto& [from, length] : fs.hints) {
      covered |= offset >= from && offset + size <= from + length;
    }
    CHECK(covered);
  }
}
