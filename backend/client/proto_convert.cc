#include "backend/client/proto_convert.h"

#include <cstring>

namespace dfs {

Attr attrFromProto(proto::Attr::Reader r) {
  Attr a;
  a.ino = r.getIno();
  a.mode = r.getMode();
  a.nlink = r.getNlink();
  a.uid = r.getUid();
  a.gid = r.getGid();
  a.rdev = r.getRdev();
  a.size = r.getSize();
  a.atimeNs = r.getAtimeNs();
  a.mtimeNs = r.getMtimeNs();
  a.ctimeNs = r.getCtimeNs();
  a.dataVersion = r.getDataVersion();
  a.storedBytes = r.getStoredBytes();
  return a;
}

DirEntry dirEntryFromProto(proto::DirEntry::Reader r) {
  DirEntry e;
  e.name = toString(r.getName());
  e.ino = r.getIno();
  e.mode = r.getMode();
  if (r.getHasAttr()) e.attr = attrFromProto(r.getAttr());
  return e;
}

VolumeInfo volumeFromProto(proto::VolumeInfo::Reader r) {
  VolumeInfo v;
  v.id = r.getId();
  v.name = r.getName().cStr();
  v.rootIno = r.getRootIno();
  v.ecK = r.getEcK();
  v.ecM = r.getEcM();
  v.chunkMin = r.getChunkMin();
  v.chunkAvg = r.getChunkAvg();
  v.chunkMax = r.getChunkMax();
  v.compressionLevel = r.getCompressionLevel();
  v.inlineThreshold = r.getInlineThreshold();
  return v;
}

bool chunkIdFromData(capnp::Data::Reader data, ChunkId* id) {
  if (data.size() != id->size()) return false;
  memcpy(id->data(), data.begin(), id->size());
  return true;
}

Extent extentFromProto(proto::Extent::Reader r) {
  Extent e;
  e.fileOffset = r.getFileOffset();
  e.length = r.getLength();
  switch (r.which()) {
    case proto::Extent::HOLE: e.kind = Extent::Kind::kHole; break;
    case proto::Extent::CHUNK:
      e.kind = Extent::Kind::kChunk;
      if (!chunkIdFromData(r.getChunk().getId(), &e.chunk)) e.kind = Extent::Kind::kHole;
      e.chunkOffset = r.getChunk().getOffset();
      break;
    case proto::Extent::INLINE:
      e.kind = Extent::Kind::kInline;
      e.inlineData = toString(r.getInline());
      break;
  }
  return e;
}

void extentToProto(const Extent& e, proto::Extent::Builder b) {
  b.setFileOffset(e.fileOffset);
  b.setLength(e.length);
  switch (e.kind) {
    case Extent::Kind::kHole: b.setHole(); break;
    case Extent::Kind::kChunk: {
      auto c = b.initChunk();
      c.setId(asData(e.chunk));
      c.setOffset(e.chunkOffset);
      break;
    }
    case Extent::Kind::kInline: b.setInline(asData(e.inlineData)); break;
  }
}

ChunkPlacement chunkFromProto(proto::ChunkInfo::Reader r) {
  ChunkPlacement c;
  chunkIdFromData(r.getId(), &c.layout.id);
  c.layout.plainSize = r.getPlainSize();
  c.layout.storedSize = r.getStoredSize();
  c.layout.compressed = r.getCompression() == proto::ChunkInfo::Compression::ZSTD;
  c.layout.k = r.getK();
  c.layout.m = r.getM();
  c.layout.fragmentSize = r.getFragmentSize();
  for (auto sum : r.getFragmentChecksums()) c.layout.checksums.push_back(sum);
  for (auto node : r.getNodes()) c.nodes.push_back(node);
  c.generation = r.getGeneration();
  return c;
}

void chunkToProto(const ChunkPlacement& c, proto::ChunkInfo::Builder b) {
  b.setId(asData(c.layout.id));
  b.setPlainSize(c.layout.plainSize);
  b.setStoredSize(c.layout.storedSize);
  b.setCompression(c.layout.compressed ? proto::ChunkInfo::Compression::ZSTD
                                       : proto::ChunkInfo::Compression::NONE);
  b.setK(uint8_t(c.layout.k));
  b.setM(uint8_t(c.layout.m));
  b.setFragmentSize(c.layout.fragmentSize);
  auto nodes = b.initNodes(c.nodes.size());
  for (size_t i = 0; i < c.nodes.size(); ++i) nodes.set(i, c.nodes[i]);
  auto sums = b.initFragmentChecksums(c.layout.checksums.size());
  for (size_t i = 0; i < c.layout.checksums.size(); ++i) sums.set(i, c.layout.checksums[i]);
  b.setGeneration(c.generation);
}

void setAttrToProto(const SetAttrRequest& s, proto::SetAttr::Builder b) {
  b.setMode(s.mode);
  b.setUid(s.uid);
  b.setGid(s.gid);
  b.setSize(s.size);
  b.setAtimeNs(s.atimeNs);
  b.setMtimeNs(s.mtimeNs);
  b.setSetMode(s.setMode);
  b.setSetUid(s.setUid);
  b.setSetGid(s.setGid);
  b.setSetSize(s.setSize);
  b.setSetAtime(s.setAtime);
  b.setSetMtime(s.setMtime);
  b.setAtimeNow(s.atimeNow);
  b.setMtimeNow(s.mtimeNow);
  b.setCtimeNs(s.ctimeNs);
}

void callerToProto(const Caller& c, proto::Caller::Builder b) {
  b.setUid(c.uid);
  b.setGid(c.gid);
  b.setPid(c.pid);
}

}  // namespace dfs
