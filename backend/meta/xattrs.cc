#include "backend/meta/xattrs.h"

#include "backend/meta/inode_table.h"

namespace dfs::meta {

namespace {

Status validateXattrName(std::string_view name) {
  if (name.empty()) return Status::error(Code::INVALID, "empty xattr name");
  if (name.size() > kMaxXattrName) return Status::error(Code::RANGE, "xattr name longer than 255 bytes");
  if (name.find('\0') != std::string_view::npos) return Status::error(Code::INVALID, "xattr name contains NUL");
  return {};
}

std::string encodeValue(std::string_view value) {
  std::string out(1, char(kFormatVersion));
  out.append(value.data(), value.size());
  return out;
}

}  // namespace

Status Xattrs::set(uint64_t ino, std::string_view name, std::string_view value, uint32_t flags) {
  auto status = validateXattrName(name);
  if (!status.ok()) return status;
  if (value.size() > kMaxXattrValue) return Status::error(Code::RANGE, "xattr value larger than 64 KiB");
  if (flags & ~(kXattrCreate | kXattrReplace)) return Status::error(Code::INVALID, "unknown xattr flags");
  // POSIX ACLs are not implemented: storing them as opaque xattrs would let `cp -a`
  // and `setfacl` believe permissions were applied while the mode bits stay unchanged.
  // EOPNOTSUPP makes those tools fall back to chmod.
  if (name.substr(0, 17) == "system.posix_acl_") {
    return Status::error(Code::NOT_SUPPORTED, "POSIX ACLs are not supported");
  }
  WriteTxn wtx(store_);
  auto inode = loadInode(wtx, ino);
  if (!inode.ok()) return inode.status();
  std::string key = xattrKey(ino, name);
  bool present = wtx.get(wtx.dbs().xattrs, key).has_value();
  if ((flags & kXattrCreate) && present) return Status::error(Code::EXISTS, "xattr exists");
  if ((flags & kXattrReplace) && !present) return Status::error(Code::NO_DATA, "no such xattr");
  wtx.put(wtx.dbs().xattrs, key, encodeValue(value));
  inode.value().ctimeNs = wtx.now();
  saveInode(wtx, inode.value());
  return wtx.commit();
}

Result<std::string> Xattrs::get(uint64_t ino, std::string_view name) {
  auto status = validateXattrName(name);
  if (!status.ok()) return status;
  LmdbTxn txn(store_.env(), LmdbTxn::Mode::kRead);
  auto inode = loadInode(txn, store_.dbs(), ino);
  if (!inode.ok()) return inode.status();
  auto v = txn.get(store_.dbs().xattrs, xattrKey(ino, name));
  if (!v) return Status::error(Code::NO_DATA, "no such xattr");
  if (v->empty() || uint8_t((*v)[0]) != kFormatVersion) return Status::error(Code::IO, "corrupt xattr");
  return std::string(v->substr(1));
}

Result<std::vector<std::string>> Xattrs::list(uint64_t ino) {
  LmdbTxn txn(store_.env(), LmdbTxn::Mode::kRead);
  auto inode = loadInode(txn, store_.dbs(), ino);
  if (!inode.ok()) return inode.status();
  std::vector<std::string> names;
  std::string prefix = u64Key(ino);
  LmdbCursor cursor(txn, store_.dbs().xattrs);
  for (cursor.seek(prefix); cursor.valid() && startsWith(cursor.key(), prefix); cursor.next()) {
    names.emplace_back(cursor.key().substr(8));
  }
  return names;
}

Status Xattrs::remove(uint64_t ino, std::string_view name) {
  auto status = validateXattrName(name);
  if (!status.ok()) return status;
  WriteTxn wtx(store_);
  auto inode = loadInode(wtx, ino);
  if (!inode.ok()) return inode.status();
  if (!wtx.del(wtx.dbs().xattrs, xattrKey(ino, name))) return Status::error(Code::NO_DATA, "no such xattr");
  inode.value().ctimeNs = wtx.now();
  saveInode(wtx, inode.value());
  return wtx.commit();
}

}  // namespace dfs::meta
