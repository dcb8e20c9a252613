#include "backend/common/lmdb.h"

#include <sys/stat.h>

#include <cstring>

namespace dfs {

namespace {
MDB_val toVal(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view fromVal(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }
Status lmdbError(const char* what, int rc) {
  return Status::error(rc == MDB_MAP_FULL ? Code::NO_SPACE : Code::IO,
                       std::string(what) + ": " + mdb_strerror(rc));
}
}  // namespace

Result<std::unique_ptr<LmdbEnv>> LmdbEnv::open(const std::string& dir, size_t mapSize,
                                               const std::vector<std::string>& databases,
                                               unsigned extraFlags) {
  ::mkdir(dir.c_str(), 0750);
  std::unique_ptr<LmdbEnv> env(new LmdbEnv());
  int rc = mdb_env_create(&env->env_);
  if (rc) return lmdbError("mdb_env_create", rc);
  mdb_env_set_maxdbs(env->env_, databases.size() + 1);
  mdb_env_set_mapsize(env->env_, mapSize);
  mdb_env_set_maxreaders(env->env_, 256);
  rc = mdb_env_open(env->env_, dir.c_str(), MDB_NOTLS | extraFlags, 0640);
  if (rc) return lmdbError(("opening LMDB environment " + dir).c_str(), rc);
  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env->env_, nullptr, 0, &txn);
  if (rc) return lmdbError("mdb_txn_begin", rc);
  for (const auto& name : databases) {
    MDB_dbi dbi;
    rc = mdb_dbi_open(txn, name.c_str(), MDB_CREATE, &dbi);
    if (rc) {
      mdb_txn_abort(txn);
      return lmdbError(("opening database " + name).c_str(), rc);
    }
    env->dbis_[name] = dbi;
  }
  rc = mdb_txn_commit(txn);
  if (rc) return lmdbError("mdb_txn_commit", rc);
  return env;
}

LmdbEnv::~LmdbEnv() {
  if (env_) mdb_env_close(env_);
}

MDB_dbi LmdbEnv::dbi(const std::string& name) const { return dbis_.at(name); }

Status LmdbEnv::sync() {
  int rc = mdb_env_sync(env_, 1);
  return rc ? lmdbError("mdb_env_sync", rc) : Status{};
}

LmdbTxn::LmdbTxn(const LmdbEnv& env, Mode mode) {
  int rc = mdb_txn_begin(env.get(), nullptr, mode == Mode::kRead ? MDB_RDONLY : 0, &txn_);
  if (rc) {
    txn_ = nullptr;
    status_ = lmdbError("mdb_txn_begin", rc);
  }
}

LmdbTxn::~LmdbTxn() { abort(); }

std::optional<std::string_view> LmdbTxn::get(MDB_dbi dbi, std::string_view key) const {
  MDB_val k = toVal(key), v;
  if (mdb_get(txn_, dbi, &k, &v) != 0) return std::nullopt;
  return fromVal(v);
}

Status LmdbTxn::put(MDB_dbi dbi, std::string_view key, std::string_view value, unsigned flags) {
  MDB_val k = toVal(key), v = toVal(value);
  int rc = mdb_put(txn_, dbi, &k, &v, flags);
  return rc ? lmdbError("mdb_put", rc) : Status{};
}

bool LmdbTxn::del(MDB_dbi dbi, std::string_view key) {
  MDB_val k = toVal(key);
  return mdb_del(txn_, dbi, &k, nullptr) == 0;
}

Status LmdbTxn::commit() {
  if (!txn_) return status_.ok() ? Status::error(Code::IO, "transaction already ended") : status_;
  int rc = mdb_txn_commit(txn_);
  txn_ = nullptr;
  return rc ? lmdbError("mdb_txn_commit", rc) : Status{};
}

void LmdbTxn::abort() {
  if (txn_) mdb_txn_abort(txn_);
  txn_ = nullptr;
}

LmdbCursor::LmdbCursor(const LmdbTxn& txn, MDB_dbi dbi) {
  if (mdb_cursor_open(txn.get(), dbi, &cursor_) != 0) cursor_ = nullptr;
}

LmdbCursor::~LmdbCursor() {
  if (cursor_) mdb_cursor_close(cursor_);
}

void LmdbCursor::move(MDB_cursor_op op, std::string_view key) {
  if (!cursor_) {
    valid_ = false;
    return;
  }
  if (op == MDB_SET_RANGE) key_ = toVal(key);
  valid_ = mdb_cursor_get(cursor_, &key_, &value_, op) == 0;
}

void LmdbCursor::seek(std::string_view key) { move(MDB_SET_RANGE, key); }
void LmdbCursor::first() { move(MDB_FIRST); }
void LmdbCursor::last() { move(MDB_LAST); }
void LmdbCursor::next() { move(MDB_NEXT); }
void LmdbCursor::prev() { move(MDB_PREV); }
std::string_view LmdbCursor::key() const { return fromVal(key_); }
std::string_view LmdbCursor::value() const { return fromVal(value_); }

void LmdbCursor::erase() {
  if (!valid_) return;
  if (mdb_cursor_del(cursor_, 0) != 0) {
    valid_ = false;
    return;
  }
  // After a delete LMDB leaves the cursor so that GET_CURRENT yields the next entry.
  valid_ = mdb_cursor_get(cursor_, &key_, &value_, MDB_GET_CURRENT) == 0;
}

void appendBigEndian64(std::string& out, uint64_t value) {
  for (int i = 7; i >= 0; --i) out.push_back(char((value >> (8 * i)) & 0xff));
}
void appendBigEndian32(std::string& out, uint32_t value) {
  for (int i = 3; i >= 0; --i) out.push_back(char((value >> (8 * i)) & 0xff));
}
uint64_t readBigEndian64(std::string_view in, size_t offset) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | uint8_t(in[offset + i]);
  return v;
}
uint32_t readBigEndian32(std::string_view in, size_t offset) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | uint8_t(in[offset + i]);
  return v;
}

}  // namespace dfs
