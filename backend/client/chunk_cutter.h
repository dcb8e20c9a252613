// Cuts a file's buffered ranges into chunks (FastCDC, and the SHA-256 of each)
// a batch at a time, so that a flush can send its first chunks while it cuts
// the rest (DataPath::commitRanges). A final cut takes every byte; otherwise
// the bytes after the last range's last cut point are left for the next flush
// (its tail), where more bytes may move the cut.
//
// Threads: one caller at a time.
#pragma once

#include <cstdint>
#include <deque>

#include "backend/client/range_buffer.h"
#include "backend/client/types.h"
#include "backend/common/fastcdc.h"
#include "backend/common/hash.h"

namespace dfs {

// A run of buffered bytes that becomes one chunk. `data` points into the
// ranges that were cut.
struct ChunkPiece {
  uint64_t fileOffset;
  const uint8_t* data;
  uint32_t size;
  ChunkId id;
};

class ChunkCutter {
 public:
  // The volume's chunk sizes (the defaults if they are invalid). `ranges` must
  // outlive the cutter and the pieces.
  ChunkCutter(const RangeMap& ranges, bool final, const VolumeInfo& vol);

  // Appends pieces until at least `bytes` more were cut or the ranges are
  // done. False once there was nothing left to cut.
  bool cut(uint64_t bytes, std::deque<ChunkPiece>* out);
  // The end of the furthest piece cut so far (0: none).
  uint64_t committedEnd() const { return committedEnd_; }
  // Where the kept tail begins (UINT64_MAX: none).
  uint64_t tailOffset() const { return tailOffset_; }

 private:
  const RangeMap& ranges_;
  const bool final_;
  FastCdc cdc_;
  RangeMap::const_iterator it_;
  size_t pos_ = 0;  // in it_'s range
  uint64_t committedEnd_ = 0;
  uint64_t tailOffset_ = UINT64_MAX;
};

}  // namespace dfs
