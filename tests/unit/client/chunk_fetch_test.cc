#include "backend/client/chunk_fetch.h"

#include <catch2/catch.hpp>

using dfs::ChunkPlacement;
using dfs::NodeAddress;
using dfs::NodeDirectory;

namespace {

// A 4+2 chunk of generation 2 on nodes 10..15.
ChunkPlacement placement() {
  ChunkPlacement c;
  c.layout.id[0] = 7;
  c.layout.k = 4;
  c.layout.m = 2;
  c.nodes = {10, 11, 12, 13, 14, 15};
  c.generation = 2;
  return c;
}

NodeDirectory directory(std::initializer_list<uint32_t> down) {
  NodeDirectory nodes;
  for (uint32_t id = 10; id <= 15; ++id) nodes[id] = NodeAddress{"n" + std::to_string(id), true};
  for (uint32_t id : down) nodes[id].up = false;
  return nodes;
}

}  // namespace

TEST_CASE("fragment requests ask up nodes first, data before parity") {
  auto req = dfs::fragmentRequest(placement(), directory({}), std::vector<bool>(6, false), 4);
  CHECK(req.chunk == placement().layout.id);
  CHECK(req.generation == 2);
  CHECK(req.need == 4);
  CHECK(req.addresses == std::vector<std::string>{"n10", "n11", "n12", "n13", "n14", "n15"});
  CHECK(req.order == std::vector<int>{0, 1, 2, 3, 4, 5});
  // Nodes the cluster map marks down are tried last, not skipped.
  req = dfs::fragmentRequest(placement(), directory({11, 14}), std::vector<bool>(6, false), 4);
  CHECK(req.order == std::vector<int>{0, 2, 3, 5, 1, 4});
}

TEST_CASE("fragment requests skip what was tried and leave unknown nodes out") {
  NodeDirectory nodes = directory({});
  nodes.erase(13);  // not in the cluster map (yet)
  std::vector<bool> skip = {true, false, true, false, false, false};
  auto req = dfs::fragmentRequest(placement(), nodes, skip, 6);
  CHECK(req.addresses[3].empty());
  CHECK(req.addresses[0] == "n10");  // known, only not asked again
  CHECK(req.order == std::vector<int>{1, 4, 5});
  // A placement with fewer nodes than k+m asks only for those it names.
  ChunkPlacement shortOne = placement();
  shortOne.nodes.resize(3);
  req = dfs::fragmentRequest(shortOne, directory({}), std::vector<bool>(6, false), 4);
  CHECK(req.addresses.size() == 6);
  CHECK(req.order == std::vector<int>{0, 1, 2});
}
