#include "backend/common/fastcdc.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <vector>

namespace dfs {
namespace {

std::vector<uint8_t> randomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(size);
  for (size_t i = 0; i < size; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < size; ++j) out[i + j] = static_cast<uint8_t>(v >> (8 * j));
  }
  return out;
}

// Chunk boundaries (end offsets) of a whole buffer, one shot.
std::vector<size_t> boundaries(const FastCdc& cdc, const std::vector<uint8_t>& data) {
  std::vector<size_t> cuts;
  size_t offset = 0;
  while (offset < data.size()) {
    size_t n = cdc.nextChunk(data.data() + offset, data.size() - offset, true);
    REQUIRE(n > 0);
    offset += n;
    cuts.push_back(offset);
  }
  return cuts;
}

const ChunkerParams kSmall = {2048, 8192, 32768};

// The definition of a cut point, written out independently of fastcdc.cc: a
// change of FastCdc's loop (unrolling, SIMD) must not move a single boundary,
// or new data stops deduplicating against stored data.
size_t referenceNextChunk(const ChunkerParams& p, uint64_t strict, uint64_t loose,
                          const std::vector<uint8_t>& gear, const uint8_t* data, size_t size,
                          bool atEnd) {
  if (size == 0) return 0;
  if (size <= p.minSize) return atEnd ? size : 0;
  size_t limit = std::min<size_t>(size, p.maxSize);
  size_t normal = std::min<size_t>(p.avgSize, limit);
  uint64_t hash = 0;
  for (size_t i = p.minSize; i < limit; ++i) {
    uint64_t g;
    memcpy(&g, gear.data() + 8 * data[i], 8);
    hash = (hash << 1) + g;
    if ((hash & (i < normal ? strict : loose)) == 0) return i + 1;
  }
  if (limit == p.maxSize) return p.maxSize;
  return atEnd ? size : 0;
}

// The gear table, computed as fastcdc.cc does (splitmix64 from "dfs-gear").
std::vector<uint8_t> gearTable() {
  std::vector<uint8_t> out(256 * 8);
  uint64_t state = 0x6466732d67656172ULL;
  for (int b = 0; b < 256; ++b) {
    state += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    memcpy(out.data() + 8 * b, &z, 8);
  }
  return out;
}

}  // namespace

TEST_CASE("chunker params are validated", "[fastcdc]") {
  CHECK(validateChunkerParams(kDefaultChunkerParams).ok());
  CHECK(validateChunkerParams({4096, 16384, 65536}).ok());
  CHECK(validateChunkerParams({1000, 3000, 9000}).ok());  // non powers of two are fine
  CHECK(validateChunkerParams({16384, 16384, 65536}).code == Code::INVALID);
  CHECK(validateChunkerParams({4096, 65536, 65536}).code == Code::INVALID);
  CHECK(validateChunkerParams({8192, 4096, 65536}).code == Code::INVALID);
  CHECK(validateChunkerParams({0, 4096, 65536}).code == Code::INVALID);
  CHECK(validateChunkerParams({4096, 65536, 1u << 30}).code == Code::INVALID);
}

TEST_CASE("chunks respect min and max and cover the input", "[fastcdc]") {
  FastCdc cdc(kSmall);
  auto data = randomBytes(4 << 20, 1);
  auto cuts = boundaries(cdc, data);
  size_t previous = 0;
  for (size_t i = 0; i < cuts.size(); ++i) {
    size_t length = cuts[i] - previous;
    CHECK(length <= kSmall.maxSize);
    if (i + 1 < cuts.size()) CHECK(length >= kSmall.minSize);
    previous = cuts[i];
  }
  CHECK(cuts.back() == data.size());
  double average = static_cast<double>(data.size()) / cuts.size();
  // Normalized chunking keeps the mean near avgSize (plus the skipped min).
  CHECK(average > kSmall.avgSize * 0.7);
  CHECK(average < kSmall.avgSize * 1.8);

  // Constant input has no content boundaries: every chunk is exactly maxSize.
  std::vector<uint8_t> zeros(200000, 0);
  auto zeroCuts = boundaries(cdc, zeros);
  for (size_t i = 0; i + 1 < zeroCuts.size(); ++i) {
    CHECK(zeroCuts[i] == (i + 1) * kSmall.maxSize);
  }
  CHECK(zeroCuts.back() == zeros.size());
}

TEST_CASE("short and empty input", "[fastcdc]") {
  FastCdc cdc(kSmall);
  auto data = randomBytes(100, 2);
  CHECK(cdc.nextChunk(data.data(), 0, true) == 0);
  CHECK(cdc.nextChunk(data.data(), 0, false) == 0);
  CHECK(cdc.nextChunk(data.data(), 100, true) == 100);
  CHECK(cdc.nextChunk(data.data(), 100, false) == 0);
  CHECK(cdc.nextChunk(data.data(), 1, true) == 1);
}

