#include "backend/client/client.h"

namespace dfs {

Client::Client(ClientOptions options) {
  loop_ = std::make_unique<RpcLoop>();
  int64_t timeout = options.meta.opTimeoutMs;
  meta_ = std::make_unique<MetaClient>(*loop_, std::move(options.meta));
  storage_ = std::make_unique<StoragePool>(*loop_, timeout);
  data_ = std::make_unique<DataPath>(*meta_, *storage_, options.data);
}

Client::~Client() {
  stop();
  data_.reset();
  storage_.reset();
  meta_.reset();
  loop_.reset();
}

Status Client::start() { return meta_->start(); }

Status Client::stop() {
  if (stopped_) return {};
  stopped_ = true;
  Status status = data_->flushAll();
  meta_->stop();
  return status;
}

}  // namespace dfs
