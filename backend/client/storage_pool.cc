#include "backend/client/storage_pool.h"

// GCC 12 reports false "maybe-uninitialized" inside kj::_::ExceptionOr<T>.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <spdlog/spdlog.h>

#include <map>

#include "backend/client/proto_convert.h"
#include "backend/common/chunk_codec.h"
#include "backend/common/clock.h"
#include "backend/common/rpc.h"

namespace dfs {

namespace {
constexpr int64_t kConnectTimeoutMs = 3000;
constexpr int64_t kRefusedRetryMs = 1000;
constexpr int64_t kGetTimeoutMs = 10000;
// Fragments per getMany call: well under the node's limits (1,024 ids, 32 MiB) for
// fragments up to 512 KiB; a batch the node refuses is asked for in halves.
constexpr size_t kGetManyBatch = 64;
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
                  node.getManyUnsupported = false;  // it may have been upgraded
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
      // The connection the request went out on (0: not sent).
      auto sentOn = std::make_shared<uint64_t>(0);
      auto call = get(addr).then([this, addr, list = list, sentOn](proto::Storage::Client storage) {
        auto req = storage.putRequest();
        auto out = req.initFragments(list.size());
        for (size_t i = 0; i < list.size(); ++i) {
          out[i].setId(asData(list[i]->id));
          // Zero-copy: the message points at the fragment (see FragmentPut::owner).
          // Cap'n Proto writes whole words, so an external segment must be a
          // multiple of 8 bytes (encoded fragments always are); others are copied.
          if (list[i]->data->size() % sizeof(capnp::word) == 0) {
            auto orphanage = capnp::Orphanage::getForMessageContaining(out[i]);
            out[i].adoptData(orphanage.referenceExternalData(asData(*list[i]->data)));
          } else {
            out[i].setData(asData(*list[i]->data));
          }
          out[i].setChecksum(list[i]->checksum);
        }
        *sentOn = nodes_[addr].generation;
        return req.send().then([](auto r) { return fromProto(r.getStatus()); });
      });
      std::vector<std::shared_ptr<const void>> owners;
      for (const FragmentPut* f : list) {
        if (f->owner && (owners.empty() || owners.back() != f->owner)) owners.push_back(f->owner);
      }
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
                        [this, out, nodeId, addr, sentOn,
                         owners = kj::mv(owners)](kj::Exception&& e) mutable {
                          brokenOnError(addr, e);
                          if (*sentOn != 0) {
                            // No answer: the request may still sit in the connection's
                            // write queue, pointing at the fragments. Drop the
                            // connection (its destruction is queued first) and only
                            // then let the fragments go.
                            broken(addr, *sentOn);
                            loop_.addTask(kj::evalLater([owners = kj::mv(owners)]() {}));
                          }
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
    size_t next = 0;  // into request->order: the next candidate to try
  };
  // One fragment to get: index `index` of `state`'s chunk.
  struct Want {
    FetchState* state;
    int index;
  };
  // Per fragment of a batch: its bytes, or nullopt when the node did not give them.
  using Answers = std::vector<std::optional<std::string>>;

  // Adds the next candidate fragment of `state` to `wants`; false when none is left.
  static bool pickNext(FetchState& state, std::vector<Want>& wants) {
    const FetchRequest& request = *state.request;
    while (state.next < request.order.size()) {
      int index = request.order[state.next++];
      if (index < 0 || size_t(index) >= request.addresses.size() ||
          request.addresses[index].empty()) {
        continue;
      }
      wants.push_back(Want{&state, index});
      return true;
    }
    return false;
  }

  // Gets `wants`: one getMany per node and batch of at most kGetManyBatch. A fragment
  // that fails is counted and replaced by the chunk's next candidate, which is sent
  // right away (with the other replacements of the same answer).
  kj::Promise<void> send(std::vector<Want> wants) {
    std::map<std::string, std::vector<Want>> byAddress;
    for (const Want& w : wants) byAddress[w.state->request->addresses[w.index]].push_back(w);
    kj::Vector<kj::Promise<void>> calls;
    for (auto& [address, list] : byAddress) {
      for (size_t from = 0; from < list.size(); from += kGetManyBatch) {
        size_t to = std::min(list.size(), from + kGetManyBatch);
        calls.add(getBatch(address, std::vector<Want>(list.begin() + from, list.begin() + to)));
      }
    }
    return kj::joinPromises(calls.releaseAsArray());
  }

  kj::Promise<void> getBatch(const std::string& address, std::vector<Want> batch) {
    std::vector<std::string> ids;
    ids.reserve(batch.size());
    for (const Want& w : batch) {
      ids.push_back(fragmentId(w.state->request->chunk, uint8_t(w.index),
                               w.state->request->generation));
    }
    auto call = get(address).then([this, address, ids = kj::mv(ids)](
                                      proto::Storage::Client storage) mutable {
      return getMany(kj::mv(storage), address, kj::mv(ids));
    });
    int64_t timeoutMs = std::min(opTimeoutMs_, kGetTimeoutMs);
    auto shared = std::make_shared<std::vector<Want>>(kj::mv(batch));
    return loop_.timer()
        .timeoutAfter(timeoutMs * kj::MILLISECONDS, kj::mv(call))
        .then(
            [this, shared](Answers answers) { return settle(*shared, kj::mv(answers)); },
            [this, shared, address](kj::Exception&& e) {
              brokenOnError(address, e);
              spdlog::debug("storage {}: get of {} fragment(s) failed: {}", address, shared->size(),
                            e.getDescription().cStr());
              return settle(*shared, Answers(shared->size()));
            });
  }

