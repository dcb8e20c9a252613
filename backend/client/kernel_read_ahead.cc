#include "backend/client/kernel_read_ahead.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace dfs {

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo (octal).
std::string unescapeOctal(std::string_view field) {
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && octal(field[i + 1]) && octal(field[i + 2]) &&
        octal(field[i + 3])) {
      out.push_back(char((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0')));
      i += 3;
      continue;
    }
    out.push_back(field[i]);
  }
  return out;
}

std::vector<std::string_view> splitSpaces(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t end = line.find(' ', pos);
    if (end == std::string_view::npos) end = line.size();
    if (end > pos) fields.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
  return fields;
}

}  // namespace

std::optional<std::string> mountDeviceId(std::string_view mountinfo, const std::string& mountpoint) {
  std::optional<std::string> found;
  size_t pos = 0;
  while (pos < mountinfo.size()) {
    size_t end = mountinfo.find('\n', pos);
    if (end == std::string_view::npos) end = mountinfo.size();
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ..."
    auto fields = splitSpaces(mountinfo.substr(pos, end - pos));
    pos = end + 1;
    if (fields.size() < 5 || fields[2].find(':') == std::string_view::npos) continue;
    if (unescapeOctal(fields[4]) == mountpoint) found = std::string(fields[2]);
  }
  return found;
}

Status setKernelReadAhead(const std::string& mountpoint, uint64_t bytes,
                          const std::string& procMountinfo, const std::string& sysfsRoot) {
  std::ifstream in(procMountinfo);
  if (!in) return Status::error(Code::IO, "cannot read " + procMountinfo);
  std::stringstream text;
  text << in.rdbuf();
  auto device = mountDeviceId(text.str(), mountpoint);
  if (!device) return Status::error(Code::NOT_FOUND, mountpoint + " is not in " + procMountinfo);
  std::string path = sysfsRoot + "/class/bdi/" + *device + "/read_ahead_kb";
  std::ofstream out(path);
  if (out) out << (bytes / 1024) << "\n";
  if (!out) return Status::error(Code::IO, "cannot write " + path + ": " + strerror(errno));
  return {};
}

}  // namespace dfs
