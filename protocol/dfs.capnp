# DFS wire protocol, version 1.
#
# This file IS the wire spec between dfs-fuse, dfs-meta, dfs-storage and dfsctl.
# Every process connects over TCP with Cap'n Proto two-party RPC. The bootstrap
# capability of a metadata node is `MetaGateway`, of a storage node `StorageGateway`.
# A peer must call `hello` with `protocolVersion` first; a server that does not speak
# that version throws a clear `failed` exception and keeps serving other peers.
#
# Compatibility rules (see docs/formats.md): fields are only ever appended with new
# ordinals; a change a v1 peer cannot ignore bumps `protocolVersion`.
#
# Units: sizes and offsets in bytes, times in nanoseconds since the Unix epoch
# (Int64), durations in milliseconds unless the field name says otherwise.

@0xdac7cd23144deb37;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("dfs::proto");

const protocolVersion :UInt32 = 1;

# Outcome of an operation that may fail for an expected, file-system reason.
# Broken connections and bugs are exceptions instead. The single table that maps
# these codes to errno lives in backend/common/status.cc.
enum Code {
  ok @0;
  notFound @1;        # ENOENT
  exists @2;          # EEXIST
  notDirectory @3;    # ENOTDIR
  isDirectory @4;     # EISDIR
  notEmpty @5;        # ENOTEMPTY
  accessDenied @6;    # EACCES
  notPermitted @7;    # EPERM
  nameTooLong @8;     # ENAMETOOLONG
  invalid @9;         # EINVAL
  noSpace @10;        # ENOSPC
  io @11;             # EIO
  loop @12;           # ELOOP
  noData @13;         # ENODATA (xattr absent)
  range @14;          # ERANGE
  tooManyLinks @15;   # EMLINK
  notSupported @16;   # EOPNOTSUPP
  stale @17;          # ESTALE (inode no longer exists)
  busy @18;           # EBUSY
  missingChunks @19;  # commitWrite referenced chunks that no longer exist: re-upload, retry
  unavailable @20;    # not enough storage nodes up for the volume's EC profile (EIO/ENOSPC)
  fileTooBig @21;     # EFBIG
  crossDevice @22;    # EXDEV (rename across volumes)
}

struct Status {
  code @0 :Code;
  message @1 :Text;   # human-readable detail, for logs; may be empty
}

# Inode attributes. `ino` is global across volumes and never reused.
struct Attr {
  ino @0 :UInt64;
  mode @1 :UInt32;      # file type bits and permission bits, as in st_mode
  nlink @2 :UInt32;
  uid @3 :UInt32;
  gid @4 :UInt32;
  rdev @5 :UInt64;      # device number for block/char devices
  size @6 :UInt64;      # logical size in bytes (sparse files: includes holes)
  atimeNs @7 :Int64;
  mtimeNs @8 :Int64;
  ctimeNs @9 :Int64;
  dataVersion @10 :UInt64;  # bumped on every commit that changes content or size
  storedBytes @11 :UInt64;  # logical bytes actually backed by data (not holes), for st_blocks
}

# Which fields of `SetAttr` to apply (bit mask, same meaning as FUSE_SET_ATTR_*).
struct SetAttr {
  mode @0 :UInt32;
  uid @1 :UInt32;
  gid @2 :UInt32;
  size @3 :UInt64;
  atimeNs @4 :Int64;
  mtimeNs @5 :Int64;
  setMode @6 :Bool;
  setUid @7 :Bool;
  setGid @8 :Bool;
  setSize @9 :Bool;
  setAtime @10 :Bool;     # to atimeNs, or to the server's clock when atimeNow
  setMtime @11 :Bool;
  atimeNow @12 :Bool;
  mtimeNow @13 :Bool;
  ctimeNs @14 :Int64;     # 0: server's clock
}

# Who asks; used for ownership of new inodes (the kernel checks permissions
# through default_permissions, the server re-checks the sticky bit and ownership).
struct Caller {
  uid @0 :UInt32;
  gid @1 :UInt32;
  pid @2 :UInt32;
}

struct DirEntry {
  name @0 :Data;      # raw bytes, 1..255, no '/' or NUL
  ino @1 :UInt64;
  mode @2 :UInt32;    # only the type bits are guaranteed when attr is absent
  attr @3 :Attr;      # filled when readdir was asked with `plus`
  hasAttr @4 :Bool;
}

