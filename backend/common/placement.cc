#include "backend/common/placement.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

namespace dfs {

double placementScore(const ChunkId& chunk, const PlacementNode& node) {
  // XXH3 is enough here: placement must be uniform and stable, not secret.
  uint8_t key[36];
  std::memcpy(key, chunk.data(), chunk.size());
  key[32] = static_cast<uint8_t>(node.id);
  key[33] = static_cast<uint8_t>(node.id >> 8);
  key[34] = static_cast<uint8_t>(node.id >> 16);
  key[35] = static_cast<uint8_t>(node.id >> 24);
  uint64_t h = XXH3_64bits(key, sizeof(key));
  // 53 random bits mapped to the open interval (0, 1).
  double u = (static_cast<double>(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  double weight = node.weight == 0 ? 1.0 : static_cast<double>(node.weight);
  // -w/ln(u) is the key of an exponential race: node i wins with probability
  // w_i / sum(w), and removing or adding a node changes only its own wins.
  return -weight / std::log(u);
}

Result<std::vector<uint32_t>> placeFragments(const ChunkId& chunk,
                                             const std::vector<PlacementNode>& nodes,
                                             size_t count) {
  struct Candidate {
    double score;
    const PlacementNode* node;
  };
  std::vector<Candidate> candidates;
  candidates.reserve(nodes.size());
  for (const auto& node : nodes) {
    if (node.up) candidates.push_back({placementScore(chunk, node), &node});
  }
  if (candidates.size() < count) {
    return Status::error(Code::UNAVAILABLE,
                         "volume needs " + std::to_string(count) + " storage nodes, only " +
                             std::to_string(candidates.size()) + " are up");
  }
  // Ties (practically impossible) break by id so the result never depends on
  // the order of `nodes`.
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.node->id < b.node->id;
  });

  std::vector<uint32_t> chosen;
  chosen.reserve(count);
  std::vector<bool> taken(candidates.size(), false);
  std::map<std::string, size_t> perLabel;
  // Round r takes, in score order, nodes whose failure domain holds fewer than
  // r fragments: round 1 is the best node of each domain (an empty label is a
  // domain of its own), later rounds reuse domains evenly, so losing one domain
  // loses at most ceil(count / domains) fragments.
  for (size_t round = 1; chosen.size() < count; ++round) {
    for (size_t i = 0; i < candidates.size() && chosen.size() < count; ++i) {
      if (taken[i]) continue;
      const std::string& label = candidates[i].node->label;
      if (!label.empty()) {
        size_t& used = perLabel[label];
        if (used >= round) continue;
        ++used;
      }
      taken[i] = true;
      chosen.push_back(candidates[i].node->id);
    }
  }
  return chosen;
}

Result<std::vector<uint32_t>> placeChunk(const ChunkId& chunk,
                                         const std::vector<PlacementNode>& nodes, int k, int m) {
  const size_t count = static_cast<size_t>(k + m);
  auto placed = placeFragments(chunk, nodes, count);
  if (placed.ok() || placed.status().code != Code::UNAVAILABLE) return placed;
  size_t up = 0;
  for (const auto& node : nodes) up += node.up ? 1 : 0;
  return Status::error(Code::UNAVAILABLE, "volume needs " + std::to_string(count) +
                                              " storage nodes (" + std::to_string(k) + "+" +
                                              std::to_string(m) + "), only " +
                                              std::to_string(up) + " are up");
}

}  // namespace dfs
