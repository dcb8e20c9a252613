#include "backend/client/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/unit/temp_dir.h"

using namespace dfs;

namespace {
struct TempDir : dfs::testing::TempDir {
  TempDir() : dfs::testing::TempDir("dfs-journal-test") {}
};

std::vector<std::string> segmentFiles(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 4 && n.substr(n.size() - 4) == ".jnl") out.push_back(dir + "/" + n);
  }
  closedir(d);
  return out;
}

std::vector<JournalWrite> readAll(const LeftoverJournal& j) {
  std::vector<JournalWrite> out;
  REQUIRE(Journal::scan(j, [&](JournalWrite&& w) {
            out.push_back(std::move(w));
            return Status{};
          }).ok());
  return out;
}
}  // namespace

TEST_CASE("journal: records of a killed instance are found and read back in order") {
  TempDir t;
  {
    auto j = Journal::open(t.path, 0xAAAA, 4096);  // tiny segments: several files
    REQUIRE(j.ok());
    for (int i = 0; i < 50; ++i) {
      std::string data(100 + i, char('a' + i % 26));
      auto seq = j.value()->appendWrite(10 + i % 3, uint64_t(i) * 1000, data, i);
      REQUIRE(seq.ok());
      CHECK(seq.value() == uint64_t(i + 1));
    }
    CHECK(segmentFiles(t.path).size() > 1);
    // Destroyed with live records: a crash as far as the files are concerned.
  }
  auto next = Journal::open(t.path, 0xBBBB);
  REQUIRE(next.ok());
  auto left = next.value()->leftovers();
  REQUIRE(left.size() == 1);
  CHECK(left[0].clientId == 0xAAAA);
  auto writes = readAll(left[0]);
  REQUIRE(writes.size() == 50);
  for (int i = 0; i < 50; ++i) {
    CHECK(writes[i].seq == uint64_t(i + 1));
    CHECK(writes[i].ino == uint64_t(10 + i % 3));
    CHECK(writes[i].offset == uint64_t(i) * 1000);
    CHECK(writes[i].mtimeNs == i);
    CHECK(writes[i].data == std::string(100 + i, char('a' + i % 26)));
  }
  Journal::remove(left[0]);
  CHECK(next.value()->leftovers().empty());
}

TEST_CASE("journal: a torn or corrupt tail ends the journal, earlier records stay valid") {
  TempDir t;
  {
    auto j = Journal::open(t.path, 0xCC);
    REQUIRE(j.ok());
    for (int i = 0; i < 10; ++i) REQUIRE(j.value()->appendWrite(1, i * 10, std::string(10, 'x'), 0).ok());
  }
  auto files = segmentFiles(t.path);
  REQUIRE(files.size() == 1);
  struct stat st;
  REQUIRE(stat(files[0].c_str(), &st) == 0);
  SECTION("truncated mid-record") {
    REQUIRE(truncate(files[0].c_str(), st.st_size - 5) == 0);
    auto j = Journal::open(t.path, 0xDD);
    REQUIRE(j.ok());
    CHECK(readAll(j.value()->leftovers()[0]).size() == 9);
  }
  SECTION("a flipped byte in the last record") {
    int fd = open(files[0].c_str(), O_RDWR);
    char c;
    REQUIRE(pread(fd, &c, 1, st.st_size - 12) == 1);
    c ^= 0x40;
    REQUIRE(pwrite(fd, &c, 1, st.st_size - 12) == 1);
    close(fd);
    auto j = Journal::open(t.path, 0xDD);
    REQUIRE(j.ok());
    CHECK(readAll(j.value()->leftovers()[0]).size() == 9);
  }
  SECTION("garbage appended") {
    int fd = open(files[0].c_str(), O_WRONLY | O_APPEND);
    std::string junk = "\xff\xff\xff\xff garbage";
    REQUIRE(write(fd, junk.data(), junk.size()) == ssize_t(junk.size()));
    close(fd);
    auto j = Journal::open(t.path, 0xDD);
    REQUIRE(j.ok());
    CHECK(readAll(j.value()->leftovers()[0]).size() == 10);
  }
}

