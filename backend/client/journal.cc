#include "backend/client/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "backend/common/hash.h"
#include "backend/common/lmdb.h"

namespace dfs {

namespace {
// Segment header: magic (8) | format version u32 | client id u64 | first seq u64.
constexpr char kMagic[8] = {'D', 'F', 'S', 'J', 'R', 'N', 'L', '\n'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 8 + 4 + 8 + 8;
// Record: body length u32 | body | XXH3-64 of body (u64). Body: type u8 | seq u64 |
// ino u64 | offset u64 | mtime i64 | data. A setattr record (type 2) has offset 0,
// the change's ctime as mtime, and as data the attributes (kSetattrBytes):
// flags u16 (1 mode, 2 uid, 4 gid, 8 atime, 16 mtime) | mode u32 | uid u32 | gid u32 |
// atime i64 | mtime i64 | caller uid u32 | caller gid u32. A namespace record
// (type 3) has ino, offset and mtime 0 and as data one NamespaceOp message
// (protocol/dfs.capnp, flat array serialization).
constexpr uint8_t kWriteRecord = 1;
constexpr uint8_t kSetattrRecord = 2;
constexpr uint8_t kNamespaceRecord = 3;
constexpr size_t kSetattrBytes = 2 + 4 + 4 + 4 + 8 + 8 + 4 + 4;
constexpr size_t kBodyFixed = 1 + 8 + 8 + 8 + 8;
constexpr uint32_t kMaxBody = 64u << 20;

Status errnoStatus(const std::string& what, int err) {
  return Status::error(err == ENOSPC || err == EDQUOT ? Code::NO_SPACE : Code::IO,
                       what + ": " + strerror(err));
}

std::string hex16(uint64_t v) {
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

bool parseName(const std::string& name, uint64_t* client, uint64_t* first) {
  if (name.size() != 16 + 1 + 16 + 4 || name.compare(33, 4, ".jnl") != 0 || name[16] != '-') {
    return false;
  }
  auto hex = [](const std::string& digits, uint64_t* out) {
    if (digits.find_first_not_of("0123456789abcdef") != std::string::npos) return false;
    *out = strtoull(digits.c_str(), nullptr, 16);
    return true;
  };
  return hex(name.substr(0, 16), client) && hex(name.substr(17, 16), first);
}

bool writeAll(int fd, const struct iovec* iov, int n, size_t total) {
  std::vector<struct iovec> v(iov, iov + n);
  size_t done = 0;
  size_t i = 0;
  while (done < total) {
    ssize_t w = ::writev(fd, v.data() + i, int(v.size() - i));
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += size_t(w);
    size_t left = size_t(w);
    while (i < v.size() && left >= v[i].iov_len) left -= v[i++].iov_len;
    if (i < v.size()) {
      v[i].iov_base = static_cast<char*>(v[i].iov_base) + left;
      v[i].iov_len -= left;
    }
  }
  return true;
}

bool readExact(int fd, void* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, static_cast<char*>(buf) + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += size_t(r);
  }
  return true;
}
}  // namespace

Journal::Journal(std::string dir, uint64_t clientId, uint64_t segmentBytes, int lockFd)
    : dir_(std::move(dir)), clientId_(clientId), segmentBytes_(segmentBytes), lockFd_(lockFd) {}

Journal::~Journal() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) ::close(fd_);
  // Everything committed: nothing for a replay to do.
  if (live_.empty()) {
    for (const auto& s : segments_) ::unlink(s.path.c_str());
  }
  ::close(lockFd_);
}

Result<std::unique_ptr<Journal>> Journal::open(const std::string& dir, uint64_t clientId,
                                               uint64_t segmentBytes) {
  // mkdir -p
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos == dir.size() || dir[pos] == '/') {
      std::string part = dir.substr(0, pos);
      if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
        return errnoStatus("cannot create cache directory " + part, errno);
      }
    }
  }
  std::string lockPath = dir + "/lock";
  int fd = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return errnoStatus("cannot open " + lockPath, errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Status::error(Code::BUSY, "cache directory " + dir +
                                           " is in use by another mount (give each mount its "
                                           "own cache_dir=)");
    }
    return errnoStatus("cannot lock " + lockPath, err);
  }
  std::unique_ptr<Journal> journal(new Journal(dir, clientId, segmentBytes, fd));
  std::lock_guard<std::mutex> lock(journal->mu_);
  Status status = journal->startSegment();
  if (!status.ok()) return status;
  return journal;
}

Status Journal::startSegment() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  std::string path = dir_ + "/" + hex16(clientId_) + "-" + hex16(nextSeq_) + ".jnl";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errnoStatus("cannot create journal segment " + path, errno);
  std::string header(kMagic, sizeof kMagic);
  appendBigEndian32(header, kVersion);
  appendBigEndian64(header, clientId_);
  appendBigEndian64(header, nextSeq_);
  struct iovec iov{header.data(), header.size()};
  if (!writeAll(fd, &iov, 1, header.size())) {
    int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return errnoStatus("cannot write journal segment " + path, err);
  }
  fd_ = fd;
  fileBytes_ = header.size();
  segments_.push_back(Segment{path, nextSeq_, fileBytes_});
  return {};
}

