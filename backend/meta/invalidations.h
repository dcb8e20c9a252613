// Cache invalidation between clients: every mounted session may register a
// proto::ClientCallback; after a mutation by one session is committed, every
// OTHER session mounted on the same volume is told which inodes and directory
// entries changed.
//
// Notifications are batched per target session: changes are collected and sent
// once per ~kCoalesceMs (or at the next event-loop turn when no timer is
// available), with at most one call in flight per target; what changes meanwhile
// goes into the next call. Nothing here ever blocks or fails a mutation: a
// callback whose call fails or hangs is dropped for the rest of the session
// (logged once), and pending sets are bounded (past kMaxPending a target gets
// its batch early; past kMaxPendingStuck behind a hanging call it is dropped).
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "protocol/dfs.capnp.h"

namespace dfs::meta {

struct Change {
  std::vector<uint64_t> inodes;                              // attrs or data changed
  std::vector<std::pair<uint64_t, std::string>> entries;     // (parent, name) changed
  bool empty() const { return inodes.empty() && entries.empty(); }
};

class Invalidations final : private kj::TaskSet::ErrorHandler {
 public:
  static constexpr int64_t kCoalesceMs = 20;
  static constexpr size_t kMaxPending = 4096;
  // A callback that has not answered within kCallTimeoutMs, or has more than
  // kMaxPendingStuck changes waiting behind an unanswered call, is dropped.
  static constexpr int64_t kCallTimeoutMs = 30000;
  static constexpr size_t kMaxPendingStuck = 16 * kMaxPending;

  // `timer` may be null (tests): batches then go out at the next loop turn.
  explicit Invalidations(kj::Timer* timer) : timer_(timer), tasks_(*this) {}

  // Registers (or replaces) the callback of `session`, mounted on `volume`.
  void attach(uint64_t session, uint32_t volume, proto::ClientCallback::Client callback);
  // Forgets the session (unmount, disconnect); pending changes are dropped.
  void detach(uint64_t session);
  // A committed change by `origin` on `volume`: queued for every other session there.
  void changed(uint64_t origin, uint32_t volume, const Change& change);

  // The callback `session` registered, if any (for Recalls).
  kj::Maybe<proto::ClientCallback::Client> callbackOf(uint64_t session);

  size_t targets() const { return targets_.size(); }
  uint64_t sent() const { return sent_; }

 private:
  struct Target {
    uint32_t volume = 0;
    uint64_t generation = 0;  // distinguishes re-attachments of one session id
    proto::ClientCallback::Client callback;
    std::set<uint64_t> inodes;
    std::set<std::pair<uint64_t, std::string>> entries;
    bool scheduled = false;  // a send is scheduled (timer or loop turn)
    bool inFlight = false;
    explicit Target(proto::ClientCallback::Client cb) : callback(kj::mv(cb)) {}
  };

  void schedule(uint64_t session, Target& target, bool now);
  void send(uint64_t session, uint64_t generation);
  void taskFailed(kj::Exception&& exception) override;

  kj::Timer* timer_;
  std::map<uint64_t, Target> targets_;
  uint64_t nextGeneration_ = 1;
  uint64_t sent_ = 0;
  kj::TaskSet tasks_;
};

}  // namespace dfs::meta
