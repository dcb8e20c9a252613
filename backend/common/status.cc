#include "backend/common/status.h"

#include <cerrno>

namespace dfs {

int toErrno(Code code) {
  switch (code) {
    case Code::OK: return 0;
    case Code::NOT_FOUND: return ENOENT;
    case Code::EXISTS: return EEXIST;
    case Code::NOT_DIRECTORY: return ENOTDIR;
    case Code::IS_DIRECTORY: return EISDIR;
    case Code::NOT_EMPTY: return ENOTEMPTY;
    case Code::ACCESS_DENIED: return EACCES;
    case Code::NOT_PERMITTED: return EPERM;
    case Code::NAME_TOO_LONG: return ENAMETOOLONG;
    case Code::INVALID: return EINVAL;
    case Code::NO_SPACE: return ENOSPC;
    case Code::IO: return EIO;
    case Code::LOOP: return ELOOP;
    case Code::NO_DATA: return ENODATA;
    case Code::RANGE: return ERANGE;
    case Code::TOO_MANY_LINKS: return EMLINK;
    case Code::NOT_SUPPORTED: return EOPNOTSUPP;
    case Code::STALE: return ESTALE;
    case Code::BUSY: return EBUSY;
    case Code::MISSING_CHUNKS: return EIO;
    case Code::UNAVAILABLE: return EIO;
    case Code::FILE_TOO_BIG: return EFBIG;
    case Code::CROSS_DEVICE: return EXDEV;
  }
  return EIO;
}

const char* codeName(Code code) {
  switch (code) {
    case Code::OK: return "ok";
    case Code::NOT_FOUND: return "not found";
    case Code::EXISTS: return "exists";
    case Code::NOT_DIRECTORY: return "not a directory";
    case Code::IS_DIRECTORY: return "is a directory";
    case Code::NOT_EMPTY: return "directory not empty";
    case Code::ACCESS_DENIED: return "access denied";
    case Code::NOT_PERMITTED: return "not permitted";
    case Code::NAME_TOO_LONG: return "name too long";
    case Code::INVALID: return "invalid argument";
    case Code::NO_SPACE: return "no space";
    case Code::IO: return "I/O error";
    case Code::LOOP: return "too many symbolic links";
    case Code::NO_DATA: return "no such attribute";
    case Code::RANGE: return "out of range";
    case Code::TOO_MANY_LINKS: return "too many links";
    case Code::NOT_SUPPORTED: return "not supported";
    case Code::STALE: return "stale inode";
    case Code::BUSY: return "busy";
    case Code::MISSING_CHUNKS: return "missing chunks";
    case Code::UNAVAILABLE: return "not enough storage nodes";
    case Code::FILE_TOO_BIG: return "file too big";
    case Code::CROSS_DEVICE: return "cross-volume rename";
  }
  return "unknown";
}

Status fromProto(proto::Status::Reader reader) {
  return Status{reader.getCode(), reader.getMessage().cStr()};
}

void toProto(const Status& status, proto::Status::Builder builder) {
  builder.setCode(status.code);
  if (!status.message.empty()) builder.setMessage(status.message);
}

}  // namespace dfs
