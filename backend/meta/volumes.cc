#include "backend/meta/volumes.h"

#include <sys/stat.h>

#include "backend/meta/inode_table.h"

namespace dfs::meta {

namespace {

Status validateSpec(VolumeRecord& spec, int upNodes) {
  const VolumeRecord defaults;
  if (spec.name.empty() || spec.name.size() > 64) {
    return Status::error(Code::INVALID, "volume name must be 1..64 characters");
  }
  for (char c : spec.name) {
    if (!(isalnum(uint8_t(c)) || c == '-' || c == '_' || c == '.')) {
      return Status::error(Code::INVALID, "volume name may only hold letters, digits, '-', '_' and '.'");
    }
  }
  if (spec.ecK < 1 || spec.ecK > 32) return Status::error(Code::INVALID, "k must be 1..32");
  if (spec.ecM > 16) return Status::error(Code::INVALID, "m must be 0..16");
  if (spec.chunkMin == 0) spec.chunkMin = defaults.chunkMin;
  if (spec.chunkAvg == 0) spec.chunkAvg = defaults.chunkAvg;
  if (spec.chunkMax == 0) spec.chunkMax = defaults.chunkMax;
  if (spec.chunkMin < 64 || spec.chunkMin > spec.chunkAvg || spec.chunkAvg > spec.chunkMax ||
      spec.chunkMax > (16u << 20)) {
    return Status::error(Code::INVALID, "chunk sizes must satisfy 64 <= min <= avg <= max <= 16 MiB");
  }
  if (spec.compressionLevel < -7 || spec.compressionLevel > 22) {
    return Status::error(Code::INVALID, "compression level must be -7..22 (0: off)");
  }
  if (spec.inlineThreshold > (1u << 20)) return Status::error(Code::INVALID, "inline threshold above 1 MiB");
  int needed = spec.ecK + spec.ecM;
  if (upNodes >= 0 && needed > upNodes) {
    return Status::error(Code::UNAVAILABLE,
                         "volume needs " + std::to_string(needed) + " storage nodes (" +
                             std::to_string(spec.ecK) + "+" + std::to_string(spec.ecM) + "), only " +
                             std::to_string(upNodes) + (upNodes == 1 ? " is" : " are") + " up");
  }
  return {};
}

}  // namespace

std::vector<VolumeRecord> VolumeTable::list() {
  std::vector<VolumeRecord> out;
  LmdbTxn txn(store_.env(), LmdbTxn::Mode::kRead);
  LmdbCursor cursor(txn, store_.dbs().volumes);
  for (cursor.first(); cursor.valid(); cursor.next()) {
    auto v = decodeVolume(readBigEndian32(cursor.key()), cursor.value());
    if (v.ok()) out.push_back(std::move(v).value());
  }
  return out;
}

Result<VolumeRecord> VolumeTable::find(const std::string& name) {
  for (auto& v : list()) {
    if (v.name == name) return v;
  }
  return Status::error(Code::NOT_FOUND, "no such volume '" + name + "'");
}

Result<VolumeRecord> VolumeTable::byId(uint32_t id) {
  LmdbTxn txn(store_.env(), LmdbTxn::Mode::kRead);
  auto v = txn.get(store_.dbs().volumes, u32Key(id));
  if (!v) return Status::error(Code::NOT_FOUND, "no volume with id " + std::to_string(id));
  return decodeVolume(id, *v);
}

Result<VolumeRecord> VolumeTable::create(VolumeRecord spec, int upNodes) {
  auto status = validateSpec(spec, upNodes);
  if (!status.ok()) return status;
  if (find(spec.name).ok()) return Status::error(Code::EXISTS, "volume '" + spec.name + "' exists");
  WriteTxn wtx(store_);
  spec.id = uint32_t(wtx.nextId(kNextVolume, 1));
  InodeRecord root = allocateInode(wtx, spec.id, S_IFDIR | 0755, 0, 0);
  root.parent = root.ino;
  saveInode(wtx, root);
  spec.rootIno = root.ino;
  wtx.put(wtx.dbs().volumes, u32Key(spec.id), encodeVolume(spec));
  status = wtx.commit();
  if (!status.ok()) return status;
  return spec;
}

Result<VolumeRecord> VolumeTable::update(VolumeRecord spec, int upNodes) {
  auto existing = spec.name.empty() ? byId(spec.id) : find(spec.name);
  if (!existing.ok()) return existing.status();
  spec.id = existing.value().id;
  spec.rootIno = existing.value().rootIno;
  spec.name = existing.value().name;
  // Only a new EC profile needs the nodes to be up; other changes always apply.
  bool profileChanged = spec.ecK != existing.value().ecK || spec.ecM != existing.value().ecM;
  auto status = validateSpec(spec, profileChanged ? upNodes : -1);
  if (!status.ok()) return status;
  WriteTxn wtx(store_);
  wtx.put(wtx.dbs().volumes, u32Key(spec.id), encodeVolume(spec));
  status = wtx.commit();
  if (!status.ok()) return status;
  return spec;
}

Status VolumeTable::ensureDefault(const std::string& name) {
  if (name.empty() || !list().empty()) return {};
  VolumeRecord spec;
  spec.name = name;
  auto created = create(spec, -1);
  return created.status();
}

}  // namespace dfs::meta
