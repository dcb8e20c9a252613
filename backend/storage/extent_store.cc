#include "backend/storage/extent_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>
#include <unordered_set>

#include "backend/common/clock.h"
#include "backend/common/hash.h"
#include "backend/common/metrics.h"
#include "backend/storage/extent_store_internal.h"

namespace dfs {

namespace {
// Process-wide Prometheus counter of checksum failures (reads, scrub, compaction).
Counter& corruptFragmentsCounter() {
  static Counter& counter = metrics().counter(
      "dfs_storage_corrupt_fragments_total", "Fragments found corrupt (checksum mismatch) since start");
  return counter;
}
}  // namespace

namespace {

using namespace extent_store;

// A fragment of a put request: its id and the checksum of its bytes.
struct IdAndSum {
  std::string_view id;
  uint64_t checksum;
  bool operator==(const IdAndSum& o) const { return checksum == o.checksum && id == o.id; }
};
struct IdAndSumHash {
  size_t operator()(const IdAndSum& k) const {
    return std::hash<std::string_view>()(k.id) ^ size_t(k.checksum);
  }
};

Status makeDirectory(const std::string& path) {
  if (::mkdir(path.c_str(), 0750) != 0 && errno != EEXIST) {
    return errnoStatus("mkdir " + path, errno);
  }
  return {};
}

}  // namespace

// State of one writer round. Extent accounting is copied from extents_ on first
// touch and published only after the commit succeeds.
struct ExtentStore::Group {
  explicit Group(ExtentStore& store)
      : store(store), startExtent(store.currentExtent_), startFile(store.currentFile_) {}

  ExtentInfo& info(uint32_t extent) {
    auto it = changed.find(extent);
    if (it != changed.end()) return it->second;
    std::lock_guard<std::mutex> lock(store.statsMutex_);
    auto committed = store.extents_.find(extent);
    return changed[extent] = committed == store.extents_.end() ? ExtentInfo{} : committed->second;
  }
  bool appendedAnything() const { return !touched.empty(); }

