// Conversions between the wire types (protocol/dfs.capnp) and the client's plain
// value types (types.h). Pure functions, any thread.
#pragma once

#include <string_view>

#include "backend/client/types.h"
#include "protocol/dfs.capnp.h"

namespace dfs {

Attr attrFromProto(proto::Attr::Reader reader);
DirEntry dirEntryFromProto(proto::DirEntry::Reader reader);
VolumeInfo volumeFromProto(proto::VolumeInfo::Reader reader);
Extent extentFromProto(proto::Extent::Reader reader);
void extentToProto(const Extent& extent, proto::Extent::Builder builder);
ChunkPlacement chunkFromProto(proto::ChunkInfo::Reader reader);
void chunkToProto(const ChunkPlacement& chunk, proto::ChunkInfo::Builder builder);
void setAttrToProto(const SetAttrRequest& set, proto::SetAttr::Builder builder);
void callerToProto(const Caller& caller, proto::Caller::Builder builder);

inline capnp::Data::Reader asData(std::string_view bytes) {
  return capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(bytes.data()), bytes.size());
}
inline capnp::Data::Reader asData(const ChunkId& id) { return capnp::Data::Reader(id.data(), id.size()); }
inline std::string toString(capnp::Data::Reader data) {
  return std::string(reinterpret_cast<const char*>(data.begin()), data.size());
}
// False if `data` is not 32 bytes.
bool chunkIdFromData(capnp::Data::Reader data, ChunkId* id);

}  // namespace dfs
