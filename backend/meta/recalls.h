// Close-to-open when clients close files without waiting for the commit: a
// client acknowledges close(2) once the written bytes are in its journal and
// commits them in the background, releasing its handle only afterwards. So the
// metadata node knows which sessions may still hold uncommitted bytes of a
// file: those with it open for writing. Before another session's open (or
// create of an existing file) is answered, each of them is asked to commit
// (ClientCallback.flush through the session's callback); the open then sees
// every byte written and closed before it. Lookups, getattrs and readdirplus
// pages that return such a file's attributes wait the same way, so that the
// size the opener's kernel caches is the committed one.
//
// Delegated directories work the same way: a session that made a directory
// with Meta.mkdirDelegated (or an absorbed mkdir) may acknowledge changes
// inside it before sending them (Meta.applyOps). Before another session's
// operation on such a directory (as parent, target or result) is answered, the
// holder is asked to send them (a flush of the directory's inode), and the
// delegation ends.
//
// What is tracked is in memory: after a restart of dfs-meta no recall happens
// for files opened for writing before it (their bytes still reach the cluster
// within the clients' flush delay).
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "backend/meta/invalidations.h"

namespace dfs::meta {

class Recalls {
 public:
  static constexpr int64_t kTimeoutMs = 10000;

  // `timer` may be null (tests): no timeout.
  Recalls(Invalidations& callbacks, kj::Timer* timer) : callbacks_(callbacks), timer_(timer) {}

  // `session` opened `ino` for writing.
  void opened(uint64_t session, uint64_t ino);
  // `session` released its last handle of `ino`.
  void closed(uint64_t session, uint64_t ino);
  // The session ended (unmount).
  void ended(uint64_t session);
  // `dir` is delegated to `session` until another session's operation on it.
  void delegate(uint64_t session, uint64_t dir);
  bool delegated(uint64_t dir) const { return delegated_.count(dir) != 0; }

  // Resolves once every session other than `opener` that has `ino` open for
  // writing (or delegated) answered a flush request, failed to, or timed out;
  // a delegation ends then. Never throws.
  kj::Promise<void> beforeOpen(uint64_t opener, uint64_t ino);

  size_t writers(uint64_t ino) const;
  // Some session has some file open for writing.
  bool any() const { return !writers_.empty(); }
  // A session other than `session` has `ino` open for writing.
  bool othersWrite(uint64_t session, uint64_t ino) const;
  uint64_t sent() const { return sent_; }

 private:
  Invalidations& callbacks_;
  kj::Timer* timer_;
  std::map<uint64_t, std::set<uint64_t>> writers_;    // ino -> sessions
  std::map<uint64_t, std::set<uint64_t>> bySession_;  // session -> inodes
  std::set<uint64_t> delegated_;  // directories among writers_' inodes
  uint64_t sent_ = 0;
};

}  // namespace dfs::meta
