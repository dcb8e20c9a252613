// What the metadata node remembers per client instance, keyed by the client's
// random 64-bit id (OpId.client, which is also its write-back journal id):
//  - the reply of every non-idempotent request that carried an OpId, written in
//    the same (group-commit) transaction as the request's effect, so a retry
//    after a lost connection or a restart is answered, not applied twice
//    (`replies` table; a client's replies below its OpId.doneBelow are dropped);
//  - per inode, the highest write-back journal sequence number a commitWrite
//    made durable (`journals` table), read back by a client replaying its
//    journal after a crash so that replay is idempotent.
// forget() drops both once the client has no use for them (clean unmount,
// journal replayed). A client that never comes back (its host or its cache
// directory is gone) would keep them forever: each client's last activity is
// stamped in `clients`, and expire() forgets the clients idle for longer than
// the retention (MetaConfig::clientRetentionNs). Byte layouts: docs/formats.md.
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backend/meta/meta_store.h"

namespace dfs::meta {

class ClientOps {
 public:
  explicit ClientOps(MetaStore& store) : store_(store) {}

  // The stored reply of (client, seq), including one not yet committed in the
  // open group-commit batch.
  std::optional<std::string> reply(uint64_t client, uint64_t seq);
  // Stores a reply in the open batch (its own transaction without group
  // commit) and drops the client's replies with seq < doneBelow.
  Status remember(uint64_t client, uint64_t seq, uint64_t doneBelow, std::string_view reply);
  // Raises the journal mark of (journal, ino) to `seq`.
  Status noteJournal(uint64_t journal, uint64_t ino, uint64_t seq);
  // The journal mark of each inode (0: none).
  std::vector<uint64_t> journalApplied(uint64_t journal, const std::vector<uint64_t>& inodes);
  // Drops every reply and journal mark of the client; returns how many.
  Result<size_t> forget(uint64_t client);
  // Forgets every client with no reply or journal mark stored for `idleNs`;
  // returns how many clients. Rows without a stamp (older stores) are stamped
  // now.
  Result<size_t> expire(int64_t idleNs);

 private:
  // Stamps the client's last activity (at most once a minute per client).
  void touch(WriteTxn& wtx, uint64_t client);

  MetaStore& store_;
};

}  // namespace dfs::meta
