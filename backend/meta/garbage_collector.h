// Garbage collection of chunk fragments on storage nodes.
//
// Phase 1: chunk records whose refcount has been 0 for longer than the grace
// period are deleted in small write transactions (statistics updated with them),
// then their fragments are deleted on the storage nodes named in the records.
// Phase 2 (orphans, e.g. a client killed between upload and commit): every up
// node lists the fragments it stored before now - grace; those whose chunk is
// unknown, or whose (node, index) is not the chunk's placement, are deleted.
//
// The race "a chunk is collected between findChunks and commitWrite" is closed
// by the metadata transactions: once the record is gone, a commit that
// references the chunk without re-offering it fails with MISSING_CHUNKS and the
// client re-uploads. Re-uploading while the fragments are still being deleted
// would be lost (a put of an existing fragment is a no-op), so ids whose
// deletion is in flight are reported by deleting(), and the service delays its
// findChunks and commitWrite answers about them until whenIdle() resolves.
//
// Thread: the metadata node's event-loop thread; a run yields to the event loop
// between LMDB batches and while waiting on storage nodes.
#pragma once

#include <kj/async-io.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "backend/common/rpc.h"
#include "backend/meta/cluster_map.h"
#include "backend/meta/meta_store.h"

namespace dfs::meta {

struct GcResult {
  uint64_t chunksDeleted = 0;
  uint64_t fragmentsDeleted = 0;
  uint64_t orphanFragmentsDeleted = 0;
  uint64_t bytesFreed = 0;
};

class GarbageCollector {
 public:
  // `network` and `timer` may be null (tests): records are collected, no storage
  // node is asked.
  GarbageCollector(MetaStore& store, ClusterMap& cluster, kj::Network* network, kj::Timer* timer);

  // One collection; BUSY when another run is in progress.
  kj::Promise<Result<GcResult>> run(int64_t graceNs);
  bool running() const { return running_; }
  bool deleting(const std::string& chunkId) const { return deleting_.count(chunkId) != 0; }
  // Resolves once no fragment deletion of phase 1 is in flight.
  kj::Promise<void> whenIdle();

 private:
  kj::Promise<void> collectRecords(int64_t zeroBeforeNs, std::string after);
  kj::Promise<void> deleteFragments();
  kj::Promise<void> collectOrphans(int64_t beforeNs);
  kj::Promise<void> scanNode(uint32_t nodeId, std::string after, int64_t beforeNs);
  kj::Promise<proto::Storage::Client> storage(uint32_t nodeId);
  kj::Promise<uint32_t> deleteOn(uint32_t nodeId, std::vector<std::string> fragmentIds);
  void finishPhaseOne();

  MetaStore& store_;
  ClusterMap& cluster_;
  kj::Network* network_;
  kj::Timer* timer_;
  bool running_ = false;
  GcResult result_;
  std::map<uint32_t, std::vector<std::string>> pending_;  // node -> fragment ids to delete
  std::set<std::string> deleting_;
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> idleFulfiller_;
  kj::Maybe<kj::ForkedPromise<void>> idle_;
  // Connections opened during one run, dropped at its end.
  std::vector<kj::Own<RpcConnection>> connections_;
  std::map<uint32_t, proto::Storage::Client> clients_;
};

}  // namespace dfs::meta
