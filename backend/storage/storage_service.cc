// GCC 12 reports false -Wmaybe-uninitialized inside kj::_::ExceptionOr<T> for T
// holding a std::string (Status); the value is only read when it was set.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "backend/storage/storage_service.h"

#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include "backend/common/hash.h"

namespace dfs {

namespace {

std::string_view view(capnp::Data::Reader data) {
  return {reinterpret_cast<const char*>(data.begin()), data.size()};
}

void setStatus(proto::Status::Builder builder, const Status& status) { toProto(status, builder); }

}  // namespace

StorageImpl::OpMetrics StorageImpl::opMetrics(const std::string& op) {
  MetricLabels labels{{"op", op}};
  return OpMetrics{
      metrics().counter("dfs_rpc_requests_total", "Storage RPCs received, by operation", labels),
      metrics().counter("dfs_rpc_request_failures_total",
                        "Storage RPCs answered with a status other than ok, by operation", labels),
      metrics().histogram("dfs_rpc_request_duration_seconds",
                          "Storage RPC latency from receipt to reply (put: until durable)", labels)};
}

StorageImpl::StorageImpl(ExtentStore& store, StoreWriter& writer, std::string uuid)
    : store_(store),
      writer_(writer),
      uuid_(std::move(uuid)),
      putMetrics_(opMetrics("put")),
      getMetrics_(opMetrics("get")),
      getManyMetrics_(opMetrics("getMany")),
      deleteMetrics_(opMetrics("delete")),
      listMetrics_(opMetrics("list")),
      bytesWritten_(metrics().counter("dfs_bytes_in_total",
                                      "Fragment bytes received in put calls that succeeded")),
      bytesRead_(metrics().counter("dfs_bytes_out_total",
                                   "Fragment bytes returned by get and getMany calls")) {}

kj::Promise<void> StorageImpl::put(PutContext context) {
  putMetrics_.requests.inc();
  auto timer = kj::heap<ScopedLatencyTimer>(putMetrics_.seconds);
  auto fragments = context.getParams().getFragments();
  auto refuse = [&](std::string message) {
    putMetrics_.failures.inc();
    spdlog::warn("put refused: {}", message);
    setStatus(context.getResults().initStatus(), Status::error(Code::INVALID, std::move(message)));
    return kj::READY_NOW;
  };
  if (fragments.size() > kMaxIdsPerCall) return refuse("too many fragments in one put");
  std::vector<OwnedFragment> owned;
  owned.reserve(fragments.size());
  for (auto fragment : fragments) {
    auto id = view(fragment.getId());
    auto data = view(fragment.getData());
    if (id.size() != kFragmentIdSize) {
      return refuse("fragment id must be " + std::to_string(kFragmentIdSize) + " bytes, got " +
                    std::to_string(id.size()));
    }
    if (data.size() > kMaxFragmentBytes) {
      return refuse("fragment " + toHex(reinterpret_cast<const uint8_t*>(id.data()), id.size()) +
                    " is " + std::to_string(data.size()) + " bytes, more than the limit of " +
                    std::to_string(kMaxFragmentBytes));
    }
    if (xxh3(data.data(), data.size()) != fragment.getChecksum()) {
      return refuse("checksum of fragment " +
                    toHex(reinterpret_cast<const uint8_t*>(id.data()), id.size()) +
                    " does not match its data (corrupted in transit?)");
    }
    owned.push_back(OwnedFragment{std::string(id), std::string(data), fragment.getChecksum()});
  }
  if (owned.empty()) {
    context.getResults().initStatus().setCode(Code::OK);
    return kj::READY_NOW;
  }
  uint64_t bytes = 0;
  for (const auto& f : owned) bytes += f.data.size();
  context.releaseParams();  // the bytes are copied; free the message early
  return writer_.put(std::move(owned))
      .then([this, context, bytes](Status status) mutable {
        if (status.ok()) {
          bytesWritten_.inc(bytes);
        } else {
          putMetrics_.failures.inc();
        }
        setStatus(context.getResults().initStatus(), status);
      })
      .attach(kj::mv(timer));
}

kj::Promise<void> StorageImpl::get(GetContext context) {
  getMetrics_.requests.inc();
  ScopedLatencyTimer timer(getMetrics_.seconds);
  auto id = view(context.getParams().getId());
  auto results = context.getResults();
  if (id.size() != kFragmentIdSize) {
    getMetrics_.failures.inc();
    setStatus(results.initStatus(), Status::error(Code::INVALID, "fragment id must be 33 bytes"));
    return kj::READY_NOW;
  }
  auto fragment = store_.get(id);
  setStatus(results.initStatus(), fragment.status());
  if (!fragment.ok()) getMetrics_.failures.inc();
  if (fragment.ok()) {
    auto out = results.initFragment();
    out.setId(context.getParams().getId());
    const std::string& data = fragment.value().data;
    out.setData(kj::arrayPtr(reinterpret_cast<const kj::byte*>(data.data()), data.size()));
    out.setChecksum(fragment.value().checksum);
    bytesRead_.inc(data.size());
  }
  return kj::READY_NOW;
}

kj::Promise<void> StorageImpl::getMany(GetManyContext context) {
  getManyMetrics_.requests.inc();
  ScopedLatencyTimer timer(getManyMetrics_.seconds);
  auto ids = context.getParams().getIds();
  auto results = context.getResults();
  auto refuse = [&](std::string message) {
    getManyMetrics_.failures.inc();
    spdlog::warn("getMany refused: {}", message);
    setStatus(results.initStatus(), Status::error(Code::INVALID, std::move(message)));
    return kj::READY_NOW;
  };
  if (ids.size() > kMaxGetManyIds) {
    return refuse("getMany of " + std::to_string(ids.size()) + " ids, more than the limit of " +
                  std::to_string(kMaxGetManyIds));
  }
  std::vector<std::string_view> wanted;
  wanted.reserve(ids.size());
  for (auto id : ids) wanted.push_back(view(id));
  // The store visits fragments in disk order; each answer goes straight into its
  // slot of the reply, so at most one record is buffered besides the reply itself.
  // Initialized at the first answer: a refused call must leave `results` empty.
  capnp::List<proto::Storage::GetResult>::Builder out;
  bool started = false;
  uint64_t bytes = 0;
  Status s = store_.getMany(
      wanted, kMaxGetManyBytes,
      [&](size_t index, const Status& status, std::string_view data, uint64_t checksum) {
        if (!started) {
          out = results.initResults(ids.size());
          started = true;
        }
        auto result = out[index];
        setStatus(result.initStatus(), status);
        if (!status.ok()) return;
        auto fragment = result.initFragment();
        fragment.setId(ids[index]);
        fragment.setData(kj::arrayPtr(reinterpret_cast<const kj::byte*>(data.data()), data.size()));
        fragment.setChecksum(checksum);
        bytes += data.size();
      });
  if (!s.ok()) {
    if (s.code == Code::INVALID) return refuse(s.message);
    getManyMetrics_.failures.inc();
    setStatus(results.initStatus(), s);
    return kj::READY_NOW;
  }
  if (!started) results.initResults(0);
  setStatus(results.initStatus(), {});
  bytesRead_.inc(bytes);
  return kj::READY_NOW;
}

kj::Promise<void> StorageImpl::delete_(DeleteContext context) {
  deleteMetrics_.requests.inc();
  auto timer = kj::heap<ScopedLatencyTimer>(deleteMetrics_.seconds);
  auto ids = context.getParams().getIds();
  if (ids.size() > kMaxIdsPerCall) {
    deleteMetrics_.failures.inc();
    setStatus(context.getResults().initStatus(), Status::error(Code::INVALID, "too many ids in one delete"));
    return kj::READY_NOW;
  }
  std::vector<std::string> owned;
  owned.reserve(ids.size());
  for (auto id : ids) {
    if (id.size() != kFragmentIdSize) {
      deleteMetrics_.failures.inc();
      setStatus(context.getResults().initStatus(),
                Status::error(Code::INVALID, "fragment id must be 33 bytes, got " + std::to_string(id.size())));
      return kj::READY_NOW;
    }
    owned.emplace_back(view(id));
  }
  if (owned.empty()) {
    context.getResults().initStatus().setCode(Code::OK);
    return kj::READY_NOW;
  }
  return writer_.remove(std::move(owned))
      .then([this, context](RemoveOutcome outcome) mutable {
        if (!outcome.status.ok()) deleteMetrics_.failures.inc();
        auto results = context.getResults();
        setStatus(results.initStatus(), outcome.status);
        results.setDeleted(outcome.deleted);
      })
      .attach(kj::mv(timer));
}

kj::Promise<void> StorageImpl::list(ListContext context) {
  listMetrics_.requests.inc();
  ScopedLatencyTimer timer(listMetrics_.seconds);
  auto params = context.getParams();
  auto after = view(params.getAfter());
  auto results = context.getResults();
  // list has no status field: a malformed cursor is a caller bug, reported as such.
  KJ_REQUIRE(after.empty() || after.size() == kFragmentIdSize, "list: `after` must be empty or 33 bytes");
  uint32_t max = params.getMax();
  if (max == 0 || max > kMaxListIds) max = kMaxListIds;
  std::vector<std::string> ids;
  bool eof = false;
  Status s = store_.list(after, max, params.getBeforeNs(), &ids, &eof);
  if (!s.ok()) KJ_FAIL_REQUIRE("list failed", s.message);
  auto out = results.initIds(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    out.set(i, kj::arrayPtr(reinterpret_cast<const kj::byte*>(ids[i].data()), ids[i].size()));
  }
  results.setEof(eof);
  return kj::READY_NOW;
}

kj::Promise<void> StorageImpl::info(InfoContext context) {
  auto stats = store_.stats();
  auto results = context.getResults();
  results.setUuid(uuid_);
  results.setCapacityBytes(stats.capacityBytes);
  results.setUsedBytes(stats.usedBytes);
  results.setFragments(stats.fragments);
  results.setCorruptFragments(stats.corruptFragments);
  return kj::READY_NOW;
}

StorageGatewayImpl::StorageGatewayImpl(proto::Storage::Client storage) : storage_(kj::mv(storage)) {}

kj::Promise<void> StorageGatewayImpl::hello(HelloContext context) {
  auto params = context.getParams();
  uint32_t version = params.getVersion();
  if (version != proto::PROTOCOL_VERSION) {
    spdlog::warn("rejecting peer '{}': unsupported protocol version {} (this node speaks {})",
                 params.getPeer().cStr(), version, proto::PROTOCOL_VERSION);
    kj::throwFatalException(kj::Exception(
        kj::Exception::Type::FAILED, __FILE__, __LINE__,
        kj::str("unsupported protocol version ", version, " (this node speaks ",
                proto::PROTOCOL_VERSION, ")")));
  }
  spdlog::debug("hello from '{}'", params.getPeer().cStr());
  auto results = context.getResults();
  results.setStorage(storage_);
  results.setServerVersion(proto::PROTOCOL_VERSION);
  return kj::READY_NOW;
}

}  // namespace dfs
