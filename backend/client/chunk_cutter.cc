#include "backend/client/chunk_cutter.h"

#include <algorithm>
#include <iterator>

namespace dfs {

namespace {

ChunkerParams volumeParams(const VolumeInfo& vol) {
  ChunkerParams params{vol.chunkMin, vol.chunkAvg, vol.chunkMax};
  return validateChunkerParams(params).ok() ? params : kDefaultChunkerParams;
}

}  // namespace

ChunkCutter::ChunkCutter(const RangeMap& ranges, bool final, const VolumeInfo& vol)
    : ranges_(ranges), final_(final), cdc_(volumeParams(vol)), it_(ranges.begin()) {}

bool ChunkCutter::cut(uint64_t bytes, std::deque<ChunkPiece>* out) {
  uint64_t cutBytes = 0;
  bool any = false;
  while (it_ != ranges_.end() && cutBytes < bytes) {
    // Only the last range may keep a tail: the others end at a gap.
    bool atEnd = final_ || std::next(it_) != ranges_.end();
    const uint8_t* data = reinterpret_cast<const uint8_t*>(it_->second.data());
    size_t size = it_->second.size();
    size_t n = pos_ < size ? cdc_.nextChunk(data + pos_, size - pos_, atEnd) : 0;
    if (n == 0) {
      if (pos_ < size) tailOffset_ = it_->first + pos_;
      ++it_;
      pos_ = 0;
      continue;
    }
    out->push_back(ChunkPiece{it_->first + pos_, data + pos_, uint32_t(n), sha256(data + pos_, n)});
    pos_ += n;
    cutBytes += n;
    any = true;
    committedEnd_ = std::max(committedEnd_, it_->first + pos_);
  }
  return any || it_ != ranges_.end();
}

}  // namespace dfs
