#include "backend/meta/sessions.h"

#include <sys/stat.h>

#include <vector>

#include "backend/meta/extent_map.h"
#include "backend/meta/inode_table.h"

namespace dfs::meta {

namespace {

std::string encodeOpenCount(uint32_t count) {
  Encoder e;
  e.u8(kFormatVersion);
  e.u32(count);
  return e.take();
}

uint32_t decodeOpenCount(std::string_view value) {
  Decoder d(value);
  if (d.u8() != kFormatVersion) return 0;
  uint32_t count = d.u32();
  return d.ok() ? count : 0;
}

const std::string kMarker(1, char(kFormatVersion));

// Drops the open record of (session, ino) entirely and destroys the inode when
// it was an orphan that nobody else holds open.
void closeAll(WriteTxn& wtx, uint64_t session, uint64_t ino) {
  wtx.del(wtx.dbs().opens, u64PairKey(session, ino));
  wtx.del(wtx.dbs().openers, u64PairKey(ino, session));
  auto inode = loadInode(wtx, ino);
  if (inode.ok() && inode.value().nlink == 0 && !isOpen(wtx.txn(), wtx.dbs(), ino)) {
    destroyInode(wtx, inode.value());
  }
}

}  // namespace

Status SessionTable::load() {
  int64_t now = store_.now();
  std::vector<uint64_t> orphans;
  {
    LmdbTxn txn(store_.env(), LmdbTxn::Mode::kRead);
    if (!txn.status().ok()) return txn.status();
    LmdbCursor cursor(txn, store_.dbs().sessions);
    for (cursor.first(); cursor.valid(); cursor.next()) {
      deadlines_[readBigEndian64(cursor.key())] = now + leaseNs_;
    }
    LmdbCursor orphanCursor(txn, store_.dbs().orphans);
    for (orphanCursor.first(); orphanCursor.valid(); orphanCursor.next()) {
      uint64_t ino = readBigEndian64(orphanCursor.key());
      if (!isOpen(txn, store_.dbs(), ino)) orphans.push_back(ino);
    }
  }
  if (orphans.empty()) return {};
  WriteTxn wtx(store_);
  for (uint64_t ino : orphans) {
    auto inode = loadInode(wtx, ino);
    if (inode.ok()) destroyInode(wtx, inode.value());
    else wtx.del(wtx.dbs().orphans, u64Key(ino));
  }
  return wtx.commit();
}

bool SessionTable::alive(uint64_t session) {
  auto it = deadlines_.find(session);
  return it != deadlines_.end() && it->second >= store_.now();
}

Result<uint64_t> SessionTable::mount(uint32_t volume, const std::string& client) {
  WriteTxn wtx(store_);
  SessionRecord record;
  record.id = wtx.nextId(kNextSession, 1);
  record.volume = volume;
  record.createdNs = wtx.now();
  record.client = client.substr(0, 256);
  wtx.put(wtx.dbs().sessions, u64Key(record.id), encodeSession(record));
  auto status = wtx.commit();
  if (!status.ok()) return status;
  deadlines_[record.id] = store_.now() + leaseNs_;
  return record.id;
}

Status SessionTable::keepalive(uint64_t session) {
  if (!alive(session)) return Status::error(Code::STALE, "unknown or expired session");
  deadlines_[session] = store_.now() + leaseNs_;
  return {};
}

Status SessionTable::unmount(uint64_t session) {
  if (!deadlines_.count(session)) return Status::error(Code::STALE, "unknown session");
  return endSession(session);
}

Status SessionTable::endSession(uint64_t session) {
  WriteTxn wtx(store_);
  if (!wtx.status().ok()) return wtx.status();
  std::vector<uint64_t> inodes;
  std::string prefix = u64Key(session);
  {
    LmdbCursor cursor(wtx.txn(), wtx.dbs().opens);
    for (cursor.seek(prefix); cursor.valid() && startsWith(cursor.key(), prefix); cursor.next()) {
      inodes.push_back(readBigEndian64(cursor.key(), 8));
    }
  }
  for (uint64_t ino : inodes) closeAll(wtx, session, ino);
  wtx.del(wtx.dbs().sessions, prefix);
  auto status = wtx.commit();
  if (status.ok()) deadlines_.erase(session);
  return status;
}

void SessionTable::recordOpen(WriteTxn& wtx, uint64_t session, uint64_t ino) {
  std::string key = u64PairKey(session, ino);
  uint32_t count = 0;
  if (auto v = wtx.get(wtx.dbs().opens, key)) count = decodeOpenCount(*v);
  wtx.put(wtx.dbs().opens, key, encodeOpenCount(count + 1));
  wtx.put(wtx.dbs().openers, u64PairKey(ino, session), kMarker);
}

Result<InodeRecord> SessionTable::open(uint64_t session, uint64_t ino, bool truncate) {
  if (!alive(session)) return Status::error(Code::STALE, "unknown or expired session");
  WriteTxn wtx(store_);
  auto loaded = loadInode(wtx, ino);
  if (!loaded.ok()) return loaded.status();
  InodeRecord inode = loaded.value();
  if (truncate) {
    if (inode.isDirectory()) return Status::error(Code::IS_DIRECTORY, "cannot truncate a directory");
    if (inode.isRegular()) {
      truncateData(wtx, inode, 0);
      inode.dataVersion += 1;
      inode.mtimeNs = inode.ctimeNs = wtx.now();
      saveInode(wtx, inode);
    }
  }
  recordOpen(wtx, session, ino);
  auto status = wtx.commit();
  if (!status.ok()) return status;
  return inode;
}

Result<InodeRecord> SessionTable::create(uint64_t session, uint64_t parent, std::string_view name,
                                         uint32_t mode, bool exclusive, const Caller& caller) {
  if (!alive(session)) return Status::error(Code::STALE, "unknown or expired session");
  uint32_t type = mode & S_IFMT;
  if (type != 0 && type != S_IFREG) return Status::error(Code::INVALID, "create makes regular files only");
  WriteTxn wtx(store_);
  auto created = Namespace::createEntry(wtx, parent, name, S_IFREG | (mode & 07777), 0, {}, caller);
  InodeRecord inode;
  if (created.ok()) {
    inode = created.value();
  } else if (created.status().code == Code::EXISTS && !exclusive) {
    auto v = wtx.get(wtx.dbs().dirents, direntKey(parent, name));
    if (!v) return created.status();
    auto dirent = decodeDirent(*v);
    if (!dirent.ok()) return dirent.status();
    auto loaded = loadInode(wtx, dirent.value().ino);
    if (!loaded.ok()) return loaded.status();
    inode = loaded.value();
    if (inode.isDirectory()) return Status::error(Code::IS_DIRECTORY, "is a directory");
  } else {
    return created.status();
  }
  recordOpen(wtx, session, inode.ino);
  auto status = wtx.commit();
  if (!status.ok()) return status;
  return inode;
}

bool SessionTable::release(uint64_t session, uint64_t ino) {
  WriteTxn wtx(store_);
  if (!wtx.status().ok()) return false;
  std::string key = u64PairKey(session, ino);
  auto v = wtx.get(wtx.dbs().opens, key);
  if (!v) return true;
  uint32_t count = decodeOpenCount(*v);
  if (count > 1) {
    wtx.put(wtx.dbs().opens, key, encodeOpenCount(count - 1));
  } else {
    closeAll(wtx, session, ino);
  }
  (void)wtx.commit();
  return count <= 1;
}

size_t SessionTable::expire() {
  int64_t now = store_.now();
  std::vector<uint64_t> expired;
  for (auto& [id, deadline] : deadlines_) {
    if (deadline < now) expired.push_back(id);
  }
  size_t ended = 0;
  for (uint64_t id : expired) ended += endSession(id).ok();
  return ended;
}

}  // namespace dfs::meta
