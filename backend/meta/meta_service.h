// Cap'n Proto servers of the metadata node: MetaGatewayImpl (the bootstrap
// capability, checks the protocol version) and MetaImpl (every Meta method).
// They translate between the wire types and MetaNode and validate arguments;
// expected failures are returned as Status, exceptions are left for bugs.
//
// Thread: the metadata node's event-loop thread.
#pragma once

#include <initializer_list>

#include "backend/meta/meta_node.h"
#include "protocol/dfs.capnp.h"

namespace dfs::meta {

class MetaImpl final : public proto::Meta::Server {
 public:
  explicit MetaImpl(MetaNode& node) : node_(node) {}
  // The connection is gone: its session gets no more invalidations.
  ~MetaImpl();

  kj::Promise<void> mount(MountContext context) override;
  kj::Promise<void> keepalive(KeepaliveContext context) override;
  kj::Promise<void> unmount(UnmountContext context) override;
  kj::Promise<void> lookup(LookupContext context) override;
  kj::Promise<void> getattr(GetattrContext context) override;
  kj::Promise<void> setattr(SetattrContext context) override;
  kj::Promise<void> mknod(MknodContext context) override;
  kj::Promise<void> mkdir(MkdirContext context) override;
  kj::Promise<void> symlink(SymlinkContext context) override;
  kj::Promise<void> readlink(ReadlinkContext context) override;
  kj::Promise<void> link(LinkContext context) override;
  kj::Promise<void> unlink(UnlinkContext context) override;
  kj::Promise<void> rmdir(RmdirContext context) override;
  kj::Promise<void> rename(RenameContext context) override;
  kj::Promise<void> open(OpenContext context) override;
  kj::Promise<void> create(CreateContext context) override;
  kj::Promise<void> reserveInodes(ReserveInodesContext context) override;
  kj::Promise<void> applyOps(ApplyOpsContext context) override;
  kj::Promise<void> mkdirDelegated(MkdirDelegatedContext context) override;
  // Replies built once the file's writers elsewhere committed (Recalls).
  kj::Promise<void> lookupNow(LookupContext context);
  kj::Promise<void> readdirNow(ReaddirContext context);
  kj::Promise<void> createExisting(CreateContext context);
  // mkdir and mkdirDelegated (delegateTo: the session, 0: none).
  template <typename Context>
  kj::Promise<void> mkdirNow(Context context, uint64_t delegateTo);
  void answerLookup(LookupContext context, const Result<InodeRecord>& inode);
  kj::Promise<void> getattrNow(GetattrContext context);
  void answerReaddir(ReaddirContext context, const Result<ReaddirPage>& page);
  // open/create once the file's writers elsewhere committed (Recalls).
  kj::Promise<void> openNow(OpenContext context);
  kj::Promise<void> createNow(CreateContext context);
  kj::Promise<void> release(ReleaseContext context) override;
  kj::Promise<void> readdir(ReaddirContext context) override;
  kj::Promise<void> statfs(StatfsContext context) override;
  kj::Promise<void> setxattr(SetxattrContext context) override;
  kj::Promise<void> getxattr(GetxattrContext context) override;
  kj::Promise<void> listxattr(ListxattrContext context) override;
  kj::Promise<void> removexattr(RemovexattrContext context) override;
  kj::Promise<void> getExtents(GetExtentsContext context) override;
  kj::Promise<void> findChunks(FindChunksContext context) override;
  kj::Promise<void> commitWrite(CommitWriteContext context) override;
  kj::Promise<void> clusterMap(ClusterMapContext context) override;
  kj::Promise<void> registerNode(RegisterNodeContext context) override;
  kj::Promise<void> createVolume(CreateVolumeContext context) override;
  kj::Promise<void> listVolumes(ListVolumesContext context) override;
  kj::Promise<void> setVolume(SetVolumeContext context) override;
  kj::Promise<void> stats(StatsContext context) override;
  kj::Promise<void> gc(GcContext context) override;
  kj::Promise<void> coldChunks(ColdChunksContext context) override;
  kj::Promise<void> retierChunks(RetierChunksContext context) override;
  kj::Promise<void> version(VersionContext context) override;
  kj::Promise<void> journalApplied(JournalAppliedContext context) override;
  kj::Promise<void> forgetJournal(ForgetJournalContext context) override;
  kj::Promise<void> sync(SyncContext context) override;

 private:
  // Answers once durable; then, if the operation succeeded, tells the other
  // sessions on this connection's volume what changed.
  // With an OpId, the reply is stored in the same transaction as the change
  // (ClientOps), so a retry gets this reply instead of a second effect.
  template <typename Context>
  kj::Promise<void> answerAndNotify(Context context, Change change, proto::OpId::Reader op = {});
  // A retry of a request already applied: answers it with the stored reply.
  template <typename Context>
  bool answeredBefore(Context& context, proto::OpId::Reader op);
  // Runs `now(context)` once every other session that holds one of `inodes`
  // as a delegated directory has sent what it absorbed there (Recalls); at
  // once when none does.
  template <typename Context, typename Fn>
  kj::Promise<void> guarded(std::initializer_list<uint64_t> inodes, Context context, Fn now);
  // One absorbed operation of applyOps; adds what changed to `change`.
  Status applyOne(uint64_t session, proto::NamespaceOp::Reader op, Change& change);
  // Invalidations for removing/replacing the entry (parent, name): the entry,
  // the parent and the inode it names now (if any).
  void addEntryChange(Change& change, uint64_t parent, std::string_view name);

  MetaNode& node_;
  // The session mounted over this connection (0: none, e.g. dfsctl) and its
  // volume: mutations through this connection are attributed to it.
  uint64_t session_ = 0;
  uint32_t volume_ = 0;
};

class MetaGatewayImpl final : public proto::MetaGateway::Server {
 public:
  explicit MetaGatewayImpl(MetaNode& node) : node_(node) {}
  // Throws (a `failed` exception the peer sees) for a version other than ours.
  kj::Promise<void> hello(HelloContext context) override;

 private:
  MetaNode& node_;
};

}  // namespace dfs::meta
