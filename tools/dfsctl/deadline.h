// Waiting for an RPC with a deadline, for dfsctl's blocking commands.
#pragma once

#include <kj/async-io.h>

namespace dfs {

// Runs `io`'s event loop until `promise` resolves; a DISCONNECTED exception after
// `seconds` without an answer.
template <typename T>
T waitWithin(kj::AsyncIoContext& io, int seconds, kj::Promise<T>&& promise) {
  auto deadline = io.provider->getTimer().afterDelay(seconds * kj::SECONDS).then(
      [seconds]() -> kj::Promise<T> {
        return KJ_EXCEPTION(DISCONNECTED, "no answer within", seconds, "seconds");
      });
  return promise.exclusiveJoin(kj::mv(deadline)).wait(io.waitScope);
}

}  // namespace dfs
