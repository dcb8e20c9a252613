// The whole per-chunk data path, pure logic without I/O:
//   plaintext -> SHA-256 id -> zstd (if it pays) -> zero-pad -> RS(k,m) ->
//   k+m fragments, each with an XXH3-64 checksum.
// The byte format is documented in docs/formats.md (chunk section).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backend/common/hash.h"
#include "backend/common/status.h"

namespace dfs {

// Key of one fragment on a storage node: 32-byte chunk id, then one byte: the
// fragment index (0..k-1 data, k..k+m-1 parity; k+m <= 48) in the low 6 bits and
// the chunk's generation (0..3, changed by each re-encoding) in the top 2: 33 bytes.
constexpr size_t kFragmentIdSize = 33;
constexpr int kMaxGeneration = 3;
std::string fragmentId(const ChunkId& chunk, uint8_t index, uint8_t generation = 0);
// The same for a chunk id held as its 32 bytes (metadata records).
std::string fragmentId(std::string_view chunk, uint8_t index, uint8_t generation = 0);
inline uint8_t fragmentIndexOf(uint8_t idByte) { return idByte & 0x3f; }
inline uint8_t fragmentGenerationOf(uint8_t idByte) { return idByte >> 6; }

// Mirrors proto ChunkInfo (minus placement).
struct ChunkLayout {
  ChunkId id{};
  uint32_t plainSize = 0;
  uint32_t storedSize = 0;  // after compression (== plainSize when uncompressed)
  bool compressed = false;
  int k = 0, m = 0;
  uint32_t fragmentSize = 0;
  std::vector<uint64_t> checksums;  // XXH3-64 per fragment, k+m
};

struct EncodedChunk {
  ChunkLayout layout;
  std::vector<std::string> fragments;  // k+m
};

// id = SHA-256 of plaintext (computed here unless `knownId` given; a caller that
// passes knownId promises it is the SHA-256 of data). zstdLevel 0 = no
// compression. Fails with Code::INVALID for bad k/m or size >= 4 GiB.
Result<EncodedChunk> encodeChunk(const uint8_t* data, size_t size, int k, int m, int zstdLevel,
                                 const ChunkId* knownId = nullptr);

// fragments: k+m entries, nullopt = missing. A present fragment whose size !=
// fragmentSize or whose XXH3 != layout.checksums[i] is an erasure: its index is
// appended to *badFragments (if non-null). Then RS-decode (skipped when all k
// data fragments are good), decompress, and verify SHA-256 == id. Any failure
// -> Code::IO with a message; never returns wrong data. `fragments` is only
// read: the caller keeps them for a second attempt, and only an RS decode
// (a data fragment missing or bad) copies the ones it uses.
Result<std::string> decodeChunk(const ChunkLayout& layout,
                                const std::vector<std::optional<std::string>>& fragments,
                                std::vector<int>* badFragments = nullptr);

}  // namespace dfs
