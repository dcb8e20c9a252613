#include "backend/meta/recalls.h"

#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include "backend/common/metrics.h"

namespace dfs::meta {

void Recalls::opened(uint64_t session, uint64_t ino) {
  writers_[ino].insert(session);
  bySession_[session].insert(ino);
}

void Recalls::closed(uint64_t session, uint64_t ino) {
  auto it = writers_.find(ino);
  if (it != writers_.end()) {
    it->second.erase(session);
    if (it->second.empty()) {
      writers_.erase(it);
      delegated_.erase(ino);
    }
  }
  auto s = bySession_.find(session);
  if (s != bySession_.end()) {
    s->second.erase(ino);
    if (s->second.empty()) bySession_.erase(s);
  }
}

void Recalls::delegate(uint64_t session, uint64_t dir) {
  opened(session, dir);
  delegated_.insert(dir);
}

void Recalls::ended(uint64_t session) {
  auto s = bySession_.find(session);
  if (s == bySession_.end()) return;
  std::set<uint64_t> inodes = std::move(s->second);
  bySession_.erase(s);
  for (uint64_t ino : inodes) {
    auto it = writers_.find(ino);
    if (it == writers_.end()) continue;
    it->second.erase(session);
    if (it->second.empty()) {
      writers_.erase(it);
      delegated_.erase(ino);
    }
  }
}

bool Recalls::othersWrite(uint64_t session, uint64_t ino) const {
  auto it = writers_.find(ino);
  if (it == writers_.end()) return false;
  return it->second.size() > 1 || it->second.count(session) == 0;
}

size_t Recalls::writers(uint64_t ino) const {
  auto it = writers_.find(ino);
  return it == writers_.end() ? 0 : it->second.size();
}

kj::Promise<void> Recalls::beforeOpen(uint64_t opener, uint64_t ino) {
  auto it = writers_.find(ino);
  if (it == writers_.end()) return kj::READY_NOW;
  kj::Vector<kj::Promise<void>> waits;
  const bool delegation = delegated_.count(ino) != 0;
  std::vector<uint64_t> holders(it->second.begin(), it->second.end());
  for (uint64_t session : holders) {
    if (session == opener) continue;
    auto callback = callbacks_.callbackOf(session);
    if (callback == nullptr) {  // no callback (v1 client, or dropped)
      if (delegation) closed(session, ino);
      continue;
    }
    ++sent_;
    static Counter& recalls = metrics().counter(
        "dfs_meta_recalls_total", "Flush requests sent to writers before another session's open");
    recalls.inc();
    auto request = KJ_ASSERT_NONNULL(callback).flushRequest();
    request.initInodes(1).set(0, ino);
    kj::Promise<void> sent = request.send().ignoreResult();
    if (timer_) sent = timer_->timeoutAfter(kTimeoutMs * kj::MILLISECONDS, kj::mv(sent));
    sent = sent.catch_([session, ino](kj::Exception&& e) {
      spdlog::warn("session {}: flush of inode {} before another open failed: {}", session, ino,
                   e.getDescription().cStr());
    });
    // The delegation ends once its holder has sent what it absorbed (or failed
    // to answer: what it sends later still applies, see docs/consistency.md).
    if (delegation) sent = sent.then([this, session, ino] { closed(session, ino); });
    waits.add(kj::mv(sent));
  }
  if (waits.empty()) return kj::READY_NOW;
  return kj::joinPromises(waits.releaseAsArray());
}

}  // namespace dfs::meta
