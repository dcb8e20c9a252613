#include "backend/storage/storage_service.h"

#include <kj/async-io.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "backend/common/hash.h"
#include "backend/common/rpc.h"
#include "backend/storage/store_writer.h"
#include "tests/unit/temp_dir.h"

namespace {

using dfs::Code;

struct TempDir : dfs::testing::TempDir {
  TempDir() : dfs::testing::TempDir("dfs-storage-rpc") {}
};

kj::ArrayPtr<const kj::byte> bytes(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string idFor(int n) {
  std::string id(33, 'x');
  id[0] = char(n);
  return id;
}

// A storage node served on a loopback port, on the test thread's event loop.
struct Node {
  explicit Node(kj::AsyncIoContext& io, const std::string& dir) : io(io) {
    dfs::ExtentStoreOptions options;
    options.dataDir = dir;
    options.indexMapBytes = size_t(1) << 30;
    options.reserveBytes = 0;
    auto opened = dfs::ExtentStore::open(options);
    REQUIRE(opened.ok());
    store = std::move(opened).value();
    writer = std::make_unique<dfs::StoreWriter>(*store);
    dfs::proto::Storage::Client storage = kj::heap<dfs::StorageImpl>(*store, *writer, "test-uuid");
    gateway = kj::heap<dfs::StorageGatewayImpl>(storage);
    auto address = io.provider->getNetwork().parseAddress("127.0.0.1", 0).wait(io.waitScope);
    listener = address->listen();
    port = listener->getPort();
    serving = dfs::serveRpc(*listener, gateway, "test-storage").eagerlyEvaluate(nullptr);
  }
  ~Node() { writer->stop(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }

  kj::AsyncIoContext& io;
  std::unique_ptr<dfs::ExtentStore> store;
  std::unique_ptr<dfs::StoreWriter> writer;
  capnp::Capability::Client gateway = nullptr;
  kj::Own<kj::ConnectionReceiver> listener;
  uint port = 0;
  kj::Promise<void> serving = nullptr;
};

dfs::proto::Storage::Client helloAndGetStorage(kj::AsyncIoContext& io, dfs::RpcConnection& connection,
                                               uint32_t version = 1) {
  auto request = connection.bootstrapAs<dfs::proto::StorageGateway>().helloRequest();
  request.setVersion(version);
  request.setPeer("storage_service_test");
  // Bounded: a server that stopped serving must fail the test, not hang it.
  auto response = io.provider->getTimer()
                      .timeoutAfter(10 * kj::SECONDS, request.send())
                      .wait(io.waitScope);
  CHECK(response.getServerVersion() == 1);
  return response.getStorage();
}

dfs::Status putFragment(kj::AsyncIoContext& io, dfs::proto::Storage::Client& storage,
                        const std::string& id, const std::string& data, uint64_t checksum) {
  auto request = storage.putRequest();
  auto list = request.initFragments(1);
  list[0].setId(bytes(id));
  list[0].setData(bytes(data));
  list[0].setChecksum(checksum);
  auto response = request.send().wait(io.waitScope);
  return dfs::fromProto(response.getStatus());
}

}  // namespace

TEST_CASE("storage rpc: hello, put, get, list, delete, info") {
  TempDir dir;
  auto io = kj::setupAsyncIo();
  Node node(io, dir.path);
  auto connection = dfs::connectRpc(io.provider->getNetwork(), node.address()).wait(io.waitScope);
  auto storage = helloAndGetStorage(io, *connection);

  std::string data(100000, 'a');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 31);
  uint64_t sum = dfs::xxh3(data.data(), data.size());
  REQUIRE(putFragment(io, storage, idFor(1), data, sum).ok());
  REQUIRE(putFragment(io, storage, idFor(2), "small", dfs::xxh3("small", 5)).ok());

  {
    auto request = storage.getRequest();
    request.setId(bytes(idFor(1)));
    auto response = request.send().wait(io.waitScope);
    REQUIRE(response.getStatus().getCode() == Code::OK);
    auto got = response.getFragment().getData();
    CHECK(std::string(reinterpret_cast<const char*>(got.begin()), got.size()) == data);
    CHECK(response.getFragment().getChecksum() == sum);
  }
  {
    auto request = storage.getRequest();
    request.setId(bytes(idFor(9)));
    CHECK(request.send().wait(io.waitScope).getStatus().getCode() == Code::NOT_FOUND);
    auto bad = storage.getRequest();
    bad.setId(bytes(std::string("short")));
    CHECK(bad.send().wait(io.waitScope).getStatus().getCode() == Code::INVALID);
  }
  {
    auto request = storage.listRequest();
    request.setMax(10);
    request.setBeforeNs(INT64_MAX);
    auto response = request.send().wait(io.waitScope);
    CHECK(response.getIds().size() == 2);
    CHECK(response.getEof());
  }
  {
    auto request = storage.deleteRequest();
    auto ids = request.initIds(2);
    ids.set(0, bytes(idFor(2)));
    ids.set(1, bytes(idFor(7)));
    auto response = request.send().wait(io.waitScope);
    CHECK(response.getStatus().getCode() == Code::OK);
    CHECK(response.getDeleted() == 1);
  }
  {
    auto response = storage.infoRequest().send().wait(io.waitScope);
    CHECK(std::string(response.getUuid().cStr()) == "test-uuid");
    CHECK(response.getFragments() == 1);
    CHECK(response.getUsedBytes() > 100000);
    CHECK(response.getCapacityBytes() > 0);
  }
}

TEST_CASE("storage rpc: validation failures are statuses, unknown versions are refused") {
  TempDir dir;
  auto io = kj::setupAsyncIo();
  Node node(io, dir.path);
  auto connection = dfs::connectRpc(io.provider->getNetwork(), node.address()).wait(io.waitScope);

  {
    auto request = connection->bootstrapAs<dfs::proto::StorageGateway>().helloRequest();
    request.setVersion(99);
    request.setPeer("future client");
    try {
      request.send().wait(io.waitScope);
      FAIL("hello with version 99 should throw");
    } catch (const kj::Exception& e) {
      CHECK(std::string(e.getDescription().cStr()).find("unsupported protocol version 99 (this node speaks 1)") !=
            std::string::npos);
    }
  }
  // The same connection still works with the right version.
  auto storage = helloAndGetStorage(io, *connection);
  CHECK(putFragment(io, storage, idFor(1), "hello", 12345).code == Code::INVALID);  // wrong checksum
  CHECK(putFragment(io, storage, "short-id", "hello", dfs::xxh3("hello", 5)).code == Code::INVALID);
  std::string huge(dfs::kMaxFragmentBytes + 1, 'z');
  CHECK(putFragment(io, storage, idFor(2), huge, dfs::xxh3(huge.data(), huge.size())).code == Code::INVALID);
  CHECK(node.store->stats().fragments == 0);
  CHECK(putFragment(io, storage, idFor(3), "hello", dfs::xxh3("hello", 5)).ok());
}

TEST_CASE("storage rpc: concurrent puts over RPC share group commits") {
  TempDir dir;
  auto io = kj::setupAsyncIo();
  Node node(io, dir.path);
  auto connection = dfs::connectRpc(io.provider->getNetwork(), node.address()).wait(io.waitScope);
  auto storage = helloAndGetStorage(io, *connection);
  kj::Vector<kj::Promise<void>> calls;
  std::vector<std::string> payloads;
  for (int i = 0; i < 64; ++i) payloads.push_back(std::string(20000, char('a' + i % 26)) + std::to_string(i));
  int ok = 0;
  for (int i = 0; i < 64; ++i) {
    auto request = storage.putRequest();
    auto list = request.initFragments(1);
    list[0].setId(bytes(idFor(i)));
    list[0].setData(bytes(payloads[i]));
    list[0].setChecksum(dfs::xxh3(payloads[i].data(), payloads[i].size()));
    calls.add(request.send().then([&ok](auto response) { ok += response.getStatus().getCode() == Code::OK; }));
  }
  kj::joinPromises(calls.releaseAsArray()).wait(io.waitScope);
  CHECK(ok == 64);
  CHECK(node.store->stats().fragments == 64);
  CHECK(node.store->stats().groupCommits < 64);
}

TEST_CASE("storage rpc: garbage and truncated messages from a peer do not stop the server") {
  TempDir dir;
  auto io = kj::setupAsyncIo();
  Node node(io, dir.path);
  auto& network = io.provider->getNetwork();
  {
    auto raw = network.parseAddress(node.address()).wait(io.waitScope)->connect().wait(io.waitScope);
    std::string garbage = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    garbage += std::string(4096, '\xff');
    raw->write(garbage.data(), garbage.size()).wait(io.waitScope);
    char buf[256];
    raw->tryRead(buf, 1, sizeof(buf)).wait(io.waitScope);  // server hangs up (0 bytes) or errors
  }
  {
    // A valid segment table announcing 1000 words, followed by only 16 bytes, then EOF.
    auto raw = network.parseAddress(node.address()).wait(io.waitScope)->connect().wait(io.waitScope);
    uint32_t header[2] = {0, 1000};
    raw->write(header, sizeof(header)).wait(io.waitScope);
    raw->write("0123456789abcdef", 16).wait(io.waitScope);
    raw->shutdownWrite();
    io.provider->getTimer().afterDelay(50 * kj::MILLISECONDS).wait(io.waitScope);
  }
  {
    // A segment table claiming a 4 GiB segment: rejected by the read limits.
    auto raw = network.parseAddress(node.address()).wait(io.waitScope)->connect().wait(io.waitScope);
    uint32_t header[2] = {0, 0x1fffffff};
    raw->write(header, sizeof(header)).wait(io.waitScope);
    io.provider->getTimer().afterDelay(50 * kj::MILLISECONDS).wait(io.waitScope);
  }
  auto connection = dfs::connectRpc(network, node.address()).wait(io.waitScope);
  auto storage = helloAndGetStorage(io, *connection);
  CHECK(putFragment(io, storage, idFor(1), "still alive", dfs::xxh3("still alive", 11)).ok());
  auto info = storage.infoRequest().send().wait(io.waitScope);
  CHECK(info.getFragments() == 1);
}

namespace {

// Sends getMany for `ids`; returns the response (kept alive by the caller).
capnp::Response<dfs::proto::Storage::GetManyResults> getMany(kj::AsyncIoContext& io,
                                                            dfs::proto::Storage::Client& storage,
                                                            const std::vector<std::string>& ids) {
  auto request = storage.getManyRequest();
  auto list = request.initIds(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) list.set(i, bytes(ids[i]));
  return request.send().wait(io.waitScope);
}

std::string asString(capnp::Data::Reader data) {
  return std::string(reinterpret_cast<const char*>(data.begin()), data.size());
}

std::string payloadFor(int n, size_t size) {
  std::string data(size, '\0');
  uint64_t x = uint64_t(n) * 0x9E3779B97F4A7C15ull + 7;
  for (auto& c : data) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = char(x);
  }
  return data;
}

// Flips one byte of `data`'s copy in the node's extent files.
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

}  // namespace