  ExtentStore& store;
  std::map<uint32_t, ExtentInfo> changed;
  std::map<uint32_t, std::shared_ptr<ExtentFile>> touched;  // extents appended to
  std::map<uint32_t, uint64_t> startSizes;                   // committed size before this round
  std::vector<uint32_t> created;                             // extent files created this round
  std::vector<uint32_t> dropped;                             // extents whose rows go away
  uint32_t startExtent;
  std::shared_ptr<ExtentFile> startFile;
  uint64_t appended = 0;
  int64_t fragmentsDelta = 0;
  Status writeError;  // a failed extent write: the whole round is rolled back
};

ExtentStore::ExtentStore(ExtentStoreOptions options)
    : options_(std::move(options)),
      fs_(options_.fileSystem ? *options_.fileSystem : posixFileSystem()),
      files_(fs_, options_.dataDir + "/extents", options_.maxOpenExtents),
      appender_(fs_, options_.appendBufferBytes) {}

ExtentStore::~ExtentStore() {
  {
    std::lock_guard<std::mutex> lock(commitMutex_);
    if (env_) {
      Status s = commitIndexLocked();
      if (!s.ok()) {
        spdlog::error("extent store {}: index commit at close failed ({}); the next open reads "
                      "the records back from the extents", options_.dataDir, s.message);
      }
    }
    closeDirect();
    currentFile_.reset();
    files_.clear();
    env_.reset();  // mdb_env_close; every commit is already durable
  }
  if (lockFd_ >= 0) ::close(lockFd_);
}

int64_t ExtentStore::now() const { return options_.clock ? options_.clock() : nowNs(); }

Result<std::unique_ptr<ExtentStore>> ExtentStore::open(ExtentStoreOptions options) {
  if (options.dataDir.empty()) return Status::error(Code::INVALID, "no data directory given");
  if (options.maxExtentBytes < kRecordHeaderSize + 1) {
    return Status::error(Code::INVALID, "max extent size is too small");
  }
  std::unique_ptr<ExtentStore> store(new ExtentStore(std::move(options)));
  const std::string& dir = store->options_.dataDir;
  for (const std::string& path : {dir, dir + "/extents", dir + "/index"}) {
    Status s = makeDirectory(path);
    if (!s.ok()) return s;
  }
  std::string lockPath = dir + "/lock";
  store->lockFd_ = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (store->lockFd_ < 0) return errnoStatus("open " + lockPath, errno);
  if (::flock(store->lockFd_, LOCK_EX | LOCK_NB) != 0) {
    return Status::error(Code::BUSY, "data directory " + dir + " is in use by another process");
  }

  auto env = LmdbEnv::open(dir + "/index", store->options_.indexMapBytes,
                           {kFragmentsDb, kLocationsDb, kExtentsDb, kMetaDb});
  if (!env.ok()) return env.status();
  store->env_ = std::move(env).value();
  store->fragmentsDb_ = store->env_->dbi(kFragmentsDb);
  store->locationsDb_ = store->env_->dbi(kLocationsDb);
  store->extentsDb_ = store->env_->dbi(kExtentsDb);
  store->metaDb_ = store->env_->dbi(kMetaDb);

  Status s = store->recover();
  if (!s.ok()) return s;
  return store;
}

uint64_t ExtentStore::usedBytes() const {
  uint64_t used = 0;
  for (const auto& [number, info] : extents_) used += info.committedSize;
  return used;
}

Status ExtentStore::checkSpace(uint64_t used, uint64_t available, uint64_t needed) const {
  if (options_.capacityBytes > 0 && used + needed > options_.capacityBytes) {
    return Status::error(Code::NO_SPACE,
                         "storage node full: " + std::to_string(used) + " of " +
                             std::to_string(options_.capacityBytes) + " bytes of capacity used, " +
                             std::to_string(needed) + " more needed");
  }
  if (available < needed + options_.reserveBytes) {
    return Status::error(Code::NO_SPACE,
                         "disk full under " + options_.dataDir + ": " + std::to_string(available) +
                             " bytes free, " + std::to_string(needed) + " needed plus a reserve of " +
                             std::to_string(options_.reserveBytes));
  }
  return {};
}

Status ExtentStore::extentWriteError(const Status& s) const {
  return s.code == Code::NO_SPACE
             ? Status::error(Code::NO_SPACE, "disk full under " + options_.dataDir + ": " + s.message)
             : Status::error(Code::IO, "write to extent failed: " + s.message);
}

void ExtentStore::closeDirect() {
  if (directFd_ >= 0) fs_.closeFile(directFd_);
  directFd_ = -1;
  directExtent_ = 0;
}

void ExtentStore::openAppender(uint64_t offset) {
  // Direct mode copes with an extent that ends off a block (written buffered).
  bool direct = options_.directAppends && directOk_ && directRefusedExtent_ != currentExtent_;
  if (directExtent_ != currentExtent_ || !direct) closeDirect();
  if (direct && directFd_ < 0) {
    auto fd = fs_.openDirect(files_.pathOf(currentExtent_));
    if (fd.ok()) {
      directFd_ = fd.value();
      directExtent_ = currentExtent_;
    } else if (fd.status().code == Code::NOT_SUPPORTED) {
      // No direct I/O on this file system: buffered appends from now on; said once.
      directOk_ = false;
      spdlog::warn("extent store {}: appending without O_DIRECT: {}", options_.dataDir,
                   fd.status().message);
    } else {
      // Anything else (EMFILE, ENOMEM, ...) may pass: this extent is appended
      // buffered, the next one tries again (one warning per extent at most).
      directRefusedExtent_ = currentExtent_;
      spdlog::warn("extent store {}: extent {} appended without O_DIRECT: {}", options_.dataDir,
                   currentExtent_, fd.status().message);
    }
  }
  // currentFile_ (which keeps the fd open) lives until the extent is sealed.
  appender_.open(currentExtent_, currentFile_->fd(), offset, directFd_);
}

Status ExtentStore::flushAppender(Group& group) {
  if (!appender_.isOpen()) return {};
  if (size_t pad = appender_.padToBlock(); pad > 0) {
    ExtentInfo& info = group.info(appender_.number());
    info.committedSize += pad;
    info.garbageBytes += pad;
    group.appended += pad;
  }
  Status s = appender_.flush();
  if (!s.ok()) group.writeError = extentWriteError(s);  // the round is rolled back
  return s;
}

Status ExtentStore::rollExtent(Group& group) {
  if (appender_.isOpen()) {
    // Seal the current extent: write what is staged (the group's sync makes it durable).
    Status s = flushAppender(group);
    appender_.close();
    closeDirect();
    // Records this round staged there did not all reach the file.
    if (!s.ok()) return group.writeError;
  }
  uint32_t number = nextExtent_++;
  auto file = files_.acquire(number, /*create=*/true);
  if (!file.ok()) return file.status();
  Status s = fs_.truncateFile(file.value()->fd(), 0);
  if (!s.ok()) return s;
  group.created.push_back(number);
  group.info(number) = ExtentInfo{};
  currentExtent_ = number;
  currentFile_ = file.value();
  return {};
}

Result<FragmentLocation> ExtentStore::appendRecord(Group& group, std::string_view id,
                                                   std::string_view data, uint64_t checksum,
                                                   int64_t storedAtNs, bool borrowData) {
  uint64_t recordSize = kRecordHeaderSize + data.size();
  if (currentExtent_ == 0 ||
      (group.info(currentExtent_).committedSize > 0 &&
       group.info(currentExtent_).committedSize + recordSize > options_.maxExtentBytes)) {
    Status s = rollExtent(group);
    if (!s.ok()) return s;
  }
  ExtentInfo& info = group.info(currentExtent_);
  if (!group.touched.count(currentExtent_)) {
    group.touched[currentExtent_] = currentFile_;
    group.startSizes[currentExtent_] = info.committedSize;
  }
  FragmentLocation location;
  location.extent = currentExtent_;
  location.offset = info.committedSize;
  location.length = uint32_t(data.size());
  location.checksum = checksum;
  location.storedAtNs = storedAtNs;

  RecordHeader header;
  header.length = location.length;
  header.checksum = checksum;
  header.storedAtNs = storedAtNs;
  header.id = std::string(id);
  std::string headerBytes = encodeRecordHeader(header);
  if (!appender_.isOpenOn(currentExtent_)) openAppender(location.offset);
  Status s;
  if (appender_.end() != location.offset) {
    s = Status::error(Code::IO, "append position " + std::to_string(appender_.end()) +
                                    " is not the committed size " + std::to_string(location.offset));
  }
  if (s.ok()) s = appender_.append(headerBytes);
  if (s.ok()) s = appender_.append(data, borrowData);
  if (!s.ok()) {
    // What this round staged may be partly written: the whole round is rolled back
    // (rollback() forgets the staged bytes and truncates the extent to where the
    // round started).
    spdlog::error("appending to extent {} failed: {}", extentFileName(currentExtent_), s.message);
    group.writeError = extentWriteError(s);
    return group.writeError;
  }
  info.committedSize += recordSize;
  group.appended += recordSize;
  return location;
}

Status ExtentStore::syncGroup(Group& group) {
  Status s = group.writeError;
  if (s.ok() && appender_.isOpen()) {
    s = flushAppender(group);
    if (!s.ok()) s = group.writeError;  // rolled back below
  }
  for (auto& [number, file] : group.touched) {
    if (!s.ok()) break;
    s = fs_.syncData(file->fd());
  }
  if (s.ok() && !group.created.empty()) s = fs_.syncDirectory(extentsDir());
  if (!s.ok()) {
    spdlog::error("extent store {}: sync failed, rolling back: {}", options_.dataDir, s.message);
    rollback(group);
    return Status::error(s.code == Code::NO_SPACE ? Code::NO_SPACE : Code::IO,
                         "storage commit failed: " + s.message);
  }
  return {};
}

Status ExtentStore::putRows(LmdbTxn& txn, const PendingIndex::Rows& rows) {
  for (const std::string& key : rows.staleLocations) txn.del(locationsDb_, key);
  for (const auto& [id, location] : rows.fragments) {
    Status s = txn.put(fragmentsDb_, id, encodeFragmentLocation(location));
    if (s.ok()) s = txn.put(locationsDb_, locationKey(location.extent, location.offset), id);
    if (!s.ok()) return s;
  }
  return {};
}

Status ExtentStore::writePending(LmdbTxn& txn, const PendingIndex::Rows& pending) {
  Status s = putRows(txn, pending);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> lock(statsMutex_);
  for (uint32_t number : pending.extents) {
    auto it = extents_.find(number);
    if (it == extents_.end()) continue;  // dropped since; its row went with it
    s = txn.put(extentsDb_, extentKey(number), encodeExtentInfo(it->second));
    if (!s.ok()) return s;
  }
  s = txn.put(metaDb_, kFragmentCountKey, be64(fragments_));
  if (s.ok()) s = txn.put(metaDb_, kNextExtentKey, be32(nextExtent_));
  return s;
}

Status ExtentStore::commitGroup(Group& group, LmdbTxn& txn) {
  Status s = syncGroup(group);
  if (!s.ok()) {
    txn.abort();
    return s;
  }
  {
    for (const auto& [number, info] : group.changed) {
      if (std::find(group.dropped.begin(), group.dropped.end(), number) != group.dropped.end()) {
        txn.del(extentsDb_, extentKey(number));
        continue;
      }
      s = txn.put(extentsDb_, extentKey(number), encodeExtentInfo(info));
      if (!s.ok()) break;
    }
  }
  uint64_t fragments;
  {
    std::lock_guard<std::mutex> lock(statsMutex_);
    fragments = uint64_t(int64_t(fragments_) + group.fragmentsDelta);
  }
  if (s.ok()) s = txn.put(metaDb_, kFragmentCountKey, be64(fragments));
  if (s.ok()) s = txn.commit();
  if (!s.ok()) {
    spdlog::error("extent store {}: commit failed, rolling back: {}", options_.dataDir, s.message);
    txn.abort();
    rollback(group);
    return Status::error(s.code == Code::NO_SPACE ? Code::NO_SPACE : Code::IO,
                         "storage commit failed: " + s.message);
  }
  publish(group);
  std::lock_guard<std::mutex> lock(statsMutex_);
  ++indexCommits_;
  return {};
}

void ExtentStore::publish(const Group& group) {
  std::lock_guard<std::mutex> lock(statsMutex_);
  for (const auto& [number, info] : group.changed) extents_[number] = info;
  for (uint32_t number : group.dropped) extents_.erase(number);
  fragments_ = uint64_t(int64_t(fragments_) + group.fragmentsDelta);
  ++groupCommits_;
}

Status ExtentStore::commitIndex() {
  std::lock_guard<std::mutex> commitLock(commitMutex_);
  return commitIndexLocked();
}

Status ExtentStore::commitIndexLocked() {
  if (pending_.empty()) return {};
  LmdbTxn txn(*env_, LmdbTxn::Mode::kWrite);
  if (!txn.status().ok()) return txn.status();
  PendingIndex::Commit pending(pending_);
  Status s = writePending(txn, pending.rows());
  if (s.ok()) s = txn.commit();
  if (!s.ok()) return Status::error(Code::IO, "index commit failed: " + s.message);
  pending.done();
  std::lock_guard<std::mutex> lock(statsMutex_);
  ++indexCommits_;
  return {};
}

bool ExtentStore::indexCommitDue() const {
  if (pending_.empty()) return false;
  int64_t age = monotonicNs() - pending_.oldestNs();
  return age >= options_.indexCommitIntervalMs * 1000000 ||
         pending_.recordBytes() >= options_.indexCommitBytes;
}

void ExtentStore::commitIndexIfDue() {
  std::lock_guard<std::mutex> commitLock(commitMutex_);
  if (!indexCommitDue()) return;
  Status s = commitIndexLocked();
  if (!s.ok()) {
    spdlog::error("extent store {}: {}; the rows stay pending and are retried", options_.dataDir,
                  s.message);
  }
}

void ExtentStore::rollback(Group& group) {
  appender_.close();  // what it staged is not going to be committed
  closeDirect();
  for (auto& [number, file] : group.touched) {
    auto start = group.startSizes.find(number);
    fs_.truncateFile(file->fd(), start == group.startSizes.end() ? 0 : start->second);
  }
  for (uint32_t number : group.created) {
    files_.evict(number);
    fs_.removeFile(files_.pathOf(number));
  }
  currentExtent_ = group.startExtent;
  currentFile_ = group.startFile;
}

Status ExtentStore::put(const std::vector<FragmentWrite>& fragments) {
  Waiter self;
  self.request.fragments = &fragments;
  std::unique_lock<std::mutex> lock(queueMutex_);
  waiters_.push_back(&self);
  self.cv.wait(lock, [&] { return self.done || waiters_.front() == &self; });
  if (self.done) return self.request.status;

  // This thread leads a group: the waiters queued behind it ride along.
  std::vector<Waiter*> group;
  std::vector<PutRequest*> requests;
  uint64_t bytes = 0;
  for (Waiter* waiter : waiters_) {
    uint64_t size = 0;
    for (const auto& f : *waiter->request.fragments) size += f.data.size();
    if (!group.empty() && bytes + size > options_.maxGroupBytes) break;
    group.push_back(waiter);
    requests.push_back(&waiter->request);
    bytes += size;
  }
  lock.unlock();
  putGroup(requests);
  lock.lock();
  for (Waiter* waiter : group) {
    waiters_.pop_front();
    waiter->done = true;
    if (waiter != &self) waiter->cv.notify_one();
  }
  if (!waiters_.empty()) waiters_.front()->cv.notify_one();
  return self.request.status;
}

void ExtentStore::putGroup(std::vector<PutRequest*>& requests) {
  std::lock_guard<std::mutex> commitLock(commitMutex_);
  auto failAll = [&](const Status& s) {
    for (PutRequest* r : requests) r->status = s;
  };
  // Rows of this round go to pending_; the read transaction only answers which
  // ids are stored already (pending_ is looked at first, as readers do).
  std::optional<LmdbTxn> txn;
  txn.emplace(*env_, LmdbTxn::Mode::kRead);
  if (!txn->status().ok()) return failAll(txn->status());
  auto space = fs_.space(options_.dataDir);
  if (!space.ok()) return failAll(space.status());
  uint64_t used;
  {
    std::lock_guard<std::mutex> lock(statsMutex_);
    used = usedBytes();
  }
  Group group(*this);
  int64_t storedAt = now();
  // New locations of this round; an id here shadows pending_, which shadows LMDB.
  PendingIndex::Delta delta;
  auto& staged = delta.fragments;
  auto lookup = [&](std::string_view id) -> std::optional<FragmentLocation> {
    auto it = staged.find(id);
    if (it != staged.end()) return it->second;
    if (auto pending = pending_.find(id)) return pending;
    auto value = txn->get(fragmentsDb_, id);
    if (!value) return std::nullopt;
    return decodeFragmentLocation(*value);
  };

  for (PutRequest* request : requests) {
    request->status = group.writeError;  // after a failed write, the rest is refused too
    if (!request->status.ok()) continue;
    // Each id is looked up once: what is stored under it before this request.
    const std::vector<FragmentWrite>& fragments = *request->fragments;
    std::vector<std::optional<FragmentLocation>> before(fragments.size());
    uint64_t needed = 0;
    for (size_t i = 0; i < fragments.size(); ++i) {
      before[i] = lookup(fragments[i].id);
      if (!before[i] || before[i]->checksum != fragments[i].checksum) {
        needed += kRecordHeaderSize + fragments[i].data.size();
      }
    }
    if (needed == 0) continue;
    Status s = checkSpace(used + group.appended, space.value().availableBytes - std::min(
        space.value().availableBytes, group.appended), needed);
    if (!s.ok()) {
      spdlog::warn("put refused: {}", s.message);
      request->status = s;
      continue;
    }
    struct Appended {
      std::string_view id;
      FragmentLocation location;
      size_t index;  // in fragments
    };
    std::vector<Appended> appended;
    // The records appended for this request: a fragment sent twice in one
    // request is stored once.
    std::unordered_set<IdAndSum, IdAndSumHash> inRequest;
    inRequest.reserve(fragments.size());
    for (size_t i = 0; i < fragments.size(); ++i) {
      const FragmentWrite& f = fragments[i];
      if (before[i] && before[i]->checksum == f.checksum) continue;
      if (!inRequest.insert(IdAndSum{f.id, f.checksum}).second) continue;
      // f.data lives until this round is synced or rolled back: written from where it is.
      auto location = appendRecord(group, f.id, f.data, f.checksum, storedAt, /*borrowData=*/true);
      if (!location.ok()) {
        request->status = location.status();
        break;
      }
      appended.push_back(Appended{f.id, location.value(), i});
    }
    if (!request->status.ok()) {
      // The request is refused as a whole; what it appended stays as garbage.
      for (const Appended& a : appended) {
        group.info(a.location.extent).garbageBytes += a.location.recordSize();
      }
      continue;
    }
    for (const Appended& a : appended) {
      const FragmentLocation& location = a.location;
      // The id's location so far: staged by this group (earlier in this very
      // request too, for an id sent twice with different bytes), else as before.
      auto it = staged.find(a.id);
      std::optional<FragmentLocation> old =
          it != staged.end() ? std::optional(it->second) : before[a.index];
      if (old) {
        ExtentInfo& oldInfo = group.info(old->extent);
        oldInfo.liveBytes -= old->recordSize();
        oldInfo.garbageBytes += old->recordSize();
        oldInfo.liveRecords -= 1;
        delta.staleLocations.push_back(locationKey(old->extent, old->offset));
      } else {
        group.fragmentsDelta += 1;
      }
      ExtentInfo& info = group.info(location.extent);
      info.liveBytes += location.recordSize();
      info.liveRecords += 1;
      if (it != staged.end()) {
        it->second = location;
      } else {
        staged.emplace(std::string(a.id), location);
      }
    }
  }
  txn.reset();
  if (!group.appendedAnything()) return;  // all no-ops or refused: nothing to sync

  Status s;
  if (options_.indexCommitIntervalMs <= 0) {
    // One LMDB commit per group, the rows written straight into it (and readers
    // see them only once it committed).
    PendingIndex::Rows rows;
    rows.fragments.insert(delta.fragments.begin(), delta.fragments.end());
    rows.staleLocations.insert(delta.staleLocations.begin(), delta.staleLocations.end());
    PendingIndex::Commit pending(pending_);  // empty in this mode, unless an earlier commit failed
    LmdbTxn write(*env_, LmdbTxn::Mode::kWrite);
    s = write.status();
    if (s.ok()) s = writePending(write, pending.rows());
    if (s.ok()) s = putRows(write, rows);  // commitGroup writes this group's accounting
    if (s.ok()) {
      s = commitGroup(group, write);
      if (s.ok()) pending.done();
    } else {
      rollback(group);  // nothing staged may outlive the requests' bytes
    }
  } else {
    s = syncGroup(group);
    if (s.ok()) {
      // Durable: the records are acknowledged, their rows wait for the next index commit.
      for (const auto& [number, info] : group.changed) delta.extents.insert(number);
      delta.recordBytes = group.appended;
      publish(group);
      pending_.add(std::move(delta), monotonicNs());
      if (indexCommitDue()) {
        Status c = commitIndexLocked();
        if (!c.ok()) {
          spdlog::error("extent store {}: {}; the rows stay pending and are retried",
                        options_.dataDir, c.message);
        }
      }
    }
  }
  if (!s.ok()) {
    for (PutRequest* r : requests) {
      if (r->status.ok()) r->status = s;
    }
  }
}

Result<FragmentLocation> ExtentStore::lookup(LmdbTxn& txn, std::string_view id) {
  auto value = txn.get(fragmentsDb_, id);
  if (!value) return Status::error(Code::NOT_FOUND, "no fragment " + shortHex(id));
  auto decoded = decodeFragmentLocation(*value);
  if (!decoded) {
    return Status::error(Code::IO, "index entry of fragment " + shortHex(id) +
                                       (value->empty() ? std::string(" is empty")
                                                       : " has an unknown format version " +
                                                             std::to_string(uint8_t((*value)[0]))));
  }
  return *decoded;
}

std::string ExtentStore::checkRecordHeader(std::string_view id, const FragmentLocation& location,
                                           std::string_view headerBytes) {
  std::string problem;
  auto header = decodeRecordHeader(headerBytes, &problem);
  if (!header) return problem;
  if (header->id != id || header->length != location.length ||
      header->checksum != location.checksum) {
    return "record header does not match the index";
  }
  return {};
}

Status ExtentStore::reportCorrupt(std::string_view id, const FragmentLocation& location,
                                  const std::string& problem) {
  corrupt_.fetch_add(1);
  corruptFragmentsCounter().inc();
  spdlog::error("corrupt fragment {} in extent {} at offset {}: {}; returning an error, not the bytes",
                shortHex(id), extentFileName(location.extent), location.offset, problem);
  return Status::error(Code::IO, "fragment " + shortHex(id) + " is corrupt on this node: " + problem);
}

Result<StoredFragment> ExtentStore::get(std::string_view id) {
  if (id.size() != kFragmentIdSize) return Status::error(Code::INVALID, "fragment id must be 33 bytes");
  for (int attempt = 0;; ++attempt) {
    FragmentLocation location;
    if (auto pending = pending_.find(id)) {  // before the read transaction (PendingIndex)
      location = *pending;
    } else {
      LmdbTxn txn(*env_, LmdbTxn::Mode::kRead);
      if (!txn.status().ok()) return txn.status();
      auto found = lookup(txn, id);
      if (!found.ok()) return found.status();
      location = found.value();
    }
    auto file = files_.acquire(location.extent);
    if (!file.ok()) {
      // Compaction may have moved the fragment and removed the extent between our
      // index read and the open: look again once.
      if (file.status().code == Code::NOT_FOUND && attempt == 0) continue;
      return Status::error(Code::IO, "extent of fragment " + shortHex(id) + " unreadable: " +
                                         file.status().message);
    }
    // The header first: the data buffer is sized only from a length that the
    // on-disk header confirms, so a corrupt index cannot make us allocate GiBs.
    std::string headerBytes(kRecordHeaderSize, '\0');
    StoredFragment fragment;
    Status s = fs_.readAt(file.value()->fd(), headerBytes.data(), headerBytes.size(), location.offset);
    std::string problem;
    if (!s.ok()) {
      problem = "read failed: " + s.message;
    } else if (problem = checkRecordHeader(id, location, headerBytes); !problem.empty()) {
      // `problem` says why
    } else if (location.length > kMaxStoredFragmentBytes) {
      problem = "fragment length " + std::to_string(location.length) + " exceeds the format's limit";
    } else {
      fragment.data.resize(location.length);
      s = fs_.readAt(file.value()->fd(), fragment.data.data(), fragment.data.size(),
                     location.offset + kRecordHeaderSize);
      if (!s.ok()) {
        problem = "read failed: " + s.message;
      } else if (xxh3(fragment.data.data(), fragment.data.size()) != location.checksum) {
        problem = "data checksum mismatch";
      }
    }
    if (!problem.empty()) return reportCorrupt(id, location, problem);
    fragment.checksum = location.checksum;
    return fragment;
  }
}

Status ExtentStore::getMany(const std::vector<std::string_view>& ids, uint64_t maxBytes,
                            const FragmentVisitor& visit) {
  for (std::string_view id : ids) {
    if (id.size() != kFragmentIdSize) {
      return Status::error(Code::INVALID, "fragment id must be 33 bytes, got " + std::to_string(id.size()));
    }
  }
  // One index transaction for all ids; the reads below then go in disk order.
  struct Found {
    FragmentLocation location;
    size_t index;
  };
  std::vector<Found> found;
  found.reserve(ids.size());
  std::vector<std::pair<size_t, Status>> failed;  // answered without reading
  uint64_t totalBytes = 0;
  {
    std::vector<size_t> indexed;  // not pending: looked up in LMDB
    for (size_t i = 0; i < ids.size(); ++i) {
      if (auto pending = pending_.find(ids[i])) {  // before the read transaction (PendingIndex)
        totalBytes += pending->length;
        found.push_back(Found{*pending, i});
      } else {
        indexed.push_back(i);
      }
    }
    LmdbTxn txn(*env_, LmdbTxn::Mode::kRead);
    if (!txn.status().ok()) return txn.status();
    for (size_t i : indexed) {
      auto location = lookup(txn, ids[i]);
      if (!location.ok()) {
        failed.emplace_back(i, location.status());
        continue;
      }
      totalBytes += location.value().length;
      found.push_back(Found{location.value(), i});
    }
  }
  if (totalBytes > maxBytes) {
    return Status::error(Code::INVALID, "the fragments asked for hold " + std::to_string(totalBytes) +
                                            " bytes, more than the limit of " +
                                            std::to_string(maxBytes) + " per call");
  }
  for (const auto& [index, status] : failed) visit(index, status, {}, 0);
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return std::tie(a.location.extent, a.location.offset) < std::tie(b.location.extent, b.location.offset);
  });
  // Every record the call reads is asked of the disk at once (records less than
  // 64 KiB apart as one range), so the reads below wait for one disk round trip, not
  // one per readahead window: after a direct append nothing of them is in the page
  // cache. Measured in docs/benchmarks.md, session 15.
  constexpr uint64_t kHintGapBytes = 64 << 10;
  std::shared_ptr<ExtentFile> file;
  for (size_t i = 0; i < found.size();) {
    const FragmentLocation& first = found[i].location;
    uint64_t end = first.offset + first.recordSize();
    size_t j = i + 1;
    for (; j < found.size() && found[j].location.extent == first.extent &&
           found[j].location.offset <= end + kHintGapBytes;
         ++j) {
      end = std::max(end, found[j].location.offset + found[j].location.recordSize());
    }
    if (!file || file->number() != first.extent) {
      auto acquired = files_.acquire(first.extent);
      file = acquired.ok() ? acquired.value() : nullptr;
    }
    if (file) fs_.willNeed(file->fd(), first.offset, end - first.offset);
    i = j;
  }
  // One buffer for every record: header and data come in one pread.
  std::string record;
  for (const Found& f : found) {
    std::string_view id = ids[f.index];
    const FragmentLocation& location = f.location;
    if (!file || file->number() != location.extent) {
      auto acquired = files_.acquire(location.extent);
      file = acquired.ok() ? acquired.value() : nullptr;
    }
    if (!file) {
      // Moved by compaction since the index read (or unreadable): get() looks again.
      auto fragment = get(id);
      if (fragment.ok()) {
        visit(f.index, {}, fragment.value().data, fragment.value().checksum);
      } else {
        visit(f.index, fragment.status(), {}, 0);
      }
      continue;
    }
    std::string problem;
    if (location.length > kMaxStoredFragmentBytes) {
      problem = "fragment length " + std::to_string(location.length) + " exceeds the format's limit";
    } else {
      record.resize(kRecordHeaderSize + location.length);
      Status s = fs_.readAt(file->fd(), record.data(), record.size(), location.offset);
      std::string_view header(record.data(), kRecordHeaderSize);
      std::string_view data(record.data() + kRecordHeaderSize, location.length);
      if (!s.ok()) {
        problem = "read failed: " + s.message;
      } else if (problem = checkRecordHeader(id, location, header); !problem.empty()) {
        // `problem` says why
      } else if (xxh3(data.data(), data.size()) != location.checksum) {
        problem = "data checksum mismatch";
      } else {
        visit(f.index, {}, data, location.checksum);
        continue;
      }
    }
    visit(f.index, reportCorrupt(id, location, problem), {}, 0);
  }
  return {};
}

