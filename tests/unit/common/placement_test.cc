#include "backend/common/placement.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>

namespace dfs {
namespace {

ChunkId chunkNumber(uint64_t n) { return sha256(&n, sizeof(n)); }

std::vector<PlacementNode> equalNodes(int count) {
  std::vector<PlacementNode> nodes;
  for (int i = 0; i < count; ++i) nodes.push_back({static_cast<uint32_t>(100 + i), 10, "", true});
  return nodes;
}

constexpr int kChunks = 100000;

}  // namespace

TEST_CASE("equal weights spread evenly", "[placement]") {
  for (int nodeCount : {6, 7, 10, 13, 20}) {
    auto nodes = equalNodes(nodeCount);
    std::map<uint32_t, int> first;
    std::map<uint32_t, int> any;
    for (int c = 0; c < kChunks; ++c) {
      auto placed = placeFragments(chunkNumber(c), nodes, 6);
      REQUIRE(placed.ok());
      REQUIRE(placed.value().size() == 6);
      std::set<uint32_t> distinct(placed.value().begin(), placed.value().end());
      REQUIRE(distinct.size() == 6);
      ++first[placed.value()[0]];
      for (uint32_t id : placed.value()) ++any[id];
    }
    INFO(nodeCount << " nodes");
    double idealFirst = static_cast<double>(kChunks) / nodeCount;
    double idealAny = 6.0 * kChunks / nodeCount;
    for (const auto& node : nodes) {
      CHECK(std::abs(first[node.id] - idealFirst) < idealFirst * 0.05);
      CHECK(std::abs(any[node.id] - idealAny) < idealAny * 0.03);
    }
  }
}

TEST_CASE("first choices follow weights", "[placement]") {
  std::vector<PlacementNode> nodes = {
      {1, 1, "", true}, {2, 2, "", true}, {3, 3, "", true}, {4, 4, "", true}, {5, 10, "", true}};
  std::map<uint32_t, int> first;
  for (int c = 0; c < kChunks; ++c) ++first[placeFragments(chunkNumber(c), nodes, 1).value()[0]];
  for (const auto& node : nodes) {
    double ideal = kChunks * node.weight / 20.0;
    INFO("node " << node.id << " got " << first[node.id] << " ideal " << ideal);
    CHECK(std::abs(first[node.id] - ideal) < ideal * 0.06);
  }
}

TEST_CASE("adding a node moves only its share", "[placement]") {
  auto six = equalNodes(6);
  auto seven = six;
  seven.push_back({999, 10, "", true});
  int firstMoved = 0;
  for (int c = 0; c < kChunks; ++c) {
    ChunkId id = chunkNumber(c);
    auto before = placeFragments(id, six, 4).value();
    auto after = placeFragments(id, seven, 4).value();
    if (before[0] != after[0]) {
      ++firstMoved;
      CHECK(after[0] == 999);  // never from one old node to another
    }
    // The chosen set changes by at most the new node replacing one old node.
    std::set<uint32_t> oldSet(before.begin(), before.end());
    int newcomers = 0;
    for (uint32_t n : after) {
      if (!oldSet.count(n)) {
        ++newcomers;
        CHECK(n == 999);
      }
    }
    CHECK(newcomers <= 1);
  }
  double ideal = kChunks / 7.0;
  CHECK(std::abs(firstMoved - ideal) < ideal * 0.05);
}

TEST_CASE("removing or downing a node moves only its placements", "[placement]") {
  auto nodes = equalNodes(8);
  auto down = nodes;
  down[3].up = false;
  for (int c = 0; c < 20000; ++c) {
    ChunkId id = chunkNumber(c);
    auto before = placeFragments(id, nodes, 6).value();
    auto after = placeFragments(id, down, 6).value();
    std::set<uint32_t> afterSet(after.begin(), after.end());
    for (uint32_t n : before) {
      if (n != nodes[3].id) CHECK(afterSet.count(n) == 1);
    }
    CHECK(afterSet.count(nodes[3].id) == 0);
  }
}

TEST_CASE("labels spread fragments over failure domains", "[placement]") {
  std::vector<PlacementNode> nodes;
  for (uint32_t i = 0; i < 12; ++i) nodes.push_back({i, 10, "rack" + std::to_string(i % 3), true});
  for (int c = 0; c < 5000; ++c) {
    auto three = placeFragments(chunkNumber(c), nodes, 3).value();
    std::set<std::string> labels;
    for (uint32_t id : three) labels.insert(nodes[id].label);
    CHECK(labels.size() == 3);
    // Six fragments on three racks: each rack gets exactly two.
    auto six = placeFragments(chunkNumber(c), nodes, 6).value();
    std::map<std::string, int> perLabel;
    for (uint32_t id : six) ++perLabel[nodes[id].label];
    CHECK(std::set<uint32_t>(six.begin(), six.end()).size() == 6);
    for (const auto& [label, n] : perLabel) CHECK(n == 2);
  }
  // Unlabelled nodes are each their own domain alongside labelled ones.
  std::vector<PlacementNode> mixed = {{1, 1, "a", true}, {2, 1, "a", true}, {3, 1, "a", true},
                                      {4, 1, "", true},  {5, 1, "", true}};
  for (int c = 0; c < 2000; ++c) {
    auto placed = placeFragments(chunkNumber(c), mixed, 3).value();
    std::set<uint32_t> set(placed.begin(), placed.end());
    CHECK(set.count(4) == 1);
    CHECK(set.count(5) == 1);
  }
}

TEST_CASE("not enough up nodes is UNAVAILABLE", "[placement]") {
  auto nodes = equalNodes(6);
  nodes[2].up = false;
  auto result = placeFragments(chunkNumber(1), nodes, 6);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code == Code::UNAVAILABLE);
  CHECK(result.status().message == "volume needs 6 storage nodes, only 5 are up");
  CHECK(placeFragments(chunkNumber(1), nodes, 5).ok());
  auto profiled = placeChunk(chunkNumber(1), nodes, 4, 2);
  CHECK(profiled.status().code == Code::UNAVAILABLE);
  CHECK(profiled.status().message == "volume needs 6 storage nodes (4+2), only 5 are up");
  CHECK(placeChunk(chunkNumber(1), nodes, 3, 2).value() ==
        placeFragments(chunkNumber(1), nodes, 5).value());
  CHECK(placeFragments(chunkNumber(1), {}, 0).value().empty());
}

TEST_CASE("placement ignores the order of the node list", "[placement]") {
  auto nodes = equalNodes(10);
  auto shuffled = nodes;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(5));
  for (int c = 0; c < 1000; ++c) {
    CHECK(placeFragments(chunkNumber(c), nodes, 6).value() ==
          placeFragments(chunkNumber(c), shuffled, 6).value());
  }
}

}  // namespace dfs
