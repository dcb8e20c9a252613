#include "backend/meta/client_ops.h"

#include <catch2/catch.hpp>

#include "tests/unit/meta/temp_node.h"

using namespace dfs;
using namespace dfs::meta;
using namespace dfs::meta::testing;

TEST_CASE("client ops: stored replies are found, dropped below doneBelow, and forgotten") {
  TempNode t;
  auto& ops = t.node->clientOps();
  CHECK_FALSE(ops.reply(7, 1).has_value());
  REQUIRE(ops.remember(7, 1, 1, "first").ok());
  REQUIRE(ops.remember(7, 2, 1, "second").ok());
  REQUIRE(ops.remember(8, 1, 1, "other client").ok());
  CHECK(ops.reply(7, 1).value() == "first");
  CHECK(ops.reply(7, 2).value() == "second");
  // The client has every reply below 3: 1 and 2 go, 3 stays.
  REQUIRE(ops.remember(7, 3, 3, "third").ok());
  CHECK_FALSE(ops.reply(7, 1).has_value());
  CHECK_FALSE(ops.reply(7, 2).has_value());
  CHECK(ops.reply(7, 3).value() == "third");
  CHECK(ops.reply(8, 1).value() == "other client");
  auto forgot = ops.forget(7);
  REQUIRE(forgot.ok());
  CHECK(forgot.value() == 1);
  CHECK_FALSE(ops.reply(7, 3).has_value());
  CHECK(ops.reply(8, 1).value() == "other client");
}

TEST_CASE("client ops: journal marks only rise, per (journal, inode), and survive a reopen") {
  TempNode t;
  auto& ops = t.node->clientOps();
  REQUIRE(ops.noteJournal(5, 100, 10).ok());
  REQUIRE(ops.noteJournal(5, 100, 4).ok());  // an older commit retried late
  REQUIRE(ops.noteJournal(5, 101, 12).ok());
  REQUIRE(ops.noteJournal(6, 100, 99).ok());
  CHECK(ops.journalApplied(5, {100, 101, 102}) == std::vector<uint64_t>{10, 12, 0});
  t.reopen();
  auto& reopened = t.node->clientOps();
  CHECK(reopened.journalApplied(5, {100, 101}) == std::vector<uint64_t>{10, 12});
  REQUIRE(reopened.forget(5).ok());
  CHECK(reopened.journalApplied(5, {100, 101}) == std::vector<uint64_t>{0, 0});
  CHECK(reopened.journalApplied(6, {100}) == std::vector<uint64_t>{99});
}
