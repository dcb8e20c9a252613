#include "backend/common/hash.h"

#include <openssl/sha.h>
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include "backend/common/hash_avx2.h"

namespace dfs {

ChunkId sha256(const void* data, size_t size) {
  ChunkId id;
  SHA256(static_cast<const unsigned char*>(data), size, id.data());
  return id;
}

namespace {

// Every fragment and journal record is checksummed: the AVX2 build of XXH3 where
// the CPU has it, the library's otherwise (hash_avx2.h).
bool useAvx2() {
  static const bool avx2 = hash_detail::hasAvx2();
  return avx2;
}

}  // namespace

uint64_t xxh3(const void* data, size_t size) {
  return useAvx2() ? hash_detail::xxh3Avx2(data, size) : XXH3_64bits(data, size);
}

uint64_t xxh3(std::string_view a, std::string_view b) {
  if (useAvx2()) return hash_detail::xxh3Avx2(a.data(), a.size(), b.data(), b.size());
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
