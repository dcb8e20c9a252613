// Expected file-system outcomes as values (STYLE.md rule 4). Exceptions are for
// broken connections, overload and bugs only.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "protocol/dfs.capnp.h"

namespace dfs {

using Code = proto::Code;

struct Status {
  Code code = Code::OK;
  std::string message;

  bool ok() const { return code == Code::OK; }
  static Status success() { return {}; }
  static Status error(Code code, std::string message = {}) { return {code, std::move(message)}; }
};

// The one table that maps a status code to an errno value (used at the FUSE edge).
int toErrno(Code code);
const char* codeName(Code code);

// Copies a Status to/from its wire form.
Status fromProto(proto::Status::Reader reader);
void toProto(const Status& status, proto::Status::Builder builder);

// A value or the Status explaining why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : value_(std::move(status)) {}  // NOLINT
  bool ok() const { return std::holds_alternative<T>(value_); }
  const T& value() const& { return std::get<T>(value_); }
  T& value() & { return std::get<T>(value_); }
  T&& value() && { return std::get<T>(std::move(value_)); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(value_);
  }

 private:
  std::variant<T, Status> value_;
};

}  // namespace dfs
