#include "backend/client/meta_client.h"

// GCC 12 reports false "maybe-uninitialized" inside kj::_::ExceptionOr<Result<T>>.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <capnp/serialize.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>  // RENAME_EXCHANGE
#include <cstring>
#include <random>

#include "backend/client/absorber.h"
#include "backend/client/proto_convert.h"
#include "backend/common/clock.h"
#include "backend/common/rpc.h"

namespace dfs {

namespace {
constexpr int64_t kMinBackoffMs = 100;
constexpr int64_t kMaxBackoffMs = 2000;
constexpr int64_t kConnectTimeoutMs = 5000;

bool isRetryable(const kj::Exception& e) {
  return e.getType() == kj::Exception::Type::DISCONNECTED ||
         e.getType() == kj::Exception::Type::OVERLOADED;
}
}  // namespace

namespace {

// The capability handed to the metadata node at mount: runs on the loop
// thread and only enqueues (the handler is MetaClientOptions::onInvalidate).
class CallbackImpl final : public proto::ClientCallback::Server {
 public:
  CallbackImpl(std::function<void(InvalidationBatch)> handler,
               std::function<kj::Promise<void>(std::vector<uint64_t>)> flush)
      : handler_(std::move(handler)), flush_(std::move(flush)) {}

  kj::Promise<void> flush(FlushContext context) override {
    if (!flush_) return kj::READY_NOW;
    std::vector<uint64_t> inodes;
    for (uint64_t ino : context.getParams().getInodes()) inodes.push_back(ino);
    return flush_(std::move(inodes));
  }

  kj::Promise<void> invalidate(InvalidateContext context) override {
    auto params = context.getParams();
    InvalidationBatch batch;
    batch.inodes.reserve(params.getInodes().size());
    for (uint64_t ino : params.getInodes()) batch.inodes.push_back(ino);
    for (auto e : params.getEntries()) {
      auto name = e.getName();
      batch.entries.emplace_back(e.getParent(),
                                 std::string(reinterpret_cast<const char*>(name.begin()), name.size()));
    }
    handler_(std::move(batch));
    return kj::READY_NOW;
  }

 private:
  std::function<void(InvalidationBatch)> handler_;
  std::function<kj::Promise<void>(std::vector<uint64_t>)> flush_;
};

void setCallback(proto::Meta::MountParams::Builder req, const MetaClientOptions& options) {
  if (options.onInvalidate) {
    req.setCallback(kj::heap<CallbackImpl>(options.onInvalidate, options.onFlush));
  }
}

}  // namespace

// A connected, mounted session as handed to one call.
struct Session {
  proto::Meta::Client meta;
  uint64_t sessionId;
  uint64_t generation;
};

// Everything that touches Cap'n Proto. Loop thread only.
class MetaClient::Connection {
 public:
  Connection(RpcLoop& loop, const MetaClientOptions& options, MetaClient& owner)
      : loop_(loop), options_(options), owner_(owner) {}

  ~Connection() = default;

  // Resolves to a live session, connecting (once, shared by all waiters) if
  // needed. Throws DISCONNECTED when the attempt fails.
  kj::Promise<Session> get() {
    KJ_IF_MAYBE(live, live_) {
      return Session{(*live)->meta, (*live)->sessionId, (*live)->generation};
    }
    KJ_IF_MAYBE(connecting, connecting_) {
      return connecting->addBranch().then([this]() { return get(); });
    }
    int64_t wait = nextAttemptNs_ - monotonicNs();
    if (wait > 0) {
      return loop_.timer().afterDelay(wait * kj::NANOSECONDS).then([this]() { return get(); });
    }
    auto attempt = connectOnce().then(
        [this](kj::Own<Live> live) {
          backoffMs_ = 0;
          nextAttemptNs_ = 0;
          connecting_ = nullptr;
          Live& ref = *live;
          live_ = kj::mv(live);
          startBackground(ref);
        },
        [this](kj::Exception&& e) {
          connecting_ = nullptr;
          backoffMs_ = backoffMs_ == 0 ? kMinBackoffMs : std::min(backoffMs_ * 2, kMaxBackoffMs);
          nextAttemptNs_ = monotonicNs() + backoffMs_ * 1000000;
          if (!reportedDown_ && mountError.ok()) {
            spdlog::warn("meta {}: cannot connect: {} (retrying with backoff)", options_.address,
                         e.getDescription().cStr());
            reportedDown_ = true;
          }
          if (!mountError.ok()) kj::throwFatalException(kj::mv(e));
          kj::throwFatalException(kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__,
                                                __LINE__, kj::str(e.getDescription())));
        });
    connecting_ = attempt.fork();
    return KJ_ASSERT_NONNULL(connecting_).addBranch().then([this]() { return get(); });
  }

  // Drops the session `generation` after a disconnect (no-op if already replaced).
  void broken(uint64_t generation, const char* why) {
    KJ_IF_MAYBE(live, live_) {
      if ((*live)->generation != generation) return;
      spdlog::warn("meta {}: connection lost ({}); will reconnect", options_.address, why);
      reportedDown_ = false;
      // Destroy later: we may be running inside one of the session's own promises.
      auto dead = kj::mv(*live);
      live_ = nullptr;
      loop_.addTask(kj::evalLater([dead = kj::mv(dead)]() mutable { dead = nullptr; }));
      // A client that wants invalidations must not stay disconnected while it is
      // idle (its kernel caches would never hear of changes): reconnect now.
      if (options_.onInvalidate) {
        reconnect_ = kj::evalLater([this]() { return reconnectInBackground(); }).eagerlyEvaluate(nullptr);
      }
    }
  }

