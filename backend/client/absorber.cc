#include "backend/client/absorber.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "backend/client/meta_client.h"
#include "backend/client/proto_convert.h"
#include "backend/common/clock.h"
#include "backend/common/metrics.h"
#include "protocol/dfs.capnp.h"

namespace dfs {

namespace {

thread_local bool tSender = false;

constexpr uint32_t kMaxLinks = 65000;  // below dfs-meta's subdirectory limit
constexpr uint32_t kRenameNoReplace = 1;

bool plainName(std::string_view name) {
  return !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

Counter& absorbedCounter() {
  static Counter& c = metrics().counter(
      "dfs_fuse_absorbed_total", "Namespace operations acknowledged before dfs-meta applied them");
  return c;
}

Counter& failedCounter() {
  static Counter& c = metrics().counter(
      "dfs_fuse_absorbed_failed_total",
      "Absorbed namespace operations dfs-meta refused (logged; cached attributes dropped)");
  return c;
}

}  // namespace

Absorber::Absorber(MetaClient& meta, Journal& journal) : meta_(meta), journal_(journal) {
  sender_ = std::thread([this] { senderMain(); });
}

Absorber::~Absorber() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  sender_.join();
}

bool Absorber::onSenderThread() { return tSender; }

Absorber::Directory* Absorber::directory(uint64_t dir) {
  auto it = dirs_.find(dir);
  return it == dirs_.end() ? nullptr : &it->second;
}

void Absorber::adopt(const Attr& attr) {
  Forgotten forgotten;
  {
    std::lock_guard<std::mutex> lock(mu_);
    makeRoom(0, forgotten);
    dirs_[attr.ino] = Directory{attr, {}};
  }
  endDelegation(std::move(forgotten));
}

void Absorber::makeRoom(uint64_t keep, Forgotten& out) {
  // Giving a directory up is always safe: its changes become synchronous.
  while (dirs_.size() >= kMaxDirectories) {
    auto victim = dirs_.begin();
    if (victim->first == keep) ++victim;
    forget(victim->first, out);
  }
}

bool Absorber::delegated(uint64_t dir) {
  std::lock_guard<std::mutex> lock(mu_);
  return dirs_.count(dir) != 0;
}

Result<uint64_t> Absorber::takeIno(std::unique_lock<std::mutex>& lock) {
  while (nextIno_ >= endIno_) {
    if (reserving_) {
      cv_.wait(lock);
      continue;
    }
    reserving_ = true;
    lock.unlock();
    auto range = meta_.reserveInodes(kReserve);
    lock.lock();
    reserving_ = false;
    cv_.notify_all();
    if (!range.ok()) return range.status();
    nextIno_ = range.value().first;
    endIno_ = range.value().first + range.value().second;
  }
  return nextIno_++;
}

template <typename Fn>
Status Absorber::enqueue(int64_t timeNs, const Caller& caller, bool journaled, Fn&& build) {
  capnp::MallocMessageBuilder message;
  auto op = message.initRoot<proto::NamespaceOp>();
  uint64_t seq = meta_.beginOp();
  meta_.setOp(op.initOp(), seq);
  op.setTimeNs(timeNs);
  callerToProto(caller, op.initCaller());
  build(op);
  auto flat = capnp::messageToFlatArray(message);
  auto bytes = flat.asBytes();
  std::string encoded(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  uint64_t journalSeq = 0;
  if (journaled) {
    auto appended = journal_.appendNamespace(encoded);
    if (!appended.ok()) {
      meta_.endOp(seq);
      return appended.status();
    }
    journalSeq = appended.value();
  }
  queue_.push_back({seq, journalSeq, std::move(encoded)});
  ++queued_;
  if (journaled) {
    ++absorbed_;
    absorbedCounter().inc();
  }
  cv_.notify_all();
  return {};
}

std::optional<Result<Attr>> Absorber::create(uint64_t parent, std::string_view name, uint32_t mode,
                                             std::string_view target, bool open,
                                             const Caller& caller) {
  const uint32_t type = mode & S_IFMT;
  if (!plainName(name) || (type != S_IFREG && type != S_IFDIR && type != S_IFLNK)) return std::nullopt;
  if (type == S_IFLNK && (target.empty() || target.size() > 4095 ||
                          target.find('\0') != std::string_view::npos)) {
    return std::nullopt;
  }
  std::unique_lock<std::mutex> lock(mu_);
  auto usable = [&]() -> Directory* {
    Directory* dir = directory(parent);
    if (dir == nullptr || dir->names.count(name) || dir->names.size() >= kMaxNames) return nullptr;
    if (type == S_IFDIR && dir->attr.nlink >= kMaxLinks) return nullptr;
    return dir;
  };
  if (usable() == nullptr) return std::nullopt;
  auto ino = takeIno(lock);
  if (!ino.ok()) return std::nullopt;  // dfs-meta answers (or fails) itself
  Directory* dir = usable();            // the lock was dropped to reserve
  if (dir == nullptr) return std::nullopt;

  const int64_t now = nowNs();
  Attr attr;
  attr.ino = ino.value();
  uint32_t perms = type == S_IFLNK ? 0777 : (mode & 07777);
  attr.gid = caller.gid;
  if (dir->attr.mode & S_ISGID) {
    attr.gid = dir->attr.gid;
    if (type == S_IFDIR) perms |= S_ISGID;
  }
  attr.mode = type | perms;
  attr.nlink = type == S_IFDIR ? 2 : 1;
  attr.uid = caller.uid;
  attr.size = type == S_IFLNK ? target.size() : 0;
  attr.atimeNs = attr.mtimeNs = attr.ctimeNs = now;
  Status queued = enqueue(now, caller, true, [&](proto::NamespaceOp::Builder op) {
    auto e = op.initCreate();
    e.setParent(parent);
    e.setName(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(name.data()), name.size()));
    e.setMode(attr.mode);
    e.setIno(attr.ino);
    e.setOpen(open && type == S_IFREG);
    if (type == S_IFLNK) {
      e.setTarget(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(target.data()),
                                      target.size()));
    }
  });
  if (!queued.ok()) return Result<Attr>(queued);
  dir->names.emplace(std::string(name), Child{attr.ino, attr.mode});
  dir->attr.mtimeNs = dir->attr.ctimeNs = now;
  // Cached under mu_ so that a giveUp of `parent` cannot come in between.
  meta_.cacheReply(attr, meta_.cache_.ticket(), parent, name);
  if (type != S_IFDIR) meta_.cache_.makeExclusive(attr.ino);
  Forgotten forgotten;
  if (type == S_IFDIR) {
    dir->attr.nlink += 1;
    makeRoom(parent, forgotten);
    dirs_[attr.ino] = Directory{attr, {}};  // `dir` is not used after this
  }
  lock.unlock();
  endDelegation(std::move(forgotten));
  return Result<Attr>(attr);
}

