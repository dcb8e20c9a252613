#include "backend/storage/extent_appender.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <tuple>

#include "tests/unit/temp_dir.h"

namespace {

using dfs::ExtentAppender;

// A file in a fresh directory, open read-write.
struct TempFile {
  TempFile() : path(dir.path + "/extent"), fd(open(path.c_str(), O_RDWR | O_CREAT, 0640)) {}
  ~TempFile() { close(fd); }
  std::string contents() const {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  dfs::testing::TempDir dir{"dfs-appender-test"};
  std::string path;
  int fd;
};

std::string randomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = char(rng());
  return s;
}

// Counts the writes that reach the file.
class CountingFileSystem : public dfs::PosixFileSystem {
 public:
  dfs::Status writeAt(int fd, const std::vector<iovec>& pieces, uint64_t offset) override {
    ++writes;
    pieceCounts.push_back(pieces.size());
    size_t size = 0;
    for (const iovec& piece : pieces) size += piece.iov_len;
    log.push_back({fd, offset, size});
    if (failWrites) return dfs::errnoStatus("pwritev", ENOSPC);
    return PosixFileSystem::writeAt(fd, pieces, offset);
  }
  int writesTo(int fd) const {
    int n = 0;
    for (const auto& entry : log) n += std::get<0>(entry) == fd;
    return n;
  }
  std::vector<size_t> pieceCounts;
  std::vector<std::tuple<int, uint64_t, size_t>> log;  // fd, offset, bytes
  int writes = 0;
  bool failWrites = false;
};

}  // namespace

TEST_CASE("extent appender: appends of any size land in order, one write per full buffer") {
  TempFile file;
  CountingFileSystem fs;
  ExtentAppender appender(fs, 8192);
  std::string expected = "committed bytes before the appender opened";
  REQUIRE(write(file.fd, expected.data(), expected.size()) == ssize_t(expected.size()));
  appender.open(3, file.fd, expected.size());
  CHECK(appender.isOpenOn(3));
  CHECK_FALSE(appender.isOpenOn(4));
  std::mt19937_64 rng(42);
  size_t staged = 0;
  for (size_t size : {1, 80, 4015, 4096, 4097, 12288, 20000, 7, 100000, 3}) {
    std::string bytes = randomBytes(rng, size);
    REQUIRE(appender.append(bytes).ok());
    expected += bytes;
    staged += size;
    CHECK(appender.end() == expected.size());
  }
  CHECK(fs.writes == int(staged / 8192));  // only full buffers so far
  REQUIRE(appender.flush().ok());
  CHECK(file.contents() == expected);
  int before = fs.writes;
  REQUIRE(appender.flush().ok());  // nothing staged: no write
  CHECK(fs.writes == before);
  std::string more = randomBytes(rng, 5000);
  REQUIRE(appender.append(more).ok());
  REQUIRE(appender.flush().ok());
  CHECK(file.contents() == expected + more);
}

TEST_CASE("extent appender: a failed write is reported, and close forgets what was staged") {
  TempFile file;
  CountingFileSystem fs;
  ExtentAppender appender(fs, 4096);
  appender.open(1, file.fd, 0);
  fs.failWrites = true;
  CHECK(appender.append("small").ok());  // staged only
  CHECK(appender.flush().code == dfs::Code::NO_SPACE);
  CHECK(appender.append(std::string(5000, 'x')).code == dfs::Code::NO_SPACE);
  appender.close();
  CHECK_FALSE(appender.isOpen());
  fs.failWrites = false;
  appender.open(1, file.fd, 0);
  CHECK(appender.end() == 0);
  REQUIRE(appender.append("fresh").ok());
  REQUIRE(appender.flush().ok());
  CHECK(file.contents() == "fresh");
}

