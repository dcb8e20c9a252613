// Property and fuzz tests of the metadata node's record decoders (meta_store.h): the
// bytes they read come from LMDB, i.e. from disk, and must never crash the node or read
// out of bounds whatever they hold (this binary also runs under ASan/UBSan,
// `make test-asan`).
//
// For every record type:
//   * round trip: encode(random record) decodes to the same record;
//   * every truncation of a valid encoding is refused, except where the record ends in a
//     variable-length "rest" field (inode symlink target, volume name, session client):
//     there a cut inside that field yields the same record with the field shortened;
//   * single-byte mutations of valid encodings and random byte strings either fail or
//     decode to a record whose encoding is the input (or a prefix of it: dirent, chunk
//     extent, node, stats and counter decoders ignore trailing bytes), so a decoder
//     never invents or drops information it did not read;
//   * any version byte other than 01 is refused.
#include <catch2/catch.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <tuple>

#include "backend/meta/meta_store.h"

namespace dfs::meta {
namespace {

using Rng = std::mt19937_64;

// Integers biased towards the edges (0, 1, max, sign boundaries) where encoders and
// decoders tend to differ.
uint64_t edgyU64(Rng& rng) {
  switch (rng() % 6) {
    case 0: return 0;
    case 1: return 1;
    case 2: return std::numeric_limits<uint64_t>::max();
    case 3: return uint64_t(1) << 63;
    case 4: return rng() % 1000;
    default: return rng();
  }
}
uint32_t edgyU32(Rng& rng) {
  uint64_t v = edgyU64(rng);
  return v == std::numeric_limits<uint64_t>::max() ? std::numeric_limits<uint32_t>::max() : uint32_t(v);
}
int64_t edgyI64(Rng& rng) { return int64_t(edgyU64(rng)); }

std::string randomBytes(Rng& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = char(rng());
  return s;
}
// Lengths biased towards empty and short, sometimes long.
size_t randomLength(Rng& rng, size_t max) {
  switch (rng() % 4) {
    case 0: return 0;
    case 1: return rng() % 16;
    default: return rng() % (max + 1);
  }
}

InodeRecord randomInode(Rng& rng) {
  InodeRecord r;
  r.ino = edgyU64(rng);
  r.volume = edgyU32(rng);
  r.mode = edgyU32(rng);
  r.nlink = edgyU32(rng);
  r.uid = edgyU32(rng);
  r.gid = edgyU32(rng);
  r.rdev = edgyU64(rng);
  r.size = edgyU64(rng);
  r.atimeNs = edgyI64(rng);
  r.mtimeNs = edgyI64(rng);
  r.ctimeNs = edgyI64(rng);
  r.dataVersion = edgyU64(rng);
  r.storedBytes = edgyU64(rng);
  r.parent = edgyU64(rng);
  r.symlinkTarget = randomBytes(rng, randomLength(rng, 300));
  return r;
}
auto fields(const InodeRecord& r) {
  return std::tie(r.ino, r.volume, r.mode, r.nlink, r.uid, r.gid, r.rdev, r.size, r.atimeNs, r.mtimeNs,
                  r.ctimeNs, r.dataVersion, r.storedBytes, r.parent, r.symlinkTarget);
}

DirentRecord randomDirent(Rng& rng) {
  DirentRecord r;
  r.ino = edgyU64(rng);
  r.type = edgyU32(rng);
  return r;
}
auto fields(const DirentRecord& r) { return std::tie(r.ino, r.type); }

ExtentRecord randomExtent(Rng& rng) {
  ExtentRecord r;
  r.fileOffset = edgyU64(rng);
  if (rng() % 2) {
    r.kind = ExtentRecord::Kind::kChunk;
    r.length = edgyU64(rng);
    r.chunkId = randomBytes(rng, kChunkIdSize);
    r.chunkOffset = edgyU32(rng);
  } else {
    r.kind = ExtentRecord::Kind::kInline;
    r.inlineData = randomBytes(rng, randomLength(rng, 4096));
    r.length = r.inlineData.size();
  }
  return r;
}
auto fields(const ExtentRecord& r) {
  return std::tie(r.fileOffset, r.length, r.kind, r.chunkId, r.chunkOffset, r.inlineData);
}

ChunkRecord randomChunk(Rng& rng) {
  ChunkRecord r;
  r.id = randomBytes(rng, kChunkIdSize);
  r.refcount = edgyU64(rng);
  r.plainSize = edgyU32(rng);
  r.storedSize = edgyU32(rng);
  r.compression = uint8_t(rng());
  // Mostly realistic widths, sometimes the largest a byte can say.
  r.k = uint8_t(rng() % 8 == 0 ? rng() : rng() % 17);
  r.m = uint8_t(rng() % 8 == 0 ? rng() : rng() % 9);
  r.fragmentSize = edgyU32(rng);
  r.zeroSinceNs = edgyI64(rng);
  r.lastAccessNs = edgyI64(rng);
  for (int i = 0; i < r.k + r.m; ++i) {
    r.nodes.push_back(edgyU32(rng));
    r.fragmentChecksums.push_back(edgyU64(rng));
  }
  return r;
}
auto fields(const ChunkRecord& r) {
  return std::tie(r.id, r.refcount, r.plainSize, r.storedSize, r.compression, r.k, r.m, r.fragmentSize,
                  r.zeroSinceNs, r.lastAccessNs, r.nodes, r.fragmentChecksums);
}

VolumeRecord randomVolume(Rng& rng) {
  VolumeRecord r;
  r.id = edgyU32(rng);
  r.name = randomBytes(rng, randomLength(rng, 255));
  r.rootIno = edgyU64(rng);
  r.ecK = uint8_t(rng());
  r.ecM = uint8_t(rng());
  r.chunkMin = edgyU32(rng);
  r.chunkAvg = edgyU32(rng);
  r.chunkMax = edgyU32(rng);
  r.compressionLevel = int8_t(rng());
  r.inlineThreshold = edgyU32(rng);
  return r;
}
auto fields(const VolumeRecord& r) {
  return std::tie(r.id, r.name, r.rootIno, r.ecK, r.ecM, r.chunkMin, r.chunkAvg, r.chunkMax,
                  r.compressionLevel, r.inlineThreshold);
}

NodeRecord randomNode(Rng& rng) {
  NodeRecord r;
  r.uuid = randomBytes(rng, 1 + rng() % 128);
  r.id = edgyU32(rng);
  r.address = randomBytes(rng, randomLength(rng, 300));
  r.label = randomBytes(rng, randomLength(rng, 300));
  r.capacityBytes = edgyU64(rng);
  r.usedBytes = edgyU64(rng);
  r.fragments = edgyU64(rng);
  r.lastHeartbeatNs = edgyI64(rng);
  return r;
}
auto fields(const NodeRecord& r) {
  return std::tie(r.uuid, r.id, r.address, r.label, r.capacityBytes, r.usedBytes, r.fragments,
                  r.lastHeartbeatNs);
}

SessionRecord randomSession(Rng& rng) {
  SessionRecord r;
  r.id = edgyU64(rng);
  r.volume = edgyU32(rng);
  r.createdNs = edgyI64(rng);
  r.client = randomBytes(rng, randomLength(rng, 300));
  return r;
}
auto fields(const SessionRecord& r) { return std::tie(r.id, r.volume, r.createdNs, r.client); }

StatsRecord randomStats(Rng& rng) {
  StatsRecord r;
  r.logicalBytes = edgyU64(rng);
  r.uniqueBytes = edgyU64(rng);
  r.compressedBytes = edgyU64(rng);
  r.rawBytes = edgyU64(rng);
  r.chunks = edgyU64(rng);
  r.files = edgyU64(rng);
  r.inodes = edgyU64(rng);
  r.unreferencedChunks = edgyU64(rng);
  return r;
}
auto fields(const StatsRecord& r) {
  return std::tie(r.logicalBytes, r.uniqueBytes, r.compressedBytes, r.rawBytes, r.chunks, r.files, r.inodes,
                  r.unreferencedChunks);
}

// The counter is a bare u64; wrap it so that it fits the same harness.
struct Counter {
  uint64_t value = 0;
};
auto fields(const Counter& r) { return std::tie(r.value); }

// One decoder under test. The key part of a record (ino, id, uuid, offset) is not in
// the value; `decode` is given the key of the record it came from.
auto fields(const JournalMarkRecord& r) {
  return std::tie(r.seq, r.timeNs);
}

struct ClientSeen {
  int64_t timeNs = 0;
};
auto fields(const ClientSeen& r) {
  return std::tie(r.timeNs);
}

template <class Record>
struct Subject {
  const char* name;
  std::function<Record(Rng&)> make;
  std::function<std::string(const Record&)> encode;
  std::function<Result<Record>(const Record& keyFrom, std::string_view)> decode;
  // Bytes of the encoding that a truncation must not cut into: the whole encoding,
  // or everything before a trailing variable-length field read with Decoder::rest().
  std::function<size_t(const Record&, const std::string&)> fixedPart;
  // Whether a successful decode re-encodes to exactly its input (true: the decoder
  // refuses trailing bytes or reads them into a trailing "rest" field) or to a prefix
  // of it (false: trailing bytes are ignored).
  bool exactReencode;
};

size_t whole(const std::string& encoded) { return encoded.size(); }

template <class Record>
void checkDecodeOutcome(const Subject<Record>& s, const Record& keyFrom, const std::string& input) {
  auto decoded = s.decode(keyFrom, input);
  if (!decoded.ok()) {
    CHECK(decoded.status().code == Code::IO);
    return;
  }
  REQUIRE(!input.empty());
  CHECK(uint8_t(input[0]) == kFormatVersion);
  // What it decoded re-encodes to what it read: the input, or a prefix of it when the
  // decoder ignores trailing bytes.
  std::string again = s.encode(decoded.value());
  if (s.exactReencode) {
    CHECK(again == input);
  } else {
    REQUIRE(again.size() <= input.size());
    CHECK(again == input.substr(0, again.size()));
  }
}

template <class Record>
void runDecoderProperties(const Subject<Record>& s, uint64_t seed) {
  Rng rng(seed);
  INFO("decoder: " << s.name);

  SECTION("round trip of random records") {
    for (int i = 0; i < 1000; ++i) {
      Record r = s.make(rng);
      std::string encoded = s.encode(r);
      REQUIRE(!encoded.empty());
      CHECK(uint8_t(encoded[0]) == kFormatVersion);
      auto decoded = s.decode(r, encoded);
      INFO("record " << i << ", " << encoded.size() << " bytes");
      REQUIRE(decoded.ok());
      CHECK(fields(decoded.value()) == fields(r));
      // A byte more: refused, ignored, or (a trailing "rest" field) part of that field.
      checkDecodeOutcome(s, r, encoded + '\0');
    }
  }

  SECTION("every truncation of valid encodings is refused or keeps the fixed part") {
    for (int i = 0; i < 100; ++i) {
      Record r = s.make(rng);
      std::string encoded = s.encode(r);
      size_t fixed = s.fixedPart(r, encoded);
      REQUIRE(fixed <= encoded.size());
      for (size_t len = 0; len < encoded.size(); ++len) {
        std::string cut = encoded.substr(0, len);
        auto decoded = s.decode(r, cut);
        INFO("record " << i << " cut to " << len << " of " << encoded.size() << " bytes (fixed part "
                       << fixed << ")");
        if (len < fixed) {
          CHECK_FALSE(decoded.ok());
        } else {
          REQUIRE(decoded.ok());
          CHECK(s.encode(decoded.value()) == cut);
        }
        checkDecodeOutcome(s, r, cut);
      }
    }
  }

  SECTION("single-byte mutations of valid encodings") {
    for (int i = 0; i < 100; ++i) {
      Record r = s.make(rng);
      std::string encoded = s.encode(r);
      for (size_t pos = 0; pos < encoded.size(); ++pos) {
        for (uint8_t v : {uint8_t(encoded[pos] ^ 0x01), uint8_t(encoded[pos] ^ 0x80), uint8_t(0),
                          uint8_t(0xff), uint8_t(rng())}) {
          std::string mutated = encoded;
          mutated[pos] = char(v);
          INFO("record " << i << ", byte " << pos << " set to " << int(v));
          checkDecodeOutcome(s, r, mutated);
          if (pos == 0 && v != kFormatVersion) CHECK_FALSE(s.decode(r, mutated).ok());
        }
      }
      // Inserted and deleted bytes shift every later field.
      size_t pos = rng() % (encoded.size() + 1);
      checkDecodeOutcome(s, r, encoded.substr(0, pos) + char(rng()) + encoded.substr(pos));
      if (pos < encoded.size()) checkDecodeOutcome(s, r, encoded.substr(0, pos) + encoded.substr(pos + 1));
    }
  }

  SECTION("random bytes") {
    for (int i = 0; i < 10000; ++i) {
      std::string input = randomBytes(rng, rng() % 128);
      // Half of them with a valid version byte, so that decoding goes past it.
      if (!input.empty() && i % 2) input[0] = char(kFormatVersion);
      Record keyFrom = s.make(rng);
      INFO("random input " << i << " of " << input.size() << " bytes");
      checkDecodeOutcome(s, keyFrom, input);
    }
  }
}

}  // namespace

TEST_CASE("meta record decoders: inode", "[meta][decoders][fuzz]") {
  runDecoderProperties(Subject<InodeRecord>{
      "decodeInode", randomInode, encodeInode,
      [](const InodeRecord& k, std::string_view v) { return decodeInode(k.ino, v); },
      [](const InodeRecord& r, const std::string& e) { return e.size() - r.symlinkTarget.size(); },
      /*exactReencode=*/true}, 1);
}

TEST_CASE("meta record decoders: directory entry", "[meta][decoders][fuzz]") {
  runDecoderProperties(Subject<DirentRecord>{
      "decodeDirent", randomDirent, encodeDirent,
      [](const DirentRecord&, std::string_view v) { return decodeDirent(v); },
      [](const DirentRecord&, const std::string& e) { return whole(e); },
      /*exactReencode=*/false}, 2);
}

TEST_CASE("meta record decoders: extent", "[meta][decoders][fuzz]") {
  runDecoderProperties(Subject<ExtentRecord>{
      "decodeExtent", randomExtent, encodeExtent,
      [](const ExtentRecord& k, std::string_view v) { return decodeExtent(k.fileOffset, v); },
      [](const ExtentRecord&, const std::string& e) { return whole(e); },
      // A chunk extent ignores trailing bytes, an inline one refuses them (its data is
      // the rest of the value and must be `length` bytes); checkDecodeOutcome's prefix
      // rule covers both.
      /*exactReencode=*/false}, 3);
}

TEST_CASE("meta record decoders: inline extent refuses a length that disagrees with its data",
          "[meta][decoders]") {
  ExtentRecord r;
  r.kind = ExtentRecord::Kind::kInline;
  r.inlineData = "hello";
  r.length = 5;
  std::string e = encodeExtent(r);
  REQUIRE(decodeExtent(0, e).ok());
  CHECK_FALSE(decodeExtent(0, e + "!").ok());
  r.length = 6;
  CHECK_FALSE(decodeExtent(0, encodeExtent(r)).ok());
  r.length = std::numeric_limits<uint64_t>::max();
  CHECK_FALSE(decodeExtent(0, encodeExtent(r)).ok());
  // kind 0 (hole) is never stored, and unknown kinds are refused.
  for (uint8_t kind : {0, 3, 0x7f, 0xff}) {
    std::string bad = e;
    bad[9] = char(kind);
    CHECK_FALSE(decodeExtent(0, bad).ok());
  }
}

TEST_CASE("meta record decoders: chunk", "[meta][decoders][fuzz]") {
  runDecoderProperties(Subject<ChunkRecord>{
      "decodeChunk", randomChunk, encodeChunk,
      [](const ChunkRecord& k, std::string_view v) { return decodeChunk(k.id, v); },
      [](const ChunkRecord&, const std::string& e) { return whole(e); },
      /*exactReencode=*/true}, 4);
}

TEST_CASE("meta record decoders: chunk with the widest k+m a header can claim", "[meta][decoders]") {
  // k = m = 255 says 510 nodes and checksums follow; a short value must be refused
  // without reading past it, a complete one accepted.
  ChunkRecord r;
  r.id = std::string(kChunkIdSize, 'c');
  r.k = 255;
  r.m = 255;
  for (int i = 0; i < 510; ++i) {
    r.nodes.push_back(uint32_t(i));
    r.fragmentChecksums.push_back(uint64_t(i) << 40);
  }
  std::string e = encodeChunk(r);
  auto ok = decodeChunk(r.id, e);
  REQUIRE(ok.ok());
  CHECK(fields(ok.value()) == fields(r));
  ChunkRecord header = r;
  header.nodes.clear();
  header.fragmentChecksums.clear();
  CHECK_FALSE(decodeChunk(r.id, encodeChunk(header)).ok());
}

TEST_CASE("meta record decoders: volume", "[meta][decoders][fuzz]") {
  runDecoderProperties(Subject<VolumeRecord>{
      "decodeVolume", randomVolume, encodeVolume,
      [](const VolumeRecord& k, std::string_view v) { return decodeVolume(k.id, v); },
      [](const VolumeRecord& r, const std::string& e) { return e.size() - r.name.size(); },
      /*exactReencode=*/true}, 5);
}

TEST_CASE("meta record decoders: node", "[meta][decoders][fuzz]") {
  runDecoderProperties(Subject<NodeRecord>{
      "decodeNode", randomNode, encodeNode,
      [](const NodeRecord& k, std::string_view v) { return decodeNode(k.uuid, v); },
      [](const NodeRecord&, const std::string& e) { return whole(e); },
      /*exactReencode=*/false}, 6);
}

TEST_CASE("meta record decoders: node with string lengths past the value", "[meta][decoders]") {
  NodeRecord r;
  r.address = "127.0.0.1:7101";
  r.label = "rack1";
  std::string e = encodeNode(r);
  // The address length field sits after version, id, capacity, used, fragments, heartbeat.
  size_t at = 1 + 4 + 8 * 4;
  for (uint16_t claimed : {uint16_t(15), uint16_t(0x7fff), uint16_t(0xffff)}) {
    std::string bad = e;
    bad[at] = char(claimed >> 8);
    bad[at + 1] = char(claimed);
    CHECK_FALSE(decodeNode("u", bad).ok());
  }
}

TEST_CASE("meta record decoders: session", "[meta][decoders][fuzz]") {
  runDecoderProperties(Subject<SessionRecord>{
      "decodeSession", randomSession, encodeSession,
      [](const SessionRecord& k, std::string_view v) { return decodeSession(k.id, v); },
      [](const SessionRecord& r, const std::string& e) { return e.size() - r.client.size(); },
      /*exactReencode=*/true}, 7);
}

TEST_CASE("meta record decoders: stats", "[meta][decoders][fuzz]") {
  runDecoderProperties(Subject<StatsRecord>{
      "decodeStats", randomStats, encodeStats,
      [](const StatsRecord&, std::string_view v) { return decodeStats(v); },
      [](const StatsRecord&, const std::string& e) { return whole(e); },
      /*exactReencode=*/false}, 8);
}

TEST_CASE("meta record decoders: counter", "[meta][decoders][fuzz]") {
  runDecoderProperties(Subject<Counter>{
      "decodeCounter", [](Rng& rng) { return Counter{edgyU64(rng)}; },
      [](const Counter& c) { return encodeCounter(c.value); },
      [](const Counter&, std::string_view v) -> Result<Counter> {
        auto d = decodeCounter(v);
        if (!d.ok()) return d.status();
        return Counter{d.value()};
      },
      [](const Counter&, const std::string& e) { return whole(e); },
      /*exactReencode=*/false}, 9);
}

TEST_CASE("meta record decoders: journal mark", "[meta][decoders][fuzz]") {
  runDecoderProperties(
      Subject<JournalMarkRecord>{
          "decodeJournalMark",
          [](Rng& rng) {
            return JournalMarkRecord{edgyU64(rng), edgyI64(rng)};
          },
          encodeJournalMark,
          [](const JournalMarkRecord&, std::string_view v) { return decodeJournalMark(v); },
          [](const JournalMarkRecord&, const std::string& e) { return whole(e); },
          /*exactReencode=*/true},
      10);
}

TEST_CASE("meta record decoders: client stamp", "[meta][decoders][fuzz]") {
  runDecoderProperties(
      Subject<ClientSeen>{"decodeClientSeen", [](Rng& rng) { return ClientSeen{edgyI64(rng)}; },
                          [](const ClientSeen& c) { return encodeClientSeen(c.timeNs); },
                          [](const ClientSeen&, std::string_view v) -> Result<ClientSeen> {
                            auto d = decodeClientSeen(v);
                            if (!d.ok()) return d.status();
                            return ClientSeen{d.value()};
                          },
                          [](const ClientSeen&, const std::string& e) { return whole(e); },
                          /*exactReencode=*/true},
      11);
}

TEST_CASE("meta Decoder: reads past the end clear ok() and return zeros", "[meta][decoders]") {
  Decoder d(std::string_view("\x01\x02\x03", 3));
  CHECK(d.u16() == 0x0102);
  CHECK(d.u32() == 0);  // only one byte left
  CHECK_FALSE(d.ok());
  CHECK(d.u8() == 0);   // stays failed even though a byte is left
  CHECK(d.bytes(1).empty());
  Decoder big(std::string_view("\x01", 1));
  CHECK(big.bytes(std::numeric_limits<size_t>::max()).empty());
  CHECK_FALSE(big.ok());
  Decoder rest(std::string_view("abc", 3));
  CHECK(rest.u8() == 'a');
  CHECK(rest.rest() == "bc");
  CHECK(rest.atEnd());
  CHECK(rest.ok());
  CHECK(Decoder(std::string_view()).shortBytes().empty());
}

}  // namespace dfs::meta