std::optional<Result<Attr>> Absorber::setattr(uint64_t ino, const SetAttrRequest& set,
                                              const Caller& caller) {
  if (set.setSize) return std::nullopt;
  std::unique_lock<std::mutex> lock(mu_);
  Directory* dir = directory(ino);
  // A file made in a delegated directory is exclusive exactly while that
  // directory is delegated (forget() ends it under mu_).
  std::optional<Attr> file = dir == nullptr ? meta_.cache_.exclusiveAttr(ino) : std::nullopt;
  if (dir == nullptr && !file) return std::nullopt;
  const int64_t now = nowNs();
  SetAttrRequest sent = set;
  if (sent.atimeNow) sent.atimeNs = now;
  if (sent.mtimeNow) sent.mtimeNs = now;
  sent.atimeNow = sent.mtimeNow = false;
  if (sent.ctimeNs == 0) sent.ctimeNs = now;
  Attr attr = dir != nullptr ? dir->attr : *file;
  overlayAttrs(sent, caller, &attr);
  attr.ctimeNs = sent.ctimeNs;  // exactly what dfs-meta stores
  Status queued = enqueue(now, caller, true, [&](proto::NamespaceOp::Builder op) {
    auto e = op.initSetattr();
    e.setIno(ino);
    setAttrToProto(sent, e.initSet());
  });
  if (!queued.ok()) return Result<Attr>(queued);
  if (dir != nullptr) dir->attr = attr;
  meta_.cache_.putAttr(attr, meta_.cache_.ticket(), monotonicNs());  // stays exclusive
  return Result<Attr>(attr);
}

