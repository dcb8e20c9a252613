#include "backend/client/meta_cache.h"

#include <sys/stat.h>

namespace dfs {

uint64_t MetaCache::ticket() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

std::optional<Attr> MetaCache::attr(uint64_t ino, int64_t nowNs) {
  if (!enabled()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(ino);
  if (it == entries_.end() || !it->second.attr || it->second.attrEpoch != attrEpoch_) {
    return std::nullopt;
  }
  if (it->second.attrExpiresNs <= nowNs && it->second.exclusiveEpoch != exclusiveEpoch_) {
    return std::nullopt;
  }
  ++hits_;
  return it->second.attr;
}

void MetaCache::putAttr(const Attr& attr, uint64_t ticket, int64_t nowNs) {
  if (!enabled() || attr.ino == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (ticket != generation_) {
    // An invalidation overtook this answer. What is cached is older still.
    auto it = entries_.find(attr.ino);
    if (it != entries_.end()) it->second.attr.reset();
    return;
  }
  Entry& e = slot(attr.ino, nowNs);
  e.attr = attr;
  e.attrExpiresNs = nowNs + ttlNs_;
  e.attrEpoch = attrEpoch_;
}

void MetaCache::makeExclusive(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(ino);
  if (it != entries_.end()) it->second.exclusiveEpoch = exclusiveEpoch_;
}

void MetaCache::dropExclusive(const std::vector<uint64_t>& inos) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t ino : inos) {
    auto it = entries_.find(ino);
    if (it != entries_.end()) it->second.exclusiveEpoch = 0;
  }
}

std::optional<Attr> MetaCache::exclusiveAttr(uint64_t ino) {
  if (!enabled()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(ino);
  if (it == entries_.end() || !it->second.attr || it->second.attrEpoch != attrEpoch_ ||
      it->second.exclusiveEpoch != exclusiveEpoch_) {
    return std::nullopt;
  }
  return it->second.attr;
}

void MetaCache::dropAllExclusive() {
  std::lock_guard<std::mutex> lock(mu_);
  ++exclusiveEpoch_;
}

bool MetaCache::xattrAbsent(uint64_t ino, std::string_view name, int64_t nowNs) {
  if (!enabled()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(ino);
  if (it == entries_.end() || it->second.xattrsExpiresNs <= nowNs) return false;
  if (!it->second.noXattrs && it->second.absentXattrs.find(name) == it->second.absentXattrs.end()) {
    return false;
  }
  ++hits_;
  return true;
}

void MetaCache::putXattrAbsent(uint64_t ino, std::string_view name, uint64_t ticket, int64_t nowNs) {
  if (!enabled()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (ticket != generation_) return;
  Entry& e = slot(ino, nowNs);
  if (e.xattrsExpiresNs <= nowNs) {
    // The names known so far are as old as their expiry: start a fresh set.
    e.absentXattrs.clear();
    e.noXattrs = false;
    e.xattrsExpiresNs = nowNs + ttlNs_;
  }
  if (e.absentXattrs.size() < 16) e.absentXattrs.emplace(name);
}

void MetaCache::putNoXattrs(uint64_t ino, uint64_t ticket, int64_t nowNs) {
  if (!enabled()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (ticket != generation_) return;
  Entry& e = slot(ino, nowNs);
  e.absentXattrs.clear();
  e.noXattrs = true;
  e.xattrsExpiresNs = nowNs + ttlNs_;
}

void MetaCache::putEmptyDirectory(uint64_t dir, uint64_t ticket, int64_t nowNs) {
  if (!enabled()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (ticket != generation_) return;
  Entry& e = slot(dir, nowNs);
  e.namesKnown = true;
  e.names.clear();
  e.namesExpiresNs = nowNs + ttlNs_;
}

bool MetaCache::nameAbsent(uint64_t dir, std::string_view name, int64_t nowNs) {
  if (!enabled()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(dir);
  if (it == entries_.end() || !it->second.namesKnown || it->second.namesExpiresNs <= nowNs) return false;
  if (it->second.names.count(name)) return false;
  ++hits_;
  return true;
}

void MetaCache::childCreated(uint64_t dir, std::string_view name, const Attr& child,
                             uint64_t ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(dir);
  if (it == entries_.end()) return;
  if (ticket != generation_) {
    entries_.erase(it);  // something else changed meanwhile: start over
  } else {
    Entry& e = it->second;
    if (e.attr && e.attrEpoch == attrEpoch_) {
      e.attr->mtimeNs = e.attr->ctimeNs = child.ctimeNs;
      if (S_ISDIR(child.mode)) e.attr->nlink += 1;
    }
    if (e.namesKnown) {
      if (e.names.size() < kMaxNames) {
        e.names.emplace(name);
      } else {
        e.namesKnown = false;
        e.names.clear();
      }
    }
  }
  // Answers on their way were read before this change.
  ++generation_;
}

void MetaCache::dropAttrs() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  ++attrEpoch_;
}

void MetaCache::nameRemoved(uint64_t dir, std::string_view name, uint64_t newDir,
                            std::string_view newName) {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  ++attrEpoch_;  // the inodes behind the names changed (nlink, ctime): no attr is kept
  moveNameLocked(dir, name, newDir, newName);
}

void MetaCache::entryRemoved(uint64_t dir, std::string_view name, uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  entries_.erase(ino);  // nlink and ctime changed
  moveNameLocked(dir, name, 0, {});
  if (auto it = entries_.find(dir); it != entries_.end()) it->second.attr.reset();
}

void MetaCache::entryMoved(uint64_t dir, std::string_view name, uint64_t newDir,
                           std::string_view newName, uint64_t ino, int64_t ctimeNs,
                           uint64_t replaced) {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  if (replaced != 0) entries_.erase(replaced);
  if (auto it = entries_.find(ino); it != entries_.end() && it->second.attr) {
    it->second.attr->ctimeNs = ctimeNs;
  }
  moveNameLocked(dir, name, newDir, newName);
  for (uint64_t d : {dir, newDir}) {
    if (auto it = entries_.find(d); it != entries_.end()) it->second.attr.reset();
  }
}

void MetaCache::moveNameLocked(uint64_t dir, std::string_view name, uint64_t newDir,
                               std::string_view newName) {
  auto it = entries_.find(dir);
  if (it != entries_.end() && it->second.namesKnown) {
    auto n = it->second.names.find(name);
    if (n != it->second.names.end()) it->second.names.erase(n);
  }
  if (newDir == 0) return;
  auto to = entries_.find(newDir);
  if (to != entries_.end() && to->second.namesKnown) {
    if (to->second.names.size() < kMaxNames) {
      to->second.names.emplace(newName);
    } else {
      to->second.namesKnown = false;
      to->second.names.clear();
    }
  }
}

void MetaCache::invalidate(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  entries_.erase(ino);
}

void MetaCache::invalidateAll() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  entries_.clear();
}

size_t MetaCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

uint64_t MetaCache::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}

MetaCache::Entry& MetaCache::slot(uint64_t ino, int64_t nowNs) {
  if (entries_.size() >= kMaxEntries && entries_.find(ino) == entries_.end()) {
    for (auto it = entries_.begin(); it != entries_.end();) {
      bool expired = it->second.attrExpiresNs <= nowNs && it->second.xattrsExpiresNs <= nowNs &&
                     it->second.namesExpiresNs <= nowNs;
      it = expired ? entries_.erase(it) : std::next(it);
    }
    if (entries_.size() >= kMaxEntries) entries_.clear();
  }
  return entries_[ino];
}

}  // namespace dfs
