// The client core as one object: the RPC thread, the metadata client, the
// storage connections and the data path, wired together and torn down in the
// right order. Knows nothing of FUSE; dfs-fuse, dfsctl and dfs-bench use it.
//
// Threads: start()/stop() from the owning thread; meta()/data() from any thread
// (see MetaClient and DataPath).
#pragma once

#include <functional>
#include <memory>
#include <mutex>

#include "backend/client/absorber.h"
#include "backend/client/data_path.h"
#include "backend/client/flush_requests.h"
#include "backend/client/invalidation_queue.h"
#include "backend/client/journal.h"
#include "backend/client/meta_client.h"
#include "backend/client/rpc_loop.h"
#include "backend/client/storage_pool.h"

namespace dfs {

struct ClientOptions {
  MetaClientOptions meta;
  DataPathOptions data;
  // Write-back journal directory (dfs-fuse); empty: no journal (dfsctl, dfs-bench).
  std::string cacheDir;
  // Absorb namespace changes inside directories this mount creates (Absorber;
  // needs the journal and the metadata cache).
  bool absorb = true;
};

class Client {
 public:
  explicit Client(ClientOptions options);
  ~Client();

  // Connects to dfs-meta and mounts the volume (fails with the server's reason);
  // with a cache directory, opens the journal and replays what a crashed
  // instance left there (fails, keeping it, when that cannot be done).
  Status start();
  // Commits every buffered byte and ends the session; the journal is deleted
  // once nothing in it is uncommitted.
  Status stop();

  MetaClient& meta() { return *meta_; }
  Journal* journal() { return journal_.get(); }
  Absorber* absorber() { return absorber_.get(); }
  DataPath& data() { return *data_; }

  // Where invalidations go after the core dropped its own caches (dfs-fuse:
  // the kernel's caches). Runs on the invalidation thread, never on the RPC
  // thread or inside a caller's operation. Null: none. Returns once no call of
  // the previous sink runs.
  void setInvalidationSink(InvalidationQueue::Handler sink);
  uint64_t invalidationsReceived() const { return invalidations_->received(); }

 private:
  // Declaration order is destruction order in reverse: the data path stops
  // before the connections, the connections before the loop thread.
  std::unique_ptr<InvalidationQueue> invalidations_;  // outlives the RPC thread's pushes
  std::unique_ptr<FlushRequests> flushRequests_;      // likewise
  std::unique_ptr<RpcLoop> loop_;
  std::unique_ptr<MetaClient> meta_;
  std::unique_ptr<StoragePool> storage_;
  std::unique_ptr<Journal> journal_;  // outlives the data path that appends to it
  std::unique_ptr<DataPath> data_;
  // Absorbed namespace changes (with a journal and the metadata cache only);
  // stopped before the data path and the connections.
  std::unique_ptr<Absorber> absorber_;
  std::string cacheDir_;
  bool absorb_ = true;
  bool stopped_ = false;
};

}  // namespace dfs