# Reference from a range of a file to its bytes.
struct Extent {
  fileOffset @0 :UInt64;
  length @1 :UInt64;
  union {
    hole @2 :Void;            # reads as zeros
    chunk @3 :ChunkRef;       # bytes [offset, offset+length) of a chunk's plaintext
    inline @4 :Data;          # small data kept in metadata; length == inline.size()
  }
}

struct ChunkRef {
  id @0 :Data;        # 32 bytes: SHA-256 of the chunk's plaintext
  offset @1 :UInt32;  # offset inside the chunk's plaintext
}

# How one chunk is stored. A chunk's plaintext is (optionally) zstd-compressed into
# `storedSize` bytes, zero-padded to k*fragmentSize and Reed-Solomon encoded into
# k data + m parity fragments; fragment i lives on node `nodes[i]` under the id
# (chunk id, i | generation << 6).
struct ChunkInfo {
  id @0 :Data;                      # 32 bytes, SHA-256 of plaintext
  plainSize @1 :UInt32;
  storedSize @2 :UInt32;            # after compression (== plainSize when uncompressed)
  compression @3 :Compression;
  k @4 :UInt8;
  m @5 :UInt8;
  fragmentSize @6 :UInt32;
  nodes @7 :List(UInt32);           # k+m storage node ids
  fragmentChecksums @8 :List(UInt64);  # XXH3-64 of each fragment, k+m entries
  # Which set of fragments is current (0..3): 0 as written by clients, changed by
  # each re-encoding (Meta.retierChunks) so that the new fragments get ids of their
  # own and readers never mix old and new ones.
  generation @9 :UInt8;

  enum Compression {
    none @0;
    zstd @1;
  }
}

struct NodeInfo {
  id @0 :UInt32;
  address @1 :Text;     # host:port of the storage RPC endpoint
  weight @2 :UInt32;    # placement weight (default: capacity in GiB, at least 1)
  up @3 :Bool;
  capacityBytes @4 :UInt64;
  usedBytes @5 :UInt64;
  fragments @6 :UInt64;
  label @7 :Text;       # failure domain label; empty: the node is its own domain
  lastHeartbeatNs @8 :Int64;
  uuid @9 :Text;        # identity of the data directory
  state @10 :NodeState;
  enum NodeState {
    up @0;
    suspect @1;
    down @2;
  }
}

struct VolumeInfo {
  id @0 :UInt32;
  name @1 :Text;
  rootIno @2 :UInt64;
  ecK @3 :UInt8;
  ecM @4 :UInt8;
  chunkMin @5 :UInt32;
  chunkAvg @6 :UInt32;
  chunkMax @7 :UInt32;
  compressionLevel @8 :Int8;   # zstd level; 0 disables compression
  inlineThreshold @9 :UInt32;  # files up to this size are stored in metadata
}

# Storage accounting (dfsctl stats).
struct Stats {
  logicalBytes @0 :UInt64;     # sum over files of bytes backed by chunks or inline data
  uniqueBytes @1 :UInt64;      # sum of plainSize over distinct chunks (+ inline bytes)
  compressedBytes @2 :UInt64;  # sum of storedSize over distinct chunks (+ inline bytes)
  rawBytes @3 :UInt64;         # sum of (k+m)*fragmentSize: bytes on storage nodes incl. parity
  chunks @4 :UInt64;
  files @5 :UInt64;
  inodes @6 :UInt64;
  unreferencedChunks @7 :UInt64;  # refcount 0, awaiting GC
  conflicts @8 :UInt64;  # commitWrite conflicts since the metadata node started (in memory):
                         # a commit overlapping a range another session committed after the
                         # commit's base version; resolved last-writer-wins by HLC
}

# Identifies one mutating request of a client instance, so that a request
# retried after a lost connection (or a metadata node restart) is applied at most
# once: the metadata node stores the reply of every request carrying an OpId in
# the same LMDB transaction as its effect, and answers a retry with the stored
# reply instead of applying it again. `client` is random per client instance (the
# journal id, see commitWrite) and never 0; 0 means "no OpId" (v1 clients before
# this field: applied as before). `seq` increases per request. `doneBelow`: the
# client holds no reply-less request with a smaller seq, so the server may drop
# its stored replies below it.
struct OpId {
  client @0 :UInt64;
  seq @1 :UInt64;
  doneBelow @2 :UInt64;
}

