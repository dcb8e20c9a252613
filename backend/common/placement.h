// Fragment placement by weighted rendezvous (highest random weight) hashing:
// each (chunk, node) pair gets a score and the best-scoring nodes win. Adding or
// removing a node moves only the placements that node wins or loses, and weights
// give each node a share proportional to its weight.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/common/hash.h"
#include "backend/common/status.h"

namespace dfs {

struct PlacementNode {
  uint32_t id;
  uint32_t weight;    // 0 is treated as 1
  std::string label;  // failure domain; empty: the node is its own domain
  bool up;
};

// score = -weight / ln(u), u in (0,1) from XXH3 of (chunk id, node id).
double placementScore(const ChunkId& chunk, const PlacementNode& node);

// Chooses `count` distinct up nodes for this chunk. Order of the result is the
// fragment order. Distinct failure domains are preferred: the best node of each
// unused label is taken first; a label is reused only when there are not enough
// labels, and then evenly (round-robin in score order). Fewer than `count` up
// nodes -> Code::UNAVAILABLE.
// Pure function of its arguments (node order in `nodes` does not matter).
Result<std::vector<uint32_t>> placeFragments(const ChunkId& chunk,
                                             const std::vector<PlacementNode>& nodes,
                                             size_t count);

// placeFragments for a k+m erasure profile; the UNAVAILABLE message names the
// profile ("volume needs 6 storage nodes (4+2), only 5 are up").
Result<std::vector<uint32_t>> placeChunk(const ChunkId& chunk,
                                         const std::vector<PlacementNode>& nodes, int k, int m);

}  // namespace dfs