TEST_CASE("storage rpc: getMany answers every id like get, in request order") {
  TempDir dir;
  auto io = kj::setupAsyncIo();
  Node node(io, dir.path);
  auto connection = dfs::connectRpc(io.provider->getNetwork(), node.address()).wait(io.waitScope);
  auto storage = helloAndGetStorage(io, *connection);
  std::vector<std::string> payloads;
  for (int i = 0; i < 20; ++i) {
    payloads.push_back(payloadFor(i, 1000 + 700 * i));
    REQUIRE(putFragment(io, storage, idFor(i), payloads[i], dfs::xxh3(payloads[i].data(), payloads[i].size())).ok());
  }
  // A mix of order, a missing id and a repeated id.
  std::vector<std::string> ids = {idFor(7), idFor(0), idFor(99), idFor(19), idFor(3), idFor(7)};
  auto response = getMany(io, storage, ids);
  REQUIRE(response.getStatus().getCode() == Code::OK);
  auto results = response.getResults();
  REQUIRE(results.size() == ids.size());
  std::vector<int> expect = {7, 0, -1, 19, 3, 7};
  for (size_t i = 0; i < ids.size(); ++i) {
    if (expect[i] < 0) {
      CHECK(results[i].getStatus().getCode() == Code::NOT_FOUND);
      CHECK_FALSE(results[i].hasFragment());
      continue;
    }
    REQUIRE(results[i].getStatus().getCode() == Code::OK);
    auto fragment = results[i].getFragment();
    CHECK(asString(fragment.getId()) == ids[i]);
    CHECK(asString(fragment.getData()) == payloads[expect[i]]);
    CHECK(fragment.getChecksum() == dfs::xxh3(payloads[expect[i]].data(), payloads[expect[i]].size()));
  }
  // An empty request is a valid, empty answer.
  auto empty = getMany(io, storage, {});
  CHECK(empty.getStatus().getCode() == Code::OK);
  CHECK(empty.getResults().size() == 0);
}