# A directory entry that changed (created, removed, renamed to or from).
struct EntryRef {
  parent @0 :UInt64;  # inode of the directory
  name @1 :Data;      # raw bytes of the entry's name
}

# Implemented by a client and passed to Meta.mount: the metadata node calls it
# after mutations made by OTHER sessions on the same volume have been committed,
# so the client drops cached attributes, data and directory entries. Calls are
# batched (a few per second at most per client under load, ~20 ms coalescing),
# best effort and never delay or fail the mutation: a callback that throws or
# disconnects is dropped for the rest of the session.
interface ClientCallback {
  # `inodes`: inodes whose attributes or contents changed (server inode numbers);
  # `entries`: directory entries that appeared, disappeared or now name another inode.
  invalidate @0 (inodes :List(UInt64), entries :List(EntryRef)) -> ();
  # Close-to-open with a write-back close: another session is opening `inodes`,
  # which this session has open for writing (or closed, with bytes not yet
  # committed: a client releases a written file only after committing it).
  # Returns once every byte written to them so far is committed, or committing
  # failed (logged on the client; the opener then proceeds with what is there).
  # The metadata node waits at most 10 s for the answer.
  # An inode in `inodes` may also be a directory delegated to this session
  # (Meta.mkdirDelegated): the client then sends every absorbed change it
  # holds (Meta.applyOps), stops absorbing in that directory, and answers; the
  # delegation ends with the answer.
  flush @1 (inodes :List(UInt64)) -> ();
}

struct GcResult {
  chunksDeleted @0 :UInt64;
  fragmentsDeleted @1 :UInt64;
  orphanFragmentsDeleted @2 :UInt64;
  bytesFreed @3 :UInt64;
}

struct StatFs {
  totalBytes @0 :UInt64;
  freeBytes @1 :UInt64;
  totalInodes @2 :UInt64;
  freeInodes @3 :UInt64;
}

interface MetaGateway {
  # First call on any connection. Throws if `version` is not spoken.
  hello @0 (version :UInt32, peer :Text) -> (meta :Meta, serverVersion :UInt32);
}

interface Meta {
  # --- session and volumes ---------------------------------------------------
  # Opens a client session on a volume. The session is a lease: the client must
  # call keepalive at least every leaseMs/3; an expired session's open files are
  # released. Fails with notFound if the volume does not exist.
  # `callback` (optional; a client that passes none simply gets no invalidations)
  # receives invalidations for changes by other sessions on the volume.
  mount @0 (volume :Text, client :Text, callback :ClientCallback) -> (status :Status, volume :VolumeInfo, sessionId :UInt64, leaseMs :UInt32);
  keepalive @1 (sessionId :UInt64) -> (status :Status);
  unmount @2 (sessionId :UInt64) -> ();

  # --- namespace (each call is one LMDB write or read transaction) ----------
  # Calls that are not idempotent (mknod, mkdir, symlink, link, unlink, rmdir,
  # rename, create, setxattr, removexattr) take an optional `op :OpId`: a retry
  # with the same OpId gets the first attempt's reply, never a second effect.
  lookup @3 (parent :UInt64, name :Data) -> (status :Status, attr :Attr);
  getattr @4 (ino :UInt64) -> (status :Status, attr :Attr);
  setattr @5 (ino :UInt64, set :SetAttr, caller :Caller) -> (status :Status, attr :Attr);
  # Creates a regular file, FIFO, socket or device node (type from mode).
  mknod @6 (parent :UInt64, name :Data, mode :UInt32, rdev :UInt64, caller :Caller, op :OpId) -> (status :Status, attr :Attr);
  mkdir @7 (parent :UInt64, name :Data, mode :UInt32, caller :Caller, op :OpId) -> (status :Status, attr :Attr);
  symlink @8 (parent :UInt64, name :Data, target :Data, caller :Caller, op :OpId) -> (status :Status, attr :Attr);
  readlink @9 (ino :UInt64) -> (status :Status, target :Data);
  link @10 (ino :UInt64, newParent :UInt64, newName :Data, op :OpId) -> (status :Status, attr :Attr);
  # Removes a non-directory entry. An inode whose link count drops to 0 while some
  # session has it open is kept (as an orphan) until its last release.
  unlink @11 (parent :UInt64, name :Data, caller :Caller, op :OpId) -> (status :Status);
  rmdir @12 (parent :UInt64, name :Data, caller :Caller, op :OpId) -> (status :Status);
  # flags: 0, 1 = RENAME_NOREPLACE, 2 = RENAME_EXCHANGE (Linux values).
  rename @13 (parent :UInt64, name :Data, newParent :UInt64, newName :Data, flags :UInt32, caller :Caller, op :OpId) -> (status :Status);
  # Records that `sessionId` holds the inode open (create = mknod + open in one transaction).
  # `write`: opened for writing. Before answering, the metadata node has every
  # other session that has the file open for writing commit its buffered bytes
  # (ClientCallback.flush): the opener sees everything written and closed.
  open @14 (sessionId :UInt64, ino :UInt64, truncate :Bool, write :Bool) -> (status :Status, attr :Attr);
  create @15 (sessionId :UInt64, parent :UInt64, name :Data, mode :UInt32, exclusive :Bool, caller :Caller, op :OpId) -> (status :Status, attr :Attr);
  release @16 (sessionId :UInt64, ino :UInt64) -> ();
  # Lists entries with names strictly greater than `after` (empty: from the start),
  # in byte order of names, at most `max` of them.
  readdir @17 (ino :UInt64, after :Data, max :UInt32, plus :Bool) -> (status :Status, entries :List(DirEntry), eof :Bool);
  statfs @18 () -> (status :Status, statfs :StatFs);

