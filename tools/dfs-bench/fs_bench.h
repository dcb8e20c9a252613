#pragma once

// `dfs-bench fs --target DIR [--baseline DIR ...]`: file-system benchmarks of a mounted
// DFS volume next to local baselines measured in the same run (docs/benchmarks.md).
int runFsBench(int argc, char** argv);