Result<uint32_t> ExtentStore::remove(const std::vector<std::string>& ids) {
  std::lock_guard<std::mutex> commitLock(commitMutex_);
  LmdbTxn txn(*env_, LmdbTxn::Mode::kWrite);
  if (!txn.status().ok()) return txn.status();
  // The pending rows go into this transaction first: it then sees every
  // acknowledged fragment, and a crash after it cannot bring a removed one back.
  PendingIndex::Commit pending(pending_);
  Status written = writePending(txn, pending.rows());
  if (!written.ok()) return written;
  Group group(*this);
  uint32_t deleted = 0;
  for (const std::string& id : ids) {
    auto value = txn.get(fragmentsDb_, id);
    if (!value) continue;
    auto location = decodeFragmentLocation(*value);
    txn.del(fragmentsDb_, id);
    ++deleted;
    group.fragmentsDelta -= 1;
    if (!location) continue;
    txn.del(locationsDb_, locationKey(location->extent, location->offset));
    ExtentInfo& info = group.info(location->extent);
    info.liveBytes -= location->recordSize();
    info.garbageBytes += location->recordSize();
    info.liveRecords -= 1;
  }
  if (deleted == 0) return 0u;  // the pending rows wait for the next index commit
  Status s = commitGroup(group, txn);
  if (!s.ok()) return s;
  pending.done();
  return deleted;
}

