#include "backend/client/client.h"

namespace dfs {

Client::Client(ClientOptions options) {
  invalidations_ = std::make_unique<InvalidationQueue>();
  InvalidationQueue* queue = invalidations_.get();
  options.meta.onInvalidate = [queue](InvalidationBatch batch) { queue->push(std::move(batch)); };
  setInvalidationSink(nullptr);
  loop_ = std::make_unique<RpcLoop>();
  int64_t timeout = options.meta.opTimeoutMs;
  meta_ = std::make_unique<MetaClient>(*loop_, std::move(options.meta));
  storage_ = std::make_unique<StoragePool>(*loop_, timeout);
  data_ = std::make_unique<DataPath>(*meta_, *storage_, options.data);
}

Client::~Client() {
  stop();
  invalidations_->stop();
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
  invalidations_->setHandler(nullptr);
  meta_->stop();
  return status;
}

void Client::setInvalidationSink(InvalidationQueue::Handler sink) {
  invalidations_->setHandler([this, sink = std::move(sink)](const InvalidationBatch& batch) {
    if (data_) {
      if (batch.all) data_->invalidateAll();
      for (uint64_t ino : batch.inodes) data_->invalidate(ino);
    }
    if (sink) sink(batch);
  });
}

}  // namespace dfs
