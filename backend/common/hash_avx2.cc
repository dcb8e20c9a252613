#include "backend/common/hash_avx2.h"

#if defined(__x86_64__) && defined(__AVX2__)
#define XXH_INLINE_ALL  // this translation unit's own copy, vectorized for AVX2
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>
#endif

namespace dfs {
namespace hash_detail {

#if defined(__x86_64__) && defined(__AVX2__)

bool hasAvx2() {
  return __builtin_cpu_supports("avx2");
}

uint64_t xxh3Avx2(const void* data, size_t size) {
  return XXH3_64bits(data, size);
}

uint64_t xxh3Avx2(const void* a, size_t aSize, const void* b, size_t bSize) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, a, aSize);
  XXH3_64bits_update(&state, b, bSize);
  return XXH3_64bits_digest(&state);
}

#else

bool hasAvx2() {
  return false;
}
uint64_t xxh3Avx2(const void*, size_t) {
  return 0;
}
uint64_t xxh3Avx2(const void*, size_t, const void*, size_t) {
  return 0;
}

#endif

}  // namespace hash_detail
}  // namespace dfs
