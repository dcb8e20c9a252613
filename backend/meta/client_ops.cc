#include "backend/meta/client_ops.h"

#include <spdlog/spdlog.h>

namespace dfs::meta {

namespace {
// Value of a `replies` entry: version byte, then the reply's Cap'n Proto flat
// message. `journals` and `clients` values: meta_store.h.

// The seq of a `journals` value; 0 (nothing applied) when it does not decode.
uint64_t decodeJournalSeq(std::string_view value) {
  auto mark = decodeJournalMark(value);
  return mark.ok() ? mark.value().seq : 0;
}

// A client's stamp is rewritten at most this often: a busy client costs a read
// per operation, not a write.
constexpr int64_t kSeenResolutionNs = int64_t(60) * 1000000000;

size_t dropRange(WriteTxn& wtx, MDB_dbi dbi, uint64_t client, uint64_t below) {
  size_t n = 0;
  LmdbCursor cursor(wtx.txn(), dbi);
  std::string prefix = u64Key(client);
  for (cursor.seek(prefix); cursor.valid() && startsWith(cursor.key(), prefix);) {
    if (readBigEndian64(cursor.key(), 8) >= below) break;
    cursor.erase();
    ++n;
  }
  return n;
}
}  // namespace

void ClientOps::touch(WriteTxn& wtx, uint64_t client) {
  int64_t now = store_.now();
  std::string key = u64Key(client);
  if (auto v = wtx.get(store_.dbs().clients, key)) {
    auto seen = decodeClientSeen(*v);
    if (seen.ok() && seen.value() <= now && now - seen.value() < kSeenResolutionNs) return;
  }
  wtx.put(store_.dbs().clients, key, encodeClientSeen(now));
}

std::optional<std::string> ClientOps::reply(uint64_t client, uint64_t seq) {
  WriteTxn wtx(store_);  // sees the open batch
  auto v = wtx.get(store_.dbs().replies, u64PairKey(client, seq));
  std::optional<std::string> out;
  if (v && v->size() > 1 && uint8_t((*v)[0]) == kFormatVersion) out = std::string(v->substr(1));
  wtx.commit();
  return out;
}

Status ClientOps::remember(uint64_t client, uint64_t seq, uint64_t doneBelow,
                           std::string_view reply) {
  WriteTxn wtx(store_);
  if (doneBelow > 0) dropRange(wtx, store_.dbs().replies, client, std::min(doneBelow, seq));
  std::string value(1, char(kFormatVersion));
  value.append(reply.data(), reply.size());
  wtx.put(store_.dbs().replies, u64PairKey(client, seq), value);
  touch(wtx, client);
  return wtx.commit();
}

Status ClientOps::noteJournal(uint64_t journal, uint64_t ino, uint64_t seq) {
  WriteTxn wtx(store_);
  std::string key = u64PairKey(journal, ino);
  touch(wtx, journal);  // a retried old commit, too: the client is alive
  if (auto v = wtx.get(store_.dbs().journals, key); v && decodeJournalSeq(*v) >= seq) {
    return wtx.commit();
  }
  wtx.put(store_.dbs().journals, key, encodeJournalMark(JournalMarkRecord{seq, wtx.now()}));
  return wtx.commit();
}

std::vector<uint64_t> ClientOps::journalApplied(uint64_t journal,
                                                const std::vector<uint64_t>& inodes) {
  WriteTxn wtx(store_);  // sees the open batch
  std::vector<uint64_t> out;
  out.reserve(inodes.size());
  for (uint64_t ino : inodes) {
    auto v = wtx.get(store_.dbs().journals, u64PairKey(journal, ino));
    out.push_back(v ? decodeJournalSeq(*v) : 0);
  }
  wtx.commit();
  return out;
}

Result<size_t> ClientOps::forget(uint64_t client) {
  WriteTxn wtx(store_);
  size_t n = dropRange(wtx, store_.dbs().replies, client, UINT64_MAX);
  n += dropRange(wtx, store_.dbs().journals, client, UINT64_MAX);
  wtx.del(store_.dbs().clients, u64Key(client));
  Status status = wtx.commit();
  if (!status.ok()) return status;
  return n;
}

Result<size_t> ClientOps::expire(int64_t idleNs) {
  int64_t now = store_.now();
  std::vector<uint64_t> idle;
  {
    WriteTxn wtx(store_);  // sees the open batch
    // Clients with rows but no stamp (stored before the `clients` table
    // existed, or a stamp that does not decode) are stamped now: they expire
    // one retention period from here.
    for (MDB_dbi dbi : {store_.dbs().replies, store_.dbs().journals}) {
      LmdbCursor cursor(wtx.txn(), dbi);
      for (cursor.first(); cursor.valid();) {
        uint64_t client = readBigEndian64(cursor.key(), 0);
        std::string key = u64Key(client);
        auto v = wtx.get(store_.dbs().clients, key);
        if (!v || !decodeClientSeen(*v).ok())
          wtx.put(store_.dbs().clients, key, encodeClientSeen(now));
        if (client == UINT64_MAX) break;
        cursor.seek(u64Key(client + 1));
      }
    }
    {
      // Closed before the commit: LMDB frees a write transaction's cursors with it.
      LmdbCursor cursor(wtx.txn(), store_.dbs().clients);
      for (cursor.first(); cursor.valid(); cursor.next()) {
        auto seen = decodeClientSeen(cursor.value());
        if (seen.ok() && seen.value() <= now - idleNs) {
          idle.push_back(readBigEndian64(cursor.key(), 0));
        }
      }
    }
    Status status = wtx.commit();
    if (!status.ok()) return status;
  }
  for (uint64_t client : idle) {
    auto dropped = forget(client);
    if (!dropped.ok()) return dropped.status();
    spdlog::info(
        "client {:016x} idle for longer than {} s: dropped its {} stored replies and journal marks",
        client, idleNs / 1000000000, dropped.value());
  }
  return idle.size();
}

}  // namespace dfs::meta
