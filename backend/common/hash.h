// Content identity (SHA-256, cryptographic: global dedup must not be forgeable)
// and integrity checksums (XXH3-64, for stored and sent bytes).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <string>

namespace dfs {

using ChunkId = std::array<uint8_t, 32>;

ChunkId sha256(const void* data, size_t size);
uint64_t xxh3(const void* data, size_t size);
// XXH3-64 of the concatenation a ‖ b, without concatenating.
uint64_t xxh3(std::string_view a, std::string_view b);
std::string toHex(const uint8_t* data, size_t size);
inline std::string toHex(const ChunkId& id) { return toHex(id.data(), id.size()); }

}  // namespace dfs
