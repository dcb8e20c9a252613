#include "backend/common/lmdb.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

TEST_CASE("lmdb wrapper: put, get, ordered cursor, erase, reopen") {
  char tmpl[] = "/tmp/dfs-lmdb-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  {
    auto env = dfs::LmdbEnv::open(dir, 64 << 20, {"a"});
    REQUIRE(env.ok());
    auto dbi = env.value()->dbi("a");
    dfs::LmdbTxn txn(*env.value(), dfs::LmdbTxn::Mode::kWrite);
    REQUIRE(txn.status().ok());
    for (uint64_t i : {5, 1, 3}) {
      std::string key;
      dfs::appendBigEndian64(key, i);
      REQUIRE(txn.put(dbi, key, "v" + std::to_string(i)).ok());
    }
    REQUIRE(txn.commit().ok());
  }
  auto env = dfs::LmdbEnv::open(dir, 64 << 20, {"a"});
  REQUIRE(env.ok());
  auto dbi = env.value()->dbi("a");
  dfs::LmdbTxn txn(*env.value(), dfs::LmdbTxn::Mode::kWrite);
  std::vector<uint64_t> seen;
  dfs::LmdbCursor cursor(txn, dbi);
  for (cursor.first(); cursor.valid(); cursor.next()) seen.push_back(dfs::readBigEndian64(cursor.key()));
  CHECK(seen == std::vector<uint64_t>{1, 3, 5});
  std::string three;
  dfs::appendBigEndian64(three, 3);
  cursor.seek(three);
  REQUIRE(cursor.valid());
  cursor.erase();
  REQUIRE(cursor.valid());
  CHECK(dfs::readBigEndian64(cursor.key()) == 5);
  CHECK_FALSE(txn.get(dbi, three).has_value());
  std::filesystem::remove_all(dir);
}