  // Retries get() (with its backoff) until a session is live again.
  kj::Promise<void> reconnectInBackground() {
    return get().then([](Session) -> kj::Promise<void> { return kj::READY_NOW; },
                      [this](kj::Exception&&) -> kj::Promise<void> {
                        if (!mountError.ok()) return kj::READY_NOW;  // refused: calls report it
                        return loop_.timer()
                            .afterDelay(kMinBackoffMs * kj::MILLISECONDS)
                            .then([this]() { return reconnectInBackground(); });
                      });
  }

  kj::Promise<void> unmount() {
    KJ_IF_MAYBE(live, live_) {
      auto req = (*live)->meta.unmountRequest();
      req.setSessionId((*live)->sessionId);
      return loop_.timer()
          .timeoutAfter(2 * kj::SECONDS, req.send().ignoreResult())
          .catch_([](kj::Exception&&) {});
    }
    return kj::READY_NOW;
  }

  // The server's refusal of the last mount attempt, if any.
  Status mountError;

 private:
  struct Live {
    kj::Own<RpcConnection> rpc;
    proto::Meta::Client meta;
    uint64_t sessionId = 0;
    uint32_t leaseMs = 0;
    uint64_t generation = 0;
    kj::Promise<void> keepalive = nullptr;
    kj::Promise<void> watch = nullptr;
    Live(kj::Own<RpcConnection> rpc, proto::Meta::Client meta)
        : rpc(kj::mv(rpc)), meta(kj::mv(meta)) {}
  };

  kj::Promise<kj::Own<Live>> connectOnce() {
    auto connected = connectRpc(loop_.network(), options_.address.c_str())
        .then([this](kj::Own<RpcConnection> rpc) {
          auto gateway = rpc->bootstrapAs<proto::MetaGateway>();
          auto hello = gateway.helloRequest();
          hello.setVersion(proto::PROTOCOL_VERSION);
          hello.setPeer(options_.clientName);
          return hello.send().then([this, rpc = kj::mv(rpc)](
                                       capnp::Response<proto::MetaGateway::HelloResults> r) mutable {
            auto live = kj::heap<Live>(kj::mv(rpc), r.getMeta());
            return mountOn(kj::mv(live));
          });
        });
    int64_t timeoutMs = std::min(options_.opTimeoutMs, kConnectTimeoutMs);
    return loop_.timer().timeoutAfter(timeoutMs * kj::MILLISECONDS, kj::mv(connected));
  }

  kj::Promise<kj::Own<Live>> mountOn(kj::Own<Live> live) {
    auto req = live->meta.mountRequest();
    req.setVolume(options_.volume);
    req.setClient(options_.clientName);
    setCallback(req, options_);
    auto sent = req.send();
    return sent.then([this, live = kj::mv(live)](
                         capnp::Response<proto::Meta::MountResults> r) mutable -> kj::Own<Live> {
      Status status = fromProto(r.getStatus());
      if (!status.ok()) {
        mountError = Status::error(status.code, "mounting volume '" + options_.volume +
                                                    "' failed: " + codeName(status.code) +
                                                    (status.message.empty() ? "" : ": " + status.message));
        KJ_FAIL_REQUIRE("mount refused", mountError.message);
      }
      mountError = {};
      live->sessionId = r.getSessionId();
      live->leaseMs = std::max<uint32_t>(r.getLeaseMs(), 300);
      live->generation = ++generation_;
      owner_.setVolume(volumeFromProto(r.getVolume()));
      if (generation_ > 1 && options_.onInvalidate) {
        // Changes made while we had no session were not sent to us.
        InvalidationBatch all;
        all.all = true;
        options_.onInvalidate(std::move(all));
      }
      if (reportedDown_ || generation_ > 1) {
        spdlog::info("meta {}: connected, session {} on volume '{}'", options_.address,
                     live->sessionId, options_.volume);
      }
      reportedDown_ = false;
      return kj::mv(live);
    });
  }

  void startBackground(Live& live) {
    uint64_t generation = live.generation;
    live.watch = live.rpc->onDisconnect().then(
        [this, generation]() { broken(generation, "peer closed the connection"); },
        [this, generation](kj::Exception&& e) { broken(generation, e.getDescription().cStr()); });
    live.keepalive = keepaliveLoop(live);
  }

  kj::Promise<void> keepaliveLoop(Live& live) {
    return loop_.timer().afterDelay(int64_t(live.leaseMs / 3) * kj::MILLISECONDS).then([this, &live]() -> kj::Promise<void> {
      auto req = live.meta.keepaliveRequest();
      req.setSessionId(live.sessionId);
      uint64_t generation = live.generation;
      return loop_.timer()
          .timeoutAfter(int64_t(live.leaseMs) * kj::MILLISECONDS, req.send())
          .then(
              [this, &live](capnp::Response<proto::Meta::KeepaliveResults> r) -> kj::Promise<void> {
                Status status = fromProto(r.getStatus());
                if (status.ok()) return keepaliveLoop(live);
                // The server forgot the session (expired lease): open a new one.
                spdlog::warn("meta {}: session {} lost ({}); mounting a new session",
                             options_.address, live.sessionId, codeName(status.code));
                auto req = live.meta.mountRequest();
                req.setVolume(options_.volume);
                req.setClient(options_.clientName);
                setCallback(req, options_);
                return req.send().then([this, &live](capnp::Response<proto::Meta::MountResults> r) {
                  if (r.getStatus().getCode() == Code::OK) live.sessionId = r.getSessionId();
                  return keepaliveLoop(live);
                });
              },
              [this, generation](kj::Exception&& e) {
                broken(generation, e.getDescription().cStr());
              });
    });
  }

  RpcLoop& loop_;
  const MetaClientOptions& options_;
  MetaClient& owner_;
  kj::Maybe<kj::Own<Live>> live_;
  kj::Maybe<kj::ForkedPromise<void>> connecting_;
  kj::Promise<void> reconnect_ = nullptr;  // background reconnect after a lost connection
  int64_t nextAttemptNs_ = 0;
  int64_t backoffMs_ = 0;
  uint64_t generation_ = 0;
  bool reportedDown_ = false;
};

