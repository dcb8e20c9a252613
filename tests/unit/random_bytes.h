// Reproducible incompressible test data. Shared by the unit-test binaries of
// every module.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

namespace dfs::testing {

// `n` bytes from a generator seeded with `seed`: the same bytes on every run.
inline std::string randomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = char(rng());
  return s;
}

}  // namespace dfs::testing