TEST_CASE("chunking is deterministic", "[fastcdc]") {
  auto data = randomBytes(2 << 20, 3);
  CHECK(boundaries(FastCdc(kSmall), data) == boundaries(FastCdc(kSmall), data));
  CHECK(boundaries(FastCdc(kDefaultChunkerParams), data) ==
        boundaries(FastCdc(kDefaultChunkerParams), data));
}

TEST_CASE("boundaries survive an insert near the start", "[fastcdc]") {
  for (const ChunkerParams& params : {kSmall, kDefaultChunkerParams}) {
    FastCdc cdc(params);
    auto original = randomBytes(8 << 20, 4);
    auto edited = original;
    const size_t at = 100;
    const std::vector<uint8_t> inserted = {'h', 'e', 'l', 'l', 'o'};
    edited.insert(edited.begin() + at, inserted.begin(), inserted.end());

    auto before = boundaries(cdc, original);
    auto after = boundaries(cdc, edited);
    std::set<size_t> shifted;
    for (size_t cut : before) shifted.insert(cut + inserted.size());
    size_t differing = 0;
    for (size_t cut : after) {
      if (!shifted.count(cut)) ++differing;
    }
    INFO("chunks " << before.size() << ", new boundaries " << differing);
    CHECK(before.size() > 20);
    CHECK(differing <= 2);
    // Every boundary after the second must be the old one, shifted.
    for (size_t i = 2; i < after.size(); ++i) CHECK(shifted.count(after[i]) == 1);
  }
}

TEST_CASE("streaming with partial buffers equals one shot", "[fastcdc]") {
  FastCdc cdc(kSmall);
  auto data = randomBytes(3 << 20, 5);
  auto expected = boundaries(cdc, data);

  std::mt19937_64 rng(6);
  // Feed the chunker growing windows of random size, as a FUSE write stream
  // would, and only call atEnd once the last byte is in.
  std::vector<size_t> cuts;
  size_t start = 0;
  size_t available = 0;
  while (start < data.size()) {
    size_t n = cdc.nextChunk(data.data() + start, available - start, available == data.size());
    if (n == 0) {
      REQUIRE(available < data.size());
      available = std::min(data.size(), available + 1 + rng() % 20000);
      continue;
    }
    REQUIRE(n <= available - start);
    start += n;
    cuts.push_back(start);
  }
  CHECK(cuts == expected);
}

TEST_CASE("atEnd never returns zero and need-more only below max", "[fastcdc]") {
  FastCdc cdc(kSmall);
  auto data = randomBytes(100000, 7);
  for (size_t size = 1; size < data.size(); size = size * 3 / 2 + 1) {
    size_t atEnd = cdc.nextChunk(data.data(), size, true);
    CHECK(atEnd > 0);
    CHECK(atEnd <= size);
    CHECK(atEnd <= kSmall.maxSize);
    size_t more = cdc.nextChunk(data.data(), size, false);
    if (more == 0) {
      CHECK(size < kSmall.maxSize);
      CHECK(atEnd == size);
    } else {
      CHECK(more == atEnd);
    }
  }
}

TEST_CASE("cut points equal the byte-at-a-time definition", "[fastcdc]") {
  const std::vector<uint8_t> gear = gearTable();
  // Bounds at odd sizes too.
  const std::vector<ChunkerParams> params = {
      kSmall, kDefaultChunkerParams, {64, 129, 1031}, {101, 1000, 4003}, {2050, 8191, 32770}};
  for (const ChunkerParams& p : params) {
    FastCdc cdc(p);
    int bits = int(std::lround(std::log2(double(p.avgSize))));
    uint64_t strict = ~0ULL << (64 - (bits + 2));
    uint64_t loose = ~0ULL << (64 - (bits - 2));
    // Random data cuts anywhere; a run of one byte value cuts nowhere or at once.
    std::vector<std::vector<uint8_t>> inputs = {randomBytes(600000, p.avgSize),
                                                std::vector<uint8_t>(300000, 0),
                                                std::vector<uint8_t>(300000, 0xa5)};
    for (const auto& data : inputs) {
      size_t offset = 0;
      int chunks = 0;
      while (offset < data.size()) {
        const uint8_t* at = data.data() + offset;
        size_t rest = data.size() - offset;
        // Also windows that end before the data does ("need more bytes").
        for (size_t cut : {rest, rest - rest / 3, rest / 2 + 1}) {
          CHECK(cdc.nextChunk(at, cut, false) ==
                referenceNextChunk(p, strict, loose, gear, at, cut, false));
        }
        size_t n = cdc.nextChunk(at, rest, true);
        REQUIRE(n == referenceNextChunk(p, strict, loose, gear, at, rest, true));
        offset += n;
        ++chunks;
      }
      CHECK(chunks > 0);
    }
  }
}

}  // namespace dfs