namespace {

// One RPC attempt plus retries, on the loop thread.
template <typename T, typename Fn>
kj::Promise<Result<T>> attempt(RpcLoop& loop, MetaClient::Connection& conn, const char* what,
                               bool idempotent, int64_t deadlineNs, Fn& fn, int attemptNo) {
  struct State {
    bool sent = false;
    uint64_t generation = 0;
  };
  int64_t remaining = deadlineNs - monotonicNs();
  if (remaining <= 0) {
    spdlog::error("meta: {} timed out (metadata node unreachable)", what);
    return Result<T>(Status::error(Code::IO, std::string(what) + ": metadata node unreachable"));
  }
  auto state = kj::heap<State>();
  State* s = state.get();
  auto call = conn.get().then([&fn, s](Session session) {
    s->sent = true;
    s->generation = session.generation;
    return fn(session);
  });
  return loop.timer()
      .timeoutAfter(remaining * kj::NANOSECONDS, kj::mv(call))
      .catch_([&loop, &conn, what, idempotent, deadlineNs, &fn, attemptNo,
               s](kj::Exception&& e) -> kj::Promise<Result<T>> {
        if (e.getType() == kj::Exception::Type::DISCONNECTED && s->sent) {
          conn.broken(s->generation, e.getDescription().cStr());
        }
        int64_t now = monotonicNs();
        if (!isRetryable(e) || (!idempotent && s->sent) || now >= deadlineNs) {
          const Status& refused = conn.mountError;
          if (!refused.ok()) return Result<T>(refused);
          spdlog::error("meta: {} failed: {}", what, e.getDescription().cStr());
          return Result<T>(Status::error(Code::IO, std::string(what) + ": " +
                                                       e.getDescription().cStr()));
        }
        int64_t backoffNs = std::min<int64_t>(kMinBackoffMs << std::min(attemptNo, 5), kMaxBackoffMs) * 1000000;
        backoffNs = std::min(backoffNs, deadlineNs - now);
        return loop.timer().afterDelay(backoffNs * kj::NANOSECONDS).then([&loop, &conn, what, idempotent, deadlineNs, &fn, attemptNo]() {
          return attempt<T>(loop, conn, what, idempotent, deadlineNs, fn, attemptNo + 1);
        });
      })
      .attach(kj::mv(state));
}

}  // namespace

namespace {
uint64_t randomClientId() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (uint64_t(rd()) << 32) ^ rd();
  return id;
}
}  // namespace

MetaClient::MetaClient(RpcLoop& loop, MetaClientOptions options)
    : loop_(loop),
      cache_(options.onInvalidate ? options.cacheTtlNs : 0),
      options_(withCacheInvalidation(std::move(options))),
      clientId_(options_.clientId != 0 ? options_.clientId : randomClientId()) {
  loop_.run([this]() { connection_ = std::make_unique<Connection>(loop_, options_, *this); });
}

MetaClient::~MetaClient() {
  loop_.run([this]() { connection_.reset(); });
}

MetaClientOptions MetaClient::withCacheInvalidation(MetaClientOptions options) {
  if (!options.onInvalidate || !cache_.enabled()) return options;
  // Runs on the RPC thread as the callback arrives, before the batch is queued
  // for the kernel: no cached answer outlives the kernel's.
  options.onInvalidate = [this, next = std::move(options.onInvalidate)](InvalidationBatch batch) {
    if (batch.all) {
      cache_.invalidateAll();
    } else {
      for (uint64_t ino : batch.inodes) cache_.invalidate(ino);
      for (const auto& entry : batch.entries) cache_.invalidate(entry.first);
    }
    next(std::move(batch));
  };
  return options;
}

void MetaClient::invalidateEntries(std::vector<std::pair<uint64_t, std::string>> entries) {
  if (!options_.onInvalidate || entries.empty()) return;
  InvalidationBatch batch;
  batch.entries = std::move(entries);
  options_.onInvalidate(std::move(batch));
}

void MetaClient::cacheReply(const Result<Attr>& attr, uint64_t ticket, uint64_t parent,
                            std::string_view name) {
  int64_t now = monotonicNs();
  if (attr.ok()) cache_.putAttr(attr.value(), ticket, now);
  if (attr.ok() && !name.empty()) {
    // A new inode: no xattrs; a new directory: no names.
    cache_.putNoXattrs(attr.value().ino, ticket, now);
    if (S_ISDIR(attr.value().mode)) cache_.putEmptyDirectory(attr.value().ino, ticket, now);
    cache_.childCreated(parent, name, attr.value(), ticket);
  } else if (parent != 0) {
    cache_.invalidate(parent);
  }
}

void MetaClient::nameChanged(const Status& status, uint64_t parent, std::string_view name,
                             uint64_t newParent, std::string_view newName) {
  if (status.ok()) {
    // The inodes behind the names changed too (nlink, ctime); the reply does
    // not say which, so no cached attribute is kept.
    cache_.nameRemoved(parent, name, newParent, newName);
    return;
  }
  // Failed (or unknown whether applied): what this client knows of both
  // directories may be wrong now.
  cache_.invalidate(parent);
  if (newParent != 0) cache_.invalidate(newParent);
  cache_.dropAttrs();
}

void MetaClient::setVolume(VolumeInfo volume) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    volume_ = std::move(volume);
  }
  // A new session: dfs-meta no longer holds this mount's delegations.
  if (Absorber* absorber = absorber_.load()) absorber->sessionChanged();
}

Absorber* MetaClient::absorbing(uint64_t dir) {
  Absorber* absorber = absorber_.load();
  return absorber != nullptr && absorber->delegated(dir) ? absorber : nullptr;
}

