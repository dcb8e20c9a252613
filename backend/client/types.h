// Plain value types of the client core: what MetaClient returns and DataPath uses.
// No Cap'n Proto and no FUSE types cross this boundary, so callers (the FUSE
// adapter, tools, tests) never touch RPC objects.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/common/chunk_codec.h"
#include "backend/common/hash.h"
#include "backend/common/status.h"

namespace dfs {

struct Attr {
  uint64_t ino = 0;
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  int64_t atimeNs = 0;
  int64_t mtimeNs = 0;
  int64_t ctimeNs = 0;
  uint64_t dataVersion = 0;
  uint64_t storedBytes = 0;
};

// Who performs a namespace operation (ownership of new inodes, sticky-bit checks).
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;
};

// Which attributes setattr changes; mirrors proto SetAttr.
struct SetAttrRequest {
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  int64_t atimeNs = 0;
  int64_t mtimeNs = 0;
  int64_t ctimeNs = 0;  // 0: the metadata node's clock
  bool setMode = false, setUid = false, setGid = false, setSize = false;
  bool setAtime = false, setMtime = false, atimeNow = false, mtimeNow = false;
};

// What the metadata node will make of `a` once the change `set` (explicit times) by
// `caller` is applied (mirrors meta::Namespace::setattr).
inline void overlayAttrs(const SetAttrRequest& set, const Caller& caller, Attr* a) {
  if (set.setMode) a->mode = (a->mode & S_IFMT) | (set.mode & 07777);
  if (set.setUid) a->uid = set.uid;
  if (set.setGid) a->gid = set.gid;
  if ((set.setUid || set.setGid) && !set.setMode && caller.uid != 0 && !S_ISDIR(a->mode)) {
    a->mode &= ~uint32_t(S_ISUID);
    if (a->mode & S_IXGRP) a->mode &= ~uint32_t(S_ISGID);
  }
  if (set.setAtime) a->atimeNs = set.atimeNs;
  if (set.setMtime) a->mtimeNs = set.mtimeNs;
  a->ctimeNs = std::max(a->ctimeNs, set.ctimeNs);
}

struct DirEntry {
  std::string name;
  uint64_t ino = 0;
  uint32_t mode = 0;
  std::optional<Attr> attr;  // present when listed with `plus`
};

struct DirPage {
  std::vector<DirEntry> entries;
  bool eof = false;
};

struct VolumeInfo {
  uint32_t id = 0;
  std::string name;
  uint64_t rootIno = 0;
  int ecK = 4, ecM = 2;
  uint32_t chunkMin = 0, chunkAvg = 0, chunkMax = 0;
  int compressionLevel = 0;
  uint32_t inlineThreshold = 0;
};

struct FsStats {
  uint64_t totalBytes = 0, freeBytes = 0, totalInodes = 0, freeInodes = 0;
};

// One range of a file: a hole, inline bytes, or a sub-range of a chunk's plaintext.
struct Extent {
  enum class Kind { kHole, kChunk, kInline };
  uint64_t fileOffset = 0;
  uint64_t length = 0;
  Kind kind = Kind::kHole;
  ChunkId chunk{};             // kChunk
  uint32_t chunkOffset = 0;    // kChunk: offset inside the chunk's plaintext
  std::string inlineData;      // kInline: exactly `length` bytes
};

// A chunk's encoding plus where its fragments live (fragment i on nodes[i]).
struct ChunkPlacement {
  ChunkLayout layout;
  std::vector<uint32_t> nodes;
  uint8_t generation = 0;  // fragment ids: fragmentId(layout.id, i, generation)
};

struct ExtentMap {
  Attr attr;
  std::vector<Extent> extents;
  std::vector<ChunkPlacement> chunks;
};

struct CommitResult {
  Status status;
  Attr attr;
  std::vector<ChunkId> missing;  // set when the status is MISSING_CHUNKS
};

struct StorageNode {
  uint32_t id = 0;
  std::string address;
  uint32_t weight = 1;
  bool up = false;
  std::string label;
  uint64_t capacityBytes = 0, usedBytes = 0;
};

struct ClusterMap {
  std::vector<StorageNode> nodes;
  uint64_t epoch = 0;
};

}  // namespace dfs