  setxattr @19 (ino :UInt64, name :Text, value :Data, flags :UInt32, op :OpId) -> (status :Status);  # flags: XATTR_CREATE=1, XATTR_REPLACE=2
  getxattr @20 (ino :UInt64, name :Text) -> (status :Status, value :Data);
  listxattr @21 (ino :UInt64) -> (status :Status, names :List(Text));
  removexattr @22 (ino :UInt64, name :Text, op :OpId) -> (status :Status);

  # --- data -------------------------------------------------------------------
  # Extents covering [offset, offset+length) (clipped to the file size), in file
  # order; ranges not covered by any extent are holes. `chunks` describes every
  # chunk referenced by the returned extents.
  getExtents @23 (ino :UInt64, offset :UInt64, length :UInt64) -> (status :Status, attr :Attr, extents :List(Extent), chunks :List(ChunkInfo));
  # Which of these chunk ids the metadata node already has (dedup query).
  findChunks @24 (ids :List(Data)) -> (present :List(Bool));
  # Atomically replaces the byte ranges covered by `extents` with them, adds
  # `newChunks` to the chunk table (fragments must already be stored), adjusts
  # reference counts, and sets size = max(size, newSize) (or exactly newSize when
  # `setSize`). If an extent names a chunk that is neither known nor in newChunks
  # (e.g. collected by GC after findChunks), fails with missingChunks listing them.
  #
  # Concurrent writers: `hlc` is the writer's hybrid logical clock timestamp
  # (nanosecond-like, max(physical ns, last seen + 1); 0: none, v1 client) and
  # `baseVersion` the file's dataVersion the writer last saw (0: unknown). If the
  # byte ranges of this commit overlap ranges another session committed recently
  # with a dataVersion > baseVersion, that is a conflict: it is counted
  # (Stats.conflicts) and logged, and resolved last-writer-wins by HLC: the parts
  # of `extents` overlapping a range with a newer HLC are dropped (the newer data
  # stays), the rest is applied. The reply's `hlc` is the metadata node's clock,
  # which the client merges into its own.
  #
  # Write-back journal: `journal` (0: none) is the client instance's journal id
  # and `journalSeq` the highest journal sequence number whose bytes this commit
  # makes durable for this inode. The metadata node records max(journalSeq) per
  # (journal, inode) in the same transaction (journalApplied reads it back), so a
  # client replaying its journal after a crash skips what was already committed.
  #
  # Deferred attributes: a client may acknowledge chmod/chown/utimens of a file
  # whose written bytes it still buffers (tar and cp -a set them right after
  # writing) and send them here instead of as a separate setattr: `setAttr`
  # (absent: none; never setSize; times explicit, no *Now) is applied by `caller`
  # right after the extents, in the same transaction, and the reply's attr
  # includes it. A setAttr that cannot be applied is logged and counted
  # (dfs_meta_deferred_setattr_failed_total); the data commit stands.
  commitWrite @25 (ino :UInt64, extents :List(Extent), newChunks :List(ChunkInfo), newSize :UInt64, setSize :Bool, mtimeNs :Int64, hlc :UInt64, baseVersion :UInt64, journal :UInt64, journalSeq :UInt64, setAttr :SetAttr, caller :Caller) -> (status :Status, attr :Attr, missing :List(Data), hlc :UInt64);