void MetaClient::giveUp(std::initializer_list<uint64_t> dirs) {
  Absorber* absorber = absorber_.load();
  if (absorber == nullptr) return;
  for (uint64_t dir : dirs) absorber->giveUp(dir);
}

VolumeInfo MetaClient::volume() const {
  std::lock_guard<std::mutex> lock(mu_);
  return volume_;
}

namespace {
// system.posix_acl_access / _default: dfs-meta never stores them (NOT_SUPPORTED).
bool isPosixAclName(std::string_view name) { return name.substr(0, 17) == "system.posix_acl_"; }

// Set while a call must not wait for absorbed operations (reserveInodes, made
// while absorbing one).
thread_local bool tUnordered = false;
}  // namespace

template <typename T, typename Fn>
Result<T> MetaClient::call(const char* what, bool idempotent, Fn&& fn) {
  // dfs-meta must see what this mount absorbed before anything that may
  // depend on it (an inode's create before its data, a name before a lookup).
  Absorber* absorber = absorber_.load();
  if (absorber != nullptr && !tUnordered && !Absorber::onSenderThread()) {
    Status sent = absorber->barrier();
    if (!sent.ok()) return sent;
  }
  int64_t deadline = monotonicNs() + options_.opTimeoutMs * 1000000;
  try {
    return loop_.run([&]() {
      if (!connection_) {
        return kj::Promise<Result<T>>(Result<T>(Status::error(Code::IO, "client is shutting down")));
      }
      return attempt<T>(loop_, *connection_, what, idempotent, deadline, fn, 0);
    });
  } catch (const kj::Exception& e) {
    spdlog::error("meta: {} failed: {}", what, e.getDescription().cStr());
    return Status::error(Code::IO, std::string(what) + ": " + e.getDescription().cStr());
  }
}

Status MetaClient::start() {
  auto r = call<bool>("mount", true, [](Session&) { return kj::Promise<Result<bool>>(true); });
  return r.status();
}

void MetaClient::stop() {
  try {
    loop_.run([this]() -> kj::Promise<void> {
      if (!connection_) return kj::READY_NOW;
      return connection_->unmount();
    });
  } catch (const kj::Exception& e) {
    spdlog::warn("meta: unmount failed: {}", e.getDescription().cStr());
  }
}

namespace {
template <typename Response>
Result<Attr> attrResult(Response& r) {
  Status status = fromProto(r.getStatus());
  if (!status.ok()) return status;
  return attrFromProto(r.getAttr());
}
template <typename Response>
Status statusOf(Response& r) {
  return fromProto(r.getStatus());
}
}  // namespace

Result<Attr> MetaClient::lookup(uint64_t parent, std::string_view name) {
  if (Absorber* absorber = absorbing(parent)) {
    if (auto known = absorber->lookup(parent, name)) return *known;
  }
  if (cache_.nameAbsent(parent, name, monotonicNs())) {
    return Status::error(Code::NOT_FOUND, "no such entry");
  }
  uint64_t ticket = cache_.ticket();
  auto r = call<Attr>("lookup", true, [&](Session& s) {
    auto req = s.meta.lookupRequest();
    req.setParent(parent);
    req.setName(asData(name));
    return req.send().then([](auto r) { return attrResult(r); });
  });
  cacheReply(r, ticket);
  return r;
}

Result<Attr> MetaClient::getattr(uint64_t ino) {
  uint64_t ticket = cache_.ticket();
  auto r = call<Attr>("getattr", true, [&](Session& s) {
    auto req = s.meta.getattrRequest();
    req.setIno(ino);
    return req.send().then([](auto r) { return attrResult(r); });
  });
  cacheReply(r, ticket);
  return r;
}

Result<Attr> MetaClient::getattrCached(uint64_t ino) {
  if (Absorber* absorber = absorbing(ino)) {
    if (auto attr = absorber->directoryAttr(ino)) return *attr;
  }
  if (auto cached = cache_.attr(ino, monotonicNs())) return *cached;
  return getattr(ino);
}

Result<Attr> MetaClient::setattr(uint64_t ino, const SetAttrRequest& set, const Caller& caller) {
  // A delegated directory, or a file made in one.
  if (Absorber* absorber = absorber_.load()) {
    if (auto absorbed = absorber->setattr(ino, set, caller)) return *absorbed;
    if (absorber->delegated(ino)) giveUp({ino});
  }
  uint64_t ticket = cache_.ticket();
  auto r = call<Attr>("setattr", true, [&](Session& s) {
    auto req = s.meta.setattrRequest();
    req.setIno(ino);
    setAttrToProto(set, req.initSet());
    callerToProto(caller, req.initCaller());
    return req.send().then([](auto r) { return attrResult(r); });
  });
  if (!r.ok()) cache_.invalidate(ino);
  cacheReply(r, ticket);
  return r;
}

Result<Attr> MetaClient::mknod(uint64_t parent, std::string_view name, uint32_t mode,
                               uint64_t rdev, const Caller& caller) {
  if (Absorber* absorber = absorbing(parent); absorber && S_ISREG(mode)) {
    if (auto absorbed = absorber->create(parent, name, S_IFREG | (mode & 07777), {}, false, caller)) {
      return *absorbed;
    }
  }
  giveUp({parent});
  uint64_t ticket = cache_.ticket();
  auto r = callOnce<Attr>("mknod", [&](Session& s, uint64_t op) {
    auto req = s.meta.mknodRequest();
    setOp(req.initOp(), op);
    req.setParent(parent);
    req.setName(asData(name));
    req.setMode(mode);
    req.setRdev(rdev);
    callerToProto(caller, req.initCaller());
    return req.send().then([](auto r) { return attrResult(r); });
  });
  cacheReply(r, ticket, parent, name);
  return r;
}

