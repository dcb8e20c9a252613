// Client sessions and open files. A session is created by mount and lives while
// the client renews its lease; open/create record (session, inode) with an open
// count, release decrements it. An inode whose last name is removed while open
// stays as an orphan until its last release or its session's end.
// Sessions are persisted; after a restart every persisted session gets a fresh
// lease (the lease deadlines themselves are in memory, so keepalive costs no write).
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <map>
#include <string>

#include "backend/meta/meta_store.h"
#include "backend/meta/namespace_ops.h"

namespace dfs::meta {

class SessionTable {
 public:
  SessionTable(MetaStore& store, int64_t leaseNs) : store_(store), leaseNs_(leaseNs) {}

  // Loads persisted sessions (fresh leases) and destroys orphans nobody holds open.
  Status load();
  Result<uint64_t> mount(uint32_t volume, const std::string& client);
  // STALE when the session is unknown or expired.
  Status keepalive(uint64_t session);
  // Ends the session, releasing all its open files.
  Status unmount(uint64_t session);
  // Records an open; with `truncate` the (regular) file is cut to 0 in the same transaction.
  Result<InodeRecord> open(uint64_t session, uint64_t ino, bool truncate);
  // Creates a regular file and opens it in one transaction. An existing entry:
  // EXISTS when `exclusive`, IS_DIRECTORY for directories, else simply opened.
  Result<InodeRecord> create(uint64_t session, uint64_t parent, std::string_view name,
                             uint32_t mode, bool exclusive, const Caller& caller);
  // Returns true when that was the session's last handle of the inode.
  bool release(uint64_t session, uint64_t ino);
  // Ends every session whose lease has run out; returns how many.
  size_t expire();
  uint32_t leaseMs() const { return uint32_t(leaseNs_ / 1000000); }
  size_t count() const { return deadlines_.size(); }

 private:
  bool alive(uint64_t session);
  void recordOpen(WriteTxn& wtx, uint64_t session, uint64_t ino);
  Status endSession(uint64_t session);

  MetaStore& store_;
  int64_t leaseNs_;
  std::map<uint64_t, int64_t> deadlines_;  // session -> lease end (store clock)
};

}  // namespace dfs::meta
