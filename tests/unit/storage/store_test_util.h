// Fragments, options and a store for the extent store's unit tests
// (extent_store_test.cc, extent_recovery_test.cc).
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "backend/common/hash.h"
#include "backend/storage/extent_store.h"
#include "backend/storage/file_system.h"
#include "tests/unit/temp_dir.h"

namespace dfs::testing::store {

using dfs::Code;
using dfs::ExtentStore;
using dfs::ExtentStoreOptions;
using dfs::FragmentWrite;

struct TempDir : dfs::testing::TempDir {
  TempDir() : dfs::testing::TempDir("dfs-storage-test") {}
};

inline std::string fragmentId(uint32_t n) {
  std::string id(33, '\0');
  for (int i = 0; i < 4; ++i) id[i] = char((n >> (24 - 8 * i)) & 0xff);
  id[32] = char(n % 7);
  return id;
}

inline std::string payload(uint32_t n, size_t size) {
  std::string data(size, '\0');
  uint64_t x = n * 0x9E3779B97F4A7C15ull + 1;
  for (auto& c : data) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = char(x);
  }
  return data;
}

struct Owned {
  std::string id, data;
  FragmentWrite write() const {
    return FragmentWrite{id, data, dfs::xxh3(data.data(), data.size())};
  }
};

inline Owned make(uint32_t n, size_t size) {
  return Owned{fragmentId(n), payload(n, size)};
}

inline dfs::Status putOne(ExtentStore& store, const Owned& f) {
  return store.put({f.write()});
}

inline std::unique_ptr<ExtentStore> openStore(ExtentStoreOptions options) {
  auto store = ExtentStore::open(std::move(options));
  INFO(store.status().message);
  REQUIRE(store.ok());
  return std::move(store).value();
}

inline ExtentStoreOptions optionsFor(const std::string& dir) {
  ExtentStoreOptions options;
  options.dataDir = dir;
  options.indexMapBytes = size_t(1) << 30;
  options.reserveBytes = 0;
  return options;
}

inline std::vector<std::string> extentFiles(const std::string& dir) {
  std::vector<std::string> names;
  for (auto& e : std::filesystem::directory_iterator(dir + "/extents"))
    names.push_back(e.path().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Whether files under `dir` can be opened with O_DIRECT (not on older tmpfs): the
// extent store then appends in whole blocks (ExtentStoreOptions::directAppends).
inline bool directIoWorks(const std::string& dir) {
  dfs::PosixFileSystem fs;
  std::string probe = dir + "/direct-probe";
  { std::ofstream(probe).put('x'); }
  auto fd = fs.openDirect(probe);
  if (fd.ok()) fs.closeFile(fd.value());
  std::filesystem::remove(probe);
  if (!fd.ok()) WARN("no O_DIRECT under " << dir << ": " << fd.status().message);
  return fd.ok();
}

}  // namespace dfs::testing::store
