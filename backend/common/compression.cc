#include "backend/common/compression.h"

#include <zstd.h>

#include <memory>

namespace dfs {

namespace {

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* ctx) const { ZSTD_freeCCtx(ctx); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* ctx) const { ZSTD_freeDCtx(ctx); }
};

ZSTD_CCtx* threadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> ctx(ZSTD_createCCtx());
  return ctx.get();
}

ZSTD_DCtx* threadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> ctx(ZSTD_createDCtx());
  return ctx.get();
}

// Chunks at least this big get the sample test; smaller ones are cheap anyway.
constexpr size_t kSampleThreshold = 32 * 1024;
constexpr size_t kSampleSize = 4 * 1024;

// True when a level-1 compression of a sample saves less than ~3%. Two samples
// (start and middle) so a compressible header on random data, or the reverse,
// does not decide alone.
bool looksIncompressible(ZSTD_CCtx* ctx, const uint8_t* data, size_t size) {
  if (size < kSampleThreshold) return false;
  char out[ZSTD_COMPRESSBOUND(kSampleSize)];
  const size_t offsets[] = {0, size / 2};
  for (size_t offset : offsets) {
    size_t n = ZSTD_compressCCtx(ctx, out, sizeof(out), data + offset, kSampleSize, 1);
    if (ZSTD_isError(n)) return false;
    if (n < kSampleSize - kSampleSize / 32) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> compressChunk(const uint8_t* data, size_t size, int level) {
  if (size == 0) return std::nullopt;
  ZSTD_CCtx* ctx = threadCCtx();
  if (ctx == nullptr || looksIncompressible(ctx, data, size)) return std::nullopt;
  // At least one byte smaller even for tiny chunks: a stored size below the
  // plain size is what marks a layout as compressed (docs/formats.md (chunk section)).
  const size_t gain = size / kMinCompressionGainDivisor;
  const size_t limit = size - (gain > 0 ? gain : 1);
  std::string out(ZSTD_compressBound(size), '\0');
  // compressCCtx writes the content size in the frame header; decompressChunk
  // relies on that to reject frames of the wrong size before allocating.
  size_t n = ZSTD_compressCCtx(ctx, out.data(), out.size(), data, size, level);
  if (ZSTD_isError(n) || n > limit) return std::nullopt;
  out.resize(n);
  return out;
}

Result<std::string> decompressChunk(const uint8_t* data, size_t size, size_t plainSize) {
  unsigned long long declared = ZSTD_getFrameContentSize(data, size);
  if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN) {
    return Status::error(Code::IO, "compressed chunk has no valid zstd frame header");
  }
  if (declared != plainSize) {
    return Status::error(Code::IO, "compressed chunk declares " + std::to_string(declared) +
                                       " bytes, expected " + std::to_string(plainSize));
  }
  // The whole input must be exactly one frame: trailing bytes mean corruption.
  size_t frameSize = ZSTD_findFrameCompressedSize(data, size);
  if (ZSTD_isError(frameSize) || frameSize != size) {
    return Status::error(Code::IO, "compressed chunk is not exactly one zstd frame");
  }
  ZSTD_DCtx* ctx = threadDCtx();
  if (ctx == nullptr) return Status::error(Code::IO, "out of memory for zstd context");
  std::string out(plainSize, '\0');
  size_t n = ZSTD_decompressDCtx(ctx, out.data(), out.size(), data, size);
  if (ZSTD_isError(n)) {
    return Status::error(Code::IO, std::string("zstd: ") + ZSTD_getErrorName(n));
  }
  if (n != plainSize) {
    return Status::error(Code::IO, "compressed chunk decoded to " + std::to_string(n) +
                                       " bytes, expected " + std::to_string(plainSize));
  }
  return out;
}

}  // namespace dfs
