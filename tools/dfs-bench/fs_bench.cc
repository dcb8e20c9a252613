// File-system benchmarks: metadata ops/s, sequential write and cold read, untar of a
// ~9,000-file tree. Every figure is the median of --repeat runs and is printed next
// to the same figure for each baseline directory (local disk, tmpfs) measured in the
// same run, as a ratio — absolute numbers drift on shared machines.
#include "tools/dfs-bench/fs_bench.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backend/common/options.h"

namespace dfs {
namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

[[noreturn]] void die(const std::string& message) {
  fprintf(stderr, "dfs-bench fs: %s\n", message.c_str());
  exit(1);
}

void run(const std::string& command) {
  if (system(command.c_str()) != 0) die("command failed: " + command);
}

void writeFile(const std::string& path, const char* data, size_t size) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die("create " + path + ": " + strerror(errno));
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) die("write " + path + ": " + strerror(errno));
    done += size_t(n);
  }
  close(fd);
}

struct Measures {
  std::map<std::string, std::vector<double>> samples;  // name -> per-repeat values
};

// Metadata: create N empty files, stat them, rename them, unlink them (ops/s each).
void metadataOps(const std::string& dir, int count, Measures& out) {
  std::string base = dir + "/meta-bench";
  mkdir(base.c_str(), 0755);
  auto name = [&](int i, const char* prefix) { return base + "/" + prefix + std::to_string(i); };
  auto t = Clock::now();
  for (int i = 0; i < count; ++i) {
    int fd = open(name(i, "f").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) die("create: " + std::string(strerror(errno)));
    close(fd);
  }
  out.samples["create ops/s"].push_back(count / secondsSince(t));
  t = Clock::now();
  struct stat st;
  for (int i = 0; i < count; ++i) {
    if (stat(name(i, "f").c_str(), &st) != 0) die("stat failed");
  }
  out.samples["stat ops/s"].push_back(count / secondsSince(t));
  t = Clock::now();
  for (int i = 0; i < count; ++i) {
    if (rename(name(i, "f").c_str(), name(i, "g").c_str()) != 0) die("rename failed");
  }
  out.samples["rename ops/s"].push_back(count / secondsSince(t));
  t = Clock::now();
  for (int i = 0; i < count; ++i) {
    if (unlink(name(i, "g").c_str()) != 0) die("unlink failed");
  }
  out.samples["unlink ops/s"].push_back(count / secondsSince(t));
  rmdir(base.c_str());
}

// Sequential write of `bytes` (1 MiB writes, fsync at the end), then a cold read after
// dropping the page cache for the file. The data is generated before the clock starts:
// the random generator alone would take ~1 CPU-second per GiB of the 2 cores measured.
void sequential(const std::string& dir, uint64_t bytes, Measures& out) {
  std::string path = dir + "/seq-bench.bin";
  constexpr size_t kBlock = 1 << 20;
  bytes = (bytes + kBlock - 1) / kBlock * kBlock;
  if (bytes > (8ull << 30)) die("--size above 8G: the data is held in memory");
  std::vector<char> source(bytes);
  std::mt19937_64 rng(std::random_device{}());  // fresh data each run: no dedup shortcut
  auto* words = reinterpret_cast<uint64_t*>(source.data());
  for (size_t i = 0; i < bytes / 8; ++i) words[i] = rng();
  std::vector<char> buffer(kBlock);
  auto t = Clock::now();
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die("create " + path + ": " + strerror(errno));
  for (uint64_t done = 0; done < bytes; done += kBlock) {
    if (write(fd, source.data() + done, kBlock) != ssize_t(kBlock)) die("write failed");
  }
  if (fsync(fd) != 0) die("fsync failed");
  close(fd);
  out.samples["seq write MB/s"].push_back(bytes / 1e6 / secondsSince(t));
  fd = open(path.c_str(), O_RDONLY);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
  t = Clock::now();
  fd = open(path.c_str(), O_RDONLY);
  uint64_t total = 0;
  ssize_t n;
  while ((n = read(fd, buffer.data(), buffer.size())) > 0) total += uint64_t(n);
  close(fd);
  if (total != bytes) die("short read");
  out.samples["cold read MB/s"].push_back(bytes / 1e6 / secondsSince(t));
  unlink(path.c_str());
}

// A deterministic source-like tree of `files` files, tarred once.
std::string makeTar(const std::string& workDir, int files) {
  std::string root = workDir + "/tree";
  std::string tar = workDir + "/tree.tar";
  if (access(tar.c_str(), R_OK) == 0) return tar;
  mkdir(root.c_str(), 0755);
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> size(8.6, 1.3);  // median ~5 KiB, like source trees
  std::vector<std::string> dirs = {root};
  for (int i = 0; i < files / 25; ++i) {
    std::string d = dirs[rng() % dirs.size()] + "/d" + std::to_string(i);
    if (std::count(d.begin(), d.end(), '/') > 12) d = root + "/d" + std::to_string(i);
    mkdir(d.c_str(), 0755);
    dirs.push_back(d);
  }
  std::string text;
  const char* words[] = {"static ", "int ", "return ", "buffer", "(", ");\n", "struct ", "offset ", "{\n", "}\n"};
  while (text.size() < (4 << 20)) text += words[rng() % 10];
  for (int i = 0; i < files; ++i) {
    size_t n = std::min<size_t>(size_t(size(rng)), 1 << 20);
    size_t start = rng() % (text.size() - n);
    writeFile(dirs[rng() % dirs.size()] + "/f" + std::to_string(i) + ".c", text.data() + start, n);
  }
  run("tar -C '" + workDir + "' -cf '" + tar + "' tree");
  run("rm -rf '" + root + "'");
  return tar;
}