std::optional<Status> Absorber::remove(uint64_t parent, std::string_view name, bool directory,
                                       const Caller& caller) {
  if (!plainName(name)) return std::nullopt;
  std::unique_lock<std::mutex> lock(mu_);
  Directory* dir = this->directory(parent);
  if (dir == nullptr || (dir->attr.mode & S_ISVTX)) return std::nullopt;
  auto it = dir->names.find(name);
  if (it == dir->names.end()) return Status::error(Code::NOT_FOUND, "no such entry");
  const Child child = it->second;
  if (directory != S_ISDIR(child.mode)) {
    return directory ? Status::error(Code::NOT_DIRECTORY, "not a directory")
                     : Status::error(Code::IS_DIRECTORY, "is a directory");
  }
  if (directory) {
    Directory* sub = this->directory(child.ino);
    if (sub == nullptr) return std::nullopt;
    if (!sub->names.empty()) return Status::error(Code::NOT_EMPTY, "directory not empty");
  }
  const int64_t now = nowNs();
  Status queued = enqueue(now, caller, true, [&](proto::NamespaceOp::Builder op) {
    auto e = directory ? op.initRmdir() : op.initUnlink();
    e.setParent(parent);
    e.setName(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(name.data()), name.size()));
  });
  if (!queued.ok()) return queued;
  dir->names.erase(it);
  dir->attr.mtimeNs = dir->attr.ctimeNs = now;
  if (directory) {
    dir->attr.nlink -= 1;
    dirs_.erase(child.ino);  // may move `dir`; it was empty
  }
  lock.unlock();
  meta_.cache_.entryRemoved(parent, name, child.ino);
  return Status{};
}

std::optional<Status> Absorber::rename(uint64_t parent, std::string_view name, uint64_t newParent,
                                       std::string_view newName, uint32_t flags,
                                       const Caller& caller) {
  if ((flags & ~kRenameNoReplace) != 0 || !plainName(name) || !plainName(newName)) return std::nullopt;
  std::unique_lock<std::mutex> lock(mu_);
  Directory* from = directory(parent);
  Directory* to = directory(newParent);
  if (from == nullptr || to == nullptr) return std::nullopt;
  if ((from->attr.mode & S_ISVTX) || (to->attr.mode & S_ISVTX)) return std::nullopt;
  auto it = from->names.find(name);
  if (it == from->names.end()) return Status::error(Code::NOT_FOUND, "no such entry");
  const Child child = it->second;
  if (S_ISDIR(child.mode)) return std::nullopt;  // dfs-meta checks the tree
  auto target = to->names.find(newName);
  const uint64_t replaced = target != to->names.end() ? target->second.ino : 0;
  if (target != to->names.end()) {
    if (target->second.ino == child.ino) return std::nullopt;  // hard links of one inode
    if (flags & kRenameNoReplace) return Status::error(Code::EXISTS, "entry exists");
    if (S_ISDIR(target->second.mode)) return Status::error(Code::IS_DIRECTORY, "is a directory");
  } else if (to->names.size() >= kMaxNames) {
    return std::nullopt;
  }
  const int64_t now = nowNs();
  Status queued = enqueue(now, caller, true, [&](proto::NamespaceOp::Builder op) {
    auto e = op.initRename();
    e.setParent(parent);
    e.setName(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(name.data()), name.size()));
    e.setNewParent(newParent);
    e.setNewName(
        capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(newName.data()), newName.size()));
    e.setFlags(flags);
  });
  if (!queued.ok()) return queued;
  from->names.erase(it);
  to->names[std::string(newName)] = child;
  from->attr.mtimeNs = from->attr.ctimeNs = now;
  to->attr.mtimeNs = to->attr.ctimeNs = now;
  lock.unlock();
  meta_.cache_.entryMoved(parent, name, newParent, newName, child.ino, now, replaced);
  return Status{};
}

bool Absorber::release(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return false;
  Status queued = enqueue(0, Caller{}, false, [&](proto::NamespaceOp::Builder op) { op.setRelease(ino); });
  return queued.ok();
}

std::optional<Result<Attr>> Absorber::open(uint64_t ino, bool write) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return std::nullopt;
  std::optional<Attr> attr = meta_.cache_.exclusiveAttr(ino);
  if (!attr || !S_ISREG(attr->mode)) return std::nullopt;
  Status queued = enqueue(0, Caller{}, false, [&](proto::NamespaceOp::Builder op) {
    auto e = op.initOpen();
    e.setIno(ino);
    e.setWrite(write);
  });
  if (!queued.ok()) return Result<Attr>(queued);
  return Result<Attr>(*attr);
}

std::optional<Result<Attr>> Absorber::lookup(uint64_t parent, std::string_view name) {
  std::unique_lock<std::mutex> lock(mu_);
  Directory* dir = directory(parent);
  if (dir == nullptr || !plainName(name)) return std::nullopt;
  auto it = dir->names.find(name);
  if (it == dir->names.end()) return Result<Attr>(Status::error(Code::NOT_FOUND, "no such entry"));
  if (Directory* sub = directory(it->second.ino)) return Result<Attr>(sub->attr);
  uint64_t ino = it->second.ino;
  lock.unlock();
  if (auto attr = meta_.cache_.attr(ino, monotonicNs())) return Result<Attr>(*attr);
  return std::nullopt;
}

