#include "backend/client/client.h"

#include <spdlog/spdlog.h>

#include "backend/client/journal_replay.h"

namespace dfs {

Client::Client(ClientOptions options) : cacheDir_(options.cacheDir), absorb_(options.absorb) {
  invalidations_ = std::make_unique<InvalidationQueue>();
  InvalidationQueue* queue = invalidations_.get();
  options.meta.onInvalidate = [queue](InvalidationBatch batch) { queue->push(std::move(batch)); };
  flushRequests_ = std::make_unique<FlushRequests>([this](uint64_t ino) {
    // A delegated directory, or a file created by an absorbed op: dfs-meta
    // gets every absorbed change first.
    if (Absorber* absorber = absorber_.get()) absorber->recall({ino});
    Status status = data_->flush(ino);
    if (!status.ok()) spdlog::warn("flush of inode {} asked by dfs-meta failed: {}", ino, status.message);
  });
  FlushRequests* flushes = flushRequests_.get();
  options.meta.onFlush = [flushes](std::vector<uint64_t> inodes) {
    return flushes->request(std::move(inodes));
  };
  setInvalidationSink(nullptr);
  loop_ = std::make_unique<RpcLoop>();
  int64_t timeout = options.meta.opTimeoutMs;
  meta_ = std::make_unique<MetaClient>(*loop_, std::move(options.meta));
  storage_ = std::make_unique<StoragePool>(*loop_, timeout);
  data_ = std::make_unique<DataPath>(*meta_, *storage_, options.data);
}

Client::~Client() {
  stop();
  absorber_.reset();
  invalidations_->stop();
  flushRequests_->stop();
  data_.reset();
  storage_.reset();
  meta_.reset();
  loop_.reset();
}

Status Client::start() {
  Status status = meta_->start();
  if (!status.ok() || cacheDir_.empty()) return status;
  auto journal = Journal::open(cacheDir_, meta_->clientId());
  if (!journal.ok()) return journal.status();
  journal_ = std::move(journal).value();
  data_->setJournal(journal_.get());
  auto replayed = replayJournals(*journal_, *meta_, *data_);
  if (!replayed.ok()) {
    return Status::error(replayed.status().code,
                         "replay of the write-back journal in " + cacheDir_ +
                             " failed (it is kept for the next mount): " + replayed.status().message);
  }
  if (replayed.value().journals > 0) {
    spdlog::info("write-back journal: replayed {} journal(s) of earlier mounts", replayed.value().journals);
  }
  if (absorb_ && meta_->cache().enabled()) {
    absorber_ = std::make_unique<Absorber>(*meta_, *journal_);
    meta_->setAbsorber(absorber_.get());
  }
  return {};
}

Status Client::stop() {
  if (stopped_) return {};
  stopped_ = true;
  if (absorber_) {
    Status sent = absorber_->barrier();
    if (!sent.ok()) spdlog::warn("unmount: {} (the journal keeps them)", sent.message);
  }
  Status status = data_->flushAll();
  if (journal_ && status.ok() && journal_->liveRecords() == 0) {
    Status forgot = meta_->forgetJournal(meta_->clientId());
    if (!forgot.ok()) spdlog::warn("forgetJournal: {}", forgot.message);
  }
  invalidations_->setHandler(nullptr);
  meta_->setAbsorber(nullptr);
  absorber_.reset();
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
