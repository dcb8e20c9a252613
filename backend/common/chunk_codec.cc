#include "backend/common/chunk_codec.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "backend/common/compression.h"
#include "backend/common/erasure.h"

namespace dfs {

namespace {

// Largest plaintext a chunk may claim (FastCdc's maxSize ceiling); a corrupt
// layout cannot make the decoder allocate more than this.
constexpr uint32_t kMaxChunkPlainSize = 256u << 20;

Status ioError(const ChunkLayout& layout, const std::string& what) {
  return Status::error(Code::IO, "chunk " + toHex(layout.id).substr(0, 16) + ": " + what);
}

}  // namespace

std::string fragmentId(const ChunkId& chunk, uint8_t index, uint8_t generation) {
  return fragmentId(std::string_view(reinterpret_cast<const char*>(chunk.data()), chunk.size()),
                    index, generation);
}

std::string fragmentId(std::string_view chunk, uint8_t index, uint8_t generation) {
  std::string id(kFragmentIdSize, '\0');
  std::memcpy(id.data(), chunk.data(), std::min(chunk.size(), kFragmentIdSize - 1));
  id[kFragmentIdSize - 1] = static_cast<char>((index & 0x3f) | (generation << 6));
  return id;
}

Result<EncodedChunk> encodeChunk(const uint8_t* data, size_t size, int k, int m, int zstdLevel,
                                 const ChunkId* knownId) {
  if (size > kMaxChunkPlainSize) {
    return Status::error(Code::INVALID, "chunk of " + std::to_string(size) + " bytes is too big");
  }
  auto codec = ErasureCodec::get(k, m);
  if (!codec.ok()) return codec.status();

  EncodedChunk chunk;
  ChunkLayout& layout = chunk.layout;
  layout.id = knownId ? *knownId : sha256(data, size);
  layout.plainSize = static_cast<uint32_t>(size);
  layout.k = k;
  layout.m = m;

  std::optional<std::string> compressed;
  if (zstdLevel != 0) compressed = compressChunk(data, size, zstdLevel);
  const uint8_t* stored = data;
  size_t storedSize = size;
  if (compressed) {
    layout.compressed = true;
    stored = reinterpret_cast<const uint8_t*>(compressed->data());
    storedSize = compressed->size();
  }
  layout.storedSize = static_cast<uint32_t>(storedSize);
  layout.fragmentSize = codec.value()->fragmentSize(storedSize);
  chunk.fragments = codec.value()->encode(stored, storedSize);
  layout.checksums.reserve(chunk.fragments.size());
  for (const auto& f : chunk.fragments) layout.checksums.push_back(xxh3(f.data(), f.size()));
  return chunk;
}

Result<std::string> decodeChunk(const ChunkLayout& layout,
                                const std::vector<std::optional<std::string>>& fragments,
                                std::vector<int>* badFragments) {
  auto codecResult = ErasureCodec::get(layout.k, layout.m);
  if (!codecResult.ok()) return ioError(layout, codecResult.status().message);
  const ErasureCodec& codec = *codecResult.value();
  const size_t total = static_cast<size_t>(layout.k + layout.m);
  // A layout that the encoder could not have produced is corrupt metadata.
  if (layout.checksums.size() != total || fragments.size() != total) {
    return ioError(layout, "layout lists " + std::to_string(layout.checksums.size()) +
                               " checksums and " + std::to_string(fragments.size()) +
                               " fragments, expected " + std::to_string(total));
  }
  if (layout.plainSize > kMaxChunkPlainSize ||
      (layout.compressed ? layout.storedSize >= layout.plainSize
                         : layout.storedSize != layout.plainSize) ||
      layout.fragmentSize != codec.fragmentSize(layout.storedSize)) {
    return ioError(layout, "inconsistent sizes (plain " + std::to_string(layout.plainSize) +
                               ", stored " + std::to_string(layout.storedSize) + ", fragment " +
                               std::to_string(layout.fragmentSize) + ")");
  }

  bool allDataGood = true;
  size_t good = 0;
  std::vector<bool> usable(total, false);
  for (size_t i = 0; i < total; ++i) {
    const auto& f = fragments[i];
    if (!f) {
      if (static_cast<int>(i) < layout.k) allDataGood = false;
      continue;
    }
    if (f->size() != layout.fragmentSize || xxh3(f->data(), f->size()) != layout.checksums[i]) {
      if (badFragments) badFragments->push_back(static_cast<int>(i));
      if (static_cast<int>(i) < layout.k) allDataGood = false;
      continue;
    }
    usable[i] = true;
    ++good;
  }
  if (good < static_cast<size_t>(layout.k)) {
    return ioError(layout, "only " + std::to_string(good) + " intact fragments, need " +
                               std::to_string(layout.k));
  }

  std::string stored;
  if (allDataGood) {
    stored.reserve(layout.storedSize);
    for (int i = 0; i < layout.k && stored.size() < layout.storedSize; ++i) {
      size_t n = std::min<size_t>(layout.storedSize - stored.size(), layout.fragmentSize);
      stored.append(fragments[i]->data(), n);
    }
  } else {
    std::vector<std::optional<std::string>> intact(total);
    for (size_t i = 0; i < total; ++i) {
      if (usable[i]) intact[i] = fragments[i];
    }
    auto decoded = codec.decode(std::move(intact), layout.storedSize);
    if (!decoded.ok()) return ioError(layout, decoded.status().message);
    stored = std::move(decoded).value();
  }

  std::string plain;
  if (layout.compressed) {
    auto result = decompressChunk(reinterpret_cast<const uint8_t*>(stored.data()), stored.size(),
                                  layout.plainSize);
    if (!result.ok()) return ioError(layout, result.status().message);
    plain = std::move(result).value();
  } else {
    plain = std::move(stored);
  }
  if (plain.size() != layout.plainSize || sha256(plain.data(), plain.size()) != layout.id) {
    return ioError(layout, "SHA-256 of decoded data does not match the chunk id");
  }
  return plain;
}

}  // namespace dfs
