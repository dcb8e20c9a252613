#include "backend/client/storage_pool.h"

// GCC 12 reports false "maybe-uninitialized" inside kj::_::ExceptionOr<T>.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <spdlog/spdlog.h>

#include <map>

#include "backend/client/proto_convert.h"
#include "backend/common/clock.h"
#include "backend/common/rpc.h"

namespace dfs {

namespace {
constexpr int64_t kConnectTimeoutMs = 3000;
constexpr int64_t kRefusedRetryMs = 1000;
constexpr int64_t kGetTimeoutMs = 10000;
}  // namespace

class StoragePool::Pool {
 public:
  Pool(RpcLoop& loop, int64_t opTimeoutMs) : loop_(loop), opTimeoutMs_(opTimeoutMs) {}

  kj::Promise<proto::Storage::Client> get(const std::string& address) {
    Node& node = nodes_[address];
    KJ_IF_MAYBE(storage, node.storage) { return *storage; }
    KJ_IF_MAYBE(connecting, node.connecting) {
      return connecting->addBranch().then([this, address]() { return get(address); });
    }
    if (monotonicNs() < node.retryAfterNs) {
      return KJ_EXCEPTION(DISCONNECTED, "storage node recently unreachable", address.c_str());
    }
    auto attempt =
        loop_.timer()
            .timeoutAfter(kConnectTimeoutMs * kj::MILLISECONDS,
                          connectRpc(loop_.network(), address.c_str())
                              .then([](kj::Own<RpcConnection> rpc) {
                                auto hello = rpc->bootstrapAs<proto::StorageGateway>().helloRequest();
                                hello.setVersion(proto::PROTOCOL_VERSION);
                                hello.setPeer("dfs-fuse");
                                return hello.send().then(
                                    [rpc = kj::mv(rpc)](auto r) mutable {
                                      return std::make_pair(kj::mv(rpc), r.getStorage());
                                    });
                              }))
            .then(
                [this, address](std::pair<kj::Own<RpcConnection>, proto::Storage::Client> c) {
                  Node& node = nodes_[address];
                  node.connecting = nullptr;
                  uint64_t generation = ++generation_;
                  node.generation = generation;
                  node.watch = c.first->onDisconnect().then(
                      [this, address, generation]() { broken(address, generation); },
                      [this, address, generation](kj::Exception&&) { broken(address, generation); });
                  node.rpc = kj::mv(c.first);
                  node.storage = kj::mv(c.second);
                  if (node.reportedDown) spdlog::info("storage {}: connected", address);
                  node.reportedDown = false;
                },
                [this, address](kj::Exception&& e) {
                  Node& node = nodes_[address];
                  node.connecting = nullptr;
                  node.retryAfterNs = monotonicNs() + kRefusedRetryMs * 1000000;
                  if (!node.reportedDown) {
                    spdlog::warn("storage {}: cannot connect: {}", address, e.getDescription().cStr());
                    node.reportedDown = true;
                  }
                  kj::throwFatalException(kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__,
                                                        __LINE__, kj::str(e.getDescription())));
                });
    node.connecting = attempt.fork();
    return KJ_ASSERT_NONNULL(node.connecting).addBranch().then([this, address]() {
      return get(address);
    });
  }

  // Drops a connection after an error on it.
  void broken(const std::string& address, uint64_t generation) {
    auto it = nodes_.find(address);
    if (it == nodes_.end() || it->second.generation != generation) return;
    Node& node = it->second;
    if (node.storage == nullptr) return;
    spdlog::warn("storage {}: connection lost", address);
    node.reportedDown = true;
    auto rpc = kj::mv(node.rpc);
    auto watch = kj::mv(node.watch);
    node.storage = nullptr;
    node.generation = 0;
    loop_.addTask(kj::evalLater([rpc = kj::mv(rpc), watch = kj::mv(watch)]() mutable {
      watch = nullptr;
      rpc = nullptr;
    }));
  }

  void brokenOnError(const std::string& address, const kj::Exception& e) {
    if (e.getType() != kj::Exception::Type::DISCONNECTED) return;
    auto it = nodes_.find(address);
    if (it != nodes_.end()) broken(address, it->second.generation);
  }

  kj::Promise<PutOutcome> put(std::vector<FragmentPut>& fragments) {
    std::map<std::string, std::vector<const FragmentPut*>> byAddress;
    for (const auto& f : fragments) byAddress[f.address].push_back(&f);
    auto outcome = kj::heap<PutOutcome>();
    PutOutcome* out = outcome.get();
    kj::Vector<kj::Promise<void>> calls;
    for (auto& [address, list] : byAddress) {
      uint32_t nodeId = list.front()->node;
      std::string addr = address;
      auto call = get(addr).then([list = list](proto::Storage::Client storage) {
        auto req = storage.putRequest();
        auto out = req.initFragments(list.size());
        for (size_t i = 0; i < list.size(); ++i) {
          out[i].setId(asData(list[i]->id));
          out[i].setData(asData(*list[i]->data));
          out[i].setChecksum(list[i]->checksum);
        }
        return req.send().then([](auto r) { return fromProto(r.getStatus()); });
      });
      calls.add(loop_.timer()
                    .timeoutAfter(opTimeoutMs_ * kj::MILLISECONDS, kj::mv(call))
                    .then(
                        [out, nodeId, addr](Status status) {
                          if (status.ok()) return;
                          spdlog::warn("storage {}: put failed: {} {}", addr, codeName(status.code),
                                       status.message);
                          if (out->status.ok() || status.code == Code::NO_SPACE) out->status = status;
                          out->failedNodes.push_back(nodeId);
                        },
                        [this, out, nodeId, addr](kj::Exception&& e) {
                          brokenOnError(addr, e);
                          spdlog::warn("storage {}: put failed: {}", addr, e.getDescription().cStr());
                          if (out->status.ok()) {
                            out->status = Status::error(Code::IO, "storage node " + addr +
                                                                      " failed: " +
                                                                      e.getDescription().cStr());
                          }
                          out->failedNodes.push_back(nodeId);
                        }));
    }
    return kj::joinPromises(calls.releaseAsArray()).then([outcome = kj::mv(outcome)]() mutable {
      return kj::mv(*outcome);
    });
  }

