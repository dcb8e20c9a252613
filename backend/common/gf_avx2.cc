#include "backend/common/gf_avx2.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace dfs {
namespace gf_detail {

#if defined(__AVX2__)

bool hasAvx2() {
  return __builtin_cpu_supports("avx2");
}

void encodeAvx2(int k, int m, const uint8_t* tables, const char* const* data, char* const* parity,
                size_t size) {
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  size_t j = 0;
  for (; j + 32 <= size; j += 32) {
    for (int r = 0; r < m; ++r) {
      __m256i sum = _mm256_setzero_si256();
      const uint8_t* t = tables + kTableBytes * size_t(r * k);
      for (int i = 0; i < k; ++i, t += kTableBytes) {
        __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data[i] + j));
        __m256i lo = _mm256_and_si256(x, nibble);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi64(x, 4), nibble);
        __m256i lowTable = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t));
        __m256i highTable = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + 32));
        sum = _mm256_xor_si256(sum, _mm256_shuffle_epi8(lowTable, lo));
        sum = _mm256_xor_si256(sum, _mm256_shuffle_epi8(highTable, hi));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(parity[r] + j), sum);
    }
  }
  for (; j < size; ++j) {  // the last bytes one at a time, with the same tables
    for (int r = 0; r < m; ++r) {
      uint8_t sum = 0;
      const uint8_t* t = tables + kTableBytes * size_t(r * k);
      for (int i = 0; i < k; ++i, t += kTableBytes) {
        uint8_t x = uint8_t(data[i][j]);
        sum ^= uint8_t(t[x & 15] ^ t[32 + (x >> 4)]);
      }
      parity[r][j] = char(sum);
    }
  }
}

#else

bool hasAvx2() {
  return false;
}
void encodeAvx2(int, int, const uint8_t*, const char* const*, char* const*, size_t) {}

#endif

}  // namespace gf_detail
}  // namespace dfs
