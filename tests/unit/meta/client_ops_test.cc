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

TEST_CASE("client ops: a client idle past the retention is forgotten, an active one is kept") {
  TempNode t;
  const int64_t hour = int64_t(3600) * 1000000000;
  auto& ops = t.node->clientOps();
  // Client 5 (the vanished one): a reply and journal marks, then silence.
  REQUIRE(ops.remember(5, 1, 0, "five").ok());
  REQUIRE(ops.noteJournal(5, 100, 10).ok());
  REQUIRE(ops.noteJournal(5, 0, 11).ok());
  // Client 6 calls now and then; client 7 only stored replies (no journal).
  REQUIRE(ops.noteJournal(6, 100, 3).ok());
  REQUIRE(ops.remember(7, 1, 0, "seven").ok());

  auto none = ops.expire(24 * hour);
  REQUIRE(none.ok());
  CHECK(none.value() == 0);

  t.clock += 20 * hour;
  REQUIRE(ops.noteJournal(6, 101, 4).ok());
  REQUIRE(ops.remember(7, 2, 2, "seven again").ok());
  t.clock += 5 * hour;  // client 5 has been idle 25 h, 6 and 7 for 5 h
  t.reopen();           // the stamps are stored, not held in memory
  auto& reopened = t.node->clientOps();
  auto forgotten = reopened.expire(24 * hour);
  REQUIRE(forgotten.ok());
  CHECK(forgotten.value() == 1);
  CHECK_FALSE(reopened.reply(5, 1).has_value());
  CHECK(reopened.journalApplied(5, {0, 100}) == std::vector<uint64_t>{0, 0});
  CHECK(reopened.journalApplied(6, {100, 101}) == std::vector<uint64_t>{3, 4});
  CHECK(reopened.reply(7, 2).value() == "seven again");

  // A retried old commit (a mark that does not rise) is activity too.
  t.clock += 20 * hour;
  REQUIRE(reopened.noteJournal(6, 100, 2).ok());
  t.clock += 20 * hour;
  forgotten = reopened.expire(24 * hour);
  REQUIRE(forgotten.ok());
  CHECK(forgotten.value() == 1);
  CHECK(reopened.journalApplied(6, {100, 101}) == std::vector<uint64_t>{3, 4});
  CHECK_FALSE(reopened.reply(7, 2).has_value());
  t.clock += 5 * hour;
  forgotten = reopened.expire(24 * hour);
  REQUIRE(forgotten.ok());
  CHECK(forgotten.value() == 1);
  CHECK(reopened.journalApplied(6, {100, 101}) == std::vector<uint64_t>{0, 0});
}

TEST_CASE("client ops: rows without a readable stamp expire one retention after they are seen") {
  TempNode t;
  const int64_t hour = int64_t(3600) * 1000000000;
  REQUIRE(t.node->clientOps().noteJournal(9, 100, 1).ok());
  REQUIRE(t.node->clientOps().remember(9, 1, 0, "nine").ok());
  REQUIRE(t.node->clientOps().noteJournal(10, 100, 1).ok());
  {
    // Client 9 as an older dfs-meta left it: no `clients` row. Client 10's
    // stamp is damaged (unknown version, wrong length).
    WriteTxn wtx(t.node->store());
    CHECK(wtx.del(t.node->store().dbs().clients, u64Key(9)));
    wtx.put(t.node->store().dbs().clients, u64Key(10), std::string("\x07xyz"));
    REQUIRE(wtx.commit().ok());
  }
  t.clock += 100 * hour;
  auto forgotten = t.node->clientOps().expire(24 * hour);
  REQUIRE(forgotten.ok());
  CHECK(forgotten.value() == 0);  // stamped now
  CHECK(t.node->clientOps().journalApplied(9, {100}) == std::vector<uint64_t>{1});
  CHECK(t.node->clientOps().journalApplied(10, {100}) == std::vector<uint64_t>{1});
  t.clock += 25 * hour;
  forgotten = t.node->clientOps().expire(24 * hour);
  REQUIRE(forgotten.ok());
  CHECK(forgotten.value() == 2);
  CHECK(t.node->clientOps().journalApplied(10, {100}) == std::vector<uint64_t>{0});
  CHECK(t.node->clientOps().journalApplied(9, {100}) == std::vector<uint64_t>{0});
  CHECK_FALSE(t.node->clientOps().reply(9, 1).has_value());
}
