// Reed–Solomon erasure coding over GF(2^8) with Jerasure (Cauchy "good"
// generator matrix, w=8, gf-complete SIMD region multiply), k data + m parity
// fragments per chunk. Where the CPU has AVX2, parity is computed by gf_avx2.h
// from the same matrix and field (bit-identical); decoding is always Jerasure's. The code is systematic: data fragments are the plain
// (zero-padded) input, so reads with all data fragments up need no decoding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/common/status.h"

namespace dfs {

constexpr int kMaxDataFragments = 32;
constexpr int kMaxParityFragments = 16;
constexpr int kMaxFragments = 48;

// Immutable after construction; encode/decode are thread-safe.
class ErasureCodec {
 public:
  // Cached per (k, m), thread-safe, the codec lives until exit.
  // k in 1..32, m in 0..16, k+m <= 48, else Code::INVALID.
  static Result<const ErasureCodec*> get(int k, int m);

  int k() const { return k_; }
  int m() const { return m_; }

  // ceil(storedSize/k) rounded up to a multiple of 8 (Jerasure alignment), >= 8.
  uint32_t fragmentSize(size_t storedSize) const;

  // Zero-pads data to k*fragmentSize, returns k data fragments followed by m
  // parity fragments, each fragmentSize(size) bytes.
  std::vector<std::string> encode(const uint8_t* data, size_t size) const;

  // fragments.size() == k+m; nullopt = erasure; every present fragment must have
  // the same size (a multiple of 8). Needs >= k present, else Code::IO. Returns
  // the first `size` bytes of the decoded data (size <= k * fragment size).
  Result<std::string> decode(std::vector<std::optional<std::string>> fragments,
                             size_t size) const;

  ErasureCodec(const ErasureCodec&) = delete;
  ErasureCodec& operator=(const ErasureCodec&) = delete;
  ~ErasureCodec();

 private:
  ErasureCodec(int k, int m);

  int k_;
  int m_;
  int* matrix_ = nullptr;  // m x k coding matrix over GF(2^8), Jerasure malloc'ed
  // Product tables of the matrix for the AVX2 encoder (gf_avx2.h); empty where
  // the CPU lacks AVX2, and Jerasure encodes.
  std::vector<uint8_t> tables_;
};

}  // namespace dfs
