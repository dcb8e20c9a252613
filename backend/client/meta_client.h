// Synchronous, thread-safe access to the metadata node (dfs-meta).
//
// Every method blocks the calling thread (a FUSE worker) while the RPC runs on the
// RpcLoop thread. Every call has a deadline (op timeout, default 15 s). When the
// connection breaks, the client reconnects with exponential backoff (100 ms .. 2 s)
// and mounts a new session; idempotent calls are retried until the deadline,
// non-idempotent ones only if they were not sent yet. A call that cannot complete
// in time returns Code::IO and logs why: the mount never hangs and never crashes.
//
// Threads: every public method may be called from any thread except the RpcLoop
// thread. Lock order: MetaClient::mu_ is a leaf; it is never held across run().
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/client/invalidation_queue.h"
#include "backend/client/meta_cache.h"
#include "backend/client/rpc_loop.h"
#include "backend/client/types.h"
#include "backend/common/hybrid_clock.h"
#include "backend/common/status.h"
#include "protocol/dfs.capnp.h"

namespace dfs {

struct MetaClientOptions {
  std::string address;     // host:port of dfs-meta
  std::string volume;      // volume to mount
  std::string clientName;  // shown in the server's logs
  int64_t opTimeoutMs = 15000;
  // This client instance's id (OpId.client, journal id); 0: a random one.
  uint64_t clientId = 0;
  // Invalidations from the metadata node (changes by other clients). Called on
  // the RpcLoop thread: it must only enqueue. Null: the mount asks for none.
  std::function<void(InvalidationBatch)> onInvalidate;
  // Flush requests from the metadata node (ClientCallback.flush). Called on the
  // RpcLoop thread: it must not block; the promise resolves once flushed.
  std::function<kj::Promise<void>(std::vector<uint64_t>)> onFlush;
  // How long attributes and absent xattrs are answered from MetaCache (the
  // mount's attr_timeout); 0: never. Only with onInvalidate (the cache must hear
  // of other clients' changes).
  int64_t cacheTtlNs = 0;
};

class Absorber;

// The arguments of one commitWrite (MetaClient::commitWrites).
struct CommitArgs {
  uint64_t ino = 0;
  std::vector<Extent> extents;
  std::vector<ChunkPlacement> newChunks;
  uint64_t newSize = 0;
  bool setSize = false;
  int64_t mtimeNs = 0;
  uint64_t baseVersion = 0;
  uint64_t journalSeq = 0;
  const SetAttrRequest* attrs = nullptr;  // deferred attribute changes (null: none)
  const Caller* caller = nullptr;
};

class MetaClient {
 public:
  MetaClient(RpcLoop& loop, MetaClientOptions options);
  ~MetaClient();
  MetaClient(const MetaClient&) = delete;
  MetaClient& operator=(const MetaClient&) = delete;

  // Connects, checks the protocol version and mounts the volume. Returns the
  // server's status when the mount is refused (NOT_FOUND: no such volume), IO
  // when dfs-meta cannot be reached within the op timeout.
  Status start();
  // Ends the session (best effort, short timeout).
  void stop();

  VolumeInfo volume() const;
  int64_t opTimeoutMs() const { return options_.opTimeoutMs; }

  Result<Attr> lookup(uint64_t parent, std::string_view name);
  Result<Attr> getattr(uint64_t ino);
  // getattr answered from MetaCache when it holds the inode (the kernel's
  // getattr); getattr() always asks dfs-meta.
  Result<Attr> getattrCached(uint64_t ino);
  Result<Attr> setattr(uint64_t ino, const SetAttrRequest& set, const Caller& caller);
  Result<Attr> mknod(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                     const Caller& caller);
  Result<Attr> mkdir(uint64_t parent, std::string_view name, uint32_t mode, const Caller& caller);
  Result<Attr> symlink(uint64_t parent, std::string_view name, std::string_view target,
                       const Caller& caller);
  Result<std::string> readlink(uint64_t ino);
  Result<Attr> link(uint64_t ino, uint64_t newParent, std::string_view newName);
  Status unlink(uint64_t parent, std::string_view name, const Caller& caller);
  Status rmdir(uint64_t parent, std::string_view name, const Caller& caller);
  Status rename(uint64_t parent, std::string_view name, uint64_t newParent,
                std::string_view newName, uint32_t flags, const Caller& caller);
  // `write`: opened for writing (dfs-meta then asks this mount to commit before
  // another client's open of the file).
  Result<Attr> open(uint64_t ino, bool truncate, bool write = false);
  Result<Attr> create(uint64_t parent, std::string_view name, uint32_t mode, bool exclusive,
                      const Caller& caller);
  Status release(uint64_t ino);
  // release without waiting for the reply (close(2) does not wait for it): sent
  // on the RPC thread in order with the calls that follow; failures are logged.
  void releaseAsync(uint64_t ino);
  Result<DirPage> readdir(uint64_t ino, std::string_view after, uint32_t max, bool plus);
  Result<FsStats> statfs();
  Status setxattr(uint64_t ino, std::string_view name, std::string_view value, uint32_t flags);
  Result<std::string> getxattr(uint64_t ino, std::string_view name);
  Result<std::vector<std::string>> listxattr(uint64_t ino);
  Status removexattr(uint64_t ino, std::string_view name);

