// Reed–Solomon parity over GF(2^8) compiled for AVX2 (gf_avx2.cc is built with
// -mavx2 on x86-64): each product c·x is two 16-entry table lookups (low and high
// nibble of x) done 32 bytes at a time with VPSHUFB. The encoder Debian's
// Jerasure/gf-complete gives us ran at ~2.8 GB/s for 4+2 here; this one at
// several times that (docs/benchmarks.md, session 11). The tables are built by
// ErasureCodec from Jerasure's own field (galois_single_multiply), so the parity
// is bit-identical (erasure_test). Only call it where hasAvx2() is true.
// No C++ library types here (see hash_avx2.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace dfs {
namespace gf_detail {

// Bytes of product tables per coefficient: c·x for x = 0..15 (twice, one per
// 128-bit lane), then c·(x << 4) for x = 0..15 (twice).
constexpr size_t kTableBytes = 64;

// False where the build or the CPU lacks AVX2.
bool hasAvx2();
// For r in [0, m): parity[r][0, size) = XOR over i in [0, k) of c(r,i)·data[i][j],
// with the tables of c(r,i) at tables + kTableBytes * (r * k + i).
void encodeAvx2(int k, int m, const uint8_t* tables, const char* const* data, char* const* parity,
                size_t size);

}  // namespace gf_detail
}  // namespace dfs
