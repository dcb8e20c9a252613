// Single-core throughput of every per-chunk stage of the data path, and the
// chunk-size measurement behind kDefaultChunkerParams (docs/chunking.md).
#include "tools/dfs-bench/datapath_bench.h"

#include <openssl/evp.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "backend/common/chunk_codec.h"
#include "backend/common/compression.h"
#include "backend/common/erasure.h"
#include "backend/common/fastcdc.h"
#include "backend/common/hash.h"
#include "backend/common/options.h"

namespace dfs {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "dfs-bench: %s\n", message.c_str());
  std::exit(1);
}

const uint8_t* bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

std::string randomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (size_t i = 0; i + 8 <= size; i += 8) {
    uint64_t v = rng();
    std::memcpy(&out[i], &v, 8);
  }
  for (size_t i = size / 8 * 8; i < size; ++i) out[i] = static_cast<char>(rng());
  return out;
}

// Regular files under `roots` in a deterministic (sorted, then seeded shuffle)
// order; symlinks and unreadable entries are skipped.
std::vector<fs::path> listFiles(const std::vector<std::string>& roots, uint64_t seed) {
  std::vector<fs::path> files;
  for (const auto& root : roots) {
    std::error_code ec;
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code sec;
      if (it->is_symlink(sec)) continue;
      if (it->is_regular_file(sec)) files.push_back(it->path());
    }
  }
  std::sort(files.begin(), files.end());
  std::shuffle(files.begin(), files.end(), std::mt19937_64(seed));
  return files;
}