Result<uint64_t> Journal::appendWrite(uint64_t ino, uint64_t offset, std::string_view data,
                                      int64_t mtimeNs) {
  return append(kWriteRecord, ino, offset, mtimeNs, data);
}

Result<uint64_t> Journal::appendSetattr(uint64_t ino, const SetAttrRequest& set,
                                        const Caller& caller, int64_t ctimeNs) {
  std::string b;
  uint16_t flags = uint16_t((set.setMode ? 1 : 0) | (set.setUid ? 2 : 0) | (set.setGid ? 4 : 0) |
                            (set.setAtime ? 8 : 0) | (set.setMtime ? 16 : 0));
  b.push_back(char(flags >> 8));
  b.push_back(char(flags));
  appendBigEndian32(b, set.mode);
  appendBigEndian32(b, set.uid);
  appendBigEndian32(b, set.gid);
  appendBigEndian64(b, uint64_t(set.atimeNs));
  appendBigEndian64(b, uint64_t(set.mtimeNs));
  appendBigEndian32(b, caller.uid);
  appendBigEndian32(b, caller.gid);
  return append(kSetattrRecord, ino, 0, ctimeNs, b);
}

Result<uint64_t> Journal::appendNamespace(std::string_view op) {
  return append(kNamespaceRecord, 0, 0, 0, op);
}

Result<uint64_t> Journal::append(uint8_t type, uint64_t ino, uint64_t offset, int64_t timeNs,
                                 std::string_view data) {
  if (data.size() > kMaxBody - kBodyFixed) {
    return Status::error(Code::INVALID, "write too large for one journal record");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0 || fileBytes_ >= segmentBytes_) {
    Status status = startSegment();
    if (!status.ok()) {
      spdlog::error("journal: {}", status.message);
      return status;
    }
  }
  uint64_t seq = nextSeq_;
  std::string head;
  appendBigEndian32(head, uint32_t(kBodyFixed + data.size()));
  size_t bodyStart = head.size();
  head.push_back(char(type));
  appendBigEndian64(head, seq);
  appendBigEndian64(head, ino);
  appendBigEndian64(head, offset);
  appendBigEndian64(head, uint64_t(timeNs));
  // XXH3 over the body, which is split between `head` and `data`.
  std::string tail;
  appendBigEndian64(tail, xxh3(std::string_view(head).substr(bodyStart), data));
  struct iovec iov[3] = {{head.data(), head.size()},
                         {const_cast<char*>(data.data()), data.size()},
                         {tail.data(), tail.size()}};
  size_t total = head.size() + data.size() + tail.size();
  if (!writeAll(fd_, iov, 3, total)) {
    int err = errno;
    // Cut the partial record off so that later appends stay readable.
    if (::ftruncate(fd_, off_t(fileBytes_)) != 0 || ::lseek(fd_, off_t(fileBytes_), SEEK_SET) < 0) {
      ::close(fd_);
      fd_ = -1;
    }
    Status status = errnoStatus("journal append in " + dir_, err);
    spdlog::error("{}", status.message);
    return status;
  }
  fileBytes_ += total;
  segments_.back().bytes = fileBytes_;
  ++nextSeq_;
  live_.insert(seq);
  return seq;
}

void Journal::done(uint64_t seq) {
  std::lock_guard<std::mutex> lock(mu_);
  live_.erase(seq);
  trim();
}

void Journal::trim() {
  uint64_t oldestLive = live_.empty() ? nextSeq_ : *live_.begin();
  // Segment i holds seqs [firstSeq_i, firstSeq_{i+1}); the current one stays.
  while (segments_.size() > 1 && segments_[1].firstSeq <= oldestLive) {
    ::unlink(segments_.front().path.c_str());
    segments_.erase(segments_.begin());
  }
  // All committed and the current segment is big: start afresh.
  if (live_.empty() && fileBytes_ >= segmentBytes_ / 4 && segments_.size() == 1) {
    std::string old = segments_.front().path;
    segments_.clear();
    if (startSegment().ok()) {
      ::unlink(old.c_str());
    } else {
      segments_.push_back(Segment{old, 0, 0});
    }
  }
}

uint64_t Journal::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t n = 0;
  for (const auto& s : segments_) n += s.bytes;
  return n;
}

size_t Journal::liveRecords() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_.size();
}

