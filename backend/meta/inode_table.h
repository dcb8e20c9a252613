// Inode records and their life cycle inside a write transaction: loading, saving,
// allocating new inode numbers, dropping a link (which turns an inode that is
// still open into an orphan, or destroys it with its extents and xattrs).
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include "backend/meta/meta_store.h"

namespace dfs::meta {

// Loads inode `ino`; STALE when it does not exist.
Result<InodeRecord> loadInode(const LmdbTxn& txn, const MetaStore::Dbs& dbs, uint64_t ino);
inline Result<InodeRecord> loadInode(WriteTxn& wtx, uint64_t ino) {
  return loadInode(wtx.txn(), wtx.dbs(), ino);
}
void saveInode(WriteTxn& wtx, const InodeRecord& inode);

// A new inode with a fresh number, nlink 1 (2 for directories), all times now.
// Counted in the statistics; the caller saves it.
InodeRecord allocateInode(WriteTxn& wtx, uint32_t volume, uint32_t mode, uint32_t uid,
                          uint32_t gid);

// Whether some session holds `ino` open.
bool isOpen(const LmdbTxn& txn, const MetaStore::Dbs& dbs, uint64_t ino);

// Removes one name of `inode` (for a directory: its only name). When no name is
// left the inode is kept as an orphan while it is open, else destroyed; otherwise
// the record is saved with a new ctime.
void dropLink(WriteTxn& wtx, InodeRecord& inode);

// Deletes the inode, its extents (dropping chunk references) and its xattrs.
void destroyInode(WriteTxn& wtx, InodeRecord& inode);

}  // namespace dfs::meta