TEST_CASE("journal: segments go once their records are done; none left when all are") {
  TempDir t;
  auto opened = Journal::open(t.path, 0xEE, 1000);
  REQUIRE(opened.ok());
  auto& j = *opened.value();
  std::vector<uint64_t> seqs;
  for (int i = 0; i < 30; ++i) seqs.push_back(j.appendWrite(1, 0, std::string(300, 'y'), 0).value());
  size_t before = segmentFiles(t.path).size();
  CHECK(before >= 8);
  for (int i = 0; i < 15; ++i) j.done(seqs[i]);
  size_t middle = segmentFiles(t.path).size();
  CHECK(middle < before);
  CHECK(middle > 1);
  CHECK(j.liveRecords() == 15);
  // Out of order: the oldest live record pins its segment.
  for (int i = 29; i >= 16; --i) j.done(seqs[i]);
  CHECK(segmentFiles(t.path).size() == middle);
  j.done(seqs[15]);
  CHECK(j.liveRecords() == 0);
  CHECK(segmentFiles(t.path).size() == 1);
  opened.value().reset();
  CHECK(segmentFiles(t.path).empty());  // clean close of an empty journal
}

TEST_CASE("journal: one cache directory, one mount") {
  TempDir t;
  auto first = Journal::open(t.path, 1);
  REQUIRE(first.ok());
  auto second = Journal::open(t.path, 2);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code == Code::BUSY);
  CHECK(second.status().message.find("in use by another mount") != std::string::npos);
  first.value().reset();
  CHECK(Journal::open(t.path, 2).ok());
}

TEST_CASE("journal: an unwritable cache directory fails clearly") {
  if (geteuid() == 0) {
    auto j = Journal::open("/proc/dfs-cannot-exist/cache", 1);
    CHECK_FALSE(j.ok());
    CHECK(j.status().message.find("cannot create cache directory") != std::string::npos);
  }
}

TEST_CASE("journal: deferred attribute changes are read back between the writes, in order") {
  TempDir t;
  SetAttrRequest set;
  set.setMode = true;
  set.mode = 04751;
  set.setUid = true;
  set.uid = 1234;
  set.setMtime = true;
  set.mtimeNs = 1500000000987654321;
  set.setAtime = true;
  set.atimeNs = -5;  // before 1970 round-trips too
  {
    auto j = Journal::open(t.path, 0xAAAA);
    REQUIRE(j.ok());
    REQUIRE(j.value()->appendWrite(7, 0, "hello", 11).ok());
    auto seq = j.value()->appendSetattr(7, set, Caller{1000, 100, 42}, 99);
    REQUIRE(seq.ok());
    CHECK(seq.value() == 2);
    REQUIRE(j.value()->appendWrite(7, 5, "world", 12).ok());
  }
  auto next = Journal::open(t.path, 0xBBBB);
  REQUIRE(next.ok());
  auto left = next.value()->leftovers();
  REQUIRE(left.size() == 1);
  auto records = readAll(left[0]);
  REQUIRE(records.size() == 3);
  CHECK(records[0].type == JournalWrite::Type::kWrite);
  CHECK(records[0].data == "hello");
  const JournalWrite& a = records[1];
  CHECK(a.type == JournalWrite::Type::kSetattr);
  CHECK(a.seq == 2);
  CHECK(a.ino == 7);
  CHECK(a.data.empty());
  CHECK(a.set.setMode);
  CHECK(a.set.mode == 04751);
  CHECK(a.set.setUid);
  CHECK(a.set.uid == 1234);
  CHECK_FALSE(a.set.setGid);
  CHECK(a.set.setAtime);
  CHECK(a.set.atimeNs == -5);
  CHECK(a.set.setMtime);
  CHECK(a.set.mtimeNs == 1500000000987654321);
  CHECK_FALSE(a.set.setSize);
  CHECK(a.set.ctimeNs == 99);
  CHECK(a.caller.uid == 1000);
  CHECK(a.caller.gid == 100);
  CHECK(records[2].data == "world");
}
