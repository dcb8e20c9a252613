// Thin RAII layer over the LMDB C API, shared by the metadata and storage nodes.
// Thread: an LmdbEnv may be shared; a transaction belongs to the thread that began
// it (LMDB's rule; envs are opened with MDB_NOTLS so read transactions may be used
// from any single thread). Values returned as string_view stay valid until the
// transaction ends or writes to that key.
#pragma once

#include <lmdb.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backend/common/status.h"

namespace dfs {

class LmdbEnv {
 public:
  // Opens (creating if needed) the environment in directory `dir` with the named
  // sub-databases. `mapSize` is the maximum size of the data file.
  static Result<std::unique_ptr<LmdbEnv>> open(const std::string& dir, size_t mapSize,
                                               const std::vector<std::string>& databases,
                                               unsigned extraFlags = 0);
  ~LmdbEnv();
  LmdbEnv(const LmdbEnv&) = delete;
  LmdbEnv& operator=(const LmdbEnv&) = delete;

  MDB_env* get() const { return env_; }
  // REQUIRES: `name` was listed at open().
  MDB_dbi dbi(const std::string& name) const;
  // Forces the data to disk (for MDB_NOSYNC environments).
  Status sync();

 private:
  LmdbEnv() = default;
  MDB_env* env_ = nullptr;
  std::map<std::string, MDB_dbi> dbis_;
};

class LmdbTxn {
 public:
  enum class Mode { kRead, kWrite };
  LmdbTxn(const LmdbEnv& env, Mode mode);
  ~LmdbTxn();  // aborts unless committed
  LmdbTxn(const LmdbTxn&) = delete;
  LmdbTxn& operator=(const LmdbTxn&) = delete;

  // Whether mdb_txn_begin succeeded; check before use.
  Status status() const { return status_; }
  MDB_txn* get() const { return txn_; }

  std::optional<std::string_view> get(MDB_dbi dbi, std::string_view key) const;
  Status put(MDB_dbi dbi, std::string_view key, std::string_view value, unsigned flags = 0);
  // Returns false if the key was absent.
  bool del(MDB_dbi dbi, std::string_view key);
  Status commit();
  void abort();

 private:
  MDB_txn* txn_ = nullptr;
  Status status_;
};

// Ordered iteration. Typical use: for (c.seek(prefix); c.valid() && startsWith(c.key(), prefix); c.next()).
class LmdbCursor {
 public:
  LmdbCursor(const LmdbTxn& txn, MDB_dbi dbi);
  ~LmdbCursor();
  LmdbCursor(const LmdbCursor&) = delete;
  LmdbCursor& operator=(const LmdbCursor&) = delete;

  void seek(std::string_view key);  // first key >= key
  void first();
  void last();
  void next();
  void prev();
  bool valid() const { return valid_; }
  std::string_view key() const;
  std::string_view value() const;
  // Deletes the current entry; the cursor then points at the following one.
  void erase();

 private:
  void move(MDB_cursor_op op, std::string_view key = {});
  MDB_cursor* cursor_ = nullptr;
  MDB_val key_{}, value_{};
  bool valid_ = false;
};

// Big-endian fixed-width encoding, so that integer keys sort numerically.
void appendBigEndian64(std::string& out, uint64_t value);
void appendBigEndian32(std::string& out, uint32_t value);
uint64_t readBigEndian64(std::string_view in, size_t offset = 0);
uint32_t readBigEndian32(std::string_view in, size_t offset = 0);
inline bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace dfs
