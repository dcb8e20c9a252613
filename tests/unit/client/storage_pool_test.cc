#include "backend/client/storage_pool.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <thread>

#include "backend/common/hash.h"
#include "backend/common/rpc.h"
#include "tests/unit/temp_dir.h"

extern char** environ;

namespace {

using dfs::FetchRequest;
using dfs::FetchResult;
using dfs::FragmentPut;
using dfs::StoragePool;

struct TempDir : dfs::testing::TempDir {
  TempDir() : dfs::testing::TempDir("dfs-storage-pool") {}
};

uint16_t freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool accepts(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// The dfs-storage binary next to this test's build: DFS_BIN, or ../bin of the test binary.
std::string storageBinary() {
  if (const char* bin = std::getenv("DFS_BIN")) return std::string(bin) + "/dfs-storage";
  auto self = std::filesystem::read_symlink("/proc/self/exe");
  return (self.parent_path().parent_path() / "bin" / "dfs-storage").string();
}

// A real dfs-storage process on a loopback port. Its metadata node does not exist:
// it keeps serving storage RPC while its heartbeats fail.
struct StorageDaemon {
  explicit StorageDaemon(const std::string& dir) : dataDir(dir + "/data") {
    std::filesystem::create_directories(dataDir);
    port = freePort();
    metricsPort = freePort();
    std::string binary = storageBinary();
    REQUIRE(std::filesystem::exists(binary));
    std::vector<std::string> args = {binary,
                                     "--data-dir", dataDir,
                                     "--listen", "127.0.0.1:" + std::to_string(port),
                                     "--meta", "127.0.0.1:" + std::to_string(freePort()),
                                     "--scrub-rate", "0",
                                     "--metrics-listen", "127.0.0.1:" + std::to_string(metricsPort),
                                     "--log-level", "error"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    std::string log = dir + "/storage.log";
    posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    REQUIRE(posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!accepts(port)) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~StorageDaemon() {
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }

  // The node's dfs_rpc_requests_total for `op`, read from its /metrics.
  long requests(const std::string& op) const {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(metricsPort);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    REQUIRE(write(fd, request.data(), request.size()) == ssize_t(request.size()));
    std::string reply;
    char buf[4096];
    for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) reply.append(buf, size_t(n));
    close(fd);
    std::string key = "dfs_rpc_requests_total{op=\"" + op + "\"} ";
    size_t at = reply.find(key);
    if (at == std::string::npos) return 0;
    return std::atol(reply.c_str() + at + key.size());
  }

  std::string dataDir;
  uint16_t port = 0;
  uint16_t metricsPort = 0;
  pid_t pid = -1;
};

// Flips one byte of `data`'s copy in a node's extent files.
void corruptOnDisk(const std::string& dataDir, const std::string& data) {
  for (const auto& entry : std::filesystem::directory_iterator(dataDir + "/extents")) {
    std::fstream f(entry.path(), std::ios::in | std::ios::out | std::ios::binary);
    std::string contents((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t at = contents.find(data);
    if (at == std::string::npos) continue;
    f.clear();
    f.seekp(std::streamoff(at + data.size() / 2));
    char c = char(contents[at + data.size() / 2] ^ 0x10);
    f.write(&c, 1);
    return;
  }
  FAIL("data not found in any extent file");
}

dfs::ChunkId chunkId(int n) {
  std::string name = "chunk " + std::to_string(n);
  return dfs::sha256(name.data(), name.size());
}

std::string fragmentId(const dfs::ChunkId& chunk, int index) {
  std::string id(reinterpret_cast<const char*>(chunk.data()), chunk.size());
  id.push_back(char(index));
  return id;
}

std::string payload(int chunk, int index, size_t size) {
  std::string data(size, '\0');
  uint64_t x = uint64_t(chunk) * 0x9E3779B97F4A7C15ull + uint64_t(index) * 977 + 1;
  for (auto& c : data) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = char(x);
  }
  return data;
}

// Chunks of 6 fragments (4 data + 2 parity) whose fragment i lives at addresses[i].
struct Chunks {
  std::vector<std::string> addresses;
  std::map<std::pair<int, int>, std::string> data;  // (chunk, index) -> bytes

  void store(StoragePool& pool, int count, size_t fragmentBytes) {
    std::vector<FragmentPut> puts;
    for (int c = 0; c < count; ++c) {
      for (int i = 0; i < 6; ++i) {
        data[{c, i}] = payload(c, i, fragmentBytes + size_t(c));
      }
    }
    for (auto& [key, bytes] : data) {
      FragmentPut put;
      put.node = uint32_t(key.second);
      put.address = addresses[key.second];
      put.id = fragmentId(chunkId(key.first), key.second);
      put.data = &bytes;
      put.checksum = dfs::xxh3(bytes.data(), bytes.size());
      puts.push_back(std::move(put));
    }
    auto outcome = pool.put(std::move(puts)).get();
    REQUIRE(outcome.status.ok());
  }

  FetchRequest request(int chunk, int need = 4) const {
    FetchRequest r;
    r.chunk = chunkId(chunk);
    r.addresses = addresses;
    r.order = {0, 1, 2, 3, 4, 5};
    r.need = need;
    return r;
  }
};

// An older storage node: it speaks protocol version 1 but has no getMany.
class OldStorage final : public dfs::proto::Storage::Server {
 public:
  explicit OldStorage(const std::map<std::string, std::string>& fragments) : fragments_(fragments) {}
  std::atomic<int> gets{0};
  std::atomic<int> getManys{0};

 protected:
  kj::Promise<void> get(GetContext context) override {
    ++gets;
    auto params = context.getParams().getId();
    std::string id(reinterpret_cast<const char*>(params.begin()), params.size());
    auto results = context.getResults();
    auto it = fragments_.find(id);
    if (it == fragments_.end()) {
      results.initStatus().setCode(dfs::Code::NOT_FOUND);
      return kj::READY_NOW;
    }
    results.initStatus().setCode(dfs::Code::OK);
    auto fragment = results.initFragment();
    fragment.setId(params);
    fragment.setData(kj::arrayPtr(reinterpret_cast<const kj::byte*>(it->second.data()), it->second.size()));
    fragment.setChecksum(dfs::xxh3(it->second.data(), it->second.size()));
    return kj::READY_NOW;
  }
  kj::Promise<void> getMany(GetManyContext) override {
    ++getManys;
    return KJ_EXCEPTION(UNIMPLEMENTED, "Method not implemented.", "getMany");  // what capnp answers
  }

 private:
  const std::map<std::string, std::string>& fragments_;
};

class OldGateway final : public dfs::proto::StorageGateway::Server {
 public:
  explicit OldGateway(dfs::proto::Storage::Client storage) : storage_(kj::mv(storage)) {}

 protected:
  kj::Promise<void> hello(HelloContext context) override {
    context.getResults().setStorage(storage_);
    context.getResults().setServerVersion(dfs::proto::PROTOCOL_VERSION);
    return kj::READY_NOW;
  }

 private:
  dfs::proto::Storage::Client storage_;
};

// OldStorage served on a thread of its own, with its own event loop.
struct OldNode {
  explicit OldNode(const std::map<std::string, std::string>& fragments) {
    std::promise<uint16_t> ready;
    auto portFuture = ready.get_future();
    thread = std::thread([this, &fragments, &ready]() {
      auto io = kj::setupAsyncIo();
      auto storage = kj::heap<OldStorage>(fragments);
      server = storage.get();
      dfs::proto::Storage::Client client = kj::mv(storage);
      capnp::Capability::Client gateway = kj::heap<OldGateway>(client);
      auto listener =
          io.provider->getNetwork().parseAddress("127.0.0.1", 0).wait(io.waitScope)->listen();
      auto stop = kj::newPromiseAndFulfiller<void>();
      executor = kj::getCurrentThreadExecutor().addRef();
      stopper = kj::mv(stop.fulfiller);
      auto serving = dfs::serveRpc(*listener, gateway, "old-storage").eagerlyEvaluate(nullptr);
      ready.set_value(uint16_t(listener->getPort()));
      stop.promise.wait(io.waitScope);
    });
    port = portFuture.get();
  }
  ~OldNode() {
    executor->executeSync([this]() { stopper->fulfill(); });
    thread.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }

  std::thread thread;
  uint16_t port = 0;
  OldStorage* server = nullptr;  // owned by the serving thread
  kj::Own<const kj::Executor> executor;
  kj::Own<kj::PromiseFulfiller<void>> stopper;  // serving thread only
};

}  // namespace

TEST_CASE("storage pool: fetch gets many chunks' data fragments in batches from real nodes") {
  TempDir a, b, c;
  StorageDaemon n1(a.path), n2(b.path), n3(c.path);
  dfs::RpcLoop loop;
  StoragePool pool(loop, 10000);
  Chunks chunks;
  chunks.addresses = {n1.address(), n2.address(), n3.address(),
                      n1.address(), n2.address(), n3.address()};
  // 150 chunks: more than one batch of data fragments for every node.
  chunks.store(pool, 150, 4000);
  std::vector<FetchRequest> requests;
  for (int ch = 0; ch < 150; ++ch) requests.push_back(chunks.request(ch));
  auto results = pool.fetch(requests);
  REQUIRE(results.size() == 150);
  int wrong = 0;
  for (int ch = 0; ch < 150; ++ch) {
    CHECK(results[ch].failures == 0);
    REQUIRE(results[ch].fragments.size() == 6);
    for (int i = 0; i < 4; ++i) {
      if (!results[ch].fragments[i] || *results[ch].fragments[i] != chunks.data[{ch, i}]) ++wrong;
    }
    CHECK_FALSE(results[ch].fragments[4]);  // parity only when needed
    CHECK_FALSE(results[ch].fragments[5]);
  }
  CHECK(wrong == 0);
  // The data fragments (300 on n1: indices 0 and 3; 150 on n2 and n3) went in
  // batches of at most 64, none one by one.
  for (const StorageDaemon* node : {&n1, &n2, &n3}) CHECK(node->requests("get") == 0);
  CHECK(n1.requests("getMany") == 5);
  CHECK(n2.requests("getMany") == 3);
  CHECK(n3.requests("getMany") == 3);
  // A second round as the data path makes it: everything not fetched yet.
  auto all = pool.fetch({chunks.request(7, 6)});
  for (int i = 0; i < 6; ++i) CHECK(all[0].fragments[i] == chunks.data[{7, i}]);
}

TEST_CASE("storage pool: missing, corrupt and unreachable fragments are counted and replaced by parity") {
  TempDir a, b, c;
  StorageDaemon n1(a.path), n2(b.path), n3(c.path);
  dfs::RpcLoop loop;
  StoragePool pool(loop, 10000);
  Chunks chunks;
  chunks.addresses = {n1.address(), n2.address(), n3.address(),
                      n1.address(), n2.address(), n3.address()};
  chunks.store(pool, 12, 16384);
  // Chunk 2: fragment 1 corrupt on disk. Chunk 5: fragments 0 and 3 unknown to their
  // node (asked for under another chunk's id). Chunk 8: fragment 2's node unreachable.
  corruptOnDisk(n2.dataDir, chunks.data[{2, 1}]);
  std::vector<FetchRequest> requests;
  for (int ch = 0; ch < 12; ++ch) requests.push_back(chunks.request(ch));
  Chunks unknown;
  unknown.addresses = chunks.addresses;
  FetchRequest missing = unknown.request(1000);
  missing.order = {0, 3, 1, 2, 4, 5};
  requests.push_back(missing);
  requests[8].addresses[2] = "127.0.0.1:" + std::to_string(freePort());
  auto results = pool.fetch(requests);

  CHECK(results[2].failures == 1);
  CHECK_FALSE(results[2].fragments[1]);  // never the bad bytes
  for (int i : {0, 2, 3, 4}) CHECK(results[2].fragments[i] == chunks.data[{2, i}]);
  CHECK_FALSE(results[2].fragments[5]);

  CHECK(results[8].failures == 1);
  CHECK_FALSE(results[8].fragments[2]);
  for (int i : {0, 1, 3, 4}) CHECK(results[8].fragments[i] == chunks.data[{8, i}]);

  // Not a single fragment of chunk 1000 exists: every candidate tried once, then given up.
  CHECK(results[12].failures == 6);
  for (int i = 0; i < 6; ++i) CHECK_FALSE(results[12].fragments[i]);

  for (int ch : {0, 1, 3, 4, 5, 6, 7, 9, 10, 11}) {
    CHECK(results[ch].failures == 0);
    for (int i = 0; i < 4; ++i) CHECK(results[ch].fragments[i] == chunks.data[{ch, i}]);
  }
}

TEST_CASE("storage pool: a node without getMany is asked one get per fragment") {
  std::map<std::string, std::string> stored;
  for (int ch = 0; ch < 10; ++ch) {
    for (int i = 0; i < 6; ++i) stored[fragmentId(chunkId(ch), i)] = payload(ch, i, 3000);
  }
  OldNode old(stored);
  dfs::RpcLoop loop;
  StoragePool pool(loop, 10000);
  std::vector<FetchRequest> requests;
  for (int ch = 0; ch < 10; ++ch) {
    FetchRequest r;
    r.chunk = chunkId(ch);
    r.addresses.assign(6, old.address());
    r.order = {0, 1, 2, 3, 4, 5};
    r.need = 4;
    requests.push_back(r);
  }
  for (int round = 0; round < 2; ++round) {
    auto results = pool.fetch(requests);
    for (int ch = 0; ch < 10; ++ch) {
      CHECK(results[ch].failures == 0);
      for (int i = 0; i < 4; ++i) CHECK(results[ch].fragments[i] == stored[fragmentId(chunkId(ch), i)]);
    }
  }
  CHECK(old.server->getManys == 1);  // remembered for the connection
  CHECK(old.server->gets == 80);
}

TEST_CASE("storage pool: a batch above the node's byte limit is asked for in halves") {
  TempDir a;
  StorageDaemon n1(a.path);
  dfs::RpcLoop loop;
  StoragePool pool(loop, 30000);
  // One chunk whose 4 data fragments, 9 MiB each, all live on n1: 36 MiB in one
  // getMany is more than the node answers (32 MiB).
  Chunks chunks;
  chunks.addresses.assign(6, n1.address());
  for (int i = 0; i < 4; ++i) chunks.data[{0, i}] = payload(0, i, 9u << 20);
  for (int i = 0; i < 4; i += 2) {
    std::vector<FragmentPut> puts;
    for (int j = i; j < i + 2; ++j) {
      const std::string& bytes = chunks.data[{0, j}];
      puts.push_back(FragmentPut{0, n1.address(), fragmentId(chunkId(0), j), &bytes,
                                 dfs::xxh3(bytes.data(), bytes.size()), nullptr});
    }
    REQUIRE(pool.put(std::move(puts)).get().status.ok());
  }
  auto results = pool.fetch({chunks.request(0)});
  CHECK(results[0].failures == 0);
  for (int i = 0; i < 4; ++i) CHECK(results[0].fragments[i] == chunks.data[{0, i}]);
  CHECK(n1.requests("getMany") == 3);  // refused, then two halves of 18 MiB
  CHECK(n1.requests("get") == 0);
}

TEST_CASE("storage pool: a put without an answer fails, frees its fragments with the connection, "
          "and the node is used again once it answers") {
  TempDir dir;
  StorageDaemon node(dir.path);
  dfs::RpcLoop loop;
  StoragePool pool(loop, /*opTimeoutMs=*/1500);
  auto putOne = [&](int chunk, std::shared_ptr<const std::string> bytes) {
    std::vector<FragmentPut> puts;
    puts.push_back(FragmentPut{0, node.address(), fragmentId(chunkId(chunk), 0), bytes.get(),
                               dfs::xxh3(bytes->data(), bytes->size()), bytes});
    return pool.put(std::move(puts));
  };
  // Connect while the node answers.
  REQUIRE(putOne(1, std::make_shared<const std::string>(payload(1, 0, 4096))).get().status.ok());

  // A stopped node reads nothing: a 24 MiB request cannot even be written whole.
  REQUIRE(kill(node.pid, SIGSTOP) == 0);
  auto big = std::make_shared<const std::string>(payload(2, 0, 24u << 20));
  std::weak_ptr<const std::string> watch = big;
  auto pending = putOne(2, std::move(big));
  auto outcome = pending.get();
  CHECK_FALSE(outcome.status.ok());
  REQUIRE(outcome.failedNodes == std::vector<uint32_t>{0});
  // The request's bytes are kept until its connection is gone, then freed.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!watch.expired() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(watch.expired());

  REQUIRE(kill(node.pid, SIGCONT) == 0);
  // A new connection takes the next put (a refused node is retried after a second).
  auto bytes = std::make_shared<const std::string>(payload(3, 0, 3u << 20));
  dfs::Status status;
  for (int attempt = 0; attempt < 20; ++attempt) {
    status = putOne(3, bytes).get().status;
    if (status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  REQUIRE(status.ok());
  FetchRequest request;
  request.chunk = chunkId(3);
  request.addresses = {node.address()};
  request.order = {0};
  request.need = 1;
  auto results = pool.fetch({request});
  REQUIRE(results[0].fragments[0]);
  CHECK(*results[0].fragments[0] == *bytes);
}
