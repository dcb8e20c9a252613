// Reading whole chunks from the storage nodes: the request for a chunk's
// fragments (those on up nodes first, data before parity), and the fetch of a
// batch of chunks with the second round a chunk needs when its first k
// fragments do not decode (a node down, a fragment missing or corrupt): every
// fragment not yet tried, corrupt ones excluded. Used by the client's read path
// (DataPath) and by `dfsctl tier`.
//
// Threads: any (StoragePool::fetch is thread-safe).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/client/storage_pool.h"
#include "backend/client/types.h"
#include "backend/common/status.h"

namespace dfs {

struct NodeAddress {
  std::string address;
  bool up = false;
};
// Storage nodes by id, from the cluster map.
using NodeDirectory = std::unordered_map<uint32_t, NodeAddress>;

// Asks for `need` fragments of `c`, none of those in `skip` (k+m flags).
FetchRequest fragmentRequest(const ChunkPlacement& c, const NodeDirectory& nodes,
                             const std::vector<bool>& skip, int need);

struct ChunkRead {
  Result<std::string> plain = Status::error(Code::IO, "not read");  // verified plaintext
  int failedGets = 0;        // fragment gets that failed or timed out
  int corrupt = 0;           // fragments that arrived but failed their checks
  uint64_t bytesIn = 0;      // fragment bytes received
};

// Fetches and decodes every chunk (in parallel, one StoragePool::fetch per round).
std::vector<ChunkRead> readChunks(StoragePool& pool,
                                  const std::vector<const ChunkPlacement*>& chunks,
                                  const NodeDirectory& nodes);

}  // namespace dfs
