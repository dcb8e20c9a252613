#include "backend/meta/meta_service.h"

#include <capnp/serialize.h>
#include <sys/stat.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <optional>

#include <set>

#include "backend/common/hash.h"
#include "backend/common/metrics.h"
#include "backend/meta/extent_map.h"
#include "backend/meta/meta_metrics.h"
#include "backend/meta/tiering.h"

namespace dfs::meta {

namespace {

constexpr const char* kVersionText = "dfs-meta 0.1.0";
constexpr size_t kMaxFindChunks = 1 << 20;
constexpr size_t kMaxNewChunks = 1 << 16;
// Total inodes reported by statfs (inode numbers are 64-bit; this is what df shows).
constexpr uint64_t kTotalInodes = uint64_t(1) << 32;

std::string_view view(capnp::Data::Reader data) {
  return {reinterpret_cast<const char*>(data.begin()), data.size()};
}
std::string_view view(capnp::Text::Reader text) { return {text.cStr(), text.size()}; }
capnp::Data::Reader asData(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

Caller readCaller(proto::Caller::Reader caller) { return Caller{caller.getUid(), caller.getGid()}; }

void fillAttr(proto::Attr::Builder out, const InodeRecord& in) {
  out.setIno(in.ino);
  out.setMode(in.mode);
  out.setNlink(in.nlink);
  out.setUid(in.uid);
  out.setGid(in.gid);
  out.setRdev(in.rdev);
  out.setSize(in.size);
  out.setAtimeNs(in.atimeNs);
  out.setMtimeNs(in.mtimeNs);
  out.setCtimeNs(in.ctimeNs);
  out.setDataVersion(in.dataVersion);
  out.setStoredBytes(in.storedBytes);
}

void fillVolume(proto::VolumeInfo::Builder out, const VolumeRecord& in) {
  out.setId(in.id);
  out.setName(in.name);
  out.setRootIno(in.rootIno);
  out.setEcK(in.ecK);
  out.setEcM(in.ecM);
  out.setChunkMin(in.chunkMin);
  out.setChunkAvg(in.chunkAvg);
  out.setChunkMax(in.chunkMax);
  out.setCompressionLevel(in.compressionLevel);
  out.setInlineThreshold(in.inlineThreshold);
}

VolumeRecord readVolume(proto::VolumeInfo::Reader in) {
  VolumeRecord out;
  out.id = in.getId();
  out.name = std::string(view(in.getName()));
  out.ecK = in.getEcK();
  out.ecM = in.getEcM();
  out.chunkMin = in.getChunkMin();
  out.chunkAvg = in.getChunkAvg();
  out.chunkMax = in.getChunkMax();
  out.compressionLevel = in.getCompressionLevel();
  out.inlineThreshold = in.getInlineThreshold();
  return out;
}

void fillChunk(proto::ChunkInfo::Builder out, const ChunkRecord& in) {
  out.setId(asData(in.id));
  out.setPlainSize(in.plainSize);
  out.setStoredSize(in.storedSize);
  out.setCompression(in.compression == 1 ? proto::ChunkInfo::Compression::ZSTD
                                         : proto::ChunkInfo::Compression::NONE);
  out.setK(in.k);
  out.setM(in.m);
  out.setFragmentSize(in.fragmentSize);
  auto nodes = out.initNodes(unsigned(in.nodes.size()));
  for (size_t i = 0; i < in.nodes.size(); ++i) nodes.set(unsigned(i), in.nodes[i]);
  auto sums = out.initFragmentChecksums(unsigned(in.fragmentChecksums.size()));
  for (size_t i = 0; i < in.fragmentChecksums.size(); ++i) sums.set(unsigned(i), in.fragmentChecksums[i]);
  out.setGeneration(in.generation);
}

ChunkRecord readChunk(proto::ChunkInfo::Reader in) {
  ChunkRecord out;
  out.id = std::string(view(in.getId()));
  out.plainSize = in.getPlainSize();
  out.storedSize = in.getStoredSize();
  out.compression = uint8_t(in.getCompression());
  out.k = in.getK();
  out.m = in.getM();
  out.fragmentSize = in.getFragmentSize();
  out.generation = in.getGeneration();
  // Lists longer than k+m fail validation; cap the copy so garbage stays cheap.
  auto nodes = in.getNodes();
  for (unsigned i = 0; i < nodes.size() && i < 64; ++i) out.nodes.push_back(nodes[i]);
  auto sums = in.getFragmentChecksums();
  for (unsigned i = 0; i < sums.size() && i < 64; ++i) out.fragmentChecksums.push_back(sums[i]);
  if (nodes.size() >= 64 || sums.size() >= 64) out.k = 0;  // forces INVALID
  return out;
}

template <typename Builder>
void setStatus(Builder results, const Status& status) {
  toProto(status, results.initStatus());
}

template <typename Results, typename T>
void reply(Results results, const Result<T>& result) {
  setStatus(results, result.status());
}

// Answers once the operation's changes are durable (group commit). If the
// commit failed, an OK status in the results becomes the commit's error.
template <typename Context>
kj::Promise<void> answerWhenDurable(MetaNode& node, Context context) {
  return node.whenDurable().then([context](Status status) mutable {
    auto results = context.getResults();
    if (!status.ok() && results.getStatus().getCode() == Code::OK) setStatus(results, status);
  });
}

kj::Promise<void> waitDurable(MetaNode& node) {
  return node.whenDurable().then([](Status) {});
}

}  // namespace

template <typename Context, typename Fn>
kj::Promise<void> MetaImpl::guarded(std::initializer_list<uint64_t> inodes, Context context,
                                    Fn now) {
  kj::Vector<kj::Promise<void>> recalls;
  for (uint64_t ino : inodes) {
    // Directories delegated elsewhere only: files open for writing elsewhere
    // are recalled by open, lookup, getattr and readdirplus themselves.
    if (node_.recalls().delegated(ino) && node_.recalls().othersWrite(session_, ino)) {
      recalls.add(node_.recalls().beforeOpen(session_, ino));
    }
  }
  if (recalls.empty()) return now(context);
  return kj::joinPromises(recalls.releaseAsArray())
      .then([context, now = kj::mv(now)]() mutable { return now(context); });
}

kj::Promise<void> MetaGatewayImpl::hello(HelloContext context) {
  RpcScope rpc("hello");
  auto params = context.getParams();
  uint32_t version = params.getVersion();
  if (version != proto::PROTOCOL_VERSION) {
    spdlog::warn("peer '{}' speaks protocol version {}, we speak {}: refused",
                 std::string(view(params.getPeer())), version, proto::PROTOCOL_VERSION);
    return KJ_EXCEPTION(FAILED, kj::str("unsupported protocol version ", version,
                                        " (this server speaks ", proto::PROTOCOL_VERSION, ")"));
  }
  spdlog::debug("hello from '{}'", std::string(view(params.getPeer())));
  auto results = context.getResults();
  results.setMeta(kj::heap<MetaImpl>(node_));
  results.setServerVersion(proto::PROTOCOL_VERSION);
  return kj::READY_NOW;
}

MetaImpl::~MetaImpl() {
  if (session_ != 0) node_.invalidations().detach(session_);
}

template <typename Context>
bool MetaImpl::answeredBefore(Context& context, proto::OpId::Reader op) {
  if (op.getClient() == 0) return false;
  auto stored = node_.clientOps().reply(op.getClient(), op.getSeq());
  if (!stored) return false;
  if (stored->size() % sizeof(capnp::word) != 0) {
    spdlog::error("stored reply of client {:016x} op {} is corrupt ({} bytes): applying again",
                  op.getClient(), op.getSeq(), stored->size());
    return false;
  }
  auto words = kj::heapArray<capnp::word>(stored->size() / sizeof(capnp::word));
  memcpy(words.begin(), stored->data(), stored->size());
  capnp::FlatArrayMessageReader reader(words);
  using Results = typename decltype(context.getResults())::Builds;
  context.setResults(reader.getRoot<Results>());
  spdlog::info("client {:016x} op {} retried: answered with the stored reply", op.getClient(),
               op.getSeq());
  return true;
}

template <typename Context>
kj::Promise<void> MetaImpl::answerAndNotify(Context context, Change change, proto::OpId::Reader op) {
  if (op.getClient() != 0) {
    capnp::MallocMessageBuilder message;
    message.setRoot(context.getResults().asReader());
    auto flat = capnp::messageToFlatArray(message);
    auto bytes = flat.asBytes();
    Status stored = node_.clientOps().remember(
        op.getClient(), op.getSeq(), op.getDoneBelow(),
        std::string_view(reinterpret_cast<const char*>(bytes.begin()), bytes.size()));
    if (!stored.ok()) spdlog::error("cannot store the reply of op {}: {}", op.getSeq(), stored.message);
  }
  MetaNode& node = node_;
  uint64_t session = session_;
  uint32_t volume = volume_;
  return node.whenDurable().then(
      [&node, context, session, volume, change = kj::mv(change)](Status status) mutable {
        auto results = context.getResults();
        if (!status.ok() && results.getStatus().getCode() == Code::OK) setStatus(results, status);
        if (session != 0 && results.getStatus().getCode() == Code::OK) {
          node.invalidations().changed(session, volume, change);
        }
      });
}

void MetaImpl::addEntryChange(Change& change, uint64_t parent, std::string_view name) {
  change.entries.emplace_back(parent, std::string(name));
  change.inodes.push_back(parent);
  if (session_ == 0) return;
  auto existing = node_.names().lookup(parent, name);
  if (existing.ok()) change.inodes.push_back(existing.value().ino);
}

kj::Promise<void> MetaImpl::mount(MountContext context) {
  RpcScope rpc("mount");
  auto params = context.getParams();
  auto results = context.getResults();
  // An empty name means the configured default volume.
  std::string name(view(params.getVolume()));
  if (name.empty()) name = node_.config().defaultVolume;
  auto volume = node_.volumes().find(name);
  if (!volume.ok()) {
    setStatus(results, volume.status());
    return kj::READY_NOW;
  }
  auto session = node_.sessions().mount(volume.value().id, std::string(view(params.getClient())));
  setStatus(results, session.status());
  if (session.ok()) {
    fillVolume(results.initVolume(), volume.value());
    results.setSessionId(session.value());
    results.setLeaseMs(node_.sessions().leaseMs());
    // A re-mount over the same connection (expired lease) replaces the old session.
    if (session_ != 0) node_.invalidations().detach(session_);
    session_ = session.value();
    volume_ = volume.value().id;
    if (params.hasCallback()) {
      node_.invalidations().attach(session_, volume_, params.getCallback());
    }
    spdlog::info("session {} mounted volume '{}' for '{}'", session.value(), volume.value().name,
                 std::string(view(params.getClient())));
  }
  return answerWhenDurable(node_, context);
}

kj::Promise<void> MetaImpl::keepalive(KeepaliveContext context) {
  RpcScope rpc("keepalive");
  setStatus(context.getResults(), node_.sessions().keepalive(context.getParams().getSessionId()));
  return kj::READY_NOW;
}

kj::Promise<void> MetaImpl::unmount(UnmountContext context) {
  RpcScope rpc("unmount");
  uint64_t session = context.getParams().getSessionId();
  auto status = node_.sessions().unmount(session);
  if (status.ok()) spdlog::info("session {} unmounted", session);
  node_.invalidations().detach(session);
  node_.recalls().ended(session);
  if (session == session_) session_ = 0;
  return waitDurable(node_);
}

// Lookups, getattrs and readdirplus pages answer with a file's size: for a file
// that another session writes (its closes commit in the background), that
// session commits first (Recalls), and the answer is read again after it.
kj::Promise<void> MetaImpl::lookup(LookupContext context) {
  auto guardParams = context.getParams();
  return guarded({guardParams.getParent()}, context, [this](LookupContext context) {
    return lookupNow(context);
  });
}

kj::Promise<void> MetaImpl::lookupNow(LookupContext context) {
  auto params = context.getParams();
  auto inode = node_.names().lookup(params.getParent(), view(params.getName()));
  if (inode.ok() && node_.recalls().othersWrite(session_, inode.value().ino)) {
    return node_.recalls().beforeOpen(session_, inode.value().ino).then([this, context]() mutable {
      auto params = context.getParams();
      answerLookup(context, node_.names().lookup(params.getParent(), view(params.getName())));
    });
  }
  answerLookup(context, inode);
  return kj::READY_NOW;
}

void MetaImpl::answerLookup(LookupContext context, const Result<InodeRecord>& inode) {
  RpcScope rpc("lookup");
  auto results = context.getResults();
  reply(results, inode);
  if (inode.ok()) fillAttr(results.initAttr(), inode.value());
}

kj::Promise<void> MetaImpl::getattr(GetattrContext context) {
  uint64_t ino = context.getParams().getIno();
  if (node_.recalls().othersWrite(session_, ino)) {
    return node_.recalls().beforeOpen(session_, ino).then([this, context]() mutable {
      return getattrNow(context);
    });
  }
  return getattrNow(context);
}

kj::Promise<void> MetaImpl::getattrNow(GetattrContext context) {
  RpcScope rpc("getattr");
  auto results = context.getResults();
  auto inode = node_.names().getattr(context.getParams().getIno());
  reply(results, inode);
  if (inode.ok()) fillAttr(results.initAttr(), inode.value());
  return kj::READY_NOW;
}

namespace {
SetAttrRequest readSetAttr(proto::SetAttr::Reader set) {
  SetAttrRequest request;
  request.mode = set.getMode();
  request.uid = set.getUid();
  request.gid = set.getGid();
  request.size = set.getSize();
  request.atimeNs = set.getAtimeNs();
  request.mtimeNs = set.getMtimeNs();
  request.ctimeNs = set.getCtimeNs();
  request.setMode = set.getSetMode();
  request.setUid = set.getSetUid();
  request.setGid = set.getSetGid();
  request.setSize = set.getSetSize();
  request.setAtime = set.getSetAtime();
  request.setMtime = set.getSetMtime();
  request.atimeNow = set.getAtimeNow();
  request.mtimeNow = set.getMtimeNow();
  return request;
}
}  // namespace

kj::Promise<void> MetaImpl::setattr(SetattrContext context) {
  auto guardParams = context.getParams();
  return guarded({guardParams.getIno()}, context, [this](SetattrContext context) -> kj::Promise<void> {
    RpcScope rpc("setattr");
    auto params = context.getParams();
    auto results = context.getResults();
    SetAttrRequest request = readSetAttr(params.getSet());
    auto inode = node_.names().setattr(params.getIno(), request, readCaller(params.getCaller()));
    reply(results, inode);
    if (inode.ok()) fillAttr(results.initAttr(), inode.value());
    if (inode.ok() && request.setSize) node_.conflicts().forget(params.getIno());
    Change change;
    change.inodes.push_back(params.getIno());
    return answerAndNotify(context, kj::mv(change));
  });
}

kj::Promise<void> MetaImpl::mknod(MknodContext context) {
  auto guardParams = context.getParams();
  return guarded({guardParams.getParent()}, context, [this](MknodContext context) -> kj::Promise<void> {
    RpcScope rpc("mknod");
    auto params = context.getParams();
    if (answeredBefore(context, params.getOp())) return waitDurable(node_);
    auto results = context.getResults();
    auto inode = node_.names().mknod(params.getParent(), view(params.getName()), params.getMode(),
                                     params.getRdev(), readCaller(params.getCaller()));
    reply(results, inode);
    if (inode.ok()) fillAttr(results.initAttr(), inode.value());
    Change change;
    change.entries.emplace_back(params.getParent(), std::string(view(params.getName())));
    change.inodes.push_back(params.getParent());
    return answerAndNotify(context, kj::mv(change), params.getOp());
  });
}

kj::Promise<void> MetaImpl::mkdir(MkdirContext context) {
  auto guardParams = context.getParams();
  return guarded({guardParams.getParent()}, context,
                 [this](MkdirContext context) { return mkdirNow(context, 0); });
}

kj::Promise<void> MetaImpl::mkdirDelegated(MkdirDelegatedContext context) {
  auto guardParams = context.getParams();
  return guarded({guardParams.getParent()}, context, [this](MkdirDelegatedContext context) {
    return mkdirNow(context, context.getParams().getSessionId());
  });
}

template <typename Context>
kj::Promise<void> MetaImpl::mkdirNow(Context context, uint64_t delegateTo) {
  RpcScope rpc("mkdir");
  auto params = context.getParams();
  if (answeredBefore(context, params.getOp())) return waitDurable(node_);
  auto results = context.getResults();
  auto inode = node_.names().mkdir(params.getParent(), view(params.getName()), params.getMode(),
                                   readCaller(params.getCaller()));
  reply(results, inode);
  if (inode.ok()) fillAttr(results.initAttr(), inode.value());
  if (inode.ok() && delegateTo != 0) node_.recalls().delegate(delegateTo, inode.value().ino);
  Change change;
  change.entries.emplace_back(params.getParent(), std::string(view(params.getName())));
  change.inodes.push_back(params.getParent());
  return answerAndNotify(context, kj::mv(change), params.getOp());
}

kj::Promise<void> MetaImpl::symlink(SymlinkContext context) {
  auto guardParams = context.getParams();
  return guarded({guardParams.getParent()}, context, [this](SymlinkContext context) -> kj::Promise<void> {
    RpcScope rpc("symlink");
    auto params = context.getParams();
    if (answeredBefore(context, params.getOp())) return waitDurable(node_);
    auto results = context.getResults();
    auto inode = node_.names().symlink(params.getParent(), view(params.getName()),
                                       view(params.getTarget()), readCaller(params.getCaller()));
    reply(results, inode);
    if (inode.ok()) fillAttr(results.initAttr(), inode.value());
    Change change;
    change.entries.emplace_back(params.getParent(), std::string(view(params.getName())));
    change.inodes.push_back(params.getParent());
    return answerAndNotify(context, kj::mv(change), params.getOp());
  });
}

kj::Promise<void> MetaImpl::readlink(ReadlinkContext context) {
  RpcScope rpc("readlink");
  auto results = context.getResults();
  auto target = node_.names().readlink(context.getParams().getIno());
  reply(results, target);
  if (target.ok()) results.setTarget(asData(target.value()));
  return kj::READY_NOW;
}

kj::Promise<void> MetaImpl::link(LinkContext context) {
  auto guardParams = context.getParams();
  return guarded({guardParams.getIno(), guardParams.getNewParent()}, context, [this](LinkContext context) -> kj::Promise<void> {
    RpcScope rpc("link");
    auto params = context.getParams();
    if (answeredBefore(context, params.getOp())) return waitDurable(node_);
    auto results = context.getResults();
    auto inode = node_.names().link(params.getIno(), params.getNewParent(), view(params.getNewName()));
    reply(results, inode);
    if (inode.ok()) fillAttr(results.initAttr(), inode.value());
    Change change;
    change.entries.emplace_back(params.getNewParent(), std::string(view(params.getNewName())));
    change.inodes.push_back(params.getNewParent());
    change.inodes.push_back(params.getIno());
    return answerAndNotify(context, kj::mv(change), params.getOp());
  });
}

kj::Promise<void> MetaImpl::unlink(UnlinkContext context) {
  auto guardParams = context.getParams();
  return guarded({guardParams.getParent()}, context, [this](UnlinkContext context) -> kj::Promise<void> {
    RpcScope rpc("unlink");
    auto params = context.getParams();
    if (answeredBefore(context, params.getOp())) return waitDurable(node_);
    Change change;
    addEntryChange(change, params.getParent(), view(params.getName()));
    setStatus(context.getResults(), node_.names().unlink(params.getParent(), view(params.getName()),
                                                         readCaller(params.getCaller())));
    return answerAndNotify(context, kj::mv(change), params.getOp());
  });
}

kj::Promise<void> MetaImpl::rmdir(RmdirContext context) {
  auto guardParams = context.getParams();
  return guarded({guardParams.getParent()}, context, [this](RmdirContext context) -> kj::Promise<void> {
    RpcScope rpc("rmdir");
    auto params = context.getParams();
    if (answeredBefore(context, params.getOp())) return waitDurable(node_);
    Change change;
    addEntryChange(change, params.getParent(), view(params.getName()));
    setStatus(context.getResults(), node_.names().rmdir(params.getParent(), view(params.getName()),
                                                        readCaller(params.getCaller())));
    return answerAndNotify(context, kj::mv(change), params.getOp());
  });
}

kj::Promise<void> MetaImpl::rename(RenameContext context) {
  auto guardParams = context.getParams();
  return guarded({guardParams.getParent(), guardParams.getNewParent()}, context, [this](RenameContext context) -> kj::Promise<void> {
    RpcScope rpc("rename");
    auto params = context.getParams();
    if (answeredBefore(context, params.getOp())) return waitDurable(node_);
    Change change;
    addEntryChange(change, params.getParent(), view(params.getName()));
    addEntryChange(change, params.getNewParent(), view(params.getNewName()));
    setStatus(context.getResults(),
              node_.names().rename(params.getParent(), view(params.getName()), params.getNewParent(),
                                   view(params.getNewName()), params.getFlags(),
                                   readCaller(params.getCaller())));
    return answerAndNotify(context, kj::mv(change), params.getOp());
  });
}

kj::Promise<void> MetaImpl::open(OpenContext context) {
  auto params = context.getParams();
  // Writers elsewhere commit first (close-to-open with write-back closes).
  return node_.recalls()
      .beforeOpen(params.getSessionId(), params.getIno())
      .then([this, context]() mutable { return openNow(context); });
}

kj::Promise<void> MetaImpl::openNow(OpenContext context) {
  RpcScope rpc("open");
  auto params = context.getParams();
  auto results = context.getResults();
  auto inode = node_.sessions().open(params.getSessionId(), params.getIno(), params.getTruncate());
  reply(results, inode);
  if (inode.ok()) fillAttr(results.initAttr(), inode.value());
  if (inode.ok() && params.getWrite()) node_.recalls().opened(params.getSessionId(), params.getIno());
  Change change;
  if (params.getTruncate()) {
    node_.conflicts().forget(params.getIno());
    change.inodes.push_back(params.getIno());
  }
  return answerAndNotify(context, kj::mv(change));
}

kj::Promise<void> MetaImpl::create(CreateContext context) {
  auto guardParams = context.getParams();
  return guarded({guardParams.getParent()}, context, [this](CreateContext context) {
    return createExisting(context);
  });
}

kj::Promise<void> MetaImpl::createExisting(CreateContext context) {
  auto params = context.getParams();
  if (!params.getExclusive() && node_.recalls().any()) {
    // Opening an existing file: its writers elsewhere commit first (as for open).
    auto existing = node_.names().lookup(params.getParent(), view(params.getName()));
    if (existing.ok() && node_.recalls().writers(existing.value().ino) > 0) {
      return node_.recalls()
          .beforeOpen(params.getSessionId(), existing.value().ino)
          .then([this, context]() mutable { return createNow(context); });
    }
  }
  return createNow(context);
}

kj::Promise<void> MetaImpl::createNow(CreateContext context) {
  RpcScope rpc("create");
  auto params = context.getParams();
  if (answeredBefore(context, params.getOp())) return waitDurable(node_);
  auto results = context.getResults();
  auto inode = node_.sessions().create(params.getSessionId(), params.getParent(),
                                       view(params.getName()), params.getMode(),
                                       params.getExclusive(), readCaller(params.getCaller()));
  reply(results, inode);
  if (inode.ok()) fillAttr(results.initAttr(), inode.value());
  Change change;
  change.entries.emplace_back(params.getParent(), std::string(view(params.getName())));
  change.inodes.push_back(params.getParent());
  if (inode.ok()) change.inodes.push_back(inode.value().ino);  // an existing file may be opened
  if (inode.ok()) node_.recalls().opened(params.getSessionId(), inode.value().ino);
  return answerAndNotify(context, kj::mv(change), params.getOp());
}

kj::Promise<void> MetaImpl::release(ReleaseContext context) {
  RpcScope rpc("release");
  auto params = context.getParams();
  if (node_.sessions().release(params.getSessionId(), params.getIno())) {
    node_.recalls().closed(params.getSessionId(), params.getIno());
  }
  return waitDurable(node_);
}

kj::Promise<void> MetaImpl::readdir(ReaddirContext context) {
  auto guardParams = context.getParams();
  return guarded({guardParams.getIno()}, context, [this](ReaddirContext context) {
    return readdirNow(context);
  });
}

kj::Promise<void> MetaImpl::readdirNow(ReaddirContext context) {
  auto params = context.getParams();
  auto page = node_.names().readdir(params.getIno(), view(params.getAfter()), params.getMax(),
                                    params.getPlus());
  if (page.ok() && params.getPlus() && node_.recalls().any()) {
    kj::Vector<kj::Promise<void>> recalls;
    for (const auto& e : page.value().entries) {
      if (node_.recalls().othersWrite(session_, e.ino)) {
        recalls.add(node_.recalls().beforeOpen(session_, e.ino));
      }
    }
    if (!recalls.empty()) {
      return kj::joinPromises(recalls.releaseAsArray()).then([this, context]() mutable {
        auto params = context.getParams();
        answerReaddir(context, node_.names().readdir(params.getIno(), view(params.getAfter()),
                                                     params.getMax(), params.getPlus()));
      });
    }
  }
  answerReaddir(context, page);
  return kj::READY_NOW;
}

void MetaImpl::answerReaddir(ReaddirContext context, const Result<ReaddirPage>& page) {
  RpcScope rpc("readdir");
  auto results = context.getResults();
  reply(results, page);
  if (!page.ok()) return;
  const auto& entries = page.value().entries;
  auto list = results.initEntries(unsigned(entries.size()));
  for (size_t i = 0; i < entries.size(); ++i) {
    auto out = list[unsigned(i)];
    out.setName(asData(entries[i].name));
    out.setIno(entries[i].ino);
    out.setMode(entries[i].hasAttr ? entries[i].attr.mode : entries[i].type);
    out.setHasAttr(entries[i].hasAttr);
    if (entries[i].hasAttr) fillAttr(out.initAttr(), entries[i].attr);
  }
  results.setEof(page.value().eof);
}

kj::Promise<void> MetaImpl::statfs(StatfsContext context) {
  RpcScope rpc("statfs");
  auto results = context.getResults();
  uint64_t total = 0, free = 0;
  for (const auto& node : node_.cluster().nodes()) {
    if (node.state != NodeState::kUp) continue;
    total += node.record.capacityBytes;
    free += node.record.capacityBytes > node.record.usedBytes
                ? node.record.capacityBytes - node.record.usedBytes
                : 0;
  }
  auto out = results.initStatfs();
  out.setTotalBytes(total);
  out.setFreeBytes(free);
  uint64_t inodes = node_.store().stats().inodes;
  out.setTotalInodes(kTotalInodes);
  out.setFreeInodes(inodes < kTotalInodes ? kTotalInodes - inodes : 0);
  setStatus(results, Status::success());
  return kj::READY_NOW;
}

kj::Promise<void> MetaImpl::setxattr(SetxattrContext context) {
  RpcScope rpc("setxattr");
  auto params = context.getParams();
  if (answeredBefore(context, params.getOp())) return waitDurable(node_);
  setStatus(context.getResults(),
            node_.xattrs().set(params.getIno(), view(params.getName()), view(params.getValue()),
                               params.getFlags()));
  Change change;
  change.inodes.push_back(params.getIno());
  return answerAndNotify(context, kj::mv(change), params.getOp());
}

kj::Promise<void> MetaImpl::getxattr(GetxattrContext context) {
  RpcScope rpc("getxattr");
  auto params = context.getParams();
  auto results = context.getResults();
  auto value = node_.xattrs().get(params.getIno(), view(params.getName()));
  reply(results, value);
  if (value.ok()) results.setValue(asData(value.value()));
  return kj::READY_NOW;
}

kj::Promise<void> MetaImpl::listxattr(ListxattrContext context) {
  RpcScope rpc("listxattr");
  auto results = context.getResults();
  auto names = node_.xattrs().list(context.getParams().getIno());
  reply(results, names);
  if (!names.ok()) return kj::READY_NOW;
  auto list = results.initNames(unsigned(names.value().size()));
  for (size_t i = 0; i < names.value().size(); ++i) {
    const auto& n = names.value()[i];
    list.set(unsigned(i), capnp::Text::Reader(n.data(), n.size()));
  }
  return kj::READY_NOW;
}

kj::Promise<void> MetaImpl::removexattr(RemovexattrContext context) {
  RpcScope rpc("removexattr");
  auto params = context.getParams();
  if (answeredBefore(context, params.getOp())) return waitDurable(node_);
  setStatus(context.getResults(), node_.xattrs().remove(params.getIno(), view(params.getName())));
  Change change;
  change.inodes.push_back(params.getIno());
  return answerAndNotify(context, kj::mv(change), params.getOp());
}

kj::Promise<void> MetaImpl::getExtents(GetExtentsContext context) {
  RpcScope rpc("getExtents");
  auto params = context.getParams();
  auto results = context.getResults();
  auto extents = meta::getExtents(node_.store(), params.getIno(), params.getOffset(),
                                  params.getLength());
  reply(results, extents);
  if (!extents.ok()) return kj::READY_NOW;
  const auto& value = extents.value();
  fillAttr(results.initAttr(), value.inode);
  auto list = results.initExtents(unsigned(value.extents.size()));
  for (size_t i = 0; i < value.extents.size(); ++i) {
    const auto& e = value.extents[i];
    auto out = list[unsigned(i)];
    out.setFileOffset(e.fileOffset);
    out.setLength(e.length);
    if (e.kind == ExtentRecord::Kind::kChunk) {
      auto ref = out.initChunk();
      ref.setId(asData(e.chunkId));
      ref.setOffset(e.chunkOffset);
    } else {
      out.setInline(asData(e.inlineData));
    }
  }
  auto chunks = results.initChunks(unsigned(value.chunks.size()));
  for (size_t i = 0; i < value.chunks.size(); ++i) fillChunk(chunks[unsigned(i)], value.chunks[i]);
  return kj::READY_NOW;
}

kj::Promise<void> MetaImpl::findChunks(FindChunksContext context) {
  RpcScope rpc("findChunks");
  auto ids = context.getParams().getIds();
  if (ids.size() > kMaxFindChunks) {
    return KJ_EXCEPTION(FAILED, "findChunks: too many ids", ids.size());
  }
  std::vector<std::string> wanted;
  bool waits = false;
  for (auto id : ids) {
    wanted.emplace_back(view(id));
    waits = waits || node_.gc().deleting(wanted.back());
  }
  // An id whose fragments are being deleted is answered once the deletion is
  // done, so that a re-upload it triggers cannot be deleted too.
  kj::Promise<void> ready = waits ? node_.gc().whenIdle() : kj::Promise<void>(kj::READY_NOW);
  return ready.then([this, context, wanted = kj::mv(wanted)]() mutable {
    auto present = meta::findChunks(node_.store(), wanted);
    auto list = context.getResults().initPresent(unsigned(present.size()));
    for (size_t i = 0; i < present.size(); ++i) list.set(unsigned(i), present[i]);
  });
}

kj::Promise<void> MetaImpl::commitWrite(CommitWriteContext context) {
  RpcScope rpc("commitWrite");
  auto params = context.getParams();
  CommitRequest request;
  request.ino = params.getIno();
  request.newSize = params.getNewSize();
  request.setSize = params.getSetSize();
  request.mtimeNs = params.getMtimeNs();
  uint64_t hlc = params.getHlc();
  uint64_t baseVersion = params.getBaseVersion();
  node_.hlc().observe(hlc);
  auto extents = params.getExtents();
  auto newChunks = params.getNewChunks();
  if (newChunks.size() > kMaxNewChunks) {
    setStatus(context.getResults(), Status::error(Code::INVALID, "too many new chunks"));
    return kj::READY_NOW;
  }
  bool waits = false;
  for (auto e : extents) {
    ExtentRecord record;
    record.fileOffset = e.getFileOffset();
    record.length = e.getLength();
    switch (e.which()) {
      case proto::Extent::HOLE:
        record.kind = ExtentRecord::Kind::kHole;
        break;
      case proto::Extent::CHUNK:
        record.kind = ExtentRecord::Kind::kChunk;
        record.chunkId = std::string(view(e.getChunk().getId()));
        record.chunkOffset = e.getChunk().getOffset();
        waits = waits || node_.gc().deleting(record.chunkId);
        break;
      case proto::Extent::INLINE:
        record.kind = ExtentRecord::Kind::kInline;
        record.inlineData = std::string(view(e.getInline()));
        break;
      default:
        setStatus(context.getResults(), Status::error(Code::INVALID, "unknown extent kind"));
        return kj::READY_NOW;
    }
    request.extents.push_back(std::move(record));
  }
  for (auto c : newChunks) {
    request.newChunks.push_back(readChunk(c));
    waits = waits || node_.gc().deleting(request.newChunks.back().id);
    for (uint32_t nodeId : request.newChunks.back().nodes) {
      if (node_.cluster().address(nodeId).empty()) {
        setStatus(context.getResults(),
                  Status::error(Code::INVALID, "chunk placement names unknown storage node " +
                                                   std::to_string(nodeId)));
        return kj::READY_NOW;
      }
    }
  }
  kj::Promise<void> ready = waits ? node_.gc().whenIdle() : kj::Promise<void>(kj::READY_NOW);
  uint64_t journal = params.getJournal();
  uint64_t journalSeq = params.getJournalSeq();
  std::optional<SetAttrRequest> deferred;
  Caller caller;
  if (params.hasSetAttr()) {
    deferred = readSetAttr(params.getSetAttr());
    deferred->setSize = false;  // never a truncate: that is setattr's, with its flush
    caller = readCaller(params.getCaller());
  }
  return ready.then([this, context, request = kj::mv(request), hlc, baseVersion, journal,
                     journalSeq, deferred, caller]() mutable {
    auto outcome = node_.conflicts().resolve(request.ino, session_, baseVersion, hlc,
                                             request.extents, node_.store().now());
    auto result = meta::commitWrite(node_.store(), request);
    auto results = context.getResults();
    setStatus(results, result.status);
    results.setHlc(node_.hlc().now());
    if (result.status.ok()) {
      InodeRecord inode = result.inode;
      if (deferred) {
        // Same group-commit transaction: the attributes land with the data.
        auto set = node_.names().setattr(request.ino, *deferred, caller);
        if (set.ok()) {
          inode = set.value();
        } else {
          static Counter& failed = metrics().counter(
              "dfs_meta_deferred_setattr_failed_total",
              "Attribute changes sent with commitWrite that could not be applied");
          failed.inc();
          spdlog::warn("inode {}: deferred setattr of session {} not applied: {}", request.ino,
                       session_, set.status().message);
        }
      }
      fillAttr(results.initAttr(), inode);
      if (journal != 0) {
        // Same group-commit transaction as the commit itself.
        Status noted = node_.clientOps().noteJournal(journal, request.ino, journalSeq);
        if (!noted.ok()) setStatus(results, noted);
      }
      node_.conflicts().record(request.ino, session_, result.inode.dataVersion, hlc,
                               request.extents, node_.store().now());
      if (outcome.conflicts > 0) {
        node_.conflicts().count(outcome.conflicts);
        std::string mine;
        for (const auto& e : request.extents) {
          mine += "[" + std::to_string(e.fileOffset) + "," + std::to_string(e.end()) + ")";
        }
        spdlog::warn("write conflict on inode {}: commit of session {} (hlc {}, base version {}, "
                     "applied {}, {} bytes dropped as older) overlaps {}",
                     request.ino, session_, hlc, baseVersion, mine.empty() ? "nothing" : mine,
                     outcome.droppedBytes, outcome.detail);
      }
    }
    if (!result.missing.empty()) {
      auto list = results.initMissing(unsigned(result.missing.size()));
      for (size_t i = 0; i < result.missing.size(); ++i) list.set(unsigned(i), asData(result.missing[i]));
    }
    Change change;
    change.inodes.push_back(request.ino);
    return answerAndNotify(context, kj::mv(change));
  });
}

kj::Promise<void> MetaImpl::clusterMap(ClusterMapContext context) {
  RpcScope rpc("clusterMap");
  auto results = context.getResults();
  auto nodes = node_.cluster().nodes();
  auto list = results.initNodes(unsigned(nodes.size()));
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    auto out = list[unsigned(i)];
    out.setId(n.record.id);
    out.setAddress(n.record.address);
    out.setWeight(n.weight);
    out.setUp(n.state == NodeState::kUp);
    out.setCapacityBytes(n.record.capacityBytes);
    out.setUsedBytes(n.record.usedBytes);
    out.setFragments(n.record.fragments);
    out.setLabel(n.record.label);
    out.setLastHeartbeatNs(n.record.lastHeartbeatNs);
    out.setUuid(n.record.uuid);
    out.setState(n.state == NodeState::kUp        ? proto::NodeInfo::NodeState::UP
                 : n.state == NodeState::kSuspect ? proto::NodeInfo::NodeState::SUSPECT
                                                  : proto::NodeInfo::NodeState::DOWN);
  }
  results.setEpoch(node_.cluster().epoch());
  return kj::READY_NOW;
}

kj::Promise<void> MetaImpl::registerNode(RegisterNodeContext context) {
  RpcScope rpc("registerNode");
  auto params = context.getParams();
  auto results = context.getResults();
  auto id = node_.cluster().registerNode(
      std::string(view(params.getUuid())), std::string(view(params.getAddress())),
      params.getCapacityBytes(), params.getUsedBytes(), params.getFragments(),
      std::string(view(params.getLabel())));
  reply(results, id);
  if (id.ok()) results.setNodeId(id.value());
  results.setHeartbeatMs(ClusterMap::kHeartbeatMs);
  return answerWhenDurable(node_, context);
}

kj::Promise<void> MetaImpl::createVolume(CreateVolumeContext context) {
  RpcScope rpc("createVolume");
  auto results = context.getResults();
  auto volume = node_.volumes().create(readVolume(context.getParams().getSpec()),
                                       node_.cluster().upCount());
  reply(results, volume);
  if (volume.ok()) {
    fillVolume(results.initVolume(), volume.value());
    spdlog::info("created volume '{}' ({}+{})", volume.value().name, volume.value().ecK,
                 volume.value().ecM);
  }
  return answerWhenDurable(node_, context);
}

kj::Promise<void> MetaImpl::listVolumes(ListVolumesContext context) {
  RpcScope rpc("listVolumes");
  auto volumes = node_.volumes().list();
  auto list = context.getResults().initVolumes(unsigned(volumes.size()));
  for (size_t i = 0; i < volumes.size(); ++i) fillVolume(list[unsigned(i)], volumes[i]);
  return kj::READY_NOW;
}

kj::Promise<void> MetaImpl::setVolume(SetVolumeContext context) {
  RpcScope rpc("setVolume");
  auto results = context.getResults();
  auto volume = node_.volumes().update(readVolume(context.getParams().getSpec()),
                                       node_.cluster().upCount());
  reply(results, volume);
  if (volume.ok()) fillVolume(results.initVolume(), volume.value());
  return answerWhenDurable(node_, context);
}

kj::Promise<void> MetaImpl::stats(StatsContext context) {
  RpcScope rpc("stats");
  const auto& s = node_.store().stats();
  auto out = context.getResults().initStats();
  out.setLogicalBytes(s.logicalBytes);
  out.setUniqueBytes(s.uniqueBytes);
  out.setCompressedBytes(s.compressedBytes);
  out.setRawBytes(s.rawBytes);
  out.setChunks(s.chunks);
  out.setFiles(s.files);
  out.setInodes(s.inodes);
  out.setUnreferencedChunks(s.unreferencedChunks);
  out.setConflicts(node_.conflicts().total());
  return kj::READY_NOW;
}

kj::Promise<void> MetaImpl::gc(GcContext context) {
  RpcScope rpc("gc");
  int64_t graceMs = context.getParams().getGraceMs();
  constexpr int64_t kMaxGraceMs = int64_t(1) << 40;  // keeps graceMs * 1e6 in range
  int64_t graceNs = graceMs < 0 ? node_.config().gcGraceNs
                                : std::min(graceMs, kMaxGraceMs) * 1000000;
  return node_.gc().run(graceNs).then([context](Result<GcResult> result) mutable {
    auto results = context.getResults();
    setStatus(results, result.status());
    if (!result.ok()) return;
    auto out = results.initResult();
    out.setChunksDeleted(result.value().chunksDeleted);
    out.setFragmentsDeleted(result.value().fragmentsDeleted);
    out.setOrphanFragmentsDeleted(result.value().orphanFragmentsDeleted);
    out.setBytesFreed(result.value().bytesFreed);
  });
}

kj::Promise<void> MetaImpl::coldChunks(ColdChunksContext context) {
  RpcScope rpc("coldChunks");
  auto params = context.getParams();
  constexpr uint32_t kMaxColdPage = 4096;
  std::string after(view(params.getAfter()));
  uint32_t max = std::min(params.getMax(), kMaxColdPage);
  auto results = context.getResults();
  if (max == 0 || (!after.empty() && after.size() != kChunkIdSize)) {
    setStatus(results, Status::error(Code::INVALID, "coldChunks: max 0 or a bad `after`"));
    return kj::READY_NOW;
  }
  auto page = meta::coldChunks(node_.store(), params.getBeforeNs(), params.getBelowLevel(), after, max);
  setStatus(results, page.status());
  if (!page.ok()) return kj::READY_NOW;
  auto list = results.initChunks(unsigned(page.value().chunks.size()));
  for (size_t i = 0; i < page.value().chunks.size(); ++i) {
    fillChunk(list[unsigned(i)], page.value().chunks[i]);
  }
  results.setNext(asData(page.value().next));
  results.setEof(page.value().eof);
  return kj::READY_NOW;
}

kj::Promise<void> MetaImpl::retierChunks(RetierChunksContext context) {
  RpcScope rpc("retierChunks");
  auto chunks = context.getParams().getChunks();
  constexpr unsigned kMaxRetier = 4096;
  if (chunks.size() > kMaxRetier) {
    return KJ_EXCEPTION(FAILED, "retierChunks: too many chunks", chunks.size());
  }
  auto statuses = context.getResults().initStatuses(chunks.size());
  for (unsigned i = 0; i < chunks.size(); ++i) {
    ChunkRecord expected = readChunk(chunks[i].getOld());
    ChunkRecord replacement = readChunk(chunks[i].getNew());
    WriteTxn wtx(node_.store());
    Status status = retierChunk(wtx, expected, replacement, chunks[i].getLevel());
    if (status.ok()) status = wtx.commit();
    if (!status.ok() && status.code != Code::BUSY && status.code != Code::NOT_FOUND) {
      spdlog::warn("retierChunks: chunk {}: {}", toHex(reinterpret_cast<const uint8_t*>(expected.id.data()), expected.id.size()).substr(0, 16), status.message);
    }
    toProto(status, statuses[i]);
  }
  return node_.whenDurable().then([context](Status status) mutable {
    if (status.ok()) return;
    auto list = context.getResults().getStatuses();
    for (unsigned i = 0; i < list.size(); ++i) toProto(status, list[i]);
  });
}

kj::Promise<void> MetaImpl::version(VersionContext context) {
  RpcScope rpc("version");
  auto results = context.getResults();
  results.setVersion(kVersionText);
  results.setProtocolVersion(proto::PROTOCOL_VERSION);
  return kj::READY_NOW;
}

kj::Promise<void> MetaImpl::journalApplied(JournalAppliedContext context) {
  RpcScope rpc("journalApplied");
  auto params = context.getParams();
  auto inodes = params.getInodes();
  if (inodes.size() > kMaxFindChunks) {
    return KJ_EXCEPTION(FAILED, "journalApplied: too many inodes");
  }
  std::vector<uint64_t> list;
  list.reserve(inodes.size());
  for (uint64_t ino : inodes) list.push_back(ino);
  auto seqs = node_.clientOps().journalApplied(params.getJournal(), list);
  auto out = context.getResults().initSeqs(unsigned(seqs.size()));
  for (size_t i = 0; i < seqs.size(); ++i) out.set(unsigned(i), seqs[i]);
  return kj::READY_NOW;
}

kj::Promise<void> MetaImpl::forgetJournal(ForgetJournalContext context) {
  RpcScope rpc("forgetJournal");
  uint64_t journal = context.getParams().getJournal();
  auto dropped = node_.clientOps().forget(journal);
  if (!dropped.ok()) {
    spdlog::error("forgetJournal {:016x}: {}", journal, dropped.status().message);
  } else if (dropped.value() > 0) {
    spdlog::debug("forgot {} records of client {:016x}", dropped.value(), journal);
  }
  return waitDurable(node_);
}

kj::Promise<void> MetaImpl::sync(SyncContext context) {
  RpcScope rpc("sync");
  MetaNode& node = node_;
  return node.whenDurable().then([&node, context](Status status) mutable {
    if (status.ok()) status = node.store().sync();
    if (!status.ok()) spdlog::error("sync: {}", status.message);
    setStatus(context.getResults(), status);
  });
}

}  // namespace dfs::meta

