// Data-path benchmarks (docs/chunking.md records their results):
//   dfs-bench datapath [--size=256M] [--repeat=5]
//       single-core MB/s of each per-chunk stage next to memcpy.
//   dfs-bench chunksizes [--corpus=/usr/lib,/usr/share] [--limit=300M]
//       dedup ratio, chunking speed and chunk count for candidate FastCDC sizes
//       over two versions of a file sample.
// argv[0] is the subcommand name and is skipped.
#pragma once

int runDatapathBench(int argc, char** argv);
int runChunkSizesBench(int argc, char** argv);