bool Absorber::hasName(uint64_t parent, std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  Directory* dir = directory(parent);
  return dir != nullptr && dir->names.count(name) != 0;
}

std::optional<Attr> Absorber::directoryAttr(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  Directory* dir = directory(ino);
  if (dir == nullptr) return std::nullopt;
  return dir->attr;
}

void Absorber::forget(uint64_t dir, Forgotten& out, bool keepExclusive) {
  auto it = dirs_.find(dir);
  if (it == dirs_.end()) return;
  std::vector<uint64_t> files;
  for (const auto& [name, child] : it->second.names) {
    if (!S_ISDIR(child.mode)) files.push_back(child.ino);
    out.emplace_back(dir, name);
  }
  // Under mu_: setattr() takes exclusivity as proof of delegation.
  if (!keepExclusive) meta_.cache_.dropExclusive(files);
  dirs_.erase(it);
}

void Absorber::endDelegation(Forgotten&& forgotten) {
  // The kernel's names there go back to entry_timeout (dropped now).
  meta_.invalidateEntries(std::move(forgotten));
}

void Absorber::giveUp(uint64_t dir) {
  Forgotten forgotten;
  {
    std::lock_guard<std::mutex> lock(mu_);
    forget(dir, forgotten);
  }
  endDelegation(std::move(forgotten));
}

void Absorber::recall(const std::vector<uint64_t>& inodes) {
  Forgotten forgotten;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint64_t ino : inodes) forget(ino, forgotten);
  }
  endDelegation(std::move(forgotten));
  Status sent = barrier();
  if (!sent.ok()) spdlog::warn("recall: absorbed operations not sent: {}", sent.message);
}

void Absorber::sessionChanged() {
  Forgotten forgotten;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!dirs_.empty()) {
      spdlog::info("new session: absorbing in {} delegated directories ends", dirs_.size());
    }
    while (!dirs_.empty()) forget(dirs_.begin()->first, forgotten, /*keepExclusive=*/true);
    meta_.cache_.dropAllExclusive();
  }
  endDelegation(std::move(forgotten));
}

Status Absorber::barrier() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = queued_;
  if (applied_ >= target) return {};
  auto timeout = std::chrono::milliseconds(meta_.opTimeoutMs());
  if (!cv_.wait_for(lock, timeout, [&] { return applied_ >= target; })) {
    return Status::error(Code::IO, "absorbed namespace operations were not applied in time");
  }
  return {};
}

uint64_t Absorber::absorbed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return absorbed_;
}

size_t Absorber::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void Absorber::senderMain() {
  tSender = true;
  std::unique_lock<std::mutex> lock(mu_);
  int failures = 0;
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_, nothing left
    std::vector<std::string> batch;
    for (size_t i = 0; i < queue_.size() && i < kBatch; ++i) batch.push_back(queue_[i].bytes);
    lock.unlock();
    auto statuses = meta_.applyOps(batch);
    lock.lock();
    if (!statuses.ok() || statuses.value().size() != batch.size()) {
      std::string why = statuses.ok() ? "wrong number of statuses" : statuses.status().message;
      if (stop_) {
        // Unmounting without dfs-meta: what is journaled is replayed by the next mount.
        spdlog::error("absorbed operations: {} not sent at unmount ({}); the journal keeps them",
                      queue_.size(), why);
        applied_ = queued_;
        cv_.notify_all();
        return;
      }
      if (failures++ % 10 == 0) spdlog::warn("absorbed operations: applyOps failed: {}; retrying", why);
      cv_.wait_for(lock, std::chrono::milliseconds(std::min(100 * failures, 2000)));
      continue;
    }
    failures = 0;
    bool refused = false;
    for (const Status& status : statuses.value()) {
      Pending& front = queue_.front();
      if (!status.ok()) {
        refused = true;
        failedCounter().inc();
        spdlog::error("absorbed operation {} was refused by dfs-meta: {}", front.opSeq,
                      status.message);
      }
      meta_.endOp(front.opSeq);
      if (front.journalSeq != 0) journal_.done(front.journalSeq);
      queue_.pop_front();
      ++applied_;
    }
    if (refused) meta_.cache_.invalidateAll();
    cv_.notify_all();
  }
}

}  // namespace dfs