bool readFile(const fs::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// Text-like data: concatenated text files from /usr/share (no NUL byte in
// their first 4 KiB), or generated words when /usr/share is not readable.
std::string textCorpus(size_t size, std::string* source) {
  std::string out;
  out.reserve(size);
  for (const auto& path : listFiles({"/usr/share"}, 1)) {
    if (out.size() >= size) break;
    std::error_code ec;
    if (fs::file_size(path, ec) > (4u << 20) || ec) continue;
    std::string content;
    if (!readFile(path, &content) || content.empty()) continue;
    if (std::memchr(content.data(), 0, std::min<size_t>(content.size(), 4096))) continue;
    out += content;
  }
  if (out.size() >= size / 4) {
    *source = "text files from /usr/share";
    // Repeat if the tree has less text than asked for (repeats are harmless:
    // each chunk is compressed independently).
    size_t have = out.size();
    while (out.size() < size) out.append(out, 0, std::min(have, size - out.size()));
  } else {
    *source = "generated text";
    static const char* kWords[] = {"storage ", "chunk ",   "the ",    "node ",   "metadata ",
                                   "of ",      "return ",  "int ",    "value;\n", "{\n",
                                   "}\n",      "volume ",  "server ", "to ",     "a ",
                                   "fragment ", "file ", "error ", "if (", ") {\n"};
    std::mt19937_64 rng(2);
    out.clear();
    while (out.size() < size) out += kWords[rng() % 20];
  }
  out.resize(size);
  return out;
}

struct Span {
  size_t offset;
  size_t size;
};

std::vector<Span> chunkSpans(const FastCdc& cdc, const std::string& data) {
  std::vector<Span> spans;
  size_t offset = 0;
  while (offset < data.size()) {
    size_t n = cdc.nextChunk(bytes(data) + offset, data.size() - offset, true);
    spans.push_back({offset, n});
    offset += n;
  }
  return spans;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Keeps results observable so the optimiser cannot drop benchmarked work.
uint64_t gSink = 0;

struct Stage {
  std::string name;
  size_t bytes;                  // bytes counted per run (plaintext unless noted)
  std::function<void()> prepare;  // untimed, before every run
  std::function<void()> run;
};

const std::vector<OptionSpec> kDatapathSpecs = {
    {"size", "256M", "bytes of input per stage"},
    {"repeat", "5", "runs per stage; the median is reported"},
};

const std::vector<OptionSpec> kChunkSizesSpecs = {
    {"corpus", "/usr/lib,/usr/share", "comma-separated directories to sample files from"},
    {"limit", "300M", "bytes of files in the sample (version 1)"},
    {"changed", "5", "percent of files modified in version 2"},
    {"seed", "1", "seed for file choice and modifications"},
    {"zstd-level", "1", "zstd level for the +zstd columns"},
    {"avg", "16K,32K,64K,128K", "average chunk sizes to try (min = avg/4, max = avg*4)"},
};

Result<uint32_t> parseAverage(const std::string& text) {
  char* end = nullptr;
  unsigned long value = std::strtoul(text.c_str(), &end, 10);
  if (end && (*end == 'K' || *end == 'k')) {
    value <<= 10;
    ++end;
  } else if (end && (*end == 'M' || *end == 'm')) {
    value <<= 20;
    ++end;
  }
  if (end == text.c_str() || *end != '\0' || value < 1024 || value > (32u << 20)) {
    return Status::error(Code::INVALID, "bad average chunk size '" + text + "'");
  }
  return static_cast<uint32_t>(value);
}

std::vector<std::string> splitList(const std::string& list) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    if (comma > pos) out.push_back(list.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

}  // namespace
}  // namespace dfs

int runDatapathBench(int argc, char** argv) {
  using namespace dfs;
  auto parsed = Options::parse(argc, argv, kDatapathSpecs);
  if (!parsed.ok()) die(parsed.status().message);
  const Options& options = parsed.value();
  if (options.helpRequested()) {
    std::printf("%s", Options::usage("dfs-bench datapath",
                                     "Single-core MB/s of each data-path stage.", kDatapathSpecs)
                          .c_str());
    return 0;
  }
  auto sizeOption = options.getSize("size");
  auto repeatOption = options.getInt("repeat");
  if (!sizeOption.ok()) die(sizeOption.status().message);
  if (!repeatOption.ok() || repeatOption.value() < 1) die("--repeat must be a positive number");
  const size_t size = sizeOption.value();
  const int repeat = static_cast<int>(repeatOption.value());
  const int level = kDefaultZstdLevel;
  const FastCdc cdc(kDefaultChunkerParams);
  const ErasureCodec* codec = ErasureCodec::get(4, 2).value();

  std::printf("preparing %zu MiB of text-like and random data...\n", size >> 20);
  std::string textSource;
  const std::string text = textCorpus(size, &textSource);
  const std::string random = randomBytes(size, 7);
  const std::vector<Span> textSpans = chunkSpans(cdc, text);
  const std::vector<Span> randomSpans = chunkSpans(cdc, random);

  std::vector<std::string> compressed(textSpans.size());
  size_t compressedChunks = 0;
  size_t compressedBytes = 0;
  for (size_t i = 0; i < textSpans.size(); ++i) {
    auto c = compressChunk(bytes(text) + textSpans[i].offset, textSpans[i].size, level);
    if (c) {
      compressed[i] = std::move(*c);
      ++compressedChunks;
      compressedBytes += compressed[i].size();
    }
  }
  // Erasure stages work on random (incompressible) chunks, as stored.
  std::vector<std::vector<std::string>> fragments(randomSpans.size());
  for (size_t i = 0; i < randomSpans.size(); ++i) {
    fragments[i] = codec->encode(bytes(random) + randomSpans[i].offset, randomSpans[i].size);
  }
  std::vector<EncodedChunk> encoded;
  encoded.reserve(textSpans.size());
  for (const auto& span : textSpans) {
    encoded.push_back(encodeChunk(bytes(text) + span.offset, span.size, 4, 2, level).value());
  }

  std::string destination(size, '\0');
  std::vector<std::vector<std::optional<std::string>>> decodeInput;
  auto prepareDecodeInput = [&](const std::vector<std::vector<std::string>>& from, int lose) {
    decodeInput.assign(from.size(), {});
    for (size_t i = 0; i < from.size(); ++i) {
      decodeInput[i].assign(from[i].begin(), from[i].end());
      for (int j = 0; j < lose; ++j) decodeInput[i][j].reset();
    }
  };
  std::vector<std::vector<std::string>> encodedFragments;

  std::vector<Stage> stages;
  stages.push_back({"memcpy", size, nullptr, [&] {
                      std::memcpy(destination.data(), random.data(), size);
                      gSink += static_cast<uint8_t>(destination[size / 2]);
                    }});
  stages.push_back({"SHA-256, OpenSSL EVP, one buffer", size, nullptr, [&] {
                      unsigned char digest[EVP_MAX_MD_SIZE];
                      unsigned int length = 0;
                      EVP_Digest(random.data(), size, digest, &length, EVP_sha256(), nullptr);
                      gSink += digest[0];
                    }});
  stages.push_back({"XXH3-64, one buffer", size, nullptr,
                    [&] { gSink += xxh3(random.data(), size); }});
  // Fragment checksums: the library's (x86-64 baseline) build next to xxh3()'s.
  stages.push_back({"XXH3-64 libxxhash, 16 KiB pieces", size, nullptr, [&] {
                      for (size_t o = 0; o + 16384 <= size; o += 16384) {
                        gSink += XXH3_64bits(random.data() + o, 16384);
                      }
                    }});
  stages.push_back({"XXH3-64 via xxh3(), 16 KiB pieces", size, nullptr, [&] {
                      for (size_t o = 0; o + 16384 <= size; o += 16384) {
                        gSink += xxh3(random.data() + o, 16384);
                      }
                    }});
  stages.push_back({"FastCDC chunking (text)", size, nullptr, [&] {
                      size_t offset = 0, count = 0;
                      while (offset < size) {
                        offset += cdc.nextChunk(bytes(text) + offset, size - offset, true);
                        ++count;
                      }
                      gSink += count;
                    }});
  stages.push_back({"FastCDC chunking (random)", size, nullptr, [&] {
                      size_t offset = 0, count = 0;
                      while (offset < size) {
                        offset += cdc.nextChunk(bytes(random) + offset, size - offset, true);
                        ++count;
                      }
                      gSink += count;
                    }});
  stages.push_back({"chunk SHA-256 via sha256()", size, nullptr, [&] {
                      for (const auto& s : randomSpans) gSink += sha256(bytes(random) + s.offset, s.size)[0];
                    }});
  stages.push_back({"zstd -" + std::to_string(level) + " compress (text)", size, nullptr, [&] {
                      for (const auto& s : textSpans) {
                        auto c = compressChunk(bytes(text) + s.offset, s.size, level);
                        gSink += c ? c->size() : 0;
                      }
                    }});
  stages.push_back({"zstd -" + std::to_string(level) + " compress (random)", size, nullptr, [&] {
                      for (const auto& s : randomSpans) {
                        auto c = compressChunk(bytes(random) + s.offset, s.size, level);
                        gSink += c ? c->size() : 0;
                      }
                    }});
  stages.push_back({"zstd decompress (text)", size, nullptr, [&] {
                      for (size_t i = 0; i < textSpans.size(); ++i) {
                        if (compressed[i].empty()) continue;
                        auto d = decompressChunk(bytes(compressed[i]), compressed[i].size(),
                                                 textSpans[i].size);
                        gSink += d.ok() ? d.value().size() : 0;
                      }
                    }});
  stages.push_back({"EC 4+2 encode", size, nullptr, [&] {
                      for (const auto& s : randomSpans) {
                        gSink += codec->encode(bytes(random) + s.offset, s.size).size();
                      }
                    }});
  stages.push_back({"EC 4+2 decode, 2 data fragments lost", size,
                    [&] { prepareDecodeInput(fragments, 2); }, [&] {
                      for (size_t i = 0; i < randomSpans.size(); ++i) {
                        auto d = codec->decode(std::move(decodeInput[i]), randomSpans[i].size);
                        gSink += d.ok() ? d.value().size() : 0;
                      }
                    }});
  stages.push_back({"encodeChunk 4+2 (text: sha+zstd+EC)", size, nullptr, [&] {
                      for (const auto& s : textSpans) {
                        gSink += encodeChunk(bytes(text) + s.offset, s.size, 4, 2, level)
                                     .value()
                                     .layout.storedSize;
                      }
                    }});
  stages.push_back({"encodeChunk 4+2 (random)", size, nullptr, [&] {
                      for (const auto& s : randomSpans) {
                        gSink += encodeChunk(bytes(random) + s.offset, s.size, 4, 2, level)
                                     .value()
                                     .layout.storedSize;
                      }
                    }});
  auto prepareEncoded = [&](int lose) {
    encodedFragments.assign(encoded.size(), {});
    for (size_t i = 0; i < encoded.size(); ++i) encodedFragments[i] = encoded[i].fragments;
    prepareDecodeInput(encodedFragments, lose);
    encodedFragments.clear();
  };
  stages.push_back({"decodeChunk 4+2 (text, all present)", size, [&] { prepareEncoded(0); }, [&] {
                      for (size_t i = 0; i < encoded.size(); ++i) {
                        auto d = decodeChunk(encoded[i].layout, std::move(decodeInput[i]));
                        if (!d.ok()) die("decodeChunk failed: " + d.status().message);
                        gSink += d.value().size();
                      }
                    }});
  stages.push_back({"decodeChunk 4+2 (text, 2 data lost)", size, [&] { prepareEncoded(2); }, [&] {
                      for (size_t i = 0; i < encoded.size(); ++i) {
                        auto d = decodeChunk(encoded[i].layout, std::move(decodeInput[i]));
                        if (!d.ok()) die("decodeChunk failed: " + d.status().message);
                        gSink += d.value().size();
                      }
                    }});

  std::printf("input: %zu MiB; text = %s; %zu text chunks (avg %zu B), %zu compressible, "
              "zstd -%d ratio %.3f; median of %d runs, one thread\n\n",
              size >> 20, textSource.c_str(), textSpans.size(), size / textSpans.size(),
              compressedChunks, level,
              compressedChunks ? static_cast<double>(compressedBytes) /
                                     [&] {
                                       size_t plain = 0;
                                       for (size_t i = 0; i < textSpans.size(); ++i) {
                                         if (!compressed[i].empty()) plain += textSpans[i].size;
                                       }
                                       return static_cast<double>(plain);
                                     }()
                               : 1.0,
              repeat);
  std::printf("%-40s %10s %10s\n", "stage", "MB/s", "x memcpy");
  std::printf("%-40s %10s %10s\n", std::string(40, '-').c_str(), "----------", "----------");
  double memcpyRate = 0;
  for (const auto& stage : stages) {
    std::vector<double> rates;
    for (int r = 0; r < repeat; ++r) {
      if (stage.prepare) stage.prepare();
      auto start = Clock::now();
      stage.run();
      rates.push_back(stage.bytes / 1e6 / secondsSince(start));
    }
    double rate = median(rates);
    if (memcpyRate == 0) memcpyRate = rate;
    std::printf("%-40s %10.0f %10.3f\n", stage.name.c_str(), rate, rate / memcpyRate);
    std::fflush(stdout);
  }
  std::printf("\n(MB = 10^6 bytes of plaintext per second; checksum %llu)\n",
              static_cast<unsigned long long>(gSink & 0xff));
  return 0;
}

int runChunkSizesBench(int argc, char** argv) {
  using namespace dfs;
  auto parsed = Options::parse(argc, argv, kChunkSizesSpecs);
  if (!parsed.ok()) die(parsed.status().message);
  const Options& options = parsed.value();
  if (options.helpRequested()) {
    std::printf("%s", Options::usage("dfs-bench chunksizes",
                                     "Dedup ratio and speed of candidate FastCDC chunk sizes.",
                                     kChunkSizesSpecs)
                          .c_str());
    return 0;
  }
  auto limitOption = options.getSize("limit");
  auto changedOption = options.getInt("changed");
  auto seedOption = options.getInt("seed");
  if (!limitOption.ok()) die(limitOption.status().message);
  if (!changedOption.ok()) die(changedOption.status().message);
  if (!seedOption.ok()) die(seedOption.status().message);
  const uint64_t limit = limitOption.value();
  const uint64_t seed = static_cast<uint64_t>(seedOption.value());
  const std::vector<std::string> roots = splitList(options.get("corpus"));
  auto levelOption = options.getInt("zstd-level");
  if (!levelOption.ok()) die(levelOption.status().message);
  const int level = static_cast<int>(levelOption.value());
  std::vector<uint32_t> averages;
  for (const auto& text : splitList(options.get("avg"))) {
    auto value = parseAverage(text);
    if (!value.ok()) die(value.status().message);
    averages.push_back(value.value());
  }
  size_t edits = 0;

  // Version 1: a random sample of whole files up to `limit` bytes.
  std::vector<std::string> v1;
  uint64_t v1Bytes = 0;
  for (const auto& path : listFiles(roots, seed)) {
    if (v1Bytes >= limit) break;
    std::error_code ec;
    uintmax_t fileSize = fs::file_size(path, ec);
    // Files that would overshoot the limit by more than 1 MiB are passed over
    // so the sample stays close to the asked-for size.
    if (ec || fileSize > limit - v1Bytes + (1u << 20)) continue;
    std::string content;
    if (!readFile(path, &content)) continue;
    v1Bytes += content.size();
    v1.push_back(std::move(content));
  }
  // Version 2: `changed`% of the files get 1-3 small edits (insert or
  // overwrite 1-16 bytes at a random position), the rest are unchanged.
  std::mt19937_64 rng(seed * 7919 + 1);
  std::vector<std::string> v2 = v1;
  size_t changedFiles = 0;
  for (auto& file : v2) {
    if (rng() % 100 >= static_cast<uint64_t>(changedOption.value())) continue;
    ++changedFiles;
    for (int n = 1 + rng() % 3; n > 0; --n, ++edits) {
      std::string patch = randomBytes(1 + rng() % 16, rng());
      size_t at = file.empty() ? 0 : rng() % file.size();
      if (rng() % 2) {
        file.insert(at, patch);
      } else {
        file.replace(at, std::min(patch.size(), file.size() - at), patch);
      }
    }
  }
  uint64_t v2Bytes = 0;
  for (const auto& f : v2) v2Bytes += f.size();
  const double logical = static_cast<double>(v1Bytes + v2Bytes);
  std::printf("corpus: %s; %zu files, version 1 %.1f MB, version 2 %.1f MB (%zu files edited, "
              "%zu edits)\n\n",
              options.get("corpus").c_str(), v1.size(), v1Bytes / 1e6, v2Bytes / 1e6,
              changedFiles, edits);

  std::printf("%-18s %10s %8s %9s %8s %8s %9s %8s %8s %8s\n", "min/avg/max", "chunk MB/s",
              "chunks", "chunks/GB", "mean B", "dedup", "KB/edit", "+zstd", "+EC4+2", "frag B");
  for (uint32_t avg : averages) {
    const ChunkerParams params = {avg / 4, avg, avg * 4};
    const FastCdc cdc(params);
    struct ChunkRef {
      const std::string* file;
      size_t offset;
      size_t size;
      bool secondVersion;
    };
    std::vector<ChunkRef> chunks;
    double chunkSeconds = 0;
    for (const auto* version : {&v1, &v2}) {
      for (const auto& file : *version) {
        auto start = Clock::now();
        size_t offset = 0;
        while (offset < file.size()) {
          size_t n = cdc.nextChunk(bytes(file) + offset, file.size() - offset, true);
          chunks.push_back({&file, offset, n, version == &v2});
          offset += n;
        }
        chunkSeconds += secondsSince(start);
      }
    }
    std::unordered_set<std::string> seen;
    uint64_t uniqueBytes = 0;
    uint64_t uniqueV1Bytes = 0;
    uint64_t uniqueChunks = 0;
    uint64_t compressedBytes = 0;
    uint64_t ecBytes = 0;
    const ErasureCodec* codec = ErasureCodec::get(4, 2).value();
    for (const auto& c : chunks) {
      const uint8_t* data = bytes(*c.file) + c.offset;
      ChunkId id = sha256(data, c.size);
      if (!seen.insert(std::string(id.begin(), id.end())).second) continue;
      uniqueBytes += c.size;
      ++uniqueChunks;
      if (!c.secondVersion) uniqueV1Bytes += c.size;
      auto z = compressChunk(data, c.size, level);
      size_t stored = z ? z->size() : c.size;
      compressedBytes += stored;
      ecBytes += static_cast<uint64_t>(codec->fragmentSize(stored)) * 6;
    }
    char name[64];
    std::snprintf(name, sizeof(name), "%uK/%uK/%uK", params.minSize >> 10, avg >> 10,
                  params.maxSize >> 10);
    std::printf("%-18s %10.0f %8zu %9.0f %8.0f %8.4f %9.1f %8.4f %8.4f %8.0f\n", name,
                logical / 1e6 / chunkSeconds, chunks.size(), chunks.size() / (logical / 1e9),
                logical / chunks.size(), uniqueBytes / logical,
                edits ? (uniqueBytes - uniqueV1Bytes) / 1e3 / edits : 0.0,
                compressedBytes / logical, ecBytes / logical,
                uniqueChunks ? ecBytes / 6.0 / uniqueChunks : 0.0);
    std::fflush(stdout);
  }
  std::printf("\ndedup = unique bytes after dedup / logical bytes of both versions; KB/edit = "
              "new unique bytes in version 2 per edit; +zstd adds zstd -%d per unique chunk, "
              "+EC4+2 then 4+2 fragments incl. padding (raw bytes on storage nodes / logical); "
              "frag B = mean fragment size.\n",
              level);
  return 0;
}
