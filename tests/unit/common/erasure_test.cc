#include "backend/common/erasure.h"

#include <cauchy.h>
#include <jerasure.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <random>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace dfs {
namespace {

std::string randomString(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

const uint8_t* bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Calls visit(erasedMask) for every subset of n items with exactly `count` bits.
template <typename Visit>
void forEachSubset(int n, int count, Visit visit) {
  for (uint64_t mask = 0; mask < (1ull << n); ++mask) {
    if (__builtin_popcountll(mask) == count) visit(mask);
  }
}

}  // namespace

TEST_CASE("parity is bit-identical to Jerasure's for every size and code", "[erasure]") {
  // The codec encodes with gf_avx2 where the CPU has AVX2; Jerasure decodes, and
  // fragments written before must stay valid: the same bytes, always.
  for (auto [k, m] : std::vector<std::pair<int, int>>{{4, 2}, {1, 1}, {2, 1}, {3, 3}, {6, 3},
                                                      {10, 4}, {16, 16}, {32, 16}}) {
    const ErasureCodec* codec = ErasureCodec::get(k, m).value();
    int* matrix = cauchy_good_general_coding_matrix(k, m, 8);
    REQUIRE(matrix != nullptr);
    for (size_t size : {size_t(1), size_t(31), size_t(64), size_t(200), size_t(4096), size_t(4136),
                        size_t(65536 + 24), size_t(1000003)}) {
      INFO(k << "+" << m << ", " << size << " bytes");
      std::string data = randomString(size, size * 31 + uint64_t(k * 7 + m));
      auto fragments = codec->encode(bytes(data), data.size());
      REQUIRE(fragments.size() == size_t(k + m));
      size_t fragment = fragments[0].size();
      // Jerasure's own encode of the same data fragments, in aligned buffers.
      std::vector<char*> dataPtrs(k), codingPtrs(m);
      std::vector<std::unique_ptr<char, decltype(&std::free)>> buffers;
      for (int i = 0; i < k + m; ++i) {
        buffers.emplace_back(static_cast<char*>(std::aligned_alloc(64, (fragment + 63) / 64 * 64)),
                             &std::free);
        if (i < k) {
          std::memcpy(buffers.back().get(), fragments[i].data(), fragment);
          dataPtrs[i] = buffers.back().get();
        } else {
          codingPtrs[i - k] = buffers.back().get();
        }
      }
      jerasure_matrix_encode(k, m, 8, matrix, dataPtrs.data(), codingPtrs.data(), int(fragment));
      for (int i = 0; i < m; ++i) {
        CHECK(fragments[k + i] == std::string(codingPtrs[i], fragment));
      }
    }
    std::free(matrix);
  }
}

TEST_CASE("erasure parameters are validated and codecs cached", "[erasure]") {
  CHECK(ErasureCodec::get(0, 2).status().code == Code::INVALID);
  CHECK(ErasureCodec::get(33, 0).status().code == Code::INVALID);
  CHECK(ErasureCodec::get(4, 17).status().code == Code::INVALID);
  CHECK(ErasureCodec::get(32, 17).status().code == Code::INVALID);
  CHECK(ErasureCodec::get(4, -1).status().code == Code::INVALID);
  REQUIRE(ErasureCodec::get(32, 16).ok());
  auto a = ErasureCodec::get(4, 2);
  auto b = ErasureCodec::get(4, 2);
  REQUIRE(a.ok());
  CHECK(a.value() == b.value());
  CHECK(a.value()->k() == 4);
  CHECK(a.value()->m() == 2);
}

TEST_CASE("fragment size rule", "[erasure]") {
  const ErasureCodec* codec = ErasureCodec::get(4, 2).value();
  CHECK(codec->fragmentSize(0) == 8);
  CHECK(codec->fragmentSize(1) == 8);
  CHECK(codec->fragmentSize(32) == 8);
  CHECK(codec->fragmentSize(33) == 16);
  CHECK(codec->fragmentSize(65536) == 16384);
  CHECK(codec->fragmentSize(65537) == 16392);
  const ErasureCodec* three = ErasureCodec::get(3, 1).value();
  CHECK(three->fragmentSize(100) == 40);  // ceil(100/3)=34 -> 40
}

TEST_CASE("every erasure pattern up to m decodes; m+1 fails", "[erasure]") {
  const std::pair<int, int> kProfiles[] = {{4, 2}, {2, 1}, {6, 3}, {1, 1}, {8, 0}, {3, 4}};
  for (auto [k, m] : kProfiles) {
    const ErasureCodec* codec = ErasureCodec::get(k, m).value();
    for (size_t size : {0u, 1u, 13u, 4096u, 100003u}) {
      std::string data = randomString(size, size * 31 + k);
      auto fragments = codec->encode(bytes(data), data.size());
      REQUIRE(fragments.size() == static_cast<size_t>(k + m));
      for (size_t i = 0; i < fragments.size(); ++i) {
        CHECK(fragments[i].size() == codec->fragmentSize(size));
      }
      // Systematic code: data fragments are the zero-padded input.
      std::string joined;
      for (int i = 0; i < k; ++i) joined += fragments[i];
      CHECK(joined.substr(0, size) == data);
      CHECK(joined.substr(size) == std::string(joined.size() - size, '\0'));

      for (int lost = 0; lost <= m; ++lost) {
        forEachSubset(k + m, lost, [&](uint64_t mask) {
          std::vector<std::optional<std::string>> present;
          for (int i = 0; i < k + m; ++i) {
            if (mask & (1ull << i)) {
              present.emplace_back(std::nullopt);
            } else {
              present.emplace_back(fragments[i]);
            }
          }
          auto decoded = codec->decode(std::move(present), data.size());
          INFO(k << "+" << m << " size " << size << " erased mask " << mask);
          REQUIRE(decoded.ok());
          CHECK(decoded.value() == data);
        });
      }
      forEachSubset(k + m, m + 1, [&](uint64_t mask) {
        std::vector<std::optional<std::string>> present;
        for (int i = 0; i < k + m; ++i) {
          if (mask & (1ull << i)) {
            present.emplace_back(std::nullopt);
          } else {
            present.emplace_back(fragments[i]);
          }
        }
        CHECK(codec->decode(std::move(present), data.size()).status().code == Code::IO);
      });
    }
  }
}

TEST_CASE("decode rejects malformed fragment sets", "[erasure]") {
  const ErasureCodec* codec = ErasureCodec::get(4, 2).value();
  std::string data = randomString(1000, 1);
  auto fragments = codec->encode(bytes(data), data.size());
  std::vector<std::optional<std::string>> present(fragments.begin(), fragments.end());

  auto tooFew = present;
  tooFew.pop_back();
  CHECK(codec->decode(tooFew, data.size()).status().code == Code::IO);
  auto mixedSizes = present;
  mixedSizes[5]->push_back('x');
  CHECK(codec->decode(mixedSizes, data.size()).status().code == Code::IO);
  auto odd = present;
  for (auto& f : odd) f->resize(f->size() - 3);
  CHECK(codec->decode(odd, 900).status().code == Code::IO);
  CHECK(codec->decode(present, 4 * fragments[0].size() + 1).status().code == Code::IO);
}

TEST_CASE("decode is safe from many threads", "[erasure]") {
  const ErasureCodec* codec = ErasureCodec::get(6, 3).value();
  std::string data = randomString(300000, 2);
  auto fragments = codec->encode(bytes(data), data.size());
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        std::vector<std::optional<std::string>> present(fragments.begin(), fragments.end());
        present[(t + round) % 6].reset();
        present[(t + round + 1) % 6].reset();
        present[6 + round % 3].reset();
        auto decoded = codec->decode(std::move(present), data.size());
        if (!decoded.ok() || decoded.value() != data) ++failures[t];
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == std::vector<int>(4, 0));
}

// gf-complete builds its fields on first use without a lock: a thread that
// finds a field allocated but not yet filled in calls a null function. The
// codec's warm-up must build every field an encode uses. Each round is a fresh
// child process (no field built yet) whose 8 threads encode at once.
TEST_CASE("the first encodes of a process, from many threads at once, agree", "[erasure]") {
  std::string data = randomString(100000, 5);
  int crashed = 0, wrong = 0;
  for (int round = 0; round < 100; ++round) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      std::atomic<int> ready{0};
      std::vector<std::vector<std::string>> results(8);
      std::vector<std::thread> threads;
      for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
          const ErasureCodec* codec = ErasureCodec::get(4, 2).value();
          ++ready;
          while (ready.load() < 8) {
          }
          results[t] = codec->encode(bytes(data), data.size());
        });
      }
      for (auto& t : threads) t.join();
      for (const auto& r : results) {
        if (r != results[0]) _exit(1);
      }
      _exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) ++crashed;
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) ++wrong;
  }
  CHECK(crashed == 0);
  CHECK(wrong == 0);
}

}  // namespace dfs