namespace dfs::meta {

// --- absorbed namespace operations ------------------------------------------

namespace {
constexpr uint32_t kMaxReserve = 65536;
constexpr unsigned kMaxApplyOps = 4096;

std::string statusMessage(const Status& status) {
  capnp::MallocMessageBuilder message;
  toProto(status, message.initRoot<proto::Status>());
  auto flat = capnp::messageToFlatArray(message);
  auto bytes = flat.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

std::optional<Status> storedStatus(const std::string& stored) {
  if (stored.empty() || stored.size() % sizeof(capnp::word) != 0) return std::nullopt;
  auto words = kj::heapArray<capnp::word>(stored.size() / sizeof(capnp::word));
  memcpy(words.begin(), stored.data(), stored.size());
  capnp::FlatArrayMessageReader reader(words);
  return fromProto(reader.getRoot<proto::Status>());
}
}  // namespace

kj::Promise<void> MetaImpl::reserveInodes(ReserveInodesContext context) {
  RpcScope rpc("reserveInodes");
  auto params = context.getParams();
  auto results = context.getResults();
  uint32_t count = params.getCount();
  if (count == 0 || count > kMaxReserve) {
    setStatus(results, Status::error(Code::INVALID, "reserve 1.." + std::to_string(kMaxReserve) +
                                                        " inode numbers"));
    return kj::READY_NOW;
  }
  if (!node_.sessions().keepalive(params.getSessionId()).ok()) {
    setStatus(results, Status::error(Code::STALE, "unknown or expired session"));
    return kj::READY_NOW;
  }
  WriteTxn wtx(node_.store());
  uint64_t first = wtx.nextId(kNextInode, 1, count);
  Status status = wtx.commit();
  setStatus(results, status);
  if (status.ok()) {
    results.setFirst(first);
    results.setCount(count);
  }
  return answerWhenDurable(node_, context);
}

Status MetaImpl::applyOne(uint64_t session, proto::NamespaceOp::Reader op, Change& change) {
  auto id = op.getOp();
  if (id.getClient() != 0 && !op.isRelease()) {
    if (auto stored = node_.clientOps().reply(id.getClient(), id.getSeq())) {
      if (auto status = storedStatus(*stored)) return *status;
      spdlog::error("stored status of client {:016x} op {} is corrupt: applying again",
                    id.getClient(), id.getSeq());
    }
  }
  const Caller caller = readCaller(op.getCaller());
  const int64_t timeNs = op.getTimeNs();
  Status result;
  MetaStore& store = node_.store();
  switch (op.which()) {
    case proto::NamespaceOp::CREATE: {
      auto e = op.getCreate();
      std::string_view name = view(e.getName());
      const uint32_t type = e.getMode() & S_IFMT;
      if (e.getIno() == 0) {
        result = Status::error(Code::INVALID, "absorbed create without an inode number");
        break;
      }
      store.stampNextTxn(timeNs, e.getIno());
      Result<InodeRecord> made = Status::error(Code::INVALID, "absorbed create of an unknown type");
      if (type == S_IFREG && e.getOpen()) {
        made = node_.sessions().create(session, e.getParent(), name, e.getMode(), true, caller);
        if (made.ok()) node_.recalls().opened(session, made.value().ino);
      } else if (type == S_IFREG) {
        made = node_.names().mknod(e.getParent(), name, e.getMode(), 0, caller);
      } else if (type == S_IFDIR) {
        made = node_.names().mkdir(e.getParent(), name, e.getMode(), caller);
        if (made.ok()) node_.recalls().delegate(session, made.value().ino);
      } else if (type == S_IFLNK) {
        made = node_.names().symlink(e.getParent(), name, view(e.getTarget()), caller);
      }
      if (made.ok() && made.value().ino != e.getIno()) {
        spdlog::error("absorbed create of {}/{} made inode {}, not {}", e.getParent(), name,
                      made.value().ino, e.getIno());
      }
      result = made.status();
      change.entries.emplace_back(e.getParent(), std::string(name));
      change.inodes.push_back(e.getParent());
      break;
    }
    case proto::NamespaceOp::SETATTR: {
      auto e = op.getSetattr();
      SetAttrRequest request = readSetAttr(e.getSet());
      if (request.setSize || request.atimeNow || request.mtimeNow) {
        result = Status::error(Code::INVALID, "an absorbed setattr has explicit times and no size");
        break;
      }
      store.stampNextTxn(timeNs, 0);
      result = node_.names().setattr(e.getIno(), request, caller).status();
      change.inodes.push_back(e.getIno());
      break;
    }
    case proto::NamespaceOp::UNLINK:
    case proto::NamespaceOp::RMDIR: {
      auto e = op.isUnlink() ? op.getUnlink() : op.getRmdir();
      std::string_view name = view(e.getName());
      addEntryChange(change, e.getParent(), name);
      store.stampNextTxn(timeNs, 0);
      result = op.isUnlink() ? node_.names().unlink(e.getParent(), name, caller)
                             : node_.names().rmdir(e.getParent(), name, caller);
      break;
    }
    case proto::NamespaceOp::RENAME: {
      auto e = op.getRename();
      addEntryChange(change, e.getParent(), view(e.getName()));
      addEntryChange(change, e.getNewParent(), view(e.getNewName()));
      store.stampNextTxn(timeNs, 0);
      result = node_.names().rename(e.getParent(), view(e.getName()), e.getNewParent(),
                                    view(e.getNewName()), e.getFlags(), caller);
      break;
    }
    case proto::NamespaceOp::RELEASE:
      if (node_.sessions().release(session, op.getRelease())) {
        node_.recalls().closed(session, op.getRelease());
      }
      return {};
    case proto::NamespaceOp::OPEN: {
      // No writer elsewhere to wait for: the file is in a directory delegated
      // to this session, which nobody else reached without a recall.
      auto e = op.getOpen();
      result = node_.sessions().open(session, e.getIno(), false).status();
      if (result.ok() && e.getWrite()) node_.recalls().opened(session, e.getIno());
      break;
    }
    default:
      result = Status::error(Code::INVALID, "unknown absorbed operation");
  }
  store.stampNextTxn(0, 0);  // an op refused before its transaction leaves none behind
  if (id.getClient() != 0) {
    // Its status for a retry, and the client's watermark for a journal replay
    // (the journal mark of inode 0: absorbed ops are applied in seq order).
    Status stored = node_.clientOps().remember(id.getClient(), id.getSeq(), id.getDoneBelow(),
                                               statusMessage(result));
    if (stored.ok()) stored = node_.clientOps().noteJournal(id.getClient(), 0, id.getSeq());
    if (!stored.ok()) spdlog::error("cannot store the status of op {}: {}", id.getSeq(), stored.message);
  }
  if (!result.ok()) {
    static Counter& failed = metrics().counter(
        "dfs_meta_absorbed_failed_total",
        "Absorbed namespace operations (applyOps) that failed: logged, the client was wrong");
    failed.inc();
    spdlog::warn("session {}: absorbed operation {} failed: {}", session, id.getSeq(),
                 result.message);
  }
  return result;
}

kj::Promise<void> MetaImpl::applyOps(ApplyOpsContext context) {
  RpcScope rpc("applyOps");
  auto params = context.getParams();
  auto ops = params.getOps();
  auto statuses = context.getResults().initStatuses(ops.size());
  const uint64_t session = params.getSessionId();
  Status refused;
  if (ops.size() > kMaxApplyOps) {
    refused = Status::error(Code::INVALID, "more than " + std::to_string(kMaxApplyOps) + " ops");
  } else if (!node_.sessions().keepalive(session).ok()) {
    refused = Status::error(Code::STALE, "unknown or expired session");
  }
  Change change;
  for (unsigned i = 0; i < ops.size(); ++i) {
    toProto(refused.ok() ? applyOne(session, ops[i], change) : refused, statuses[i]);
  }
  MetaNode& node = node_;
  uint32_t volume = volume_;
  return node.whenDurable().then(
      [&node, context, session, volume, change = kj::mv(change)](Status status) mutable {
        auto statuses = context.getResults().getStatuses();
        if (!status.ok()) {
          for (auto s : statuses) {
            if (s.getCode() == Code::OK) toProto(status, s);
          }
          return;
        }
        node.invalidations().changed(session, volume, change);
      });
}

}  // namespace dfs::meta
