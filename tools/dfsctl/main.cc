// dfsctl: administration of a DFS cluster over RPC (DESIGN §8). Human tables by
// default, --json for scripts. Exit codes: 0 ok, 1 the cluster refused or could not
// be reached, 2 wrong arguments.
#include <kj/async-io.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "backend/common/logging.h"
#include "backend/common/options.h"
#include "backend/common/rpc.h"
#include "backend/common/status.h"
#include "tools/dfsctl/deadline.h"
#include "tools/dfsctl/output.h"
#include "tools/dfsctl/tier.h"

namespace dfs {
namespace {

const char* kVersion = "0.1.0";

const std::vector<OptionSpec>& specs() {
  static const std::vector<OptionSpec> kSpecs = {
      {"meta", "", "metadata node host:port (else $DFS_META, /etc/dfs/dfsctl.conf, 127.0.0.1:7000)"},
      {"json", "false", "print JSON instead of tables", true},
      {"timeout", "10", "seconds to wait for the cluster"},
      {"k", "", "volume: data fragments per chunk"},
      {"m", "", "volume: parity fragments per chunk"},
      {"chunk-min", "", "volume: minimum chunk size"},
      {"chunk-avg", "", "volume: average chunk size"},
      {"chunk-max", "", "volume: maximum chunk size"},
      {"compression", "", "volume: zstd level, 0 = off"},
      {"inline-threshold", "", "volume: files up to this size are kept in metadata"},
      {"grace", "", "gc: seconds a chunk must be unreferenced before it is collected"},
      {"cold-after", "2592000", "tier: seconds since a chunk was last read (default 30 days)"},
      {"level", "19", "tier: zstd level to recompress cold chunks at (1..22)"},
      {"max-chunks", "0", "tier: stop after this many chunks (0: all)"},
      {"threads", "2", "tier: compression threads"},
      {"storage", "false", "ping: the address is a storage node", true},
      {"protocol-version", "", "ping: protocol version to offer (default: this build's)"},
  };
  return kSpecs;
}

const char* kSummary =
    "Administers a DFS cluster.\n\nCommands:\n"
    "  status                      nodes, capacity, health\n"
    "  node list                   storage nodes and their state\n"
    "  volume list                 volumes\n"
    "  volume show NAME            one volume\n"
    "  volume create NAME [--k N --m N --chunk-avg SIZE ... ]\n"
    "  volume set NAME [--k N --m N --compression L ...]\n"
    "  stats                       storage accounting: logical, unique, compressed, raw bytes\n"
    "  gc [--grace SECONDS]        collect unreferenced chunks and orphan fragments\n"
    "  tier [--cold-after SECONDS --level L]\n"
    "                              recompress chunks not read for a while (then run gc)\n"
    "  version                     client and server versions\n"
    "  ping [ADDR] [--storage]     handshake with a metadata (or storage) node";

[[noreturn]] void die(int code, const std::string& message) {
  std::cerr << "dfsctl: " << message << "\n";
  std::exit(code);
}

std::string metaAddress(const Options& options) {
  if (!options.get("meta").empty()) return options.get("meta");
  if (const char* env = getenv("DFS_META")) return env;
  std::ifstream conf("/etc/dfs/dfsctl.conf");
  std::string line;
  while (std::getline(conf, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    auto trim = [](std::string s) {
      s.erase(0, s.find_first_not_of(" \t"));
      s.erase(s.find_last_not_of(" \t\r") + 1);
      return s;
    };
    if (trim(key) == "meta") return trim(value);
  }
  return "127.0.0.1:7000";
}

std::string ratio(uint64_t a, uint64_t b) {
  if (b == 0) return "-";
  char buf[32];
  snprintf(buf, sizeof(buf), "%.3f", double(a) / double(b));
  return buf;
}

const char* stateName(proto::NodeInfo::NodeState state) {
  switch (state) {
    case proto::NodeInfo::NodeState::UP: return "up";
    case proto::NodeInfo::NodeState::SUSPECT: return "suspect";
    case proto::NodeInfo::NodeState::DOWN: return "down";
  }
  return "unknown";
}

class Cli {
 public:
  Cli(const Options& options)
      : options_(options), io_(kj::setupAsyncIo()), json_(options.getBool("json")) {
    auto t = options.getInt("timeout");
    if (!t.ok() || t.value() <= 0) die(2, "--timeout must be a positive number of seconds");
    timeoutSeconds_ = t.value();
  }

  int run(const std::vector<std::string>& args) {
    if (args.empty()) die(2, "no command; see dfsctl --help");
    const std::string& cmd = args[0];
    if (cmd == "version" && args.size() == 1) return version();
    if (cmd == "ping" && args.size() <= 2) return ping(args.size() == 2 ? args[1] : metaAddress(options_));
    if (cmd == "status" && args.size() == 1) return status();
    if (cmd == "node" && args.size() == 2 && args[1] == "list") return nodeList();
    if (cmd == "stats" && args.size() == 1) return stats();
    if (cmd == "gc" && args.size() == 1) return gc();
    if (cmd == "tier" && args.size() == 1) return tier();
    if (cmd == "volume" && args.size() == 2 && args[1] == "list") return volumeList();
    if (cmd == "volume" && args.size() == 3 && args[1] == "show") return volumeShow(args[2]);
    if (cmd == "volume" && args.size() == 3 && args[1] == "create") return volumeCreate(args[2], true);
    if (cmd == "volume" && args.size() == 3 && args[1] == "set") return volumeCreate(args[2], false);
    std::string joined;
    for (const auto& a : args) joined += (joined.empty() ? "" : " ") + a;
    die(2, "unknown command '" + joined + "'; see dfsctl --help");
  }

 private:
  template <typename T>
  T wait(kj::Promise<T>&& promise) {
    return waitWithin(io_, timeoutSeconds_, kj::mv(promise));
  }

  proto::Meta::Client& meta() {
    if (!meta_) {
      address_ = metaAddress(options_);
      try {
        connection_ = wait(connectRpc(io_.provider->getNetwork(), address_));
        auto hello = connection_->bootstrapAs<proto::MetaGateway>().helloRequest();
        hello.setVersion(proto::PROTOCOL_VERSION);
        hello.setPeer("dfsctl");
        auto reply = wait(hello.send());
        meta_ = kj::heap<proto::Meta::Client>(reply.getMeta());
      } catch (const kj::Exception& e) {
        die(1, "cannot reach the metadata node at " + address_ + ": " + e.getDescription().cStr());
      }
    }
    return *meta_;
  }

  template <typename Request>
  auto call(Request&& request) {
    try {
      return wait(request.send());
    } catch (const kj::Exception& e) {
      die(1, "metadata node at " + address_ + " failed: " + e.getDescription().cStr());
    }
  }

  void checkStatus(proto::Status::Reader status) {
    if (status.getCode() != proto::Code::OK) {
      std::string message = status.getMessage().cStr();
      die(1, std::string(codeName(status.getCode())) + (message.empty() ? "" : ": " + message));
    }
  }

  // Handshake only: proves the peer speaks our protocol version (or shows why not).
  int ping(const std::string& address) {
    uint32_t version = proto::PROTOCOL_VERSION;
    if (options_.isSet("protocol-version")) version = uint32_t(sizeOption("protocol-version"));
    bool storage = options_.getBool("storage");
    try {
      auto connection = wait(connectRpc(io_.provider->getNetwork(), address));
      uint32_t serverVersion;
      if (storage) {
        auto hello = connection->bootstrapAs<proto::StorageGateway>().helloRequest();
        hello.setVersion(version);
        hello.setPeer("dfsctl ping");
        serverVersion = wait(hello.send()).getServerVersion();
      } else {
        auto hello = connection->bootstrapAs<proto::MetaGateway>().helloRequest();
        hello.setVersion(version);
        hello.setPeer("dfsctl ping");
        serverVersion = wait(hello.send()).getServerVersion();
      }
      std::cout << (storage ? "storage" : "metadata") << " node " << address << " speaks protocol "
                << serverVersion << "\n";
      return 0;
    } catch (const kj::Exception& e) {
      die(1, (storage ? "storage node " : "metadata node ") + address + " refused: " +
                 e.getDescription().cStr());
    }
  }

  int version() {
    auto reply = call(meta().versionRequest());
    if (json_) {
      JsonWriter j;
      j.beginObject().key("client").value(kVersion).key("server").value(std::string(reply.getVersion().cStr()))
          .key("protocol").value(reply.getProtocolVersion()).endObject();
      std::cout << j.str() << "\n";
    } else {
      std::cout << "dfsctl " << kVersion << "\nserver " << reply.getVersion().cStr() << " (protocol "
                << reply.getProtocolVersion() << ")\n";
    }
    return 0;
  }

  void writeNode(JsonWriter& j, proto::NodeInfo::Reader n) {
    j.beginObject().key("id").value(n.getId()).key("address").value(std::string(n.getAddress().cStr()))
        .key("uuid").value(std::string(n.getUuid().cStr())).key("state").value(stateName(n.getState()))
        .key("up").value(n.getUp()).key("weight").value(n.getWeight())
        .key("capacity_bytes").value(n.getCapacityBytes()).key("used_bytes").value(n.getUsedBytes())
        .key("fragments").value(n.getFragments()).key("label").value(std::string(n.getLabel().cStr()))
        .endObject();
  }

  int nodeList() {
    auto reply = call(meta().clusterMapRequest());
    if (json_) {
      JsonWriter j;
      j.beginObject().key("epoch").value(reply.getEpoch()).key("nodes").beginArray();
      for (auto n : reply.getNodes()) writeNode(j, n);
      j.endArray().endObject();
      std::cout << j.str() << "\n";
      return 0;
    }
    Table t({"ID", "ADDRESS", "STATE", "CAPACITY", "USED", "FRAGMENTS", "LABEL"});
    for (auto n : reply.getNodes()) {
      t.addRow({std::to_string(n.getId()), n.getAddress().cStr(), stateName(n.getState()),
                humanBytes(n.getCapacityBytes()), humanBytes(n.getUsedBytes()),
                std::to_string(n.getFragments()), n.getLabel().cStr()});
    }
    std::cout << t.render();
    return 0;
  }

  int status() {
    auto map = call(meta().clusterMapRequest());
    auto volumes = call(meta().listVolumesRequest());
    auto statsReply = call(meta().statsRequest());
    uint64_t up = 0, capacity = 0, used = 0;
    for (auto n : map.getNodes()) {
      if (n.getState() == proto::NodeInfo::NodeState::UP) {
        ++up;
        capacity += n.getCapacityBytes();
        used += n.getUsedBytes();
      }
    }
    size_t total = map.getNodes().size();
    // Healthy when every volume's EC profile can still place all its fragments.
    bool writable = true;
    for (auto v : volumes.getVolumes()) writable &= up >= uint64_t(v.getEcK() + v.getEcM());
    const char* health = total == up && writable ? "healthy" : writable ? "degraded" : "unavailable";
    if (json_) {
      JsonWriter j;
      j.beginObject().key("meta").value(address_).key("health").value(health)
          .key("nodes_up").value(up).key("nodes_total").value(uint64_t(total))
          .key("capacity_bytes").value(capacity).key("used_bytes").value(used)
          .key("volumes").value(uint64_t(volumes.getVolumes().size()))
          .key("logical_bytes").value(statsReply.getStats().getLogicalBytes())
          .key("raw_bytes").value(statsReply.getStats().getRawBytes())
          .key("nodes").beginArray();
      for (auto n : map.getNodes()) writeNode(j, n);
      j.endArray().endObject();
      std::cout << j.str() << "\n";
      return 0;
    }
    std::cout << "cluster:   " << health << " (metadata node " << address_ << ")\n"
              << "nodes:     " << up << " of " << total << " storage nodes up\n"
              << "capacity:  " << humanBytes(used) << " used of " << humanBytes(capacity) << "\n"
              << "volumes:   " << volumes.getVolumes().size() << "\n"
              << "data:      " << humanBytes(statsReply.getStats().getLogicalBytes()) << " logical, "
              << humanBytes(statsReply.getStats().getRawBytes()) << " raw\n\n";
    return nodeListFrom(map);
  }

  template <typename Reply>
  int nodeListFrom(Reply& reply) {
    Table t({"ID", "ADDRESS", "STATE", "CAPACITY", "USED", "FRAGMENTS"});
    for (auto n : reply.getNodes()) {
      t.addRow({std::to_string(n.getId()), n.getAddress().cStr(), stateName(n.getState()),
                humanBytes(n.getCapacityBytes()), humanBytes(n.getUsedBytes()),
                std::to_string(n.getFragments())});
    }
    std::cout << t.render();
    return 0;
  }

  int stats() {
    auto reply = call(meta().statsRequest());
    auto s = reply.getStats();
    if (json_) {
      JsonWriter j;
      auto r = [](uint64_t a, uint64_t b) { return b == 0 ? 0.0 : double(a) / double(b); };
      j.beginObject().key("logical_bytes").value(s.getLogicalBytes()).key("unique_bytes").value(s.getUniqueBytes())
          .key("compressed_bytes").value(s.getCompressedBytes()).key("raw_bytes").value(s.getRawBytes())
          .key("chunks").value(s.getChunks()).key("files").value(s.getFiles()).key("inodes").value(s.getInodes())
          .key("unreferenced_chunks").value(s.getUnreferencedChunks())
          .key("conflicts").value(s.getConflicts())
          .key("dedup_ratio").value(r(s.getLogicalBytes(), s.getUniqueBytes()))
          .key("compression_ratio").value(r(s.getUniqueBytes(), s.getCompressedBytes()))
          .key("ec_overhead").value(r(s.getRawBytes(), s.getCompressedBytes()))
          .key("raw_per_logical").value(r(s.getRawBytes(), s.getLogicalBytes()))
          .endObject();
      std::cout << j.str() << "\n";
      return 0;
    }
    Table t({"MEASURE", "BYTES", "HUMAN"});
    auto row = [&](const char* name, uint64_t v) { t.addRow({name, std::to_string(v), humanBytes(v)}); };
    row("logical", s.getLogicalBytes());
    row("unique (after dedup)", s.getUniqueBytes());
    row("compressed", s.getCompressedBytes());
    row("raw (on storage, incl. parity)", s.getRawBytes());
    std::cout << t.render() << "\n"
              << "dedup ratio (logical / unique):        " << ratio(s.getLogicalBytes(), s.getUniqueBytes()) << "\n"
              << "compression ratio (unique / compressed): " << ratio(s.getUniqueBytes(), s.getCompressedBytes()) << "\n"
              << "EC overhead (raw / compressed):        " << ratio(s.getRawBytes(), s.getCompressedBytes()) << "\n"
              << "raw / logical:                         " << ratio(s.getRawBytes(), s.getLogicalBytes()) << "\n"
              << "chunks " << s.getChunks() << " (" << s.getUnreferencedChunks() << " awaiting GC), files "
              << s.getFiles() << ", inodes " << s.getInodes() << "\n"
              << "write conflicts (since dfs-meta started): " << s.getConflicts() << "\n";
    return 0;
  }

  int gc() {
    auto request = meta().gcRequest();
    request.setGraceMs(-1);
    if (options_.isSet("grace")) {
      auto g = options_.getInt("grace");
      if (!g.ok() || g.value() < 0) die(2, "--grace must be a number of seconds >= 0");
      request.setGraceMs(g.value() * 1000);
    }
    auto reply = call(kj::mv(request));
    checkStatus(reply.getStatus());
    auto r = reply.getResult();
    if (json_) {
      JsonWriter j;
      j.beginObject().key("chunks_deleted").value(r.getChunksDeleted())
          .key("fragments_deleted").value(r.getFragmentsDeleted())
          .key("orphan_fragments_deleted").value(r.getOrphanFragmentsDeleted())
          .key("bytes_freed").value(r.getBytesFreed()).endObject();
      std::cout << j.str() << "\n";
    } else {
      std::cout << "collected " << r.getChunksDeleted() << " chunks (" << r.getFragmentsDeleted()
                << " fragments) and " << r.getOrphanFragmentsDeleted() << " orphan fragments, freed "
                << humanBytes(r.getBytesFreed()) << "\n";
    }
    return 0;
  }

  int tier() {
    TierOptions t;
    t.coldAfterSeconds = int64_t(sizeOption("cold-after"));
    t.level = int(sizeOption("level"));
    t.maxChunks = sizeOption("max-chunks");
    t.threads = int(sizeOption("threads"));
    if (t.level < 1 || t.level > 22) die(2, "--level must be a zstd level from 1 to 22");
    if (t.coldAfterSeconds > int64_t(100) * 365 * 86400) die(2, "--cold-after is more than 100 years");
    if (t.threads < 1 || t.threads > 64) die(2, "--threads must be 1..64");
    auto client = meta();
    TierReport r;
    try {
      r = runTier(client, io_, timeoutSeconds_, t);
    } catch (const kj::Exception& e) {
      die(1, "tier: " + std::string(e.getDescription().cStr()));
    }
    if (json_) {
      JsonWriter j;
      j.beginObject().key("examined").value(r.examined).key("recompressed").value(r.recompressed)
          .key("unchanged").value(r.unchanged).key("changed").value(r.changed)
          .key("failed").value(r.failed).key("stored_bytes_before").value(r.storedBefore)
          .key("stored_bytes_after").value(r.storedAfter).key("raw_bytes_before").value(r.rawBefore)
          .key("raw_bytes_after").value(r.rawAfter).endObject();
      std::cout << j.str() << "\n";
    } else {
      std::cout << "examined " << r.examined << " cold chunks: " << r.recompressed << " recompressed at zstd "
                << t.level << " (raw " << humanBytes(r.rawBefore) << " -> " << humanBytes(r.rawAfter) << "), "
                << r.unchanged << " did not shrink, " << r.changed << " changed meanwhile, " << r.failed
                << " failed\n";
      if (r.recompressed > 0) std::cout << "run `dfsctl gc` to delete the replaced fragments\n";
    }
    return r.failed == 0 ? 0 : 1;
  }

  void writeVolume(JsonWriter& j, proto::VolumeInfo::Reader v) {
    j.beginObject().key("id").value(v.getId()).key("name").value(std::string(v.getName().cStr()))
        .key("root_ino").value(v.getRootIno()).key("k").value(uint32_t(v.getEcK())).key("m").value(uint32_t(v.getEcM()))
        .key("chunk_min").value(v.getChunkMin()).key("chunk_avg").value(v.getChunkAvg())
        .key("chunk_max").value(v.getChunkMax()).key("compression_level").value(int(v.getCompressionLevel()))
        .key("inline_threshold").value(v.getInlineThreshold()).endObject();
  }

  std::vector<std::string> volumeRow(proto::VolumeInfo::Reader v) {
    return {v.getName().cStr(), std::to_string(v.getEcK()) + "+" + std::to_string(v.getEcM()),
            humanBytes(v.getChunkMin()) + " / " + humanBytes(v.getChunkAvg()) + " / " + humanBytes(v.getChunkMax()),
            v.getCompressionLevel() == 0 ? "off" : "zstd " + std::to_string(v.getCompressionLevel()),
            humanBytes(v.getInlineThreshold())};
  }

  int printVolumes(capnp::List<proto::VolumeInfo>::Reader volumes) {
    if (json_) {
      JsonWriter j;
      j.beginObject().key("volumes").beginArray();
      for (auto v : volumes) writeVolume(j, v);
      j.endArray().endObject();
      std::cout << j.str() << "\n";
      return 0;
    }
    Table t({"NAME", "EC", "CHUNKS (min/avg/max)", "COMPRESSION", "INLINE UP TO"});
    for (auto v : volumes) t.addRow(volumeRow(v));
    std::cout << t.render();
    return 0;
  }

  int volumeList() {
    auto reply = call(meta().listVolumesRequest());
    return printVolumes(reply.getVolumes());
  }

  int volumeShow(const std::string& name) {
    auto reply = call(meta().listVolumesRequest());
    for (auto v : reply.getVolumes()) {
      if (name == v.getName().cStr()) {
        if (json_) {
          JsonWriter j;
          writeVolume(j, v);
          std::cout << j.str() << "\n";
        } else {
          Table t({"NAME", "EC", "CHUNKS (min/avg/max)", "COMPRESSION", "INLINE UP TO"});
          t.addRow(volumeRow(v));
          std::cout << t.render();
        }
        return 0;
      }
    }
    die(1, "no such volume '" + name + "'");
  }

  uint64_t sizeOption(const char* name) {
    auto v = options_.getSize(name);
    if (!v.ok()) die(2, v.status().message);
    return v.value();
  }

  int volumeCreate(const std::string& name, bool create) {
    capnp::MallocMessageBuilder message;
    auto spec = message.initRoot<proto::VolumeInfo>();
    if (!create) {
      auto reply = call(meta().listVolumesRequest());
      bool found = false;
      for (auto v : reply.getVolumes()) {
        if (name == v.getName().cStr()) {
          message.setRoot(v);
          found = true;
        }
      }
      if (!found) die(1, "no such volume '" + name + "'");
      spec = message.getRoot<proto::VolumeInfo>();
    } else {
      // Defaults for a new volume; the metadata node validates the whole spec.
      spec.setEcK(4);
      spec.setEcM(2);
      spec.setChunkMin(0);
      spec.setChunkAvg(0);
      spec.setChunkMax(0);
      spec.setCompressionLevel(1);
      spec.setInlineThreshold(4096);
    }
    spec.setName(name);
    if (options_.isSet("k")) spec.setEcK(uint8_t(sizeOption("k")));
    if (options_.isSet("m")) spec.setEcM(uint8_t(sizeOption("m")));
    if (options_.isSet("chunk-min")) spec.setChunkMin(uint32_t(sizeOption("chunk-min")));
    if (options_.isSet("chunk-avg")) spec.setChunkAvg(uint32_t(sizeOption("chunk-avg")));
    if (options_.isSet("chunk-max")) spec.setChunkMax(uint32_t(sizeOption("chunk-max")));
    if (options_.isSet("inline-threshold")) spec.setInlineThreshold(uint32_t(sizeOption("inline-threshold")));
    if (options_.isSet("compression")) {
      auto level = options_.getInt("compression");
      if (!level.ok() || level.value() < 0 || level.value() > 22) die(2, "--compression must be 0..22");
      spec.setCompressionLevel(int8_t(level.value()));
    }
    capnp::MallocMessageBuilder replyMessage;
    proto::VolumeInfo::Reader result;
    if (create) {
      auto request = meta().createVolumeRequest();
      request.setSpec(spec.asReader());
      auto reply = call(kj::mv(request));
      checkStatus(reply.getStatus());
      replyMessage.setRoot(reply.getVolume());
    } else {
      auto request = meta().setVolumeRequest();
      request.setSpec(spec.asReader());
      auto reply = call(kj::mv(request));
      checkStatus(reply.getStatus());
      replyMessage.setRoot(reply.getVolume());
    }
    result = replyMessage.getRoot<proto::VolumeInfo>().asReader();
    if (json_) {
      JsonWriter j;
      writeVolume(j, result);
      std::cout << j.str() << "\n";
    } else {
      std::cout << (create ? "created" : "updated") << " volume " << name << "\n";
    }
    return 0;
  }

  const Options& options_;
  kj::AsyncIoContext io_;
  bool json_;
  int64_t timeoutSeconds_ = 10;
  std::string address_;
  kj::Own<RpcConnection> connection_;
  kj::Own<proto::Meta::Client> meta_;
};

}  // namespace
}  // namespace dfs

int main(int argc, char** argv) {
  auto parsed = dfs::Options::parse(argc, argv, dfs::specs());
  if (!parsed.ok()) dfs::die(2, parsed.status().message);
  if (parsed.value().helpRequested()) {
    std::cout << dfs::Options::usage("dfsctl", dfs::kSummary, dfs::specs());
    return 0;
  }
  // Warnings (e.g. `tier` skipping an unreadable chunk) go to stderr, not into --json.
  dfs::initLogging("dfsctl", "warn", false);
  try {
    dfs::Cli cli(parsed.value());
    return cli.run(parsed.value().positional());
  } catch (const kj::Exception& e) {
    dfs::die(1, e.getDescription().cStr());
  }
}
