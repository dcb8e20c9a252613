#include "backend/common/hash.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include "backend/common/hash_avx2.h"

namespace dfs {

namespace {

// OpenSSL 3's one-shot SHA256() looks the algorithm up and allocates a context
// on every call: 8 % on top of the hashing itself at 64 KiB chunks (dfs-bench
// datapath). The algorithm is fetched once and each thread keeps its context.
struct Sha256Context {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Sha256Context() { EVP_MD_CTX_free(ctx); }
};

const EVP_MD* sha256Md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // lives as long as the process
  return md;
}

}  // namespace

ChunkId sha256(const void* data, size_t size) {
  ChunkId id;
  thread_local Sha256Context context;
  const EVP_MD* md = sha256Md();
  unsigned int length = 0;
  if (md == nullptr || context.ctx == nullptr || !EVP_DigestInit_ex2(context.ctx, md, nullptr) ||
      !EVP_DigestUpdate(context.ctx, data, size) ||
      !EVP_DigestFinal_ex(context.ctx, id.data(), &length) || length != id.size()) {
    // Only if OpenSSL is broken (no default provider, out of memory): the one-shot call.
    SHA256(static_cast<const unsigned char*>(data), size, id.data());
  }
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
