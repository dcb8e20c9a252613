#include "backend/common/hash.h"

#include <openssl/sha.h>
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

namespace dfs {

ChunkId sha256(const void* data, size_t size) {
  ChunkId id;
  SHA256(static_cast<const unsigned char*>(data), size, id.data());
  return id;
}

uint64_t xxh3(const void* data, size_t size) { return XXH3_64bits(data, size); }

uint64_t xxh3(std::string_view a, std::string_view b) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, a.data(), a.size());
  XXH3_64bits_update(&state, b.data(), b.size());
  return XXH3_64bits_digest(&state);
}

std::string toHex(const uint8_t* data, size_t size) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

}  // namespace dfs