TEST_CASE("extent appender: borrowed pieces are written from where they are, in order with copied ones") {
  TempFile file;
  CountingFileSystem fs;
  ExtentAppender appender(fs, 64 * 1024);
  appender.open(7, file.fd, 0);
  std::mt19937_64 rng(7);
  std::vector<std::string> kept;  // the borrowed bytes stay alive until the flush
  std::string expected;
  for (size_t size : {80, 16384, 80, 4095, 80, 50000, 80, 4096, 80, 200000, 80, 12}) {
    kept.push_back(randomBytes(rng, size));
    REQUIRE(appender.append(kept.back(), /*borrow=*/true).ok());
    expected += kept.back();
    CHECK(appender.end() == expected.size());
  }
  // 16384 + 50000 reach the 64 KiB bound (one write); 200000 passes it again.
  CHECK(fs.writes == 2);
  REQUIRE(appender.flush().ok());
  CHECK(file.contents() == expected);
  CHECK(fs.writes == 3);
  // Headers between borrowed pieces share the buffer: at most two pieces per record.
  for (size_t pieces : fs.pieceCounts) CHECK(pieces <= 8);

  // Many small borrowed records: one pwritev holds at most 512 pieces.
  fs.pieceCounts.clear();
  std::string more;
  kept.clear();
  kept.reserve(2000);
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(appender.append(std::string(80, char('a' + i % 26))).ok());
    more += std::string(80, char('a' + i % 26));
    kept.push_back(randomBytes(rng, 4096));
    REQUIRE(appender.append(kept.back(), /*borrow=*/true).ok());
    more += kept.back();
  }
  REQUIRE(appender.flush().ok());
  CHECK(file.contents() == expected + more);
  for (size_t pieces : fs.pieceCounts) CHECK(pieces <= 512);
}

TEST_CASE("extent appender: direct mode writes big rounds in whole blocks, small ones buffered") {
  TempFile file;
  CountingFileSystem fs;
  auto direct = fs.openDirect(file.path);
  if (!direct.ok()) {
    WARN("no O_DIRECT under " << file.dir.path << ": " << direct.status().message);
    return;
  }
  ExtentAppender appender(fs, 256 << 10);
  std::mt19937_64 rng(3);
  std::string expected;
  std::vector<std::string> kept;
  auto appendRound = [&](std::initializer_list<size_t> sizes) {
    for (size_t size : sizes) {
      kept.push_back(randomBytes(rng, size));
      // Borrowed or not, direct mode copies into its aligned buffer.
      REQUIRE(appender.append(kept.back(), /*borrow=*/true).ok());
      expected += kept.back();
      CHECK(appender.end() == expected.size());
    }
  };
  // A small round: buffered, not padded, ending off a block.
  appender.open(2, file.fd, 0, direct.value());
  REQUIRE(appender.direct());
  appendRound({80, 5000, 80, 3});
  CHECK(appender.padToBlock() == 0);
  REQUIRE(appender.flush().ok());
  CHECK(fs.writesTo(direct.value()) == 0);
  CHECK(file.contents() == expected);

  // A big round starting off a block: the first block's rest is written buffered,
  // the others through O_DIRECT, the last one zero-padded.
  appendRound({80, 100000, 80, 70000});
  // Unpadded, a big round may not be written: its last block would be partial.
  CHECK(appender.flush().code == dfs::Code::IO);
  size_t pad = appender.padToBlock();
  CHECK(pad == (4096 - expected.size() % 4096) % 4096);
  CHECK(appender.end() % 4096 == 0);
  REQUIRE(appender.flush().ok());
  CHECK(fs.writesTo(direct.value()) == 1);
  expected += std::string(pad, '\0');
  CHECK(file.contents() == expected);

  // A round bigger than the buffer: a full buffer goes direct as it fills.
  appendRound({80, 300000, 80, 200000, 80, 1000});
  CHECK(fs.writesTo(direct.value()) == 2);
  pad = appender.padToBlock();
  REQUIRE(appender.flush().ok());
  CHECK(fs.writesTo(direct.value()) == 3);
  expected += std::string(pad, '\0');
  CHECK(file.contents() == expected);
  for (const auto& [fd, offset, size] : fs.log) {
    if (fd != direct.value()) continue;
    CHECK(offset % 4096 == 0);
    CHECK(size % 4096 == 0);
  }

  // Reopened at the end (as after a restart), small rounds again need no padding.
  appender.close();
  CHECK_FALSE(appender.direct());
  appender.open(2, file.fd, expected.size(), direct.value());
  appendRound({80, 1000});
  CHECK(appender.padToBlock() == 0);
  REQUIRE(appender.flush().ok());
  CHECK(file.contents() == expected);
  fs.closeFile(direct.value());
}