std::vector<LeftoverJournal> Journal::leftovers() const {
  std::map<uint64_t, std::map<uint64_t, std::string>> byClient;
  std::map<uint64_t, int64_t> oldest;  // client -> mtime of its first segment
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return {};
  while (struct dirent* e = ::readdir(d)) {
    uint64_t client, first;
    std::string name = e->d_name;
    if (!parseName(name, &client, &first) || client == clientId_) continue;
    std::string path = dir_ + "/" + name;
    byClient[client][first] = path;
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) {
      int64_t t = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
      auto [it, inserted] = oldest.emplace(client, t);
      if (!inserted) it->second = std::min(it->second, t);
    }
  }
  ::closedir(d);
  std::vector<LeftoverJournal> out;
  for (auto& [client, segs] : byClient) {
    LeftoverJournal j;
    j.clientId = client;
    for (auto& [first, path] : segs) j.segments.push_back(path);
    out.push_back(std::move(j));
  }
  std::sort(out.begin(), out.end(), [&](const LeftoverJournal& a, const LeftoverJournal& b) {
    return oldest[a.clientId] < oldest[b.clientId];
  });
  return out;
}

Status Journal::scan(const LeftoverJournal& journal,
                     const std::function<Status(JournalWrite&&)>& fn) {
  uint64_t expectSeq = 0;
  for (const auto& path : journal.segments) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errnoStatus("cannot open journal segment " + path, errno);
    char header[kHeaderBytes];
    if (!readExact(fd, header, sizeof header) || memcmp(header, kMagic, sizeof kMagic) != 0 ||
        readBigEndian32(std::string_view(header, sizeof header), 8) != kVersion ||
        readBigEndian64(std::string_view(header, sizeof header), 12) != journal.clientId) {
      spdlog::warn("journal segment {}: no valid header; skipped", path);
      ::close(fd);
      continue;
    }
    uint64_t first = readBigEndian64(std::string_view(header, sizeof header), 20);
    if (expectSeq != 0 && first != expectSeq) {
      spdlog::warn("journal segment {} starts at seq {}, expected {}", path, first, expectSeq);
    }
    std::string body;
    uint64_t records = 0;
    while (true) {
      char lenBuf[4];
      if (!readExact(fd, lenBuf, 4)) break;  // clean end
      uint32_t len = readBigEndian32(std::string_view(lenBuf, 4));
      if (len < kBodyFixed || len > kMaxBody) {
        spdlog::warn("journal segment {}: bad record length {} after {} records; the rest is "
                     "ignored (torn tail)", path, len, records);
        break;
      }
      body.resize(len + 8);
      if (!readExact(fd, body.data(), body.size())) {
        spdlog::warn("journal segment {}: torn record after {} records (crash mid-append)", path,
                     records);
        break;
      }
      uint64_t sum = readBigEndian64(std::string_view(body).substr(len, 8));
      uint8_t type = uint8_t(body[0]);
      bool known = type == kWriteRecord || type == kNamespaceRecord ||
                   (type == kSetattrRecord && len == kBodyFixed + kSetattrBytes);
      if (xxh3(body.data(), len) != sum || !known) {
        spdlog::warn("journal segment {}: record {} fails its checksum or has an unknown type {}; "
                     "the rest is ignored", path, records, type);
        break;
      }
      std::string_view b(body.data(), len);
      JournalWrite w;
      w.seq = readBigEndian64(b, 1);
      w.ino = readBigEndian64(b, 9);
      w.offset = readBigEndian64(b, 17);
      w.mtimeNs = int64_t(readBigEndian64(b, 25));
      if (type == kWriteRecord) {
        w.data.assign(b.substr(kBodyFixed));
      } else if (type == kNamespaceRecord) {
        w.type = JournalWrite::Type::kNamespace;
        w.data.assign(b.substr(kBodyFixed));
      } else {
        std::string_view a = b.substr(kBodyFixed);
        uint16_t flags = uint16_t((uint8_t(a[0]) << 8) | uint8_t(a[1]));
        w.type = JournalWrite::Type::kSetattr;
        w.set.setMode = flags & 1;
        w.set.setUid = flags & 2;
        w.set.setGid = flags & 4;
        w.set.setAtime = flags & 8;
        w.set.setMtime = flags & 16;
        w.set.mode = readBigEndian32(a, 2);
        w.set.uid = readBigEndian32(a, 6);
        w.set.gid = readBigEndian32(a, 10);
        w.set.atimeNs = int64_t(readBigEndian64(a, 14));
        w.set.mtimeNs = int64_t(readBigEndian64(a, 22));
        w.caller.uid = readBigEndian32(a, 30);
        w.caller.gid = readBigEndian32(a, 34);
        w.set.ctimeNs = w.mtimeNs;
      }
      expectSeq = w.seq + 1;
      ++records;
      Status status = fn(std::move(w));
      if (!status.ok()) {
        ::close(fd);
        return status;
      }
    }
    ::close(fd);
  }
  return {};
}

void Journal::remove(const LeftoverJournal& journal) {
  for (const auto& path : journal.segments) ::unlink(path.c_str());
}

}  // namespace dfs
