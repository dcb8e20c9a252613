#include "backend/meta/invalidations.h"

#include <spdlog/spdlog.h>

#include "backend/common/metrics.h"

namespace dfs::meta {

void Invalidations::attach(uint64_t session, uint32_t volume,
                           proto::ClientCallback::Client callback) {
  targets_.erase(session);
  auto [it, inserted] = targets_.emplace(session, Target(kj::mv(callback)));
  it->second.volume = volume;
  it->second.generation = nextGeneration_++;
}

void Invalidations::detach(uint64_t session) { targets_.erase(session); }

kj::Maybe<proto::ClientCallback::Client> Invalidations::callbackOf(uint64_t session) {
  auto it = targets_.find(session);
  if (it == targets_.end()) return nullptr;
  return it->second.callback;
}

void Invalidations::changed(uint64_t origin, uint32_t volume, const Change& change) {
  if (change.empty()) return;
  std::vector<uint64_t> stuck;
  for (auto& [session, target] : targets_) {
    if (session == origin || target.volume != volume) continue;
    target.inodes.insert(change.inodes.begin(), change.inodes.end());
    target.entries.insert(change.entries.begin(), change.entries.end());
    size_t pending = target.inodes.size() + target.entries.size();
    if (target.inFlight && pending > kMaxPendingStuck) {
      stuck.push_back(session);
      continue;
    }
    schedule(session, target, pending >= kMaxPending);
  }
  for (uint64_t session : stuck) {
    spdlog::warn("session {}: invalidation callback does not answer ({} changes pending); no "
                 "more invalidations for this session",
                 session, kMaxPendingStuck);
    targets_.erase(session);
  }
}

void Invalidations::schedule(uint64_t session, Target& target, bool now) {
  if (target.inFlight || (target.scheduled && !now)) return;
  target.scheduled = true;
  uint64_t generation = target.generation;
  kj::Promise<void> wait = (now || !timer_) ? kj::evalLater([] {})
                                            : timer_->afterDelay(kCoalesceMs * kj::MILLISECONDS);
  tasks_.add(wait.then([this, session, generation] { send(session, generation); }));
}

void Invalidations::send(uint64_t session, uint64_t generation) {
  auto it = targets_.find(session);
  if (it == targets_.end() || it->second.generation != generation) return;
  Target& target = it->second;
  target.scheduled = false;
  if (target.inFlight || (target.inodes.empty() && target.entries.empty())) return;
  auto req = target.callback.invalidateRequest();
  auto inodes = req.initInodes(unsigned(target.inodes.size()));
  unsigned i = 0;
  for (uint64_t ino : target.inodes) inodes.set(i++, ino);
  auto entries = req.initEntries(unsigned(target.entries.size()));
  i = 0;
  for (const auto& [parent, name] : target.entries) {
    auto e = entries[i++];
    e.setParent(parent);
    e.setName(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(name.data()), name.size()));
  }
  target.inodes.clear();
  target.entries.clear();
  target.inFlight = true;
  ++sent_;
  static Counter& calls = metrics().counter(
      "dfs_meta_invalidation_calls_total", "ClientCallback.invalidate calls sent to clients");
  calls.inc();
  auto sent = req.send().ignoreResult();
  kj::Promise<void> call = timer_ ? timer_->timeoutAfter(kCallTimeoutMs * kj::MILLISECONDS, kj::mv(sent))
                                  : kj::mv(sent);
  tasks_.add(call.then(
      [this, session, generation]() {
        auto it = targets_.find(session);
        if (it == targets_.end() || it->second.generation != generation) return;
        it->second.inFlight = false;
        if (!it->second.inodes.empty() || !it->second.entries.empty()) {
          schedule(session, it->second, true);
        }
      },
      [this, session, generation](kj::Exception&& e) {
        auto it = targets_.find(session);
        if (it == targets_.end() || it->second.generation != generation) return;
        spdlog::warn("session {}: invalidation callback failed ({}); no more invalidations "
                     "for this session",
                     session, e.getDescription().cStr());
        targets_.erase(it);
      }));
}

void Invalidations::taskFailed(kj::Exception&& exception) {
  spdlog::warn("invalidations: {}", exception.getDescription().cStr());
}

}  // namespace dfs::meta
