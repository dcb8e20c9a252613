// The storage node's Cap'n Proto servers (protocol/dfs.capnp: StorageGateway,
// Storage). Every request is validated before it reaches the store; expected
// failures are Status values in the results, exceptions only for a wrong protocol
// version and bugs.
// Thread: created, called and destroyed on the event-loop thread. Reads (get,
// getMany, list, info) run on that thread against the store's committed state;
// writes (put, delete) go to the StoreWriter thread so fdatasync never stalls the
// loop.
#pragma once

#include <cstddef>
#include <string>

#include "backend/common/metrics.h"
#include "backend/storage/extent_store.h"
#include "backend/storage/store_writer.h"
#include "protocol/dfs.capnp.h"

namespace dfs {

constexpr size_t kMaxFragmentBytes = 16u << 20;  // the largest fragment a node accepts
constexpr uint32_t kMaxListIds = 10000;          // ids per list() reply at most
constexpr size_t kMaxIdsPerCall = 100000;        // ids per put()/delete() at most
// getMany() bounds (protocol/dfs.capnp): a request above either is refused as invalid,
// so a reply stays well inside the peer's 64 MiB message traversal limit.
constexpr size_t kMaxGetManyIds = 1024;
constexpr uint64_t kMaxGetManyBytes = 32u << 20;

class StorageImpl final : public proto::Storage::Server {
 public:
  StorageImpl(ExtentStore& store, StoreWriter& writer, std::string uuid);

 protected:
  kj::Promise<void> put(PutContext context) override;
  kj::Promise<void> get(GetContext context) override;
  kj::Promise<void> getMany(GetManyContext context) override;
  kj::Promise<void> delete_(DeleteContext context) override;
  kj::Promise<void> list(ListContext context) override;
  kj::Promise<void> info(InfoContext context) override;

 private:
  // Per-operation telemetry in the process registry (docs: backend/storage/README.md).
  struct OpMetrics {
    Counter& requests;
    Counter& failures;  // calls whose status was not ok
    Histogram& seconds;
  };
  OpMetrics opMetrics(const std::string& op);

  ExtentStore& store_;
  StoreWriter& writer_;
  const std::string uuid_;
  OpMetrics putMetrics_, getMetrics_, getManyMetrics_, deleteMetrics_, listMetrics_;
  Counter& bytesWritten_;
  Counter& bytesRead_;
};

class StorageGatewayImpl final : public proto::StorageGateway::Server {
 public:
  explicit StorageGatewayImpl(proto::Storage::Client storage);

 protected:
  // Throws "unsupported protocol version N (this node speaks 1)" for any other
  // version; the connection and the node keep serving.
  kj::Promise<void> hello(HelloContext context) override;

 private:
  proto::Storage::Client storage_;
};

}  // namespace dfs