Result<Attr> MetaClient::mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                               const Caller& caller) {
  if (Absorber* absorber = absorbing(parent)) {
    if (auto absorbed = absorber->create(parent, name, S_IFDIR | (mode & 07777), {}, false, caller)) {
      return *absorbed;
    }
  }
  giveUp({parent});
  uint64_t ticket = cache_.ticket();
  Absorber* absorber = absorber_.load();
  // With an absorber, the new directory is delegated to this mount.
  auto r = callOnce<Attr>("mkdir", [&](Session& s, uint64_t op) {
    if (absorber != nullptr) {
      auto req = s.meta.mkdirDelegatedRequest();
      setOp(req.initOp(), op);
      req.setSessionId(s.sessionId);
      req.setParent(parent);
      req.setName(asData(name));
      req.setMode(mode);
      callerToProto(caller, req.initCaller());
      return req.send().then([](auto r) { return attrResult(r); });
    }
    auto req = s.meta.mkdirRequest();
    setOp(req.initOp(), op);
    req.setParent(parent);
    req.setName(asData(name));
    req.setMode(mode);
    callerToProto(caller, req.initCaller());
    return req.send().then([](auto r) { return attrResult(r); });
  });
  cacheReply(r, ticket, parent, name);
  if (r.ok() && absorber != nullptr) absorber->adopt(r.value());
  return r;
}

Result<Attr> MetaClient::symlink(uint64_t parent, std::string_view name, std::string_view target,
                                 const Caller& caller) {
  if (Absorber* absorber = absorbing(parent)) {
    if (auto absorbed = absorber->create(parent, name, S_IFLNK | 0777, target, false, caller)) {
      return *absorbed;
    }
  }
  giveUp({parent});
  uint64_t ticket = cache_.ticket();
  auto r = callOnce<Attr>("symlink", [&](Session& s, uint64_t op) {
    auto req = s.meta.symlinkRequest();
    setOp(req.initOp(), op);
    req.setParent(parent);
    req.setName(asData(name));
    req.setTarget(asData(target));
    callerToProto(caller, req.initCaller());
    return req.send().then([](auto r) { return attrResult(r); });
  });
  cacheReply(r, ticket, parent, name);
  return r;
}

Result<std::string> MetaClient::readlink(uint64_t ino) {
  return call<std::string>("readlink", true, [&](Session& s) {
    auto req = s.meta.readlinkRequest();
    req.setIno(ino);
    return req.send().then([](auto r) -> Result<std::string> {
      Status status = statusOf(r);
      if (!status.ok()) return status;
      return toString(r.getTarget());
    });
  });
}

Result<Attr> MetaClient::link(uint64_t ino, uint64_t newParent, std::string_view newName) {
  giveUp({newParent});
  // A second name, maybe outside any delegated directory: `ino` may get other
  // writers, so its cached attributes (exclusive or not) go.
  cache_.invalidate(ino);
  uint64_t ticket = cache_.ticket();
  auto r = callOnce<Attr>("link", [&](Session& s, uint64_t op) {
    auto req = s.meta.linkRequest();
    setOp(req.initOp(), op);
    req.setIno(ino);
    req.setNewParent(newParent);
    req.setNewName(asData(newName));
    return req.send().then([](auto r) { return attrResult(r); });
  });
  cacheReply(r, ticket, newParent);
  return r;
}

Status MetaClient::unlink(uint64_t parent, std::string_view name, const Caller& caller) {
  if (Absorber* absorber = absorbing(parent)) {
    if (auto absorbed = absorber->remove(parent, name, false, caller)) return *absorbed;
  }
  giveUp({parent});
  Status status = callOnce<bool>("unlink", [&](Session& s, uint64_t op) {
           auto req = s.meta.unlinkRequest();
           setOp(req.initOp(), op);
           req.setParent(parent);
           req.setName(asData(name));
           callerToProto(caller, req.initCaller());
           return req.send().then([](auto r) -> Result<bool> {
             Status status = statusOf(r);
             if (!status.ok()) return status;
             return true;
           });
         })
      .status();
  nameChanged(status, parent, name);
  return status;
}

Status MetaClient::rmdir(uint64_t parent, std::string_view name, const Caller& caller) {
  if (Absorber* absorber = absorbing(parent)) {
    if (auto absorbed = absorber->remove(parent, name, true, caller)) return *absorbed;
  }
  giveUp({parent});
  Status status = callOnce<bool>("rmdir", [&](Session& s, uint64_t op) {
           auto req = s.meta.rmdirRequest();
           setOp(req.initOp(), op);
           req.setParent(parent);
           req.setName(asData(name));
           callerToProto(caller, req.initCaller());
           return req.send().then([](auto r) -> Result<bool> {
             Status status = statusOf(r);
             if (!status.ok()) return status;
             return true;
           });
         })
      .status();
  nameChanged(status, parent, name);
  return status;
}

Status MetaClient::rename(uint64_t parent, std::string_view name, uint64_t newParent,
                          std::string_view newName, uint32_t flags, const Caller& caller) {
  if (Absorber* absorber = absorbing(parent); absorber && absorbing(newParent)) {
    if (auto absorbed = absorber->rename(parent, name, newParent, newName, flags, caller)) {
      return *absorbed;
    }
  }
  giveUp({parent, newParent});
  Status status = callOnce<bool>("rename", [&](Session& s, uint64_t op) {
           auto req = s.meta.renameRequest();
           setOp(req.initOp(), op);
           req.setParent(parent);
           req.setName(asData(name));
           req.setNewParent(newParent);
           req.setNewName(asData(newName));
           req.setFlags(flags);
           callerToProto(caller, req.initCaller());
           return req.send().then([](auto r) -> Result<bool> {
             Status status = statusOf(r);
             if (!status.ok()) return status;
             return true;
           });
         })
      .status();
  if (flags & RENAME_EXCHANGE) {
    // Both names stay; the inodes behind them changed.
    cache_.invalidate(parent);
    cache_.invalidate(newParent);
    cache_.dropAttrs();
  } else {
    nameChanged(status, parent, name, newParent, newName);
  }
  return status;
}