void untar(const std::string& dir, const std::string& tar, Measures& out) {
  std::string dest = dir + "/untar-bench";
  mkdir(dest.c_str(), 0755);
  auto t = Clock::now();
  // "untar s": until tar returns (DFS: everything journaled on the client, as
  // a local disk has it in its page cache). "untar+sync s": until everything
  // is durable: `sync DIR` fsyncs the directory (on DFS: all of the mount's
  // buffered bytes and absorbed changes committed, metadata synced), `sync -f`
  // the file system (local disk).
  run("tar -C '" + dest + "' -xf '" + tar + "'");
  out.samples["untar s"].push_back(secondsSince(t));
  run("sync '" + dest + "' && sync -f '" + dest + "'");
  out.samples["untar+sync s"].push_back(secondsSince(t));
  run("rm -rf '" + dest + "'");
}

const std::vector<OptionSpec> kSpecs = {
    {"target", "", "directory on the mounted DFS volume"},
    {"baseline", "/var/tmp", "comma-separated local directories to compare with (e.g. /var/tmp,/dev/shm)"},
    {"repeat", "3", "runs per figure (the median is reported)"},
    {"files", "2000", "files for the metadata ops"},
    {"size", "1G", "bytes for the sequential write/read"},
    {"tree-files", "9000", "files in the untar tree"},
    {"only", "", "comma-separated subset: meta,seq,untar"},
};

}  // namespace
}  // namespace dfs

int runFsBench(int argc, char** argv) {
  using namespace dfs;
  auto parsed = Options::parse(argc, argv, kSpecs);
  if (!parsed.ok()) die(parsed.status().message);
  const Options& options = parsed.value();
  if (options.helpRequested() || options.get("target").empty()) {
    printf("%s", Options::usage("dfs-bench fs", "Benchmarks a mounted DFS volume against local directories.", kSpecs).c_str());
    return options.helpRequested() ? 0 : 2;
  }
  int repeat = int(options.getInt("repeat").ok() ? options.getInt("repeat").value() : 3);
  int files = int(options.getInt("files").ok() ? options.getInt("files").value() : 2000);
  uint64_t bytes = options.getSize("size").ok() ? options.getSize("size").value() : (1ull << 30);
  int treeFiles = int(options.getInt("tree-files").ok() ? options.getInt("tree-files").value() : 9000);
  std::string only = options.get("only");
  auto wanted = [&](const char* what) { return only.empty() || only.find(what) != std::string::npos; };

  std::vector<std::pair<std::string, std::string>> targets = {{"dfs", options.get("target")}};
  std::string list = options.get("baseline");
  for (size_t pos = 0; pos <= list.size();) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string dir = list.substr(pos, comma - pos);
    if (!dir.empty()) targets.push_back({dir, dir});
    pos = comma + 1;
  }
  char work[] = "/var/tmp/dfs-bench-XXXXXX";
  if (!mkdtemp(work)) die("mkdtemp failed");
  std::string tar = wanted("untar") ? makeTar(work, treeFiles) : "";

  std::map<std::string, Measures> results;
  for (int r = 0; r < repeat; ++r) {
    // Interleave targets within each repeat so drift affects them alike.
    for (const auto& [label, dir] : targets) {
      std::string sub = dir + "/dfs-bench-" + std::to_string(getpid());
      if (mkdir(sub.c_str(), 0755) != 0) die("cannot create " + sub + ": " + strerror(errno));
      if (wanted("meta")) metadataOps(sub, files, results[label]);
      if (wanted("seq")) sequential(sub, bytes, results[label]);
      if (wanted("untar")) untar(sub, tar, results[label]);
      rmdir(sub.c_str());
      fprintf(stderr, "run %d/%d done on %s\n", r + 1, repeat, label.c_str());
    }
  }
  run(std::string("rm -rf '") + work + "'");

  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  printf("dfs-bench fs: median of %d runs, %ld cores; ratio = dfs / baseline\n", repeat, cores);
  printf("%-16s %12s", "figure", "dfs");
  for (size_t i = 1; i < targets.size(); ++i) printf(" %14s %8s", targets[i].first.c_str(), "ratio");
  printf("\n");
  for (const auto& [figure, samples] : results["dfs"].samples) {
    double value = median(samples);
    printf("%-16s %12.1f", figure.c_str(), value);
    for (size_t i = 1; i < targets.size(); ++i) {
      double base = median(results[targets[i].first].samples[figure]);
      printf(" %14.1f %8.2f", base, base > 0 ? value / base : 0.0);
    }
    printf("\n");
  }
  return 0;
}
