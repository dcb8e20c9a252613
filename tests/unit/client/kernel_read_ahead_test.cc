#include "backend/client/kernel_read_ahead.h"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

using dfs::mountDeviceId;
using dfs::setKernelReadAhead;

namespace {
const char* kMountinfo =
    "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "41 22 0:39 / /var/tmp/c4/mnt rw,nosuid,nodev shared:20 - fuse.dfs-fuse dfs rw,user_id=0\n"
    "42 22 0:40 / /mnt/with\\040space rw - fuse.dfs-fuse dfs rw\n"
    "43 41 0:41 / /var/tmp/c4/mnt rw - fuse.dfs-fuse dfs rw\n"
    "garbage line\n";
}  // namespace

TEST_CASE("kernel read-ahead: the mount's device id comes from mountinfo") {
  CHECK(mountDeviceId(kMountinfo, "/") == std::optional<std::string>("254:1"));
  // Mounted twice: the later mount is on top.
  CHECK(mountDeviceId(kMountinfo, "/var/tmp/c4/mnt") == std::optional<std::string>("0:41"));
  CHECK(mountDeviceId(kMountinfo, "/mnt/with space") == std::optional<std::string>("0:40"));
  CHECK_FALSE(mountDeviceId(kMountinfo, "/var/tmp/c4"));
  CHECK_FALSE(mountDeviceId("", "/"));
}

TEST_CASE("kernel read-ahead: written to the mount's bdi in KiB, errors reported") {
  char tmpl[] = "/tmp/dfs-readahead-XXXXXX";
  std::filesystem::path root = mkdtemp(tmpl);
  std::ofstream(root / "mountinfo") << kMountinfo;
  std::filesystem::create_directories(root / "class/bdi/0:41");
  REQUIRE(setKernelReadAhead("/var/tmp/c4/mnt", 1u << 20, (root / "mountinfo").string(),
                             root.string())
              .ok());
  std::ifstream in(root / "class/bdi/0:41/read_ahead_kb");
  std::string value;
  in >> value;
  CHECK(value == "1024");
  auto missing = setKernelReadAhead("/nowhere", 1u << 20, (root / "mountinfo").string(), root.string());
  CHECK(missing.code == dfs::Code::NOT_FOUND);
  auto noBdi = setKernelReadAhead("/mnt/with space", 1u << 20, (root / "mountinfo").string(),
                                  root.string());
  CHECK(noBdi.code == dfs::Code::IO);
  std::filesystem::remove_all(root);
}
