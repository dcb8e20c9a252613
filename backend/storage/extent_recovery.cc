// ExtentStore::recover(): what open() does after a crash or a clean stop. The
// LMDB index is a checkpoint of the extents (ExtentStore's durability promise):
// records appended after its last commit are read back from the extent files,
// verified and indexed; a torn tail is truncated.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "backend/common/hash.h"
#include "backend/storage/extent_store.h"
#include "backend/storage/extent_store_internal.h"

namespace dfs {

using namespace extent_store;

Status ExtentStore::recover() {
  std::lock_guard<std::mutex> commitLock(commitMutex_);
  LmdbTxn txn(*env_, LmdbTxn::Mode::kWrite);
  if (!txn.status().ok()) return txn.status();
  auto format = txn.get(metaDb_, kFormatKey);
  uint32_t found = format && format->size() == 4 ? readBigEndian32(*format) : 0;
  if (!format || (found >= kOldestStoreFormatVersion && found < kStoreFormatVersion)) {
    // New, or older and readable: from now on written (and committed below) as this version.
    Status s = txn.put(metaDb_, kFormatKey, be32(kStoreFormatVersion));
    if (!s.ok()) return s;
  } else if (found != kStoreFormatVersion) {
    return Status::error(Code::INVALID, "index in " + options_.dataDir + " has format version " +
                                            std::to_string(found) +
                                            "; this dfs-storage reads version " +
                                            std::to_string(kStoreFormatVersion));
  }

  std::map<uint32_t, ExtentInfo> extents;
  {
    LmdbCursor cursor(txn, extentsDb_);
    for (cursor.first(); cursor.valid(); cursor.next()) {
      if (cursor.key().size() != 4) continue;
      auto info = decodeExtentInfo(cursor.value());
      if (!info) {
        return Status::error(Code::INVALID,
                             "unreadable extent record in the index (unknown version)");
      }
      extents[readBigEndian32(cursor.key())] = *info;
    }
  }
  uint64_t fragments = 0;
  if (auto count = txn.get(metaDb_, kFragmentCountKey); count && count->size() == 8) {
    fragments = readBigEndian64(*count);
  }
  // Extent files numbered from here on were created after the last index commit.
  // An index written before this key existed committed every acknowledged record.
  uint32_t firstUnindexed = extents.empty() ? 1 : extents.rbegin()->first + 1;
  if (auto next = txn.get(metaDb_, kNextExtentKey); next && next->size() == 4) {
    firstUnindexed = std::max(firstUnindexed, readBigEndian32(*next));
  }

  auto names = fs_.listDirectory(extentsDir());
  if (!names.ok()) return names.status();
  std::set<uint32_t> numbers;
  for (const std::string& name : names.value()) {
    if (auto number = parseExtentFileName(name)) numbers.insert(*number);
  }
  uint32_t highest = std::max(extents.empty() ? 0 : extents.rbegin()->first, firstUnindexed - 1);
  std::set<uint32_t> present;
  uint64_t reindexed = 0;
  for (uint32_t number : numbers) {  // in creation order: a later record of an id wins
    highest = std::max(highest, number);
    std::string name = extentFileName(number);
    auto it = extents.find(number);
    if (it == extents.end() && number < firstUnindexed) {
      // Dropped by compaction, or created by a round that was rolled back: it
      // holds no acknowledged record.
      spdlog::warn("removing extent file {} that the index dropped", name);
      Status s = fs_.removeFile(extentsDir() + "/" + name);
      if (!s.ok()) return s;
      continue;
    }
    ExtentInfo info = it == extents.end() ? ExtentInfo{} : it->second;
    uint64_t before = info.liveRecords;
    Status s = recoverTail(txn, number, &info, &extents, &fragments);
    if (!s.ok()) return s;
    if (it == extents.end() && info.committedSize == 0) {
      spdlog::warn("removing extent file {}: it holds no complete record", name);
      files_.evict(number);
      s = fs_.removeFile(extentsDir() + "/" + name);
      if (!s.ok()) return s;
      continue;
    }
    reindexed += info.liveRecords - std::min(info.liveRecords, before);
    extents[number] = info;
    present.insert(number);
  }
  for (const auto& [number, info] : extents) {
    if (!present.count(number) && info.liveRecords > 0) {
      spdlog::error("extent {} with {} live fragments is missing from {}", extentFileName(number),
                    info.liveRecords, extentsDir());
    }
  }
  Status s = fs_.syncDirectory(extentsDir());
  for (const auto& [number, info] : extents) {
    if (!s.ok()) break;
    s = txn.put(extentsDb_, extentKey(number), encodeExtentInfo(info));
  }
  nextExtent_ = highest + 1;
  if (s.ok()) s = txn.put(metaDb_, kFragmentCountKey, be64(fragments));
  if (s.ok()) s = txn.put(metaDb_, kNextExtentKey, be32(nextExtent_));
  if (s.ok()) s = txn.commit();
  if (!s.ok()) return s;
  if (reindexed > 0) {
    spdlog::info("extent store {}: indexed {} fragments written after the last index commit",
                 options_.dataDir, reindexed);
  }

  if (!extents.empty() && present.count(extents.rbegin()->first) &&
      extents.rbegin()->second.committedSize < options_.maxExtentBytes) {
    currentExtent_ = extents.rbegin()->first;
    auto file = files_.acquire(currentExtent_);
    if (!file.ok()) return file.status();
    currentFile_ = file.value();
  }
  std::lock_guard<std::mutex> lock(statsMutex_);
  extents_ = std::move(extents);
  fragments_ = fragments;
  spdlog::info("extent store {}: {} fragments in {} extents, {} bytes used", options_.dataDir,
               fragments_, extents_.size(), usedBytes());
  return {};
}

Status ExtentStore::recoverTail(LmdbTxn& txn, uint32_t number, ExtentInfo* info,
                                std::map<uint32_t, ExtentInfo>* extents, uint64_t* fragments) {
  std::string name = extentFileName(number);
  auto file = files_.acquire(number);
  if (!file.ok()) return file.status();
  int fd = file.value()->fd();
  auto size = fs_.fileSize(fd);
  if (!size.ok()) return size.status();
  if (size.value() < info->committedSize) {
    spdlog::error(
        "extent {} is {} bytes but the index has {} committed: its tail was lost; "
        "reads of fragments there will fail",
        name, size.value(), info->committedSize);
    return {};
  }
  std::string header(kRecordHeaderSize, '\0');
  std::string data;
  uint64_t offset = info->committedSize;
  std::string problem;
  // The zeros a direct round ends with (ExtentAppender): from an offset off a block
  // up to the next block, within the file. Returns their length, 0 if there are none.
  auto paddingAt = [&](uint64_t at) -> Result<uint64_t> {
    uint64_t block = ExtentAppender::kBlockBytes;
    uint64_t pad = (block - at % block) % block;
    if (pad == 0 || at + pad > size.value()) return uint64_t(0);
    std::string gap(pad, '\0');
    Status s = fs_.readAt(fd, gap.data(), gap.size(), at);
    if (!s.ok()) return s;
    return gap.find_first_not_of('\0') == std::string::npos ? pad : 0;
  };
  while (offset < size.value()) {
    std::optional<RecordHeader> record;
    if (size.value() - offset < kRecordHeaderSize) {
      problem = "a partial record header";
    } else {
      Status s = fs_.readAt(fd, header.data(), header.size(), offset);
      if (!s.ok()) return s;
      record = decodeRecordHeader(header, &problem);
    }
    if (!record) {
      // Not a record (a header never starts with zeros): padding, or the torn tail.
      auto pad = paddingAt(offset);
      if (!pad.ok()) return pad.status();
      if (pad.value() == 0) break;
      offset += pad.value();
      info->committedSize = offset;
      info->garbageBytes += pad.value();
      continue;
    }
    if (record->length > kMaxStoredFragmentBytes ||
        size.value() - offset - kRecordHeaderSize < record->length) {
      problem = "a record longer than the file";
      break;
    }
    data.resize(record->length);
    Status s = fs_.readAt(fd, data.data(), data.size(), offset + kRecordHeaderSize);
    if (!s.ok()) return s;
    if (xxh3(data.data(), data.size()) != record->checksum) {
      // Its header verifies, so the next record starts after it: a rotten record
      // is garbage and the acknowledged ones after it stay. (A torn last record
      // ends at an unreadable header or at the end of the file just the same.)
      spdlog::warn(
          "extent {}: the record of fragment {} at offset {} fails its data checksum; "
          "kept as garbage, not indexed",
          name, shortHex(record->id), offset);
      offset += kRecordHeaderSize + record->length;
      info->committedSize = offset;
      info->garbageBytes += kRecordHeaderSize + record->length;
      continue;
    }
    FragmentLocation location;
    location.extent = number;
    location.offset = offset;
    location.length = record->length;
    location.checksum = record->checksum;
    location.storedAtNs = record->storedAtNs;
    uint64_t recordSize = location.recordSize();
    offset += recordSize;
    info->committedSize = offset;

    auto value = txn.get(fragmentsDb_, record->id);
    auto old = value ? decodeFragmentLocation(*value) : std::nullopt;
    if (old && old->checksum == location.checksum) {
      // A copy of a stored fragment (compaction that did not commit): garbage.
      info->garbageBytes += recordSize;
      continue;
    }
    if (old) {
      // Put again with other data: this later record replaces it.
      ExtentInfo& oldInfo = old->extent == number ? *info : (*extents)[old->extent];
      oldInfo.liveBytes -= std::min(oldInfo.liveBytes, old->recordSize());
      oldInfo.garbageBytes += old->recordSize();
      oldInfo.liveRecords -= std::min<uint64_t>(oldInfo.liveRecords, 1);
      txn.del(locationsDb_, locationKey(old->extent, old->offset));
    } else if (!value) {
      *fragments += 1;
    }
    s = txn.put(fragmentsDb_, record->id, encodeFragmentLocation(location));
    if (s.ok()) s = txn.put(locationsDb_, locationKey(number, location.offset), record->id);
    if (!s.ok()) return s;
    info->liveBytes += recordSize;
    info->liveRecords += 1;
  }
  if (offset < size.value()) {
    spdlog::warn("extent {}: discarding {} bytes from offset {} ({}): not acknowledged", name,
                 size.value() - offset, offset, problem);
    Status s = fs_.truncateFile(fd, offset);
    if (s.ok()) s = fs_.syncData(fd);
    if (!s.ok()) return s;
  }
  return {};
}

}  // namespace dfs