Status ExtentStore::list(std::string_view after, uint32_t max, int64_t beforeNs,
                         std::vector<std::string>* ids, bool* eof) {
  std::string start(after);  // `after` may point into *ids
  ids->clear();
  *eof = false;
  // Pending ids first (PendingIndex), then merged with the index in id order. A
  // row may be in both while it is being committed: it is listed once.
  auto pending = pending_.idsAfter(start);
  auto next = pending.begin();
  auto take = [&](const std::pair<std::string, int64_t>& row) {
    if (row.second < beforeNs) ids->push_back(row.first);
  };
  LmdbTxn txn(*env_, LmdbTxn::Mode::kRead);
  if (!txn.status().ok()) return txn.status();
  LmdbCursor cursor(txn, fragmentsDb_);
  if (start.empty()) {
    cursor.first();
  } else {
    cursor.seek(start);
    if (cursor.valid() && cursor.key() == start) cursor.next();
  }
  for (; cursor.valid(); cursor.next()) {
    for (; next != pending.end() && std::string_view(next->first) <= cursor.key(); ++next) {
      if (ids->size() >= max) return {};
      take(*next);
    }
    if (ids->size() >= max) return {};
    if (!pending.empty() && next != pending.begin() && std::prev(next)->first == cursor.key()) {
      continue;  // pending: its row there is the current one
    }
    auto location = decodeFragmentLocation(cursor.value());
    if (location && location->storedAtNs >= beforeNs) continue;
    ids->emplace_back(cursor.key());
  }
  for (; next != pending.end(); ++next) {
    if (ids->size() >= max) return {};
    take(*next);
  }
  *eof = true;
  return {};
}

