#include "backend/storage/extent_format.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "backend/common/hash.h"
#include "backend/common/lmdb.h"

namespace dfs {

namespace {

// Extent records are little-endian (the byte order of every machine we run on, so
// no swapping on the hot path); index values are big-endian like their keys.
void putLe(std::string& out, size_t offset, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[offset + i] = char((value >> (8 * i)) & 0xff);
}
uint64_t getLe(std::string_view in, size_t offset, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | uint8_t(in[offset + i]);
  return v;
}

constexpr size_t kHeaderChecksumOffset = 72;

}  // namespace

std::string encodeRecordHeader(const RecordHeader& header) {
  std::string out(kRecordHeaderSize, '\0');
  putLe(out, 0, kRecordMagic, 4);
  putLe(out, 4, header.version, 2);
  putLe(out, 6, kRecordHeaderSize, 2);
  putLe(out, 8, header.length, 4);
  // 12..15 reserved, zero
  putLe(out, 16, header.checksum, 8);
  putLe(out, 24, uint64_t(header.storedAtNs), 8);
  std::memcpy(&out[32], header.id.data(), kFragmentIdSize);
  // 65..71 reserved, zero
  putLe(out, kHeaderChecksumOffset, xxh3(out.data(), kHeaderChecksumOffset), 8);
  return out;
}

std::optional<RecordHeader> decodeRecordHeader(std::string_view bytes, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<RecordHeader> {
    if (error) *error = why;
    return std::nullopt;
  };
  if (bytes.size() < kRecordHeaderSize) return fail("short record header");
  if (getLe(bytes, 0, 4) != kRecordMagic) return fail("bad record magic");
  RecordHeader header;
  header.version = uint16_t(getLe(bytes, 4, 2));
  if (header.version != kRecordFormatVersion) {
    return fail("unknown record format version " + std::to_string(header.version));
  }
  if (getLe(bytes, 6, 2) != kRecordHeaderSize) return fail("bad record header size");
  if (getLe(bytes, kHeaderChecksumOffset, 8) != xxh3(bytes.data(), kHeaderChecksumOffset)) {
    return fail("record header checksum mismatch");
  }
  header.length = uint32_t(getLe(bytes, 8, 4));
  header.checksum = getLe(bytes, 16, 8);
  header.storedAtNs = int64_t(getLe(bytes, 24, 8));
  header.id.assign(bytes.data() + 32, kFragmentIdSize);
  return header;
}

std::string encodeFragmentLocation(const FragmentLocation& location) {
  std::string out;
  out.reserve(kFragmentLocationSize);
  out.push_back(char(location.version));
  out.append(3, '\0');
  appendBigEndian32(out, location.extent);
  appendBigEndian64(out, location.offset);
  appendBigEndian32(out, location.length);
  appendBigEndian64(out, location.checksum);
  appendBigEndian64(out, uint64_t(location.storedAtNs));
  return out;
}

std::optional<FragmentLocation> decodeFragmentLocation(std::string_view bytes) {
  if (bytes.size() < kFragmentLocationSize || uint8_t(bytes[0]) != kIndexFormatVersion) {
    return std::nullopt;
  }
  FragmentLocation location;
  location.version = uint8_t(bytes[0]);
  location.extent = readBigEndian32(bytes, 4);
  location.offset = readBigEndian64(bytes, 8);
  location.length = readBigEndian32(bytes, 16);
  location.checksum = readBigEndian64(bytes, 20);
  location.storedAtNs = int64_t(readBigEndian64(bytes, 28));
  return location;
}

std::string encodeExtentInfo(const ExtentInfo& info) {
  std::string out;
  out.reserve(kExtentInfoSize);
  out.push_back(char(info.version));
  out.append(3, '\0');
  appendBigEndian64(out, info.committedSize);
  appendBigEndian64(out, info.liveBytes);
  appendBigEndian64(out, info.garbageBytes);
  appendBigEndian64(out, info.liveRecords);
  return out;
}

std::optional<ExtentInfo> decodeExtentInfo(std::string_view bytes) {
  if (bytes.size() < kExtentInfoSize || uint8_t(bytes[0]) != kIndexFormatVersion) {
    return std::nullopt;
  }
  ExtentInfo info;
  info.committedSize = readBigEndian64(bytes, 4);
  info.liveBytes = readBigEndian64(bytes, 12);
  info.garbageBytes = readBigEndian64(bytes, 20);
  info.liveRecords = readBigEndian64(bytes, 28);
  return info;
}

std::string locationKey(uint32_t extent, uint64_t offset) {
  std::string key;
  appendBigEndian32(key, extent);
  appendBigEndian64(key, offset);
  return key;
}

std::string extentKey(uint32_t extent) {
  std::string key;
  appendBigEndian32(key, extent);
  return key;
}

std::string extentFileName(uint32_t extent) {
  char name[32];
  std::snprintf(name, sizeof(name), "%08u.ext", extent);
  return name;
}

std::optional<uint32_t> parseExtentFileName(const std::string& name) {
  // "%08u": 8 digits, or 9-10 without a leading zero from 10^8 on.
  if (name.size() < 12 || name.size() > 14) return std::nullopt;
  size_t digits = name.size() - 4;
  if (name.compare(digits, 4, ".ext") != 0 || (digits > 8 && name[0] == '0')) return std::nullopt;
  uint64_t value = 0;
  for (size_t i = 0; i < digits; ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    value = value * 10 + uint64_t(name[i] - '0');
  }
  if (value > UINT32_MAX || (digits > 8 && value < 100000000)) return std::nullopt;
  return uint32_t(value);
}

}  // namespace dfs
