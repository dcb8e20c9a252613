#include "backend/client/block_pool.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/client/range_buffer.h"

using dfs::Block;
using dfs::RangeBuffer;

TEST_CASE("block pool: a released large block is reused; the pool stays bounded") {
  const size_t big = (size_t(65) << 20);
  Block a = dfs::allocateBlock(big);
  REQUIRE(a.size >= big);
  memset(a.data, 0x5a, a.size);
  char* first = a.data;
  size_t pooledBefore = dfs::pooledBlockBytes();
  dfs::releaseBlock(a);
  CHECK(dfs::pooledBlockBytes() == pooledBefore + a.size);
  Block again = dfs::allocateBlock(big - 4096);  // fits: the same block comes back
  CHECK(again.data == first);
  CHECK(dfs::pooledBlockBytes() == pooledBefore);
  // A much smaller request does not take a block more than twice its size.
  dfs::releaseBlock(again);
  Block small = dfs::allocateBlock(dfs::kPooledMin);
  CHECK(small.data != first);
  dfs::releaseBlock(small);
  // Releasing more than the pool keeps frees the rest.
  std::vector<Block> many;
  for (int i = 0; i < 4; ++i) many.push_back(dfs::allocateBlock(big));
  for (Block& b : many) dfs::releaseBlock(b);
  CHECK(dfs::pooledBlockBytes() <= dfs::kPoolBytes);
  // Small blocks are plain heap memory, never pooled.
  size_t pooled = dfs::pooledBlockBytes();
  Block tiny = dfs::allocateBlock(100);
  dfs::releaseBlock(tiny);
  CHECK(dfs::pooledBlockBytes() == pooled);
}

TEST_CASE("range buffer: append, headroom prepend, growth across the pooled size, copies, moves") {
  std::mt19937_64 rng(5);
  auto bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = char(rng());
    return s;
  };
  std::string model;
  RangeBuffer r;
  CHECK(r.empty());
  CHECK(r.view().empty());
  for (size_t n : {size_t(1), size_t(4096), size_t(1) << 20, size_t(9) << 20, size_t(3)}) {
    std::string d = bytes(n);
    r.append(d);
    model += d;
    REQUIRE(r == model);
  }
  r.prepend("front");  // no headroom: the bytes move once
  model = "front" + model;
  REQUIRE(r == model);

  std::string tail = bytes(1000);
  RangeBuffer h(model, 4096, model.size() + (1 << 20));
  CHECK(h.headroom() == 4096);
  const char* at = h.data();
  h.prepend(tail);  // fits in the headroom: nothing moves
  CHECK(h.data() + tail.size() == at);
  CHECK(h == tail + model);
  h.truncate(10);
  CHECK(h == (tail + model).substr(0, 10));

  RangeBuffer copy(r);
  CHECK(copy == model);
  RangeBuffer moved(std::move(copy));
  CHECK(moved == model);
  CHECK(copy.empty());
  copy = moved;
  CHECK(copy == model);
  moved = RangeBuffer("x");
  CHECK(moved == "x");
}