  Result<ExtentMap> getExtents(uint64_t ino, uint64_t offset, uint64_t length);
  Result<std::vector<bool>> findChunks(const std::vector<ChunkId>& ids);
  // On MISSING_CHUNKS, result.status says so and result.missing lists the chunks.
  // `baseVersion`: the file's dataVersion the written bytes were based on (0:
  // unknown); the commit carries a fresh timestamp of hlc() (concurrent writers
  // resolve last-writer-wins by it) and the reply's server HLC is merged back.
  // `attrs` (null: none): deferred attribute changes applied by `caller` in the
  // same transaction (DataPath::absorbSetattr).
  CommitResult commitWrite(uint64_t ino, const std::vector<Extent>& extents,
                           const std::vector<ChunkPlacement>& newChunks, uint64_t newSize,
                           bool setSize, int64_t mtimeNs, uint64_t baseVersion = 0,
                           uint64_t journalSeq = 0, const SetAttrRequest* attrs = nullptr,
                           const Caller* caller = nullptr);
  // Several commitWrite calls sent together (pipelined on one connection, so
  // dfs-meta applies them in one group commit): one result per entry, in order.
  std::vector<CommitResult> commitWrites(const std::vector<CommitArgs>& commits);
  // Journal replay: the highest journalSeq committed per inode under `journal`.
  Result<std::vector<uint64_t>> journalApplied(uint64_t journal, const std::vector<uint64_t>& inodes);
  // Drops what the metadata node keeps for the client id `journal`.
  Status forgetJournal(uint64_t journal);
  // Returns once everything acknowledged is on the metadata node's disk.
  Status sync();
  // Absorbed namespace operations (Absorber): `count` fresh inode numbers
  // (first, count); one batch of NamespaceOp messages applied in order.
  Result<std::pair<uint64_t, uint32_t>> reserveInodes(uint32_t count);
  Result<std::vector<Status>> applyOps(const std::vector<std::string>& ops);
  // From now on, changes inside directories delegated to this mount are
  // absorbed, and every other call first waits for what was absorbed (null: off).
  void setAbsorber(Absorber* absorber) { absorber_.store(absorber); }
  // `dir` is delegated to this mount now: nobody else changes its names
  // without a recall first, so the kernel may keep them longer.
  bool delegated(uint64_t dir) { return absorbing(dir) != nullptr; }
  // Asks the kernel (through the mount's invalidation sink) to drop these names.
  void invalidateEntries(std::vector<std::pair<uint64_t, std::string>> entries);
  uint64_t clientId() const { return clientId_; }
  const MetaCache& cache() const { return cache_; }
  Result<ClusterMap> clusterMap();

  class Connection;  // loop-thread state; defined in meta_client.cc
  // Called by the connection when a (new) session is mounted.
  void setVolume(VolumeInfo volume);

 private:
  friend class Absorber;  // OpIds, the cache
  template <typename T, typename Fn>
  Result<T> call(const char* what, bool idempotent, Fn&& fn);
  // The absorber when `dir` is delegated to this mount, else null; before a
  // change made synchronously inside it, the absorber gives the directory up.
  Absorber* absorbing(uint64_t dir);
  void giveUp(std::initializer_list<uint64_t> dirs);
  // A non-idempotent call made exactly-once with an OpId: fn(Session&, seq).
  template <typename T, typename Fn>
  Result<T> callOnce(const char* what, Fn&& fn);
  uint64_t beginOp();
  void endOp(uint64_t seq);
  void setOp(proto::OpId::Builder op, uint64_t seq);

  // The caller's options with onInvalidate wrapped to drop cache_ entries first.
  MetaClientOptions withCacheInvalidation(MetaClientOptions options);
  // After a reply carrying `attr`: `parent` (0: none) changed too. A non-empty
  // `name`: the reply is of a new inode made as parent/name.
  void cacheReply(const Result<Attr>& attr, uint64_t ticket, uint64_t parent = 0,
                  std::string_view name = {});

  // After unlink/rmdir (newParent 0) or rename of parent/name with `status`.
  void nameChanged(const Status& status, uint64_t parent, std::string_view name,
                   uint64_t newParent = 0, std::string_view newName = {});

  RpcLoop& loop_;
  MetaCache cache_;
  const MetaClientOptions options_;
  HybridClock hlc_;
  std::unique_ptr<Connection> connection_;  // used and destroyed on the loop thread only
  mutable std::mutex mu_;
  VolumeInfo volume_;  // guarded by mu_
  const uint64_t clientId_;
  std::mutex opsMu_;   // leaf
  uint64_t nextOp_ = 1;              // guarded by opsMu_
  std::set<uint64_t> outstanding_;   // seqs of calls without a reply yet; opsMu_
  std::atomic<Absorber*> absorber_{nullptr};
};

}  // namespace dfs