  # --- cluster ------------------------------------------------------------------
  clusterMap @26 () -> (nodes :List(NodeInfo), epoch :UInt64);
  # Storage nodes call this at start and then as a heartbeat (every heartbeatMs).
  registerNode @27 (uuid :Text, address :Text, capacityBytes :UInt64, usedBytes :UInt64, fragments :UInt64, label :Text) -> (status :Status, nodeId :UInt32, heartbeatMs :UInt32);

  # --- administration (dfsctl) ---------------------------------------------------
  createVolume @28 (spec :VolumeInfo) -> (status :Status, volume :VolumeInfo);
  listVolumes @29 () -> (volumes :List(VolumeInfo));
  setVolume @30 (spec :VolumeInfo) -> (status :Status, volume :VolumeInfo);
  stats @31 () -> (stats :Stats);
  # Collects chunks whose refcount has been 0 for longer than graceMs, and orphan
  # fragments (no chunk record) older than graceMs. graceMs < 0: server default.
  gc @32 (graceMs :Int64) -> (status :Status, result :GcResult);
  version @33 () -> (version :Text, protocolVersion :UInt32);

  # --- write-back journal replay -------------------------------------------------
  # For each inode, the highest journalSeq committed under `journal` (0: none).
  journalApplied @34 (journal :UInt64, inodes :List(UInt64)) -> (seqs :List(UInt64));
  # The client has replayed or discarded its journal: drop what the metadata node
  # recorded for it (applied seqs and stored replies of that client id).
  forgetJournal @35 (journal :UInt64) -> ();

  # Returns once every change acknowledged so far is on the metadata node's
  # disk (fsync, fsyncdir). Other calls are answered when their transaction
  # is committed, whose last commit an OS crash of the metadata host could undo
  # until the next sync (at most ~0.5 s later).
  sync @36 () -> (status :Status);

  # --- absorbed namespace operations (docs/consistency.md) ---------------------
  # Hands out `count` (at most 65536) fresh inode numbers, [first, first+count),
  # for the client to name the files it creates in its delegated directories.
  reserveInodes @37 (sessionId :UInt64, count :UInt32) -> (status :Status, first :UInt64, count :UInt32);
  # Applies `ops` in order, each in its own transaction of one group commit, and
  # answers when they are durable: one status per op. An op whose OpId was
  # applied before gets its stored status. A failing op does not stop the ones
  # after it. At most 4096 ops per call.
  applyOps @38 (sessionId :UInt64, ops :List(NamespaceOp)) -> (statuses :List(Status));
  # mkdir that also delegates the new directory to the calling session: until
  # another session touches it (which first recalls it: ClientCallback.flush
  # with the directory's inode), the client may absorb changes inside it.
  mkdirDelegated @39 (sessionId :UInt64, parent :UInt64, name :Data, mode :UInt32, caller :Caller, op :OpId) -> (status :Status, attr :Attr);

  # Cold tiering (DESIGN §8, `dfsctl tier`). coldChunks pages through the chunk
  # table from after `after` (empty: the start): referenced chunks last read
  # before `beforeNs` whose tier level is below `belowLevel`. It looks at no more
  # than `max` x 16 records per call; `next` continues, `eof` says the table ended.
  coldChunks @40 (beforeNs :Int64, belowLevel :UInt8, after :Data, max :UInt32) -> (status :Status, chunks :List(ChunkInfo), next :Data, eof :Bool);
  # Replaces chunk records by re-encoded ones whose fragments the caller already
  # stored (same id, plaintext size, k, m and nodes; see RetierChunk). One status
  # per entry: ok, NOT_FOUND when the chunk is gone, BUSY when its record is no
  # longer `old` (then the new fragments are orphans for the garbage collector).
  retierChunks @41 (chunks :List(RetierChunk)) -> (statuses :List(Status));
}

# One re-encoded chunk. `new` equal to `old` except `generation` unchanged and the
# same fragments: only records that the chunk was tried at `level` (recompressing
# did not pay), so later runs skip it.
struct RetierChunk {
  old @0 :ChunkInfo;     # the record as coldChunks returned it
  new @1 :ChunkInfo;     # the re-encoded chunk (generation != old's when re-encoded)
  level @2 :UInt8;       # zstd level it was tried at
}