Result<uint64_t> ExtentStore::scrubStep(std::string* cursor, uint64_t maxBytes) {
  if (cursor->empty() && indexPending()) {
    // A pass walks the LMDB index: what is pending joins it first.
    Status s = commitIndex();
    if (!s.ok()) return s;
  }
  std::vector<std::string> ids;
  bool atEnd = true;
  {
    LmdbTxn txn(*env_, LmdbTxn::Mode::kRead);
    if (!txn.status().ok()) return txn.status();
    LmdbCursor it(txn, fragmentsDb_);
    if (cursor->empty()) {
      it.first();
    } else {
      it.seek(*cursor);
      if (it.valid() && it.key() == *cursor) it.next();
    }
    uint64_t bytes = 0;
    for (; it.valid(); it.next()) {
      if (bytes >= maxBytes) {
        atEnd = false;
        break;
      }
      auto location = decodeFragmentLocation(it.value());
      bytes += location ? location->recordSize() : kRecordHeaderSize;
      ids.emplace_back(it.key());
    }
  }
  uint64_t corrupt = 0;
  for (const std::string& id : ids) {
    auto fragment = get(id);  // verifies, logs and counts a mismatch
    if (!fragment.ok() && fragment.status().code == Code::IO) ++corrupt;
  }
  *cursor = atEnd ? std::string() : ids.back();
  return corrupt;
}

