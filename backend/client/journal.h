// The client's write-back journal: every write an application is told succeeded
// is first appended here (a write(2) into the cache directory, so it survives a
// crash or kill -9 of dfs-fuse), and stays until a commit to the metadata node
// covers it. On the next mount with the same cache directory, what an earlier
// instance left behind is replayed (JournalReplay).
//
// Layout: segment files "<client id hex16>-<first seq hex16>.jnl" in the cache
// directory, each a header and then records (docs/formats.md, "Client journal").
// A torn record at the end of a segment (crash mid-append) is where the valid
// journal ends. An exclusive flock on "<dir>/lock" keeps two mounts from
// sharing a cache directory.
//
// Sequence numbers are per client instance and increase by one per record.
// `live` seqs are records whose bytes are not committed yet; a segment whose
// records are all below the oldest live seq is deleted.
//
// Threads: every method from any thread (one internal mutex, a leaf).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "backend/client/types.h"
#include "backend/common/status.h"

namespace dfs {

// One journal record: a write (bytes at offset), a deferred attribute change
// (chmod/chown/utimens acknowledged while the file's bytes were buffered) or an
// absorbed namespace change (Absorber).
struct JournalWrite {
  enum class Type { kWrite, kSetattr, kNamespace };
  Type type = Type::kWrite;
  uint64_t seq = 0;
  uint64_t ino = 0;
  uint64_t offset = 0;
  int64_t mtimeNs = 0;  // kSetattr: the change's ctime
  std::string data;     // kWrite; kNamespace: a NamespaceOp message (ino 0)
  SetAttrRequest set;   // kSetattr: mode/uid/gid/atime/mtime, times explicit
  Caller caller;        // kSetattr
};

// A journal left by an earlier client instance (crashed or killed).
struct LeftoverJournal {
  uint64_t clientId = 0;
  std::vector<std::string> segments;  // paths, oldest first
};

class Journal {
 public:
  static constexpr uint64_t kDefaultSegmentBytes = 64ull << 20;

  // Creates `dir` if needed and locks it (BUSY when another mount holds it).
  static Result<std::unique_ptr<Journal>> open(const std::string& dir, uint64_t clientId,
                                               uint64_t segmentBytes = kDefaultSegmentBytes);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  const std::string& dir() const { return dir_; }
  uint64_t clientId() const { return clientId_; }

  // Journals of other client ids in the directory, oldest first.
  std::vector<LeftoverJournal> leftovers() const;
  // Calls `fn` for every valid record of the segments in order and stops at the
  // first torn or corrupt one (logged). Fails only when a file cannot be read.
  static Status scan(const LeftoverJournal& journal,
                     const std::function<Status(JournalWrite&&)>& fn);
  // Deletes a leftover journal's files.
  static void remove(const LeftoverJournal& journal);

  // Appends a write record and returns its seq (live until done()). Fails (NO_SPACE,
  // IO) without acknowledging anything when the cache directory cannot take it.
  Result<uint64_t> appendWrite(uint64_t ino, uint64_t offset, std::string_view data,
                               int64_t mtimeNs);
  // Appends a deferred attribute change (never a size change; explicit times)
  // and returns its seq (live until done()).
  Result<uint64_t> appendSetattr(uint64_t ino, const SetAttrRequest& set, const Caller& caller,
                                 int64_t ctimeNs);
  // Appends an absorbed namespace change (a NamespaceOp message, see Absorber)
  // and returns its seq (live until done()).
  Result<uint64_t> appendNamespace(std::string_view op);
  // The record's bytes are committed (or no longer needed).
  void done(uint64_t seq);
  // Bytes in segment files of this instance; live records.
  uint64_t bytes() const;
  size_t liveRecords() const;

 private:
  Journal(std::string dir, uint64_t clientId, uint64_t segmentBytes, int lockFd);
  Status startSegment();  // REQUIRES: mu_
  Result<uint64_t> append(uint8_t type, uint64_t ino, uint64_t offset, int64_t timeNs,
                          std::string_view data);
  void trim();            // REQUIRES: mu_

  const std::string dir_;
  const uint64_t clientId_;
  const uint64_t segmentBytes_;
  const int lockFd_;
  mutable std::mutex mu_;
  int fd_ = -1;                  // current segment; guarded by mu_
  uint64_t fileBytes_ = 0;       // size of the current segment; mu_
  uint64_t nextSeq_ = 1;         // mu_
  std::set<uint64_t> live_;      // mu_
  struct Segment {
    std::string path;
    uint64_t firstSeq;
    uint64_t bytes;
  };
  std::vector<Segment> segments_;  // oldest first, the last is current; mu_
};

}  // namespace dfs
