// zstd compression of one chunk. Each chunk is compressed independently (no
// dictionary, no frame content size needed) so any chunk decodes on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "backend/common/status.h"

namespace dfs {

// The chunk must shrink by at least 1/16 to be stored compressed; below that
// the CPU spent on every read is not worth the bytes saved.
constexpr size_t kMinCompressionGainDivisor = 16;

// zstd level used on the write path (§3: a fast level on write).
constexpr int kDefaultZstdLevel = 1;

// Returns the compressed bytes if zstd at `level` makes the chunk at least 1/16
// smaller, else nullopt (caller stores it raw). A sample is tried first so
// incompressible chunks (media, archives, encrypted data) cost little CPU.
// Thread-safe: uses a thread_local compression context.
std::optional<std::string> compressChunk(const uint8_t* data, size_t size, int level);

// Fails with Code::IO (never returns wrong-sized output) if data is corrupt or
// does not decompress to exactly plainSize bytes. Safe on arbitrary input.
// Thread-safe: uses a thread_local decompression context.
Result<std::string> decompressChunk(const uint8_t* data, size_t size, size_t plainSize);

}  // namespace dfs
