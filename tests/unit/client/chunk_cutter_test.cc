#include "backend/client/chunk_cutter.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <deque>
#include <string>

#include "tests/unit/random_bytes.h"

using dfs::ChunkCutter;
using dfs::ChunkPiece;
using dfs::RangeBuffer;
using dfs::RangeMap;
using dfs::VolumeInfo;
using dfs::testing::randomBytes;

namespace {

VolumeInfo volume(uint32_t min, uint32_t avg, uint32_t max) {
  VolumeInfo v;
  v.chunkMin = min;
  v.chunkAvg = avg;
  v.chunkMax = max;
  return v;
}

std::deque<ChunkPiece> cutAll(ChunkCutter& cutter, uint64_t batch, std::vector<uint64_t>* sizes) {
  std::deque<ChunkPiece> pieces;
  while (true) {
    size_t before = pieces.size();
    if (!cutter.cut(batch, &pieces)) break;
    uint64_t bytes = 0;
    for (size_t i = before; i < pieces.size(); ++i) bytes += pieces[i].size;
    if (sizes) sizes->push_back(bytes);
  }
  return pieces;
}

// Pieces are contiguous within their range, point into it and carry the
// SHA-256 of their bytes.
void checkPieces(const RangeMap& ranges, const std::deque<ChunkPiece>& pieces) {
  for (const auto& p : pieces) {
    auto it = ranges.upper_bound(p.fileOffset);
    REQUIRE(it != ranges.begin());
    --it;
    REQUIRE(p.fileOffset + p.size <= it->first + it->second.size());
    const uint8_t* expected =
        reinterpret_cast<const uint8_t*>(it->second.data()) + (p.fileOffset - it->first);
    CHECK(p.data == expected);
    CHECK(p.id == dfs::sha256(p.data, p.size));
  }
}

}  // namespace

TEST_CASE("cutting in batches gives the one-shot cut's pieces", "[chunk_cutter]") {
  RangeMap ranges;
  ranges.emplace(4096, RangeBuffer(randomBytes(3 << 20, 1)));
  VolumeInfo vol = volume(16 << 10, 64 << 10, 256 << 10);

  ChunkCutter whole(ranges, true, vol);
  auto expected = cutAll(whole, UINT64_MAX, nullptr);
  REQUIRE(expected.size() > 20);

  ChunkCutter batched(ranges, true, vol);
  std::vector<uint64_t> sizes;
  auto pieces = cutAll(batched, 256 << 10, &sizes);
  REQUIRE(pieces.size() == expected.size());
  for (size_t i = 0; i < pieces.size(); ++i) {
    CHECK(pieces[i].fileOffset == expected[i].fileOffset);
    CHECK(pieces[i].size == expected[i].size);
    CHECK(pieces[i].id == expected[i].id);
  }
  // Each call but the last cut at least the batch, and at most one piece more.
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    CHECK(sizes[i] >= (256u << 10));
    CHECK(sizes[i] < (256u << 10) + (256u << 10));
  }
  checkPieces(ranges, pieces);
  CHECK(pieces.front().fileOffset == 4096);
  CHECK(batched.committedEnd() == 4096 + (3u << 20));
  CHECK(batched.tailOffset() == UINT64_MAX);
}

TEST_CASE("a small first batch and larger ones after it cut like one pass", "[chunk_cutter]") {
  // As a flush does: a small first cut (DataPathOptions::firstCutBytes), then
  // whole batches; two ranges with a gap, and a non-final cut keeping a tail.
  RangeMap ranges;
  ranges.emplace(0, RangeBuffer(randomBytes(5 << 20, 2)));
  ranges.emplace((5 << 20) + 100, RangeBuffer(randomBytes(3 << 20, 3)));
  VolumeInfo vol = volume(16 << 10, 64 << 10, 256 << 10);

  ChunkCutter whole(ranges, false, vol);
  auto expected = cutAll(whole, UINT64_MAX, nullptr);

  ChunkCutter batched(ranges, false, vol);
  std::deque<ChunkPiece> pieces;
  REQUIRE(batched.cut(64 << 10, &pieces));
  REQUIRE_FALSE(pieces.empty());
  CHECK(pieces.back().fileOffset + pieces.back().size < (1u << 20));  // only the first bit
  while (batched.cut(2 << 20, &pieces)) {
  }
  REQUIRE(pieces.size() == expected.size());
  for (size_t i = 0; i < pieces.size(); ++i) {
    CHECK(pieces[i].fileOffset == expected[i].fileOffset);
    CHECK(pieces[i].size == expected[i].size);
    CHECK(pieces[i].id == expected[i].id);
  }
  checkPieces(ranges, pieces);
  CHECK(batched.committedEnd() == whole.committedEnd());
  CHECK(batched.tailOffset() == whole.tailOffset());
  CHECK(batched.tailOffset() != UINT64_MAX);
}

