#include "backend/common/erasure.h"

#include <cauchy.h>
#include <galois.h>
#include <jerasure.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <utility>

#include "backend/common/gf_avx2.h"

namespace dfs {

namespace {

constexpr int kWordBits = 8;
// Jerasure's region multiply works on whole machine words.
constexpr size_t kFragmentAlignment = 8;

struct CodecCache {
  std::mutex mutex;
  std::map<std::pair<int, int>, std::unique_ptr<ErasureCodec>> codecs;  // guarded by mutex
};

CodecCache& codecCache() {
  static CodecCache* cache = new CodecCache();  // never destroyed: codecs live forever
  return *cache;
}

// gf-complete's SIMD region multiply requires source and destination to have
// the same alignment modulo 16, which std::string buffers (small-string storage
// in particular) do not promise. Jerasure work on buffers that may differ
// happens on this buffer, one 64-byte aligned slot per fragment.
class AlignedStripe {
 public:
  AlignedStripe(int fragments, size_t fragmentSize)
      : stride_((fragmentSize + 63) / 64 * 64),
        memory_(static_cast<char*>(std::aligned_alloc(64, stride_ * fragments))) {
    if (!memory_) throw std::bad_alloc();
  }
  char* slot(int i) { return memory_.get() + stride_ * i; }

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  size_t stride_;
  std::unique_ptr<char, Free> memory_;
};

}  // namespace

ErasureCodec::ErasureCodec(int k, int m) : k_(k), m_(m) {
  if (m_ == 0) return;
  matrix_ = cauchy_good_general_coding_matrix(k_, m_, kWordBits);
  if (matrix_ != nullptr && gf_detail::hasAvx2()) {
    // c·x for every nibble, in Jerasure's own field: the parity is bit-identical.
    tables_.resize(gf_detail::kTableBytes * size_t(k_ * m_));
    for (int i = 0; i < k_ * m_; ++i) {
      uint8_t* t = tables_.data() + gf_detail::kTableBytes * size_t(i);
      for (int x = 0; x < 16; ++x) {
        t[x] = t[16 + x] = uint8_t(galois_single_multiply(matrix_[i], x, kWordBits));
        t[32 + x] = t[48 + x] = uint8_t(galois_single_multiply(matrix_[i], x << 4, kWordBits));
      }
    }
  }
  // gf-complete initialises its fields lazily and without a lock: GF(2^8) for
  // region multiplies and, for regions of 16 bytes or more, GF(2^32) for XORs
  // (galois_region_xor). Do one encode and one decode of fragments well above
  // 16 bytes here, under the cache mutex, so that later calls from many
  // threads only read them. (A 7-byte warm-up left GF(2^32) to the first real
  // encodes: concurrent flusher threads then called a half-built field.)
  std::string warmUp(4096, 'w');
  const auto* bytes = reinterpret_cast<const uint8_t*>(warmUp.data());
  std::vector<std::string> fragments = encode(bytes, warmUp.size());
  std::vector<std::optional<std::string>> present(fragments.begin(), fragments.end());
  present[0].reset();
  (void)decode(std::move(present), warmUp.size());
}

ErasureCodec::~ErasureCodec() {
  std::free(matrix_);
}

Result<const ErasureCodec*> ErasureCodec::get(int k, int m) {
  if (k < 1 || k > kMaxDataFragments || m < 0 || m > kMaxParityFragments || k + m > kMaxFragments) {
    return Status::error(Code::INVALID, "unsupported erasure code " + std::to_string(k) + "+" +
                                            std::to_string(m) + " (k 1..32, m 0..16, k+m <= 48)");
  }
  CodecCache& cache = codecCache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  auto& slot = cache.codecs[{k, m}];
  if (!slot) {
    slot.reset(new ErasureCodec(k, m));
    if (m > 0 && slot->matrix_ == nullptr) {
      slot.reset();
      return Status::error(Code::INVALID, "Jerasure cannot build a matrix for " +
                                              std::to_string(k) + "+" + std::to_string(m));
    }
  }
  return static_cast<const ErasureCodec*>(slot.get());
}

uint32_t ErasureCodec::fragmentSize(size_t storedSize) const {
  size_t perFragment = (storedSize + k_ - 1) / k_;
  perFragment = (perFragment + kFragmentAlignment - 1) / kFragmentAlignment * kFragmentAlignment;
  if (perFragment < kFragmentAlignment) perFragment = kFragmentAlignment;
  return static_cast<uint32_t>(perFragment);
}

std::vector<std::string> ErasureCodec::encode(const uint8_t* data, size_t size) const {
  const size_t fragment = fragmentSize(size);
  std::vector<std::string> fragments(k_ + m_);
  for (int i = 0; i < k_; ++i) {
    // The data, then the zero padding of the last fragments.
    size_t offset = std::min(size, i * fragment);
    size_t n = std::min(size - offset, fragment);
    fragments[i].reserve(fragment);
    fragments[i].append(reinterpret_cast<const char*>(data) + offset, n);
    fragments[i].append(fragment - n, '\0');
  }
  if (m_ == 0) return fragments;
  for (int i = k_; i < k_ + m_; ++i) fragments[i].assign(fragment, '\0');
  std::vector<char*> dataPtrs(k_);
  std::vector<char*> codingPtrs(m_);
  if (!tables_.empty()) {
    for (int i = 0; i < k_; ++i) dataPtrs[i] = fragments[i].data();
    for (int i = 0; i < m_; ++i) codingPtrs[i] = fragments[k_ + i].data();
    gf_detail::encodeAvx2(k_, m_, tables_.data(), dataPtrs.data(), codingPtrs.data(), fragment);
    return fragments;
  }
  // Heap buffers share malloc's 16-byte alignment: encode in place. Otherwise
  // (a tiny fragment in small-string storage) through an aligned stripe.
  bool aligned = true;
  for (const auto& f : fragments) {
    aligned = aligned && (reinterpret_cast<uintptr_t>(f.data()) % 16 ==
                          reinterpret_cast<uintptr_t>(fragments[0].data()) % 16);
  }
  if (aligned) {
    for (int i = 0; i < k_; ++i) dataPtrs[i] = fragments[i].data();
    for (int i = 0; i < m_; ++i) codingPtrs[i] = fragments[k_ + i].data();
    jerasure_matrix_encode(k_, m_, kWordBits, matrix_, dataPtrs.data(), codingPtrs.data(),
                           static_cast<int>(fragment));
    return fragments;
  }
  AlignedStripe stripe(k_ + m_, fragment);
  for (int i = 0; i < k_; ++i) {
    dataPtrs[i] = stripe.slot(i);
    std::memcpy(dataPtrs[i], fragments[i].data(), fragment);
  }
  for (int i = 0; i < m_; ++i) codingPtrs[i] = stripe.slot(k_ + i);
  jerasure_matrix_encode(k_, m_, kWordBits, matrix_, dataPtrs.data(), codingPtrs.data(),
                         static_cast<int>(fragment));
  for (int i = 0; i < m_; ++i) std::memcpy(fragments[k_ + i].data(), codingPtrs[i], fragment);
  return fragments;
}

Result<std::string> ErasureCodec::decode(std::vector<std::optional<std::string>> fragments,
                                         size_t size) const {
  const int total = k_ + m_;
  if (static_cast<int>(fragments.size()) != total) {
    return Status::error(Code::IO, "erasure decode got " + std::to_string(fragments.size()) +
                                       " fragments, expected " + std::to_string(total));
  }
  int present = 0;
  size_t fragment = 0;
  for (const auto& f : fragments) {
    if (!f) continue;
    if (present > 0 && f->size() != fragment) {
      return Status::error(Code::IO, "erasure decode: fragments differ in size");
    }
    fragment = f->size();
    ++present;
  }
  if (present < k_) {
    return Status::error(Code::IO, "only " + std::to_string(present) + " of " +
                                       std::to_string(total) + " fragments available, need " +
                                       std::to_string(k_));
  }
  if (fragment == 0 || fragment % kFragmentAlignment != 0 || fragment > (1u << 31) ||
      size > fragment * k_) {
    return Status::error(Code::IO, "erasure decode: bad fragment size " + std::to_string(fragment) +
                                       " for " + std::to_string(size) + " bytes");
  }

  std::vector<int> erased(total, 0);
  bool dataMissing = false;
  for (int i = 0; i < k_; ++i) {
    if (!fragments[i]) {
      erased[i] = 1;
      dataMissing = true;
    }
  }
  if (dataMissing) {
    AlignedStripe stripe(total, fragment);
    std::vector<char*> dataPtrs(k_);
    std::vector<char*> codingPtrs(m_);
    for (int i = 0; i < total; ++i) {
      char* slot = stripe.slot(i);
      if (fragments[i]) {
        std::memcpy(slot, fragments[i]->data(), fragment);
      } else {
        erased[i] = 1;
      }
      if (i < k_) {
        dataPtrs[i] = slot;
      } else {
        codingPtrs[i - k_] = slot;
      }
    }
    // Build the inverse for the first k surviving rows and recompute only the
    // missing data fragments (jerasure_matrix_decode would also re-encode lost
    // parity, which a reader does not need).
    std::vector<int> decoding(k_ * k_);
    std::vector<int> ids(k_);
    if (jerasure_make_decoding_matrix(k_, m_, kWordBits, matrix_, erased.data(), decoding.data(),
                                      ids.data()) != 0) {
      return Status::error(Code::IO, "erasure decode: matrix not invertible");
    }
    for (int i = 0; i < k_; ++i) {
      if (!erased[i]) continue;
      jerasure_matrix_dotprod(k_, kWordBits, decoding.data() + i * k_, ids.data(), i,
                              dataPtrs.data(), codingPtrs.data(), static_cast<int>(fragment));
      fragments[i].emplace(dataPtrs[i], fragment);
    }
  }

  std::string out;
  out.reserve(size);
  for (int i = 0; i < k_ && out.size() < size; ++i) {
    size_t n = size - out.size() < fragment ? size - out.size() : fragment;
    out.append(fragments[i]->data(), n);
  }
  return out;
}

}  // namespace dfs
