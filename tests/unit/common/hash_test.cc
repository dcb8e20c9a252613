#include "backend/common/hash.h"

#include <xxhash.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "backend/common/hash_avx2.h"
#include "tests/unit/random_bytes.h"

using dfs::xxh3;
using dfs::testing::randomBytes;

// Checksums are stored (fragment records, journal records, extent headers) and
// compared across processes and machines: whichever XXH3 build runs must give
// the library's results bit for bit.
TEST_CASE("xxh3 equals the library's XXH3-64 at every size and alignment", "[hash]") {
  std::string bytes = randomBytes((1 << 20) + 64, 7);
  for (size_t size = 0; size <= 4100; ++size) {
    for (size_t align : {0, 1, 7}) {
      const char* p = bytes.data() + align;
      REQUIRE(xxh3(p, size) == XXH3_64bits(p, size));
    }
  }
  for (size_t size : {16383u, 16384u, 16385u, 65536u, 262147u, 1u << 20}) {
    REQUIRE(xxh3(bytes.data() + 3, size) == XXH3_64bits(bytes.data() + 3, size));
  }
  CHECK(xxh3(nullptr, 0) == XXH3_64bits(nullptr, 0));
}

TEST_CASE("xxh3 of two parts equals xxh3 of their concatenation", "[hash]") {
  std::string bytes = randomBytes(300000, 8);
  for (size_t cut : {0u, 1u, 45u, 240u, 241u, 1024u, 65536u, 299999u, 300000u}) {
    std::string_view a(bytes.data(), cut), b(bytes.data() + cut, bytes.size() - cut);
    REQUIRE(xxh3(a, b) == XXH3_64bits(bytes.data(), bytes.size()));
  }
}

TEST_CASE("the AVX2 build agrees with the library where the CPU has AVX2", "[hash]") {
  if (!dfs::hash_detail::hasAvx2()) {
    WARN("no AVX2 here: the library's XXH3 is used");
    return;
  }
  std::string bytes = randomBytes(100000, 9);
  for (size_t size : {0u, 3u, 16u, 17u, 128u, 129u, 240u, 241u, 1000u, 16384u, 99999u}) {
    REQUIRE(dfs::hash_detail::xxh3Avx2(bytes.data(), size) == XXH3_64bits(bytes.data(), size));
  }
  CHECK(dfs::hash_detail::xxh3Avx2(bytes.data(), 500, bytes.data() + 500, bytes.size() - 500) ==
        XXH3_64bits(bytes.data(), bytes.size()));
}

// Chunk ids are SHA-256 of the plaintext: FIPS 180-2's examples, then sizes up to
// past a chunk's maximum, on several threads at once (each keeps its own context).
TEST_CASE("sha256 gives the standard digests, on any thread", "[hash]") {
  auto hex = [](const dfs::ChunkId& id) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (uint8_t b : id) {
      out += digits[b >> 4];
      out += digits[b & 15];
    }
    return out;
  };
  CHECK(hex(dfs::sha256("", 0)) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex(dfs::sha256("abc", 3)) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK(hex(dfs::sha256(two.data(), two.size())) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string million(1000000, 'a');
  const std::string millionDigest =
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  CHECK(hex(dfs::sha256(million.data(), million.size())) == millionDigest);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (hex(dfs::sha256(million.data(), million.size())) != millionDigest) ++wrong;
        if (hex(dfs::sha256("abc", 3)) !=
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
          ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(wrong == 0);
}