TEST_CASE("a non-final cut keeps the last range's tail", "[chunk_cutter]") {
  RangeMap ranges;
  ranges.emplace(0, RangeBuffer(randomBytes(1 << 20, 2)));
  ranges.emplace((2 << 20), RangeBuffer(randomBytes((1 << 20) + 12345, 3)));
  VolumeInfo vol = volume(16 << 10, 64 << 10, 256 << 10);

  ChunkCutter cutter(ranges, false, vol);
  auto pieces = cutAll(cutter, 128 << 10, nullptr);
  checkPieces(ranges, pieces);
  // The first range, which ends at a gap, is cut to its end.
  uint64_t firstEnd = 0, lastEnd = 0;
  for (const auto& p : pieces) {
    if (p.fileOffset < (2u << 20)) {
      CHECK(p.fileOffset == firstEnd);
      firstEnd = p.fileOffset + p.size;
    } else {
      CHECK(p.fileOffset == (lastEnd ? lastEnd : (2u << 20)));
      lastEnd = p.fileOffset + p.size;
    }
  }
  CHECK(firstEnd == (1u << 20));
  // The second keeps the bytes after its last cut point.
  REQUIRE(cutter.tailOffset() != UINT64_MAX);
  CHECK(cutter.tailOffset() == lastEnd);
  CHECK(cutter.committedEnd() == lastEnd);
  CHECK(lastEnd < (3u << 20) + 12345);

  // The final cut of the same ranges takes every byte, with the same pieces
  // up to the tail.
  ChunkCutter final(ranges, true, vol);
  auto all = cutAll(final, 128 << 10, nullptr);
  REQUIRE(all.size() > pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) CHECK(all[i].id == pieces[i].id);
  CHECK(final.tailOffset() == UINT64_MAX);
  CHECK(final.committedEnd() == (3u << 20) + 12345);
}

TEST_CASE("a range shorter than the smallest chunk is all tail unless final", "[chunk_cutter]") {
  RangeMap ranges;
  ranges.emplace(100, RangeBuffer(randomBytes(1000, 4)));
  VolumeInfo vol = volume(16 << 10, 64 << 10, 256 << 10);

  ChunkCutter cutter(ranges, false, vol);
  std::deque<ChunkPiece> pieces;
  CHECK_FALSE(cutter.cut(UINT64_MAX, &pieces));
  CHECK(pieces.empty());
  CHECK(cutter.tailOffset() == 100);
  CHECK(cutter.committedEnd() == 0);

  ChunkCutter final(ranges, true, vol);
  CHECK(final.cut(UINT64_MAX, &pieces));
  REQUIRE(pieces.size() == 1);
  CHECK(pieces[0].fileOffset == 100);
  CHECK(pieces[0].size == 1000);
  CHECK_FALSE(final.cut(UINT64_MAX, &pieces));
}

TEST_CASE("no ranges, nothing to cut; invalid sizes fall back to the defaults", "[chunk_cutter]") {
  RangeMap empty;
  ChunkCutter none(empty, true, volume(16 << 10, 64 << 10, 256 << 10));
  std::deque<ChunkPiece> pieces;
  CHECK_FALSE(none.cut(UINT64_MAX, &pieces));
  CHECK(none.committedEnd() == 0);
  CHECK(none.tailOffset() == UINT64_MAX);

  RangeMap ranges;
  ranges.emplace(0, RangeBuffer(randomBytes(2 << 20, 5)));
  ChunkCutter fallback(ranges, true, volume(0, 0, 0));
  auto cut = cutAll(fallback, UINT64_MAX, nullptr);
  REQUIRE(cut.size() > 1);
  for (size_t i = 0; i + 1 < cut.size(); ++i) {
    CHECK(cut[i].size >= dfs::kDefaultChunkerParams.minSize);
    CHECK(cut[i].size <= dfs::kDefaultChunkerParams.maxSize);
  }
}
