// Byte layouts of the storage node's durable state: the record header in extent
// files and the values of the LMDB index. docs/formats.md (storage section) is the prose
// version of this file; keep them in step. Thread: pure functions, any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "backend/common/status.h"

namespace dfs {

constexpr size_t kFragmentIdSize = 33;  // 32-byte chunk id + fragment index
constexpr uint32_t kRecordMagic = 0x58534644;  // "DFSX" read as little-endian bytes
constexpr uint16_t kRecordFormatVersion = 1;
constexpr size_t kRecordHeaderSize = 80;
// Largest data length of one record (docs/formats.md); the node accepts no bigger fragment.
constexpr uint32_t kMaxStoredFragmentBytes = 16u << 20;
constexpr uint8_t kIndexFormatVersion = 1;
// Meta db "format"; bumped when layouts change. 2: extents may hold zero padding up
// to a 4 KiB block after a round (direct appends), which version 1 would cut off as a
// torn tail. Version 1 stores are upgraded in place when opened.
constexpr uint32_t kStoreFormatVersion = 2;
constexpr uint32_t kOldestStoreFormatVersion = 1;

// One fragment in an extent file: an 80-byte header followed by `length` data bytes.
struct RecordHeader {
  uint16_t version = kRecordFormatVersion;
  uint32_t length = 0;
  uint64_t checksum = 0;  // XXH3-64 of the data bytes
  int64_t storedAtNs = 0;
  std::string id;         // kFragmentIdSize bytes
};

// REQUIRES: header.id.size() == kFragmentIdSize. Returns kRecordHeaderSize bytes.
std::string encodeRecordHeader(const RecordHeader& header);
// Parses and checks magic, version, header size and the header's own checksum.
// nullopt with `error` set when the bytes are not a valid version-1 header.
std::optional<RecordHeader> decodeRecordHeader(std::string_view bytes, std::string* error);

// Where a fragment lives (value of the "fragments" database, keyed by the 33-byte id).
struct FragmentLocation {
  uint8_t version = kIndexFormatVersion;
  uint32_t extent = 0;
  uint64_t offset = 0;     // of the record header inside the extent file
  uint32_t length = 0;     // data bytes (the record is kRecordHeaderSize + length)
  uint64_t checksum = 0;   // XXH3-64 of the data
  int64_t storedAtNs = 0;
  uint64_t recordSize() const { return kRecordHeaderSize + length; }
};
constexpr size_t kFragmentLocationSize = 36;
std::string encodeFragmentLocation(const FragmentLocation& location);
std::optional<FragmentLocation> decodeFragmentLocation(std::string_view bytes);

// Per-extent accounting (value of the "extents" database, keyed by big-endian u32).
// Invariant: committedSize == liveBytes + garbageBytes.
struct ExtentInfo {
  uint8_t version = kIndexFormatVersion;
  uint64_t committedSize = 0;  // bytes covered by committed index state; the tail beyond is discarded on open
  uint64_t liveBytes = 0;      // record bytes of fragments the index points at
  uint64_t garbageBytes = 0;   // record bytes of deleted, replaced or moved fragments
  uint64_t liveRecords = 0;
};
constexpr size_t kExtentInfoSize = 36;
std::string encodeExtentInfo(const ExtentInfo& info);
std::optional<ExtentInfo> decodeExtentInfo(std::string_view bytes);

// Key of the "locations" database: big-endian extent number then offset, so one
// extent's records are contiguous and in file order (used by compaction).
std::string locationKey(uint32_t extent, uint64_t offset);
std::string extentKey(uint32_t extent);

// Extent files are named "%08u.ext" under DATA_DIR/extents/.
std::string extentFileName(uint32_t extent);
// nullopt for names that are not extent files.
std::optional<uint32_t> parseExtentFileName(const std::string& name);

}  // namespace dfs
