#include "backend/client/journal_replay.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <map>
#include <set>

namespace dfs {

namespace {
// A journaled NamespaceOp as it is sent again: a create no longer opens the
// file (the session that held it open is gone).
std::string replayableOp(const std::string& bytes) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) return {};
  try {
    auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    memcpy(words.begin(), bytes.data(), bytes.size());
    capnp::FlatArrayMessageReader reader(words);
    capnp::MallocMessageBuilder message;
    message.setRoot(reader.getRoot<proto::NamespaceOp>());
    auto op = message.getRoot<proto::NamespaceOp>();
    if (op.isCreate()) op.getCreate().setOpen(false);
    auto flat = capnp::messageToFlatArray(message);
    auto out = flat.asBytes();
    return std::string(reinterpret_cast<const char*>(out.begin()), out.size());
  } catch (const kj::Exception& e) {
    spdlog::error("journal: undecodable namespace record: {}", e.getDescription().cStr());
    return {};
  }
}

// The op's OpId seq, and whether it may end a file (unlink, rename over it).
std::pair<uint64_t, bool> opSeqAndRemoves(const std::string& bytes) {
  auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  memcpy(words.begin(), bytes.data(), bytes.size());
  capnp::FlatArrayMessageReader reader(words);
  auto op = reader.getRoot<proto::NamespaceOp>();
  return {op.getOp().getSeq(), op.isUnlink() || op.isRmdir() || op.isRename()};
}
}  // namespace

Result<ReplayStats> replayJournals(Journal& journal, MetaClient& meta, DataPath& data) {
  ReplayStats total;
  for (const auto& old : journal.leftovers()) {
    std::set<uint64_t> inodes;
    Status status = Journal::scan(old, [&](JournalWrite&& w) {
      if (w.type != JournalWrite::Type::kNamespace) inodes.insert(w.ino);
      return Status{};
    });
    if (!status.ok()) return status;
    inodes.insert(0);  // the mark of inode 0: the last absorbed op applied (OpId seq)
    std::vector<uint64_t> list(inodes.begin(), inodes.end());
    std::map<uint64_t, uint64_t> marks;
    if (!list.empty()) {
      auto applied = meta.journalApplied(old.clientId, list);
      if (!applied.ok()) return applied.status();
      if (applied.value().size() != list.size()) {
        return Status::error(Code::IO, "journalApplied answered for the wrong number of inodes");
      }
      for (size_t i = 0; i < list.size(); ++i) marks[list[i]] = applied.value()[i];
    }
    ReplayStats stats;
    std::set<uint64_t> gone, checked;
    status = Journal::scan(old, [&](JournalWrite&& w) -> Status {
      if (w.type == JournalWrite::Type::kNamespace) {
        // In journal order, before the writes to what it creates, unless
        // dfs-meta applied it already (its OpId seq is at most the mark).
        std::string op = replayableOp(w.data);
        if (op.empty()) {
          ++stats.dropped;
          spdlog::warn("journal {:016x}: record {} is no namespace operation; skipped",
                       old.clientId, w.seq);
          return {};
        }
        auto [seq, removes] = opSeqAndRemoves(op);
        if (seq <= marks[0]) {
          ++stats.skipped;
          return {};
        }
        if (removes) {
          // The writes before it in the journal reach the file while it exists.
          Status flushed = data.flushAll();
          if (!flushed.ok()) return flushed;
        }
        auto applied = meta.applyOps({op});
        if (!applied.ok()) return applied.status();
        if (applied.value().size() != 1) return Status::error(Code::IO, "applyOps: wrong answer");
        const Status& outcome = applied.value()[0];
        if (!outcome.ok()) {
          spdlog::warn("journal {:016x}: absorbed namespace change {} refused: {}", old.clientId,
                       w.seq, outcome.message);
          ++stats.dropped;
        } else {
          ++stats.replayed;
        }
        return {};
      }
      if (w.seq <= marks[w.ino]) {
        ++stats.skipped;
        return {};
      }
      if (gone.count(w.ino)) {
        ++stats.dropped;
        return {};
      }
      if (!checked.count(w.ino)) {
        auto attr = meta.getattr(w.ino);
        if (!attr.ok()) {
          if (attr.status().code != Code::NOT_FOUND && attr.status().code != Code::STALE) {
            return attr.status();
          }
          spdlog::warn("journal {:016x}: inode {} no longer exists; its unflushed writes are "
                       "dropped", old.clientId, w.ino);
          gone.insert(w.ino);
          ++stats.dropped;
          return {};
        }
        data.noteAttr(attr.value(), true);
        checked.insert(w.ino);
      }
      if (w.type == JournalWrite::Type::kSetattr) {
        // In journal order: the file's earlier writes are committed first, so
        // an explicit mtime is not overtaken by them.
        Status flushed = data.flush(w.ino);
        if (!flushed.ok()) return flushed;
        auto set = meta.setattr(w.ino, w.set, w.caller);
        if (!set.ok()) {
          if (set.status().code != Code::NOT_FOUND && set.status().code != Code::STALE) {
            return set.status();
          }
          gone.insert(w.ino);
          ++stats.dropped;
          return {};
        }
        data.noteAttr(set.value(), false);
        ++stats.replayed;
        return {};
      }
      auto written = data.write(w.ino, w.offset, w.data.data(), w.data.size());
      if (!written.ok()) return written.status();
      ++stats.replayed;
      stats.bytes += w.data.size();
      return {};
    });
    if (!status.ok()) return status;
    status = data.flushAll();
    if (!status.ok()) return status;
    Journal::remove(old);
    Status forgot = meta.forgetJournal(old.clientId);
    if (!forgot.ok()) spdlog::warn("journal {:016x}: forgetJournal: {}", old.clientId, forgot.message);
    spdlog::info("journal {:016x} replayed: {} writes ({} bytes) re-applied, {} already "
                 "committed, {} dropped", old.clientId, stats.replayed, stats.bytes,
                 stats.skipped, stats.dropped);
    ++total.journals;
    total.replayed += stats.replayed;
    total.skipped += stats.skipped;
    total.dropped += stats.dropped;
    total.bytes += stats.bytes;
  }
  return total;
}

}  // namespace dfs
