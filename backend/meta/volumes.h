// Volumes: named namespaces with their own root directory and data policy (EC
// profile, chunk sizes, compression, inline threshold). Inode numbers are global;
// each inode records its volume.
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <string>
#include <vector>

#include "backend/meta/meta_store.h"

namespace dfs::meta {

class VolumeTable {
 public:
  explicit VolumeTable(MetaStore& store) : store_(store) {}

  // Validates `spec` (id and rootIno ignored; chunk sizes 0 take the defaults) and
  // creates the volume with a root directory (0755, uid 0). With `upNodes` >= 0,
  // refuses with UNAVAILABLE when k+m exceeds it.
  Result<VolumeRecord> create(VolumeRecord spec, int upNodes);
  // Changes the policy of the volume named spec.name (or with spec.id when the
  // name is empty). Same validation as create; the node count is only checked
  // when k or m change.
  Result<VolumeRecord> update(VolumeRecord spec, int upNodes);
  std::vector<VolumeRecord> list();
  // NOT_FOUND "no such volume 'x'".
  Result<VolumeRecord> find(const std::string& name);
  Result<VolumeRecord> byId(uint32_t id);
  // Creates the volume `name` with default settings when no volume exists at all.
  Status ensureDefault(const std::string& name);

 private:
  MetaStore& store_;
};

}  // namespace dfs::meta
