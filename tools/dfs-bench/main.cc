// dfs-bench: one binary, one subcommand per benchmark family.
#include <cstdio>
#include <cstring>

#include "tools/dfs-bench/datapath_bench.h"
#if __has_include("tools/dfs-bench/fs_bench.h")
#include "tools/dfs-bench/fs_bench.h"
#define DFS_BENCH_HAVE_FS 1
#endif

namespace {

int usage(FILE* out) {
  std::fprintf(out,
               "usage: dfs-bench <command> [options]   (dfs-bench <command> --help)\n"
               "commands:\n"
               "  datapath     single-core MB/s of hashing, chunking, zstd, erasure coding\n"
               "  chunksizes   dedup ratio and speed of candidate FastCDC chunk sizes\n"
#ifdef DFS_BENCH_HAVE_FS
               "  fs           file-system benchmarks of a mounted volume vs local baselines\n"
#endif
  );
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage(stderr);
  const char* command = argv[1];
  // Subcommands see argv starting at their own name, which the option parser skips.
  if (std::strcmp(command, "datapath") == 0) return runDatapathBench(argc - 1, argv + 1);
  if (std::strcmp(command, "chunksizes") == 0) return runChunkSizesBench(argc - 1, argv + 1);
#ifdef DFS_BENCH_HAVE_FS
  if (std::strcmp(command, "fs") == 0) return runFsBench(argc - 1, argv + 1);
#endif
  if (std::strcmp(command, "help") == 0 || std::strcmp(command, "--help") == 0) {
    usage(stdout);
    return 0;
  }
  std::fprintf(stderr, "dfs-bench: unknown command '%s'\n", command);
  return usage(stderr);
}