bool ExtentStore::needsCompaction() const {
  std::lock_guard<std::mutex> lock(statsMutex_);
  uint32_t current = extents_.empty() ? 0 : extents_.rbegin()->first;
  for (const auto& [number, info] : extents_) {
    if (number == current) continue;
    if (info.liveRecords == 0 ||
        double(info.garbageBytes) >= options_.compactGarbageRatio * double(info.committedSize)) {
      return true;
    }
  }
  return false;
}

Result<bool> ExtentStore::compactStep(uint64_t maxBytes) {
  std::lock_guard<std::mutex> commitLock(commitMutex_);
  uint32_t victim = 0;
  {
    std::lock_guard<std::mutex> lock(statsMutex_);
    if (compactingExtent_ && extents_.count(compactingExtent_)) {
      victim = compactingExtent_;
    } else {
      double best = -1;
      for (const auto& [number, info] : extents_) {
        if (number == currentExtent_) continue;
        double ratio = info.committedSize ? double(info.garbageBytes) / double(info.committedSize) : 1.0;
        if ((info.liveRecords == 0 || ratio >= options_.compactGarbageRatio) && ratio > best) {
          best = ratio;
          victim = number;
        }
      }
    }
  }
  if (victim == 0) {
    compactingExtent_ = 0;
    return false;
  }
  if (victim != compactingExtent_) {
    compactingExtent_ = victim;
    compactCursor_ = extentKey(victim);
  }

  LmdbTxn txn(*env_, LmdbTxn::Mode::kWrite);
  if (!txn.status().ok()) return txn.status();
  // The pending rows first, so that the victim's locations below are complete.
  PendingIndex::Commit pending(pending_);
  Status written = writePending(txn, pending.rows());
  if (!written.ok()) return written;
  // Collect this step's live records first; the index is rewritten afterwards.
  std::vector<std::pair<uint64_t, std::string>> moves;
  bool finished = true;
  {
    std::string prefix = extentKey(victim);
    LmdbCursor cursor(txn, locationsDb_);
    uint64_t bytes = 0;
    for (cursor.seek(compactCursor_); cursor.valid() && startsWith(cursor.key(), prefix); cursor.next()) {
      if (bytes >= maxBytes) {
        finished = false;
        break;
      }
      uint64_t offset = readBigEndian64(cursor.key(), 4);
      moves.emplace_back(offset, std::string(cursor.value()));
      auto value = txn.get(fragmentsDb_, cursor.value());
      auto location = value ? decodeFragmentLocation(*value) : std::nullopt;
      bytes += location ? location->recordSize() : 0;
    }
  }

  Group group(*this);
  auto source = files_.acquire(victim);
  for (const auto& [offset, id] : moves) {
    txn.del(locationsDb_, locationKey(victim, offset));
    Status s;
    auto value = txn.get(fragmentsDb_, id);
    auto location = value ? decodeFragmentLocation(*value) : std::nullopt;
    if (!location || location->extent != victim || location->offset != offset) continue;  // stale
    ExtentInfo& oldInfo = group.info(victim);
    oldInfo.liveBytes -= location->recordSize();
    oldInfo.garbageBytes += location->recordSize();
    oldInfo.liveRecords -= 1;

    std::string problem;
    std::string headerBytes(kRecordHeaderSize, '\0');
    std::string data(location->length, '\0');
    if (!source.ok()) {
      problem = "extent unreadable: " + source.status().message;
    } else {
      s = fs_.readAt(source.value()->fd(), headerBytes.data(), headerBytes.size(), offset);
      if (s.ok()) s = fs_.readAt(source.value()->fd(), data.data(), data.size(), offset + kRecordHeaderSize);
      if (!s.ok()) {
        problem = s.message;
      } else if (!decodeRecordHeader(headerBytes, &problem)) {
      } else if (xxh3(data.data(), data.size()) != location->checksum) {
        problem = "data checksum mismatch";
      }
    }
    if (!problem.empty()) {
      // Copying bad bytes would only hide them; the fragment is gone from this node
      // and repair rebuilds it from the other fragments of its stripe.
      corrupt_.fetch_add(1);
      corruptFragmentsCounter().inc();
      spdlog::error("compaction: dropping corrupt fragment {} from extent {} at offset {}: {}",
                    shortHex(id), extentFileName(victim), offset, problem);
      txn.del(fragmentsDb_, id);
      group.fragmentsDelta -= 1;
      continue;
    }
    auto moved = appendRecord(group, id, data, location->checksum, location->storedAtNs,
                              /*borrowData=*/false);
    if (!moved.ok()) {
      txn.abort();
      rollback(group);
      return moved.status();
    }
    s = txn.put(fragmentsDb_, id, encodeFragmentLocation(moved.value()));
    if (s.ok()) s = txn.put(locationsDb_, locationKey(moved.value().extent, moved.value().offset), id);
    if (!s.ok()) {
      txn.abort();
      rollback(group);
      return s;
    }
    ExtentInfo& newInfo = group.info(moved.value().extent);
    newInfo.liveBytes += moved.value().recordSize();
    newInfo.liveRecords += 1;
  }
  source = Status{};  // release our handle before the file may be removed
  // The locations index is authoritative: once it lists nothing more for the
  // victim, no fragment lives there, whatever the counters say.
  bool removeFile = finished;
  if (removeFile) {
    if (group.info(victim).liveRecords != 0) {
      spdlog::error("compaction: extent {} accounting said {} live records but none are indexed",
                    extentFileName(victim), group.info(victim).liveRecords);
    }
    group.dropped.push_back(victim);
  }
  Status s = commitGroup(group, txn);
  if (!s.ok()) return s;
  pending.done();
  if (removeFile) {
    // The index no longer refers to the extent (committed above), so removing the
    // file cannot lose data; a crash before the unlink leaves a file that open()
    // deletes as unknown.
    files_.evict(victim);
    Status removed = fs_.removeFile(files_.pathOf(victim));
    if (removed.ok()) removed = fs_.syncDirectory(extentsDir());
    if (!removed.ok()) spdlog::warn("compaction: {}", removed.message);
    spdlog::info("compaction: extent {} reclaimed", extentFileName(victim));
    compactingExtent_ = 0;
  } else if (!moves.empty()) {
    compactCursor_ = locationKey(victim, moves.back().first + 1);
  }
  return true;
}