  struct FetchState {
    const FetchRequest* request;
    FetchResult* result;
    size_t next = 0;
  };

  kj::Promise<void> fetchSlot(FetchState& state) {
    const FetchRequest& request = *state.request;
    while (state.next < request.order.size()) {
      int index = request.order[state.next++];
      if (index < 0 || size_t(index) >= request.addresses.size() ||
          request.addresses[index].empty()) {
        continue;
      }
      std::string address = request.addresses[index];
      std::string id(reinterpret_cast<const char*>(request.chunk.data()), request.chunk.size());
      id.push_back(char(index));
      auto call = get(address).then([id = kj::mv(id)](proto::Storage::Client storage) {
        auto req = storage.getRequest();
        req.setId(asData(id));
        return req.send().then([](auto r) -> std::optional<std::string> {
          if (r.getStatus().getCode() != Code::OK) return std::nullopt;
          return toString(r.getFragment().getData());
        });
      });
      int64_t timeoutMs = std::min(opTimeoutMs_, kGetTimeoutMs);
      return loop_.timer()
          .timeoutAfter(timeoutMs * kj::MILLISECONDS, kj::mv(call))
          .then(
              [this, &state, index](std::optional<std::string> data) -> kj::Promise<void> {
                if (data) {
                  state.result->fragments[index] = kj::mv(*data);
                  return kj::READY_NOW;
                }
                ++state.result->failures;
                return fetchSlot(state);
              },
              [this, &state, address](kj::Exception&& e) -> kj::Promise<void> {
                brokenOnError(address, e);
                spdlog::debug("storage {}: get failed: {}", address, e.getDescription().cStr());
                ++state.result->failures;
                return fetchSlot(state);
              });
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> fetch(const std::vector<FetchRequest>& requests,
                          std::vector<FetchResult>& results, std::vector<FetchState>& states) {
    kj::Vector<kj::Promise<void>> slots;
    for (size_t i = 0; i < requests.size(); ++i) {
      results[i].fragments.resize(requests[i].addresses.size());
      states[i].request = &requests[i];
      states[i].result = &results[i];
      for (int s = 0; s < requests[i].need; ++s) slots.add(fetchSlot(states[i]));
    }
    return kj::joinPromises(slots.releaseAsArray());
  }

 private:
  struct Node {
    kj::Own<RpcConnection> rpc;
    kj::Maybe<proto::Storage::Client> storage;
    kj::Maybe<kj::ForkedPromise<void>> connecting;
    kj::Promise<void> watch = nullptr;
    int64_t retryAfterNs = 0;
    uint64_t generation = 0;
    bool reportedDown = false;
  };

  RpcLoop& loop_;
  const int64_t opTimeoutMs_;
  std::map<std::string, Node> nodes_;
  uint64_t generation_ = 0;
};

StoragePool::StoragePool(RpcLoop& loop, int64_t opTimeoutMs) : loop_(loop) {
  loop_.run([&]() { pool_ = std::make_unique<Pool>(loop_, opTimeoutMs); });
}

StoragePool::~StoragePool() {
  loop_.run([this]() { pool_.reset(); });
}

std::future<PutOutcome> StoragePool::put(std::vector<FragmentPut> fragments) {
  auto promise = std::make_shared<std::promise<PutOutcome>>();
  auto future = promise->get_future();
  auto owned = std::make_shared<std::vector<FragmentPut>>(std::move(fragments));
  try {
    loop_.run([this, promise, owned]() {
      loop_.addTask(pool_->put(*owned).then(
          [promise, owned](PutOutcome outcome) { promise->set_value(std::move(outcome)); },
          [promise, owned](kj::Exception&& e) {
            promise->set_value(PutOutcome{
                Status::error(Code::IO, std::string("put: ") + e.getDescription().cStr()), {}});
          }));
    });
  } catch (const kj::Exception& e) {
    std::promise<PutOutcome> failed;
    failed.set_value(PutOutcome{Status::error(Code::IO, "client is shutting down"), {}});
    return failed.get_future();
  }
  return future;
}

std::vector<FetchResult> StoragePool::fetch(const std::vector<FetchRequest>& requests) {
  std::vector<FetchResult> results(requests.size());
  std::vector<Pool::FetchState> states(requests.size());
  try {
    loop_.run([&]() { return pool_->fetch(requests, results, states); });
  } catch (const kj::Exception& e) {
    spdlog::error("storage: fetch failed: {}", e.getDescription().cStr());
  }
  return results;
}


}  // namespace dfs