TEST_CASE("storage rpc: a corrupt fragment inside getMany is io for that id only, and counted") {
  TempDir dir;
  auto io = kj::setupAsyncIo();
  Node node(io, dir.path);
  auto connection = dfs::connectRpc(io.provider->getNetwork(), node.address()).wait(io.waitScope);
  auto storage = helloAndGetStorage(io, *connection);
  std::vector<std::string> payloads;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    payloads.push_back(payloadFor(100 + i, 16384));
    ids.push_back(idFor(i));
    REQUIRE(putFragment(io, storage, ids[i], payloads[i], dfs::xxh3(payloads[i].data(), payloads[i].size())).ok());
  }
  corruptOnDisk(dir.path, payloads[2]);
  auto response = getMany(io, storage, ids);
  REQUIRE(response.getStatus().getCode() == Code::OK);
  auto results = response.getResults();
  REQUIRE(results.size() == 5);
  for (int i = 0; i < 5; ++i) {
    if (i == 2) {
      CHECK(results[i].getStatus().getCode() == Code::IO);
      CHECK_FALSE(results[i].hasFragment());  // never the bad bytes
    } else {
      REQUIRE(results[i].getStatus().getCode() == Code::OK);
      CHECK(asString(results[i].getFragment().getData()) == payloads[i]);
    }
  }
  CHECK(node.store->stats().corruptFragments == 1);
  auto info = storage.infoRequest().send().wait(io.waitScope);
  CHECK(info.getCorruptFragments() == 1);
}