Result<Attr> MetaClient::open(uint64_t ino, bool truncate, bool write) {
  if (Absorber* absorber = absorber_.load(); absorber && !truncate) {
    if (auto absorbed = absorber->open(ino, write)) return *absorbed;
  }
  // Retried: after a reconnect the open is recorded in the new session.
  uint64_t ticket = cache_.ticket();
  auto r = call<Attr>("open", true, [&](Session& s) {
    auto req = s.meta.openRequest();
    req.setSessionId(s.sessionId);
    req.setIno(ino);
    req.setTruncate(truncate);
    req.setWrite(write);
    return req.send().then([](auto r) { return attrResult(r); });
  });
  cacheReply(r, ticket, 0);
  return r;
}

Result<Attr> MetaClient::create(uint64_t parent, std::string_view name, uint32_t mode,
                                bool exclusive, const Caller& caller) {
  if (Absorber* absorber = absorbing(parent)) {
    if (auto absorbed = absorber->create(parent, name, S_IFREG | (mode & 07777), {}, true, caller)) {
      return *absorbed;
    }
    // Opening an existing file changes nothing in the directory.
    if (!absorber->hasName(parent, name)) absorber->giveUp(parent);
  }
  uint64_t ticket = cache_.ticket();
  auto r = callOnce<Attr>("create", [&](Session& s, uint64_t op) {
    auto req = s.meta.createRequest();
    setOp(req.initOp(), op);
    req.setSessionId(s.sessionId);
    req.setParent(parent);
    req.setName(asData(name));
    req.setMode(mode);
    req.setExclusive(exclusive);
    callerToProto(caller, req.initCaller());
    return req.send().then([](auto r) { return attrResult(r); });
  });
  // Only an exclusive create is known to have made a new inode.
  cacheReply(r, ticket, parent, exclusive ? name : std::string_view());
  return r;
}

Status MetaClient::release(uint64_t ino) {
  Status status = call<bool>("release", true, [&](Session& s) {
                    auto req = s.meta.releaseRequest();
                    req.setSessionId(s.sessionId);
                    req.setIno(ino);
                    return req.send().then([](auto) -> Result<bool> { return true; });
                  })
                      .status();
  return status;
}

void MetaClient::releaseAsync(uint64_t ino) {
  // In order with absorbed operations (the create of the file, maybe).
  if (Absorber* absorber = absorber_.load(); absorber && absorber->release(ino)) return;
  try {
    loop_.run([this, ino]() {
      if (!connection_) return;
      // One attempt on the live session (or the one being connected): a session
      // that is gone took its open handles with it.
      auto sent = connection_->get().then([ino](Session s) {
        auto req = s.meta.releaseRequest();
        req.setSessionId(s.sessionId);
        req.setIno(ino);
        return req.send().ignoreResult();
      });
      loop_.addTask(loop_.timer()
                        .timeoutAfter(options_.opTimeoutMs * kj::MILLISECONDS, kj::mv(sent))
                        .catch_([ino](kj::Exception&& e) {
                          spdlog::warn("meta: release of inode {} failed: {}", ino,
                                       e.getDescription().cStr());
                        }));
    });
  } catch (const kj::Exception& e) {
    spdlog::warn("meta: release of inode {} failed: {}", ino, e.getDescription().cStr());
  }
}

Result<DirPage> MetaClient::readdir(uint64_t ino, std::string_view after, uint32_t max, bool plus) {
  return call<DirPage>("readdir", true, [&](Session& s) {
    auto req = s.meta.readdirRequest();
    req.setIno(ino);
    req.setAfter(asData(after));
    req.setMax(max);
    req.setPlus(plus);
    return req.send().then([](auto r) -> Result<DirPage> {
      Status status = statusOf(r);
      if (!status.ok()) return status;
      DirPage page;
      page.eof = r.getEof();
      page.entries.reserve(r.getEntries().size());
      for (auto e : r.getEntries()) page.entries.push_back(dirEntryFromProto(e));
      return page;
    });
  });
}

Result<FsStats> MetaClient::statfs() {
  return call<FsStats>("statfs", true, [&](Session& s) {
    return s.meta.statfsRequest().send().then([](auto r) -> Result<FsStats> {
      Status status = statusOf(r);
      if (!status.ok()) return status;
      auto f = r.getStatfs();
      FsStats st;
      st.totalBytes = f.getTotalBytes();
      st.freeBytes = f.getFreeBytes();
      st.totalInodes = f.getTotalInodes();
      st.freeInodes = f.getFreeInodes();
      return st;
    });
  });
}

Status MetaClient::setxattr(uint64_t ino, std::string_view name, std::string_view value,
                            uint32_t flags) {
  // dfs-meta refuses POSIX ACLs (so tools fall back to chmod). `cp -a` tries to
  // set one on every file it copies: answered here, that costs no round trip
  // and no wait for the absorbed creates before it.
  if (isPosixAclName(name)) return Status::error(Code::NOT_SUPPORTED, "POSIX ACLs are not supported");
  giveUp({ino});
  Status status = callOnce<bool>("setxattr", [&](Session& s, uint64_t op) {
           auto req = s.meta.setxattrRequest();
           setOp(req.initOp(), op);
           req.setIno(ino);
           req.setName(std::string(name));
           req.setValue(asData(value));
           req.setFlags(flags);
           return req.send().then([](auto r) -> Result<bool> {
             Status status = statusOf(r);
             if (!status.ok()) return status;
             return true;
           });
         })
      .status();
  cache_.invalidate(ino);
  return status;
}