# One namespace change a client acknowledged to its application before the
# metadata node applied it ("absorbed": see docs/consistency.md). The client
# journals it, then sends it in order with the others through Meta.applyOps.
# Only ever made inside directories delegated to the client (mkdir with
# `delegate`), whose every name the client knows; so it cannot fail for a
# reason the client did not check, except a crash or a bug, which is logged.
struct NamespaceOp {
  op @0 :OpId;           # exactly-once, as for the single calls
  timeNs @1 :Int64;      # the client's clock at the change: times it sets
  caller @2 :Caller;
  union {
    # A regular file, directory or symlink named parent/name with the inode
    # number `ino` from Meta.reserveInodes, times = timeNs. `open`: the session
    # holds the new file open (as Meta.create). Directories are delegated.
    create @3 :NewEntry;
    setattr @4 :SetAttrOp;        # never a size change; times explicit
    unlink @5 :EntryOp;           # a non-directory
    rmdir @6 :EntryOp;
    rename @7 :RenameOp;
    release @8 :UInt64;           # the session closes its handle of this inode
    # The session opens (without truncating) a file it made in a directory
    # delegated to it, as Meta.open; a dfs-meta without it refuses the op.
    open @9 :OpenOp;
  }
}

struct OpenOp {
  ino @0 :UInt64;
  write @1 :Bool;      # opened for writing (its commits come before others' opens)
}

struct NewEntry {
  parent @0 :UInt64;
  name @1 :Data;
  mode @2 :UInt32;     # type and permission bits (S_IFREG, S_IFDIR or S_IFLNK)
  ino @3 :UInt64;
  target @4 :Data;     # symlinks
  open @5 :Bool;
}

struct SetAttrOp {
  ino @0 :UInt64;
  set @1 :SetAttr;
}

struct EntryOp {
  parent @0 :UInt64;
  name @1 :Data;
}

struct RenameOp {
  parent @0 :UInt64;
  name @1 :Data;
  newParent @2 :UInt64;
  newName @3 :Data;
  flags @4 :UInt32;
}

interface StorageGateway {
  hello @0 (version :UInt32, peer :Text) -> (storage :Storage, serverVersion :UInt32);
}

# A fragment id is 33 bytes: the 32-byte chunk id followed by the fragment index.
struct Fragment {
  id @0 :Data;
  data @1 :Data;
  checksum @2 :UInt64;   # XXH3-64 of data; the node rejects a mismatch
}

interface Storage {
  # Stores fragments; returns only after they are durable (fdatasync, group commit).
  # Storing an id that exists with the same checksum is a no-op.
  put @0 (fragments :List(Fragment)) -> (status :Status);
  # Returns a fragment after verifying its checksum on disk. A checksum mismatch
  # returns code io (and is counted) rather than the bad bytes.
  get @1 (id :Data) -> (status :Status, fragment :Fragment);
  delete @2 (ids :List(Data)) -> (status :Status, deleted :UInt32);
  # Fragment ids stored before `beforeNs`, in id order after `after`, for orphan GC.
  list @3 (after :Data, max :UInt32, beforeNs :Int64) -> (ids :List(Data), eof :Bool);
  info @4 () -> (uuid :Text, capacityBytes :UInt64, usedBytes :UInt64, fragments :UInt64, corruptFragments :UInt64);

  # Several fragments in one call: what a reader wants from this node for many chunks
  # at once. `results[i]` answers `ids[i]` exactly as `get` would (same checksum check
  # on disk, a corrupt fragment is counted and answered io without bytes). `status` is
  # for the call as a whole: invalid, with `results` empty and nothing read, when
  # `ids` holds more than 1024 ids, an id that is not 33 bytes, or fragments whose
  # data (lengths from the node's index) add up to more than 32 MiB; ask for fewer.
  # A node older than this method answers with an `unimplemented` exception; the
  # caller then uses `get` per fragment.
  getMany @5 (ids :List(Data)) -> (status :Status, results :List(GetResult));

  # One answer of getMany.
  struct GetResult {
    status @0 :Status;      # ok, notFound (not stored here) or io (corrupt or unreadable)
    fragment @1 :Fragment;  # set only when status is ok; id equals the requested id
  }
}