StoreStats ExtentStore::stats() const {
  StoreStats stats;
  std::lock_guard<std::mutex> lock(statsMutex_);
  stats.usedBytes = usedBytes();
  for (const auto& [number, info] : extents_) stats.liveBytes += info.liveBytes;
  stats.fragments = fragments_;
  stats.extents = extents_.size();
  stats.groupCommits = groupCommits_;
  stats.indexCommits = indexCommits_;
  stats.pendingIndexBytes = pending_.recordBytes();
  stats.corruptFragments = corrupt_.load();
  stats.capacityBytes = options_.capacityBytes;
  if (stats.capacityBytes == 0) {
    auto space = fs_.space(options_.dataDir);
    if (space.ok()) stats.capacityBytes = space.value().totalBytes;
  }
  return stats;
}

Result<std::string> loadOrCreateNodeUuid(const std::string& dataDir) {
  std::string path = dataDir + "/uuid";
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[64] = {};
    size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
    std::fclose(f);
    std::string text(buf, n);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    if (text.size() != 36) return Status::error(Code::INVALID, path + " does not hold a uuid");
    return text;
  }
  if (errno != ENOENT) return errnoStatus("open " + path, errno);
  uint8_t bytes[16];
  if (getrandom(bytes, sizeof(bytes), 0) != ssize_t(sizeof(bytes))) {
    return errnoStatus("getrandom", errno);
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x40;  // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80;  // RFC 4122 variant
  std::string hex = toHex(bytes, sizeof(bytes));
  std::string uuid = hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
                     hex.substr(16, 4) + "-" + hex.substr(20);
  // Write to a temporary name, sync, rename: a crash leaves no half-written uuid.
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return errnoStatus("create " + tmp, errno);
  std::string line = uuid + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size()) && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) return errnoStatus("write " + tmp, err);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errnoStatus("rename " + tmp, errno);
  Status s = posixFileSystem().syncDirectory(dataDir);
  if (!s.ok()) return s;
  return uuid;
}

}  // namespace dfs
