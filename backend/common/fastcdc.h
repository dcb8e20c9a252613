// FastCDC content-defined chunking (Xia et al., USENIX ATC'16): a gear rolling
// hash, normalized chunking with a strict mask before the average size and a
// loose one after it (normalization level 2), and no cut point tested below
// minSize. Boundaries depend only on nearby content, so an insert near the start
// of a file shifts the later chunks instead of changing them (what makes dedup
// work across file versions). See docs/chunking.md for the chosen sizes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/common/status.h"

namespace dfs {

struct ChunkerParams {
  uint32_t minSize;
  uint32_t avgSize;
  uint32_t maxSize;
};

// Chosen by measurement on a /usr corpus (docs/chunking.md).
extern const ChunkerParams kDefaultChunkerParams;

// REQUIRES for a usable chunker: 64 <= minSize < avgSize < maxSize <= 256 MiB.
// avgSize need not be a power of two; the masks use round(log2(avgSize)) bits.
Status validateChunkerParams(const ChunkerParams& params);

// Immutable after construction: any thread may call it concurrently.
class FastCdc {
 public:
  // REQUIRES: validateChunkerParams(params).ok() (checked; violations abort).
  explicit FastCdc(ChunkerParams params);

  // Length of the chunk starting at data[0]. If no cut point is found within
  // `size` bytes, size < maxSize and !atEnd, returns 0 ("need more bytes"). With
  // atEnd, never returns 0 for size > 0. Never returns more than maxSize.
  // The result depends only on data[0 .. result) plus the bytes examined, so a
  // streaming caller that retries with more bytes gets the one-shot answer.
  size_t nextChunk(const uint8_t* data, size_t size, bool atEnd) const;

  const ChunkerParams& params() const { return params_; }

 private:
  ChunkerParams params_;
  uint64_t maskStrict_;  // more bits: harder to cut before avgSize
  uint64_t maskLoose_;   // fewer bits: easier to cut after avgSize
};

}  // namespace dfs
