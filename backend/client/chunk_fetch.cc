#include "backend/client/chunk_fetch.h"

#include <algorithm>
#include <optional>

#include "backend/common/chunk_codec.h"

namespace dfs {

FetchRequest fragmentRequest(const ChunkPlacement& c, const NodeDirectory& nodes,
                             const std::vector<bool>& skip, int need) {
  FetchRequest req;
  req.chunk = c.layout.id;
  req.generation = c.generation;
  const int total = c.layout.k + c.layout.m;
  req.addresses.resize(total);
  std::vector<int> downLast;
  for (int i = 0; i < total && i < int(c.nodes.size()); ++i) {
    auto it = nodes.find(c.nodes[i]);
    if (it == nodes.end()) continue;
    req.addresses[i] = it->second.address;
    if (size_t(i) < skip.size() && skip[i]) continue;
    (it->second.up ? req.order : downLast).push_back(i);  // in index order: data first
  }
  req.order.insert(req.order.end(), downLast.begin(), downLast.end());
  req.need = need;
  return req;
}

std::vector<ChunkRead> readChunks(StoragePool& pool,
                                  const std::vector<const ChunkPlacement*>& chunks,
                                  const NodeDirectory& nodes) {
  std::vector<FetchRequest> requests;
  requests.reserve(chunks.size());
  for (const auto* c : chunks) {
    const int total = c->layout.k + c->layout.m;
    requests.push_back(fragmentRequest(*c, nodes, std::vector<bool>(total, false), c->layout.k));
  }
  auto results = pool.fetch(requests);
  std::vector<ChunkRead> out(chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    const ChunkPlacement& c = *chunks[i];
    ChunkRead& read = out[i];
    auto& frags = results[i].fragments;
    read.failedGets = results[i].failures;
    for (const auto& f : frags) {
      if (f) read.bytesIn += f->size();
    }
    std::vector<int> bad;
    auto decoded = decodeChunk(c.layout, frags, &bad);
    read.corrupt = int(bad.size());
    if (!decoded.ok()) {
      // Second round: every fragment not yet tried; the corrupt ones stay out.
      std::vector<bool> skip(frags.size(), false);
      for (size_t j = 0; j < frags.size(); ++j) skip[j] = frags[j].has_value();
      for (int b : bad) {
        if (b >= 0 && size_t(b) < frags.size()) {
          frags[b].reset();
          skip[b] = true;
        }
      }
      auto more = pool.fetch({fragmentRequest(c, nodes, skip, int(frags.size()))});
      read.failedGets += more[0].failures;
      for (size_t j = 0; j < frags.size(); ++j) {
        if (!skip[j] && more[0].fragments[j]) {
          read.bytesIn += more[0].fragments[j]->size();
          frags[j] = std::move(more[0].fragments[j]);
        }
      }
      std::vector<int> bad2;
      decoded = decodeChunk(c.layout, frags, &bad2);
      read.corrupt += int(bad2.size());
    }
    if (decoded.ok()) {
      read.plain = std::move(decoded).value();
    } else {
      read.plain = decoded.status();
    }
  }
  return out;
}

}  // namespace dfs