TEST_CASE("storage rpc: getMany refuses too many ids, too many bytes and malformed ids") {
  TempDir dir;
  auto io = kj::setupAsyncIo();
  Node node(io, dir.path);
  auto connection = dfs::connectRpc(io.provider->getNetwork(), node.address()).wait(io.waitScope);
  auto storage = helloAndGetStorage(io, *connection);
  REQUIRE(putFragment(io, storage, idFor(1), "one", dfs::xxh3("one", 3)).ok());

  std::vector<std::string> tooMany(dfs::kMaxGetManyIds + 1, idFor(1));
  auto refused = getMany(io, storage, tooMany);
  CHECK(refused.getStatus().getCode() == Code::INVALID);
  CHECK(refused.getResults().size() == 0);
  std::vector<std::string> atLimit(dfs::kMaxGetManyIds, idFor(1));
  auto accepted = getMany(io, storage, atLimit);
  CHECK(accepted.getStatus().getCode() == Code::OK);
  CHECK(accepted.getResults().size() == dfs::kMaxGetManyIds);

  auto malformed = getMany(io, storage, {idFor(1), "short"});
  CHECK(malformed.getStatus().getCode() == Code::INVALID);
  CHECK(malformed.getResults().size() == 0);

  // Three 12 MiB fragments pass the 32 MiB reply bound together, not two of them.
  std::vector<std::string> big;
  for (int i = 0; i < 3; ++i) {
    big.push_back(payloadFor(200 + i, 12u << 20));
    REQUIRE(putFragment(io, storage, idFor(10 + i), big[i], dfs::xxh3(big[i].data(), big[i].size())).ok());
  }
  auto tooBig = getMany(io, storage, {idFor(10), idFor(11), idFor(12)});
  CHECK(tooBig.getStatus().getCode() == Code::INVALID);
  CHECK(tooBig.getResults().size() == 0);
  auto two = getMany(io, storage, {idFor(10), idFor(12)});
  REQUIRE(two.getStatus().getCode() == Code::OK);
  CHECK(asString(two.getResults()[1].getFragment().getData()) == big[2]);
  CHECK(node.store->stats().corruptFragments == 0);
}
