// What extent_store.cc and extent_recovery.cc share: the names and keys of the
// LMDB index (docs/formats.md, storage section) and small helpers. Internal to
// backend/storage.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "backend/common/hash.h"
#include "backend/common/lmdb.h"

namespace dfs::extent_store {

inline constexpr char kFragmentsDb[] = "fragments";
inline constexpr char kLocationsDb[] = "locations";
inline constexpr char kExtentsDb[] = "extents";
inline constexpr char kMetaDb[] = "meta";
inline constexpr char kFormatKey[] = "format";
inline constexpr char kFragmentCountKey[] = "fragments";
// The next extent number at the last index commit: an extent file with a lower
// number that the index does not know was dropped (or never acknowledged);
// one with this number or higher was created since and is read back.
inline constexpr char kNextExtentKey[] = "next_extent";

inline std::string be64(uint64_t v) {
  std::string s;
  appendBigEndian64(s, v);
  return s;
}
inline std::string be32(uint32_t v) {
  std::string s;
  appendBigEndian32(s, v);
  return s;
}

inline std::string shortHex(std::string_view id) {
  return toHex(reinterpret_cast<const uint8_t*>(id.data()), id.size());
}

}  // namespace dfs::extent_store
