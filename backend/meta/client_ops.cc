#include "backend/meta/client_ops.h"

namespace dfs::meta {

namespace {
// Value of a `replies` entry: version byte, then the reply's Cap'n Proto flat
// message. Value of a `journals` entry: version byte, seq (u64), time (i64 ns).
std::string encodeJournalMark(uint64_t seq, int64_t ns) {
  Encoder e;
  e.u8(kFormatVersion);
  e.u64(seq);
  e.i64(ns);
  return e.take();
}

uint64_t decodeJournalSeq(std::string_view value) {
  Decoder d(value);
  uint8_t version = d.u8();
  uint64_t seq = d.u64();
  d.i64();
  return d.ok() && version == kFormatVersion ? seq : 0;
}

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
  return wtx.commit();
}

Status ClientOps::noteJournal(uint64_t journal, uint64_t ino, uint64_t seq) {
  WriteTxn wtx(store_);
  std::string key = u64PairKey(journal, ino);
  if (auto v = wtx.get(store_.dbs().journals, key); v && decodeJournalSeq(*v) >= seq) {
    return wtx.commit();
  }
  wtx.put(store_.dbs().journals, key, encodeJournalMark(seq, wtx.now()));
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
  Status status = wtx.commit();
  if (!status.ok()) return status;
  return n;
}

}  // namespace dfs::meta
