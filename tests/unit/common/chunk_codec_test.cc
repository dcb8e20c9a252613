#include "backend/common/chunk_codec.h"

#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "backend/common/compression.h"

namespace dfs {
namespace {

std::string randomString(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

std::string textLike(size_t size, uint64_t seed) {
  static const char* kWords[] = {"alpha ", "beta ", "gamma\n", "delta ", "epsilon ", "zeta "};
  std::mt19937_64 rng(seed);
  std::string out;
  while (out.size() < size) out += kWords[rng() % 6];
  out.resize(size);
  return out;
}

const uint8_t* bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

std::vector<std::optional<std::string>> allPresent(const EncodedChunk& chunk) {
  return {chunk.fragments.begin(), chunk.fragments.end()};
}

}  // namespace

TEST_CASE("fragment ids are chunk id plus index and generation", "[chunk_codec]") {
  ChunkId id = sha256("x", 1);
  std::string fid = fragmentId(id, 5);
  REQUIRE(fid.size() == kFragmentIdSize);
  CHECK(fid.substr(0, 32) == std::string(id.begin(), id.end()));
  CHECK(static_cast<uint8_t>(fid[32]) == 5);
  CHECK(static_cast<uint8_t>(fragmentId(id, 47)[32]) == 47);  // k+m <= 48
  for (uint8_t generation = 0; generation <= kMaxGeneration; ++generation) {
    for (uint8_t index = 0; index < 48; ++index) {
      uint8_t b = static_cast<uint8_t>(fragmentId(id, index, generation)[32]);
      CHECK(fragmentIndexOf(b) == index);
      CHECK(fragmentGenerationOf(b) == generation);
    }
  }
  CHECK(fragmentId(id, 5, 1) != fragmentId(id, 5, 0));
  // Metadata records hold chunk ids as strings: the same encoding.
  std::string asString(id.begin(), id.end());
  CHECK(fragmentId(std::string_view(asString), 5, 2) == fragmentId(id, 5, 2));
}

TEST_CASE("chunks round-trip compressed and raw", "[chunk_codec]") {
  for (size_t size : {0u, 1u, 777u, 65536u, 200001u}) {
    for (bool text : {true, false}) {
      std::string plain = text ? textLike(size, size) : randomString(size, size);
      for (int level : {0, 1, 3}) {
        auto encoded = encodeChunk(bytes(plain), plain.size(), 4, 2, level);
        REQUIRE(encoded.ok());
        const ChunkLayout& layout = encoded.value().layout;
        CHECK(layout.id == sha256(plain.data(), plain.size()));
        CHECK(layout.plainSize == size);
        CHECK(layout.k == 4);
        CHECK(layout.m == 2);
        CHECK(layout.checksums.size() == 6);
        CHECK(encoded.value().fragments.size() == 6);
        if (level == 0 || !text) CHECK_FALSE(layout.compressed);
        if (level > 0 && text && size >= 777) CHECK(layout.compressed);
        CHECK(layout.compressed == (layout.storedSize < layout.plainSize));
        std::vector<int> bad;
        auto decoded = decodeChunk(layout, allPresent(encoded.value()), &bad);
        REQUIRE(decoded.ok());
        CHECK(decoded.value() == plain);
        CHECK(bad.empty());
      }
    }
  }
}

TEST_CASE("known id is trusted on encode but checked on decode", "[chunk_codec]") {
  std::string plain = textLike(5000, 1);
  ChunkId right = sha256(plain.data(), plain.size());
  auto encoded = encodeChunk(bytes(plain), plain.size(), 2, 1, 1, &right);
  REQUIRE(encoded.ok());
  CHECK(decodeChunk(encoded.value().layout, allPresent(encoded.value())).value() == plain);
  ChunkId wrong = right;
  wrong[0] ^= 1;
  auto lying = encodeChunk(bytes(plain), plain.size(), 2, 1, 1, &wrong);
  REQUIRE(lying.ok());
  CHECK(decodeChunk(lying.value().layout, allPresent(lying.value())).status().code == Code::IO);
}

TEST_CASE("bad encode parameters are rejected", "[chunk_codec]") {
  std::string plain = "abc";
  CHECK(encodeChunk(bytes(plain), 3, 0, 2, 1).status().code == Code::INVALID);
  CHECK(encodeChunk(bytes(plain), 3, 4, 20, 1).status().code == Code::INVALID);
}

TEST_CASE("corrupt fragments are detected, reported and repaired", "[chunk_codec]") {
  std::string plain = textLike(100000, 2) + randomString(50000, 3);
  auto encoded = encodeChunk(bytes(plain), plain.size(), 4, 2, 1);
  REQUIRE(encoded.ok());
  const ChunkLayout& layout = encoded.value().layout;
  for (int victim = 0; victim < 6; ++victim) {
    auto fragments = allPresent(encoded.value());
    (*fragments[victim])[fragments[victim]->size() / 2] ^= 0x40;
    const auto given = fragments;
    std::vector<int> bad;
    auto decoded = decodeChunk(layout, fragments, &bad);
    REQUIRE(decoded.ok());
    CHECK(decoded.value() == plain);
    CHECK(bad == std::vector<int>{victim});
    // The caller's fragments are left as they were (a second round reuses them).
    CHECK(fragments == given);
  }
  // Truncated fragment + missing fragment: still two erasures, recoverable.
  auto fragments = allPresent(encoded.value());
  fragments[1]->pop_back();
  fragments[3].reset();
  std::vector<int> bad;
  auto decoded = decodeChunk(layout, fragments, &bad);
  REQUIRE(decoded.ok());
  CHECK(decoded.value() == plain);
  CHECK(bad == std::vector<int>{1});

  // Three bad of 4+2 is beyond repair: an error, never data.
  fragments = allPresent(encoded.value());
  for (int i : {0, 2, 5}) (*fragments[i])[7] ^= 1;
  bad.clear();
  auto failed = decodeChunk(layout, fragments, &bad);
  CHECK(failed.status().code == Code::IO);
  CHECK(bad == std::vector<int>{0, 2, 5});

  // Two missing and one corrupt.
  fragments = allPresent(encoded.value());
  fragments[4].reset();
  fragments[5].reset();
  (*fragments[0])[0] ^= 1;
  CHECK(decodeChunk(layout, fragments).status().code == Code::IO);
}

TEST_CASE("inconsistent layouts are IO errors", "[chunk_codec]") {
  std::string plain = textLike(10000, 4);
  auto encoded = encodeChunk(bytes(plain), plain.size(), 4, 2, 1);
  REQUIRE(encoded.ok());
  auto check = [&](auto mutate) {
    ChunkLayout layout = encoded.value().layout;
    mutate(layout);
    CHECK(decodeChunk(layout, allPresent(encoded.value())).status().code == Code::IO);
  };
  check([](ChunkLayout& l) { l.k = 0; });
  check([](ChunkLayout& l) { l.m = 1; });
  check([](ChunkLayout& l) { l.checksums.pop_back(); });
  check([](ChunkLayout& l) { l.fragmentSize += 8; });
  check([](ChunkLayout& l) { l.storedSize += 1; });
  check([](ChunkLayout& l) { l.plainSize += 1; });
  check([](ChunkLayout& l) { l.compressed = false; });
  check([](ChunkLayout& l) { l.id[31] ^= 1; });
  check([](ChunkLayout& l) { l.plainSize = 0xffffffff; });
}

// Property: whatever bytes and layout come in, decodeChunk either fails with
// IO or returns data whose SHA-256 is the layout's id.
TEST_CASE("decodeChunk never returns wrong data on fuzzed input", "[chunk_codec][fuzz]") {
  std::mt19937_64 rng(42);
  std::vector<EncodedChunk> seeds;
  std::vector<std::string> plains;
  for (int i = 0; i < 6; ++i) {
    size_t size = 1 + rng() % 30000;
    plains.push_back(i % 2 ? textLike(size, rng()) : randomString(size, rng()));
    const std::pair<int, int> profiles[] = {{4, 2}, {2, 1}, {1, 1}, {3, 0}, {6, 3}, {1, 2}};
    seeds.push_back(encodeChunk(bytes(plains.back()), size, profiles[i].first,
                                profiles[i].second, 1)
                        .value());
  }
  int successes = 0;
  for (int round = 0; round < 4000; ++round) {
    const EncodedChunk& seed = seeds[rng() % seeds.size()];
    ChunkLayout layout = seed.layout;
    auto fragments = allPresent(seed);
    switch (rng() % 6) {
      case 0:  // random layout fields
        layout.plainSize = static_cast<uint32_t>(rng() % 3 ? rng() % 70000 : rng());
        layout.storedSize = static_cast<uint32_t>(rng() % 3 ? rng() % 70000 : rng());
        layout.compressed = rng() % 2;
        layout.fragmentSize = static_cast<uint32_t>(rng() % 20000);
        if (rng() % 4 == 0) layout.k = static_cast<int>(rng() % 40) - 2;
        if (rng() % 4 == 0) layout.m = static_cast<int>(rng() % 20) - 2;
        break;
      case 1:  // random checksums
        for (auto& c : layout.checksums) {
          if (rng() % 2) c = rng();
        }
        break;
      case 2:  // flipped bytes, checksums recomputed so the damage reaches decode
        for (auto& f : fragments) {
          if (rng() % 3 == 0 && !f->empty()) (*f)[rng() % f->size()] ^= 1 + rng() % 255;
        }
        for (size_t i = 0; i < fragments.size(); ++i) {
          layout.checksums[i] = xxh3(fragments[i]->data(), fragments[i]->size());
        }
        break;
      case 3:  // random fragments of the right size with matching checksums
        for (size_t i = 0; i < fragments.size(); ++i) {
          if (rng() % 2) fragments[i] = randomString(layout.fragmentSize, rng());
          layout.checksums[i] = xxh3(fragments[i]->data(), fragments[i]->size());
        }
        break;
      case 4:  // missing and resized fragments
        for (auto& f : fragments) {
          int what = rng() % 4;
          if (what == 0) f.reset();
          if (what == 1) f->resize(rng() % (2 * f->size() + 1));
        }
        if (rng() % 4 == 0) fragments.resize(rng() % (fragments.size() + 2));
        break;
      default: {  // a parity fragment replaced by a re-encoded lie
        size_t i = rng() % fragments.size();
        (*fragments[i])[0] ^= 0xff;
        layout.checksums[i] = xxh3(fragments[i]->data(), fragments[i]->size());
        if (layout.k < static_cast<int>(fragments.size())) fragments[rng() % layout.k].reset();
        break;
      }
    }
    std::vector<int> bad;
    auto result = decodeChunk(layout, fragments, &bad);
    if (result.ok()) {
      ++successes;
      REQUIRE(sha256(result.value().data(), result.value().size()) == layout.id);
      REQUIRE(result.value().size() == layout.plainSize);
    } else {
      REQUIRE(result.status().code == Code::IO);
    }
    for (int index : bad) REQUIRE((index >= 0 && index < layout.k + layout.m));
  }
  CHECK(successes > 0);
  CHECK(successes < 4000);
}

}  // namespace dfs