Result<std::string> MetaClient::getxattr(uint64_t ino, std::string_view name) {
  if (isPosixAclName(name)) return Status::error(Code::NO_DATA, "no such xattr");  // never stored
  if (cache_.xattrAbsent(ino, name, monotonicNs())) return Status::error(Code::NO_DATA, "no such xattr");
  uint64_t ticket = cache_.ticket();
  auto r = call<std::string>("getxattr", true, [&](Session& s) {
    auto req = s.meta.getxattrRequest();
    req.setIno(ino);
    req.setName(std::string(name));
    return req.send().then([](auto r) -> Result<std::string> {
      Status status = statusOf(r);
      if (!status.ok()) return status;
      return toString(r.getValue());
    });
  });
  if (!r.ok() && r.status().code == Code::NO_DATA) cache_.putXattrAbsent(ino, name, ticket, monotonicNs());
  return r;
}

Result<std::vector<std::string>> MetaClient::listxattr(uint64_t ino) {
  return call<std::vector<std::string>>("listxattr", true, [&](Session& s) {
    auto req = s.meta.listxattrRequest();
    req.setIno(ino);
    return req.send().then([](auto r) -> Result<std::vector<std::string>> {
      Status status = statusOf(r);
      if (!status.ok()) return status;
      std::vector<std::string> names;
      for (auto n : r.getNames()) names.emplace_back(n.cStr());
      return names;
    });
  });
}

Status MetaClient::removexattr(uint64_t ino, std::string_view name) {
  giveUp({ino});
  Status status = callOnce<bool>("removexattr", [&](Session& s, uint64_t op) {
           auto req = s.meta.removexattrRequest();
           setOp(req.initOp(), op);
           req.setIno(ino);
           req.setName(std::string(name));
           return req.send().then([](auto r) -> Result<bool> {
             Status status = statusOf(r);
             if (!status.ok()) return status;
             return true;
           });
         })
      .status();
  cache_.invalidate(ino);
  return status;
}

Result<ExtentMap> MetaClient::getExtents(uint64_t ino, uint64_t offset, uint64_t length) {
  return call<ExtentMap>("getExtents", true, [&](Session& s) {
    auto req = s.meta.getExtentsRequest();
    req.setIno(ino);
    req.setOffset(offset);
    req.setLength(length);
    return req.send().then([](auto r) -> Result<ExtentMap> {
      Status status = statusOf(r);
      if (!status.ok()) return status;
      ExtentMap map;
      map.attr = attrFromProto(r.getAttr());
      map.extents.reserve(r.getExtents().size());
      for (auto e : r.getExtents()) map.extents.push_back(extentFromProto(e));
      map.chunks.reserve(r.getChunks().size());
      for (auto c : r.getChunks()) map.chunks.push_back(chunkFromProto(c));
      return map;
    });
  });
}

Result<std::vector<bool>> MetaClient::findChunks(const std::vector<ChunkId>& ids) {
  return call<std::vector<bool>>("findChunks", true, [&](Session& s) {
    auto req = s.meta.findChunksRequest();
    auto list = req.initIds(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) list.set(i, asData(ids[i]));
    size_t want = ids.size();
    return req.send().then([want](auto r) -> Result<std::vector<bool>> {
      auto present = r.getPresent();
      if (present.size() != want) {
        return Status::error(Code::IO, "findChunks: server answered for the wrong number of ids");
      }
      std::vector<bool> out;
      out.reserve(present.size());
      for (bool p : present) out.push_back(p);
      return out;
    });
  });
}

CommitResult MetaClient::commitWrite(uint64_t ino, const std::vector<Extent>& extents,
                                     const std::vector<ChunkPlacement>& newChunks,
                                     uint64_t newSize, bool setSize, int64_t mtimeNs,
                                     uint64_t baseVersion, uint64_t journalSeq,
                                     const SetAttrRequest* attrs, const Caller* caller) {
  CommitArgs args{ino, extents, newChunks, newSize, setSize, mtimeNs, baseVersion, journalSeq,
                  attrs, caller};
  return std::move(commitWrites({std::move(args)}).front());
}

std::vector<CommitResult> MetaClient::commitWrites(const std::vector<CommitArgs>& commits) {
  uint64_t ticket = cache_.ticket();
  auto r = call<std::vector<CommitResult>>("commitWrite", true, [&](Session& s) {
    auto promises = kj::heapArrayBuilder<kj::Promise<CommitResult>>(commits.size());
    for (const CommitArgs& c : commits) {
      auto req = s.meta.commitWriteRequest();
      req.setIno(c.ino);
      auto list = req.initExtents(c.extents.size());
      for (size_t i = 0; i < c.extents.size(); ++i) extentToProto(c.extents[i], list[i]);
      auto chunks = req.initNewChunks(c.newChunks.size());
      for (size_t i = 0; i < c.newChunks.size(); ++i) chunkToProto(c.newChunks[i], chunks[i]);
      req.setNewSize(c.newSize);
      req.setSetSize(c.setSize);
      req.setMtimeNs(c.mtimeNs);
      req.setHlc(hlc_.now());
      req.setBaseVersion(c.baseVersion);
      if (c.journalSeq != 0) {
        req.setJournal(clientId_);
        req.setJournalSeq(c.journalSeq);
      }
      if (c.attrs) {
        setAttrToProto(*c.attrs, req.initSetAttr());
        callerToProto(c.caller ? *c.caller : Caller{}, req.initCaller());
      }
      promises.add(req.send().then([this](auto r) {
        hlc_.observe(r.getHlc());
        CommitResult out;
        out.status = statusOf(r);
        if (out.status.ok()) out.attr = attrFromProto(r.getAttr());
        for (auto id : r.getMissing()) {
          ChunkId chunk;
          if (chunkIdFromData(id, &chunk)) out.missing.push_back(chunk);
        }
        return out;
      }));
    }
    // Sent back to back on one connection: dfs-meta applies them in one
    // group commit (one sync) instead of one each.
    return kj::joinPromises(promises.finish())
        .then([](kj::Array<CommitResult> all) -> Result<std::vector<CommitResult>> {
          return std::vector<CommitResult>(std::make_move_iterator(all.begin()),
                                           std::make_move_iterator(all.end()));
        });
  });
  std::vector<CommitResult> out;
  if (!r.ok()) {
    for (const CommitArgs& c : commits) {
      cache_.invalidate(c.ino);
      out.push_back(CommitResult{r.status(), {}, {}});
    }
    return out;
  }
  out = std::move(r).value();
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].status.ok()) {
      cache_.putAttr(out[i].attr, ticket, monotonicNs());
    } else {
      cache_.invalidate(commits[i].ino);
    }
  }
  return out;
}

