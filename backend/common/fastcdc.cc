#include "backend/common/fastcdc.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace dfs {

// 64 KiB average: see docs/chunking.md for the measurement behind it.
const ChunkerParams kDefaultChunkerParams = {16 * 1024, 64 * 1024, 256 * 1024};

namespace {

constexpr uint32_t kMinAllowedSize = 64;
constexpr uint32_t kMaxAllowedSize = 256u << 20;

// The gear table is part of the chunk-boundary definition: changing the seed or
// the generator changes every boundary and so defeats dedup against existing
// data (not correctness). splitmix64 gives well-mixed 64-bit entries.
constexpr uint64_t kGearSeed = 0x6466732d67656172ULL;  // "dfs-gear"

struct GearTable {
  std::array<uint64_t, 256> value{};
  constexpr GearTable() {
    uint64_t state = kGearSeed;
    for (auto& v : value) {
      state += 0x9e3779b97f4a7c15ULL;
      uint64_t z = state;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      v = z ^ (z >> 31);
    }
  }
};
constexpr GearTable kGear;

// The gear hash shifts left once per byte, so bit b depends on the last b+1
// bytes; masks take the top bits so every mask bit sees a 40+ byte window.
uint64_t topBitsMask(int bits) { return bits <= 0 ? 0 : ~0ULL << (64 - bits); }

}  // namespace

Status validateChunkerParams(const ChunkerParams& p) {
  if (p.minSize < kMinAllowedSize || p.maxSize > kMaxAllowedSize || !(p.minSize < p.avgSize) ||
      !(p.avgSize < p.maxSize)) {
    return Status::error(Code::INVALID,
                         "chunker sizes must satisfy 64 <= min < avg < max <= 256 MiB, got " +
                             std::to_string(p.minSize) + "/" + std::to_string(p.avgSize) + "/" +
                             std::to_string(p.maxSize));
  }
  return Status::success();
}

FastCdc::FastCdc(ChunkerParams params) : params_(params) {
  Status status = validateChunkerParams(params);
  if (!status.ok()) {
    std::fprintf(stderr, "FastCdc: %s\n", status.message.c_str());
    std::abort();
  }
  // Normalization level 2: two bits more before avgSize, two bits fewer after.
  int bits = static_cast<int>(std::lround(std::log2(static_cast<double>(params.avgSize))));
  maskStrict_ = topBitsMask(bits + 2);
  maskLoose_ = topBitsMask(bits - 2);
}

size_t FastCdc::nextChunk(const uint8_t* data, size_t size, bool atEnd) const {
  if (size == 0) return 0;
  const size_t minSize = params_.minSize;
  const size_t maxSize = params_.maxSize;
  if (size <= minSize) return atEnd ? size : 0;

  const size_t limit = size < maxSize ? size : maxSize;
  const size_t normal = params_.avgSize < limit ? params_.avgSize : limit;
  // Cut-point skipping: the hash starts at minSize, so no boundary is ever
  // tested inside the first minSize bytes.
  uint64_t hash = 0;
  size_t i = minSize;
  for (; i < normal; ++i) {
    hash = (hash << 1) + kGear.value[data[i]];
    if ((hash & maskStrict_) == 0) return i + 1;
  }
  for (; i < limit; ++i) {
    hash = (hash << 1) + kGear.value[data[i]];
    if ((hash & maskLoose_) == 0) return i + 1;
  }
  if (limit == maxSize) return maxSize;
  return atEnd ? size : 0;
}

}  // namespace dfs
