#include "backend/client/rpc_loop.h"

#include <spdlog/spdlog.h>

#include "backend/common/rpc.h"

namespace dfs {

namespace {
class LogTaskErrors : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&& exception) override {
    spdlog::warn("rpc loop: background task failed: {}", exception.getDescription().cStr());
  }
};
LogTaskErrors gLogTaskErrors;  // stateless
}  // namespace

RpcLoop::RpcLoop() {
  thread_ = std::thread([this] { threadMain(); });
  std::unique_lock<std::mutex> lock(readyMu_);
  readyCv_.wait(lock, [this] { return ready_; });
}

RpcLoop::~RpcLoop() {
  executor_->executeSync([this] {
    for (auto& hook : shutdownHooks_) hook();
    shutdownHooks_.clear();
    tasks_ = nullptr;
    stop_->fulfill();
  });
  thread_.join();
}

void RpcLoop::addTask(kj::Promise<void> task) { tasks_->add(kj::mv(task)); }

void RpcLoop::onShutdown(std::function<void()> hook) { shutdownHooks_.push_back(std::move(hook)); }

void RpcLoop::threadMain() {
  KjLogBridge logBridge;
  auto io = kj::setupAsyncIo();
  provider_ = io.provider.get();
  tasks_ = kj::heap<kj::TaskSet>(gLogTaskErrors);
  auto stop = kj::newPromiseAndFulfiller<void>();
  stop_ = kj::mv(stop.fulfiller);
  executor_ = kj::getCurrentThreadExecutor().addRef();
  {
    std::lock_guard<std::mutex> lock(readyMu_);
    ready_ = true;
  }
  readyCv_.notify_all();
  stop.promise.wait(io.waitScope);
  // Let cancellations and deferred destructions run before the loop goes away.
  kj::evalLater([] {}).wait(io.waitScope);
  provider_ = nullptr;
}

}  // namespace dfs