Result<ClusterMap> MetaClient::clusterMap() {
  return call<ClusterMap>("clusterMap", true, [&](Session& s) {
    return s.meta.clusterMapRequest().send().then([](auto r) -> Result<ClusterMap> {
      ClusterMap map;
      map.epoch = r.getEpoch();
      for (auto n : r.getNodes()) {
        StorageNode node;
        node.id = n.getId();
        node.address = n.getAddress().cStr();
        node.weight = n.getWeight();
        node.up = n.getUp() && n.getState() == proto::NodeInfo::NodeState::UP;
        node.label = n.getLabel().cStr();
        node.capacityBytes = n.getCapacityBytes();
        node.usedBytes = n.getUsedBytes();
        map.nodes.push_back(std::move(node));
      }
      return map;
    });
  });
}

Result<std::vector<uint64_t>> MetaClient::journalApplied(uint64_t journal,
                                                       const std::vector<uint64_t>& inodes) {
  return call<std::vector<uint64_t>>("journalApplied", true, [&](Session& s) {
    auto req = s.meta.journalAppliedRequest();
    req.setJournal(journal);
    auto list = req.initInodes(unsigned(inodes.size()));
    for (size_t i = 0; i < inodes.size(); ++i) list.set(unsigned(i), inodes[i]);
    return req.send().then([](auto r) -> Result<std::vector<uint64_t>> {
      std::vector<uint64_t> out;
      for (uint64_t seq : r.getSeqs()) out.push_back(seq);
      return out;
    });
  });
}

Status MetaClient::forgetJournal(uint64_t journal) {
  return call<bool>("forgetJournal", true, [&](Session& s) {
           auto req = s.meta.forgetJournalRequest();
           req.setJournal(journal);
           return req.send().then([](auto) -> Result<bool> { return true; });
         })
      .status();
}

uint64_t MetaClient::beginOp() {
  std::lock_guard<std::mutex> lock(opsMu_);
  uint64_t seq = nextOp_++;
  outstanding_.insert(seq);
  return seq;
}

void MetaClient::endOp(uint64_t seq) {
  std::lock_guard<std::mutex> lock(opsMu_);
  outstanding_.erase(seq);
}

void MetaClient::setOp(proto::OpId::Builder op, uint64_t seq) {
  op.setClient(clientId_);
  op.setSeq(seq);
  std::lock_guard<std::mutex> lock(opsMu_);
  op.setDoneBelow(outstanding_.empty() ? nextOp_ : *outstanding_.begin());
}

template <typename T, typename Fn>
Result<T> MetaClient::callOnce(const char* what, Fn&& fn) {
  uint64_t seq = beginOp();
  // Retried even after it was sent: the OpId makes a second attempt return the
  // first one's reply instead of applying it twice.
  auto result = call<T>(what, true, [&](Session& s) { return fn(s, seq); });
  endOp(seq);
  return result;
}

Result<std::pair<uint64_t, uint32_t>> MetaClient::reserveInodes(uint32_t count) {
  tUnordered = true;  // made while absorbing: must not wait for the absorbed
  auto r = call<std::pair<uint64_t, uint32_t>>("reserveInodes", true, [&](Session& s) {
    auto req = s.meta.reserveInodesRequest();
    req.setSessionId(s.sessionId);
    req.setCount(count);
    return req.send().then([](auto r) -> Result<std::pair<uint64_t, uint32_t>> {
      Status status = statusOf(r);
      if (!status.ok()) return status;
      return std::make_pair(r.getFirst(), r.getCount());
    });
  });
  tUnordered = false;
  return r;
}

Result<std::vector<Status>> MetaClient::applyOps(const std::vector<std::string>& ops) {
  // Retried as a whole: every op carries its OpId.
  return call<std::vector<Status>>("applyOps", true, [&](Session& s) {
    auto req = s.meta.applyOpsRequest();
    req.setSessionId(s.sessionId);
    auto list = req.initOps(unsigned(ops.size()));
    for (size_t i = 0; i < ops.size(); ++i) {
      auto words = kj::heapArray<capnp::word>(ops[i].size() / sizeof(capnp::word));
      memcpy(words.begin(), ops[i].data(), words.size() * sizeof(capnp::word));
      capnp::FlatArrayMessageReader reader(words);
      list.setWithCaveats(unsigned(i), reader.getRoot<proto::NamespaceOp>());
    }
    return req.send().then([](auto r) -> Result<std::vector<Status>> {
      std::vector<Status> statuses;
      for (auto status : r.getStatuses()) statuses.push_back(fromProto(status));
      return statuses;
    });
  });
}

Status MetaClient::sync() {
  return call<bool>("sync", true, [&](Session& s) {
           return s.meta.syncRequest().send().then([](auto r) -> Result<bool> {
             Status status = statusOf(r);
             if (!status.ok()) return status;
             return true;
           });
         })
      .status();
}

}  // namespace dfs