  // Stores the fragments that arrived; counts the others and sends their replacements.
  kj::Promise<void> settle(const std::vector<Want>& batch, Answers answers) {
    std::vector<Want> retry;
    for (size_t i = 0; i < batch.size(); ++i) {
      const Want& w = batch[i];
      if (i < answers.size() && answers[i]) {
        w.state->result->fragments[w.index] = kj::mv(*answers[i]);
        continue;
      }
      ++w.state->result->failures;
      pickNext(*w.state, retry);
    }
    if (retry.empty()) return kj::READY_NOW;
    return send(kj::mv(retry));
  }

  // One getMany call; one get per id on a node that does not know getMany (an
  // older dfs-storage).
  kj::Promise<Answers> getMany(proto::Storage::Client storage, const std::string& address,
                               std::vector<std::string> ids) {
    auto it = nodes_.find(address);
    if (it != nodes_.end() && it->second.getManyUnsupported) return getEach(kj::mv(storage), address, ids);
    uint64_t generation = it == nodes_.end() ? 0 : it->second.generation;
    auto request = storage.getManyRequest();
    auto list = request.initIds(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) list.set(i, asData(ids[i]));
    auto shared = std::make_shared<std::vector<std::string>>(kj::mv(ids));
    return request.send().then(
        [this, storage, address, shared](auto response) mutable -> kj::Promise<Answers> {
          const auto& ids = *shared;
          if (response.getStatus().getCode() != Code::OK) {
            // Refused: more bytes than the node answers in one call (fragments of
            // very large chunks). Ask for each half; a single id goes by get.
            spdlog::debug("storage {}: getMany of {} ids refused ({})", address, ids.size(),
                          response.getStatus().getMessage().cStr());
            if (ids.size() == 1) return getEach(kj::mv(storage), address, ids);
            size_t half = ids.size() / 2;
            auto halves = kj::heapArrayBuilder<kj::Promise<Answers>>(2);
            halves.add(getMany(storage, address, {ids.begin(), ids.begin() + half}));
            halves.add(getMany(storage, address, {ids.begin() + half, ids.end()}));
            return kj::joinPromises(halves.finish()).then([](kj::Array<Answers> parts) {
              Answers answers = kj::mv(parts[0]);
              for (auto& a : parts[1]) answers.push_back(kj::mv(a));
              return answers;
            });
          }
          auto results = response.getResults();
          Answers answers(ids.size());
          if (results.size() != ids.size()) {
            spdlog::warn("storage {}: getMany answered {} results for {} ids", address,
                         results.size(), ids.size());
            return kj::mv(answers);
          }
          for (size_t i = 0; i < ids.size(); ++i) {
            auto result = results[i];
            if (result.getStatus().getCode() != Code::OK) continue;
            auto fragment = result.getFragment();
            if (toString(fragment.getId()) != ids[i]) continue;
            answers[i] = toString(fragment.getData());
          }
          return kj::mv(answers);
        },
        [this, storage, address, shared, generation](kj::Exception&& e) mutable -> kj::Promise<Answers> {
          if (e.getType() != kj::Exception::Type::UNIMPLEMENTED) return kj::mv(e);
          auto it = nodes_.find(address);
          if (it != nodes_.end() && it->second.generation == generation) {
            it->second.getManyUnsupported = true;  // until the next connection
          }
          spdlog::info("storage {}: no getMany (older dfs-storage); using get per fragment", address);
          return getEach(kj::mv(storage), address, *shared);
        });
  }

  kj::Promise<Answers> getEach(proto::Storage::Client storage, const std::string& address,
                               const std::vector<std::string>& ids) {
    kj::Vector<kj::Promise<std::optional<std::string>>> gets;
    for (const std::string& id : ids) {
      auto request = storage.getRequest();
      request.setId(asData(id));
      gets.add(request.send().then(
          [](auto response) -> std::optional<std::string> {
            if (response.getStatus().getCode() != Code::OK) return std::nullopt;
            return toString(response.getFragment().getData());
          },
          [this, address](kj::Exception&& e) -> std::optional<std::string> {
            brokenOnError(address, e);
            return std::nullopt;
          }));
    }
    return kj::joinPromises(gets.releaseAsArray()).then([](kj::Array<std::optional<std::string>> got) {
      Answers answers;
      answers.reserve(got.size());
      for (auto& g : got) answers.push_back(kj::mv(g));
      return answers;
    });
  }

  kj::Promise<void> fetch(const std::vector<FetchRequest>& requests,
                          std::vector<FetchResult>& results, std::vector<FetchState>& states) {
    std::vector<Want> wants;
    for (size_t i = 0; i < requests.size(); ++i) {
      results[i].fragments.resize(requests[i].addresses.size());
      states[i].request = &requests[i];
      states[i].result = &results[i];
      for (int s = 0; s < requests[i].need; ++s) {
        if (!pickNext(states[i], wants)) break;
      }
    }
    return send(kj::mv(wants));
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
    bool getManyUnsupported = false;  // the node answered getMany "unimplemented"
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
