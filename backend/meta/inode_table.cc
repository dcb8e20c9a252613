#include "backend/meta/inode_table.h"

#include <sys/stat.h>

#include "backend/meta/extent_map.h"

namespace dfs::meta {

Result<InodeRecord> loadInode(const LmdbTxn& txn, const MetaStore::Dbs& dbs, uint64_t ino) {
  if (txn.get() == nullptr) return txn.status().ok() ? Status::error(Code::IO, "no transaction") : txn.status();
  auto v = txn.get(dbs.inodes, u64Key(ino));
  if (!v) return Status::error(Code::STALE, "no inode " + std::to_string(ino));
  return decodeInode(ino, *v);
}

void saveInode(WriteTxn& wtx, const InodeRecord& inode) {
  wtx.put(wtx.dbs().inodes, u64Key(inode.ino), encodeInode(inode));
}

InodeRecord allocateInode(WriteTxn& wtx, uint32_t volume, uint32_t mode, uint32_t uid,
                          uint32_t gid) {
  InodeRecord inode;
  // An absorbed create names its inode itself (checked by createEntry).
  inode.ino = wtx.clientIno() != 0 ? wtx.clientIno() : wtx.nextId(kNextInode, 1);
  inode.volume = volume;
  inode.mode = mode;
  inode.nlink = S_ISDIR(mode) ? 2 : 1;
  inode.uid = uid;
  inode.gid = gid;
  inode.atimeNs = inode.mtimeNs = inode.ctimeNs = wtx.now();
  wtx.stats().inodes += 1;
  if (S_ISREG(mode)) wtx.stats().files += 1;
  return inode;
}

bool isOpen(const LmdbTxn& txn, const MetaStore::Dbs& dbs, uint64_t ino) {
  if (txn.get() == nullptr) return true;  // the caller's commit fails anyway; keep data
  std::string prefix = u64Key(ino);
  LmdbCursor cursor(txn, dbs.openers);
  cursor.seek(prefix);
  return cursor.valid() && startsWith(cursor.key(), prefix);
}

void dropLink(WriteTxn& wtx, InodeRecord& inode) {
  if (inode.isDirectory() || inode.nlink <= 1) {
    inode.nlink = 0;
  } else {
    inode.nlink -= 1;
  }
  inode.ctimeNs = wtx.now();
  if (inode.nlink > 0) {
    saveInode(wtx, inode);
  } else if (isOpen(wtx.txn(), wtx.dbs(), inode.ino)) {
    saveInode(wtx, inode);
    wtx.put(wtx.dbs().orphans, u64Key(inode.ino), std::string(1, char(kFormatVersion)));
  } else {
    destroyInode(wtx, inode);
  }
}

void destroyInode(WriteTxn& wtx, InodeRecord& inode) {
  if (inode.isRegular()) {
    removeExtents(wtx, inode, 0, UINT64_MAX);
    wtx.stats().files -= 1;
  }
  std::string prefix = u64Key(inode.ino);
  {
    LmdbCursor cursor(wtx.txn(), wtx.dbs().xattrs);
    cursor.seek(prefix);
    while (cursor.valid() && startsWith(cursor.key(), prefix)) cursor.erase();
  }
  wtx.del(wtx.dbs().orphans, prefix);
  wtx.del(wtx.dbs().inodes, prefix);
  wtx.stats().inodes -= 1;
}

}  // namespace dfs::meta
