// File-system benchmarks: metadata ops/s, sequential write and cold read, untar of a
// ~9,000-file tree. Every figure is the median of --repeat runs and is printed next
// to the same figure for each baseline directory (local disk, tmpfs) measured in the
// same run, as a ratio — absolute numbers drift on shared machines. With
// --fuse-baseline, one more baseline is a bare FUSE passthrough (tools/dfs-passthrough)
// mounted for the run: the "FUSE ceiling" of DESIGN.md §9.
#include "tools/dfs-bench/fs_bench.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
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

void cleanUp();

[[noreturn]] void die(const std::string& message) {
  fprintf(stderr, "dfs-bench fs: %s\n", message.c_str());
  cleanUp();
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

void dropPageCache(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) die("open " + path + ": " + strerror(errno));
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

// With --drop-caches (root only): every clean page-cache page is dropped before a
// sequential write and before its cold read, for each target alike. On these VMs, a page cache that
// keeps growing into guest memory the host has not backed yet makes each later write slower
// (docs/benchmarks.md, session 10), whatever the file system.
bool dropAllCaches() {
  sync();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd < 0) return false;
  bool ok = write(fd, "1", 1) == 1;
  close(fd);
  return ok;
}

// Sequential write of `bytes` (1 MiB writes, fsync at the end), then a cold read after
// dropping the page cache for the file. The data is generated before the clock starts:
// the random generator alone would take ~1 CPU-second per GiB of the 2 cores measured.
// `source`: "memory" writes straight from a buffer of anonymous memory filled just
// before; "tmpfs" writes the data from a file in /dev/shm read 1 MiB at a time, as
// `dd if=/dev/shm/... bs=1M conv=fsync` does. On these VMs, the fresh gigabyte of
// anonymous memory (and what earlier runs freed) slows every target's write by 15-25 %
// (docs/benchmarks.md, session 11); a tmpfs file is memory the guest already holds.
// `backingDir`, for a FUSE passthrough, is the source directory behind `dir`: the file is
// cached there too, and that cache is dropped as well.
void sequential(const std::string& dir, const std::string& backingDir, uint64_t bytes,
                const std::string& source, bool dropCaches, Measures& out) {
  std::string path = dir + "/seq-bench.bin";
  constexpr size_t kBlock = 1 << 20;
  bytes = (bytes + kBlock - 1) / kBlock * kBlock;
  if (bytes > (8ull << 30)) die("--size above 8G: the data is held in memory");
  std::mt19937_64 rng(std::random_device{}());  // fresh data each run: no dedup shortcut
  std::vector<char> buffer(kBlock);
  auto fill = [&](char* data, size_t size) {
    auto* words = reinterpret_cast<uint64_t*>(data);
    for (size_t i = 0; i < size / 8; ++i) words[i] = rng();
  };
  std::vector<char> memory;
  std::string sourcePath;
  int sourceFd = -1;
  if (source == "tmpfs") {
    sourcePath = "/dev/shm/dfs-bench-source-" + std::to_string(getpid());
    sourceFd = open(sourcePath.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (sourceFd < 0) die("create " + sourcePath + ": " + strerror(errno));
    unlink(sourcePath.c_str());  // gone with the descriptor, even if we die
    for (uint64_t done = 0; done < bytes; done += kBlock) {
      fill(buffer.data(), kBlock);
      if (pwrite(sourceFd, buffer.data(), kBlock, off_t(done)) != ssize_t(kBlock)) {
        die("write " + sourcePath + " failed (is /dev/shm big enough?)");
      }
    }
  } else if (source == "memory") {
    memory.resize(bytes);
    fill(memory.data(), bytes);
  } else {
    die("--source must be memory or tmpfs");
  }
  if (dropCaches && !dropAllCaches()) {
    die("--drop-caches: cannot write /proc/sys/vm/drop_caches (root only)");
  }
  auto t = Clock::now();
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die("create " + path + ": " + strerror(errno));
  for (uint64_t done = 0; done < bytes; done += kBlock) {
    const char* block = memory.empty() ? buffer.data() : memory.data() + done;
    if (sourceFd >= 0 && pread(sourceFd, buffer.data(), kBlock, off_t(done)) != ssize_t(kBlock)) {
      die("read " + sourcePath + " failed");
    }
    if (write(fd, block, kBlock) != ssize_t(kBlock)) die("write failed");
  }
  if (fsync(fd) != 0) die("fsync failed");
  close(fd);
  if (sourceFd >= 0) close(sourceFd);
  out.samples["seq write MB/s"].push_back(bytes / 1e6 / secondsSince(t));
  dropPageCache(path);
  if (!backingDir.empty()) dropPageCache(backingDir + "/seq-bench.bin");
  // A cold read finds nothing cached anywhere: for DFS that includes the storage
  // nodes' page cache, which buffered extent appends used to leave full of the
  // fragments just written (docs/benchmarks.md, session 15).
  if (dropCaches && !dropAllCaches()) {
    die("--drop-caches: cannot write /proc/sys/vm/drop_caches (root only)");
  }
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

// `backingDir`: a FUSE passthrough's source directory behind `dir`, synced too (libfuse
// has no syncfs operation, so `sync -f` on the passthrough mount reaches no disk).
void untar(const std::string& dir, const std::string& backingDir, const std::string& tar,
           Measures& out) {
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
  if (!backingDir.empty()) run("sync -f '" + backingDir + "'");
  out.samples["untar+sync s"].push_back(secondsSince(t));
  run("rm -rf '" + dest + "'");
}

// True if `path` is a mount point now (read from /proc/self/mountinfo: a stat() of the
// mount point could block on a FUSE daemon that is going away).
bool isMountPoint(const std::string& path) {
  std::ifstream mounts("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, root, mountPoint;
    if (fields >> id >> parent >> device >> root >> mountPoint && mountPoint == path) return true;
  }
  return false;
}

// The --fuse-baseline: dfs-passthrough serving a fresh directory under /var/tmp at a
// mount point next to it, for the duration of the run. stop() always runs: at the end,
// and from die(); the daemon also gets SIGTERM (and unmounts) should dfs-bench itself
// be killed (PR_SET_PDEATHSIG).
class FuseBaseline {
 public:
  // Dies (after cleaning up) if the mount does not come up within 10 s.
  void start(const std::string& binary) {
    char root[] = "/var/tmp/dfs-bench-fuse-XXXXXX";
    if (!mkdtemp(root)) die(std::string("mkdtemp: ") + strerror(errno));
    root_ = root;
    source_ = root_ + "/source";
    mountPoint_ = root_ + "/mnt";
    if (mkdir(source_.c_str(), 0755) != 0 || mkdir(mountPoint_.c_str(), 0755) != 0) {
      die("cannot create " + source_ + ": " + strerror(errno));
    }
    pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) die(std::string("fork: ") + strerror(errno));
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(1);
      int null = open("/dev/null", O_RDWR);
      if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);  // the benchmark's table stays alone on stdout
      }
      execl(binary.c_str(), binary.c_str(), source_.c_str(), mountPoint_.c_str(), "-f",
            static_cast<char*>(nullptr));
      fprintf(stderr, "dfs-bench fs: cannot run %s: %s\n", binary.c_str(), strerror(errno));
      _exit(127);
    }
    for (int waited = 0; !isMountPoint(mountPoint_); waited += 20) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        die(binary + " exited before the mount came up");
      }
      if (waited > 10000) die(binary + " did not mount " + mountPoint_ + " within 10 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    fprintf(stderr, "fuse-passthrough: %s serves %s at %s\n", binary.c_str(), source_.c_str(),
            mountPoint_.c_str());
  }

  // Unmounts, ends the daemon, removes the directories. Safe to call twice; never dies.
  void stop() {
    if (root_.empty()) return;
    unmount();
    if (pid_ > 0) {
      // Unmounted, the daemon leaves its loop and exits; otherwise it is told to.
      if (!waitExit(std::chrono::seconds(5))) {
        kill(pid_, SIGTERM);
        if (!waitExit(std::chrono::seconds(5))) {
          kill(pid_, SIGKILL);
          waitpid(pid_, nullptr, 0);
        }
      }
      pid_ = -1;
    }
    if (isMountPoint(mountPoint_)) {
      fprintf(stderr, "dfs-bench fs: %s is still mounted; leaving %s\n", mountPoint_.c_str(),
              root_.c_str());
    } else if (system(("rm -rf '" + root_ + "'").c_str()) != 0) {
      fprintf(stderr, "dfs-bench fs: cannot remove %s\n", root_.c_str());
    }
    root_.clear();
  }

  const std::string& mountPoint() const { return mountPoint_; }
  const std::string& sourceDir() const { return source_; }

 private:
  // fusermount3 -u, again a second later (the mount may still be busy), then lazily.
  void unmount() {
    const char* attempts[] = {"-u", "-u", "-uz"};
    for (int i = 0; i < 3 && isMountPoint(mountPoint_); ++i) {
      if (i == 1) std::this_thread::sleep_for(std::chrono::seconds(1));
      if (i == 2) fprintf(stderr, "dfs-bench fs: lazy unmount of %s\n", mountPoint_.c_str());
      std::string command = std::string("fusermount3 ") + attempts[i] + " '" + mountPoint_ + "'";
      if (i < 2) command += " 2>/dev/null";
      if (system(command.c_str()) == 0) return;
    }
  }

  bool waitExit(std::chrono::seconds limit) {
    auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  std::string root_;  // the temporary directory holding source_ and mountPoint_
  std::string source_;
  std::string mountPoint_;
  pid_t pid_ = -1;  // the dfs-passthrough process
};

// What the end of the run, or die() before it, must undo.
struct Leftovers {
  FuseBaseline* fuseBaseline = nullptr;  // mounted by this process
  std::string workDir;                   // the tar and its tree
};
Leftovers leftovers;

void cleanUp() {
  // Taken first, so that a die() during the cleanup does not come back to it.
  FuseBaseline* baseline = std::exchange(leftovers.fuseBaseline, nullptr);
  std::string workDir = std::exchange(leftovers.workDir, "");
  if (baseline) baseline->stop();
  if (!workDir.empty() && system(("rm -rf '" + workDir + "'").c_str()) != 0) {
    fprintf(stderr, "dfs-bench fs: cannot remove %s\n", workDir.c_str());
  }
}

// The dfs-passthrough binary for --fuse-baseline[=PATH]: PATH, or the one next to this
// executable (both land in the build's bin/ folder). Empty if the option is off.
std::string fuseBaselineBinary(const std::string& value) {
  if (value.empty() || value == "false" || value == "0" || value == "no" || value == "off") {
    return "";
  }
  std::string binary = value;
  if (value == "true" || value == "1" || value == "yes" || value == "on") {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) die(std::string("readlink /proc/self/exe: ") + strerror(errno));
    std::string exe(self, size_t(n));
    binary = exe.substr(0, exe.rfind('/') + 1) + "dfs-passthrough";
  }
  if (access(binary.c_str(), X_OK) != 0) {
    die("--fuse-baseline: " + binary + ": " + strerror(errno) +
        " (build it: ninja dfs-passthrough; or give --fuse-baseline=PATH)");
  }
  return binary;
}

struct Target {
  std::string label;       // the column header
  std::string dir;         // where the figures are measured
  std::string backingDir;  // a FUSE passthrough's source directory behind `dir`, or empty
};

const std::vector<OptionSpec> kSpecs = {
    {"target", "", "directory on the mounted DFS volume"},
    {"baseline", "/var/tmp",
     "comma-separated local directories to compare with (e.g. /var/tmp,/dev/shm)"},
    {"repeat", "3", "runs per figure (the median is reported)"},
    {"files", "2000", "files for the metadata ops"},
    {"size", "1G", "bytes for the sequential write/read"},
    {"tree-files", "9000", "files in the untar tree"},
    {"only", "", "comma-separated subset: meta,seq,untar"},
    {"source", "memory",
     "where the sequential write's data comes from: memory (a buffer filled just before) or "
     "tmpfs (a file in /dev/shm read 1 MiB at a time, like dd)"},
    {"drop-caches", "",
     "drop the page cache (/proc/sys/vm/drop_caches, root) before each sequential write and "
     "before its cold read",
     true},
    {"fuse-baseline", "",
     "also measure a bare FUSE passthrough, column 'fuse-passthrough' (DESIGN.md §9's FUSE "
     "ceiling): dfs-passthrough from dfs-bench's folder (or =PATH) over a temp dir in /var/tmp",
     true},
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
  bool dropCaches = options.getBool("drop-caches");
  std::string source = options.get("source");
  auto wanted = [&](const char* what) { return only.empty() || only.find(what) != std::string::npos; };

  std::vector<Target> targets = {{"dfs", options.get("target"), ""}};
  std::string list = options.get("baseline");
  for (size_t pos = 0; pos <= list.size();) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string dir = list.substr(pos, comma - pos);
    if (!dir.empty()) targets.push_back({dir, dir, ""});
    pos = comma + 1;
  }
  std::string passthrough = fuseBaselineBinary(options.get("fuse-baseline"));
  FuseBaseline fuseBaseline;
  if (!passthrough.empty()) {
    leftovers.fuseBaseline = &fuseBaseline;
    fuseBaseline.start(passthrough);
    targets.push_back({"fuse-passthrough", fuseBaseline.mountPoint(), fuseBaseline.sourceDir()});
  }
  char work[] = "/var/tmp/dfs-bench-XXXXXX";
  if (!mkdtemp(work)) die("mkdtemp failed");
  leftovers.workDir = work;
  std::string tar = wanted("untar") ? makeTar(work, treeFiles) : "";

  std::map<std::string, Measures> results;
  for (int r = 0; r < repeat; ++r) {
    // Interleave targets within each repeat so drift affects them alike.
    for (const Target& target : targets) {
      std::string name = "/dfs-bench-" + std::to_string(getpid());
      std::string sub = target.dir + name;
      std::string backingSub = target.backingDir.empty() ? "" : target.backingDir + name;
      Measures& measures = results[target.label];
      if (mkdir(sub.c_str(), 0755) != 0) die("cannot create " + sub + ": " + strerror(errno));
      if (wanted("meta")) metadataOps(sub, files, measures);
      if (wanted("seq")) sequential(sub, backingSub, bytes, source, dropCaches, measures);
      if (wanted("untar")) untar(sub, backingSub, tar, measures);
      rmdir(sub.c_str());
      fprintf(stderr, "run %d/%d done on %s\n", r + 1, repeat, target.label.c_str());
    }
  }
  cleanUp();

  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  printf("dfs-bench fs: median of %d runs, %ld cores; ratio = dfs / baseline\n", repeat, cores);
  // Each baseline's column is at least as wide as its label.
  auto width = [&](size_t i) { return int(std::max<size_t>(14, targets[i].label.size())); };
  printf("%-16s %12s", "figure", "dfs");
  for (size_t i = 1; i < targets.size(); ++i) {
    printf(" %*s %8s", width(i), targets[i].label.c_str(), "ratio");
  }
  printf("\n");
  for (const auto& [figure, samples] : results["dfs"].samples) {
    double value = median(samples);
    printf("%-16s %12.1f", figure.c_str(), value);
    for (size_t i = 1; i < targets.size(); ++i) {
      double base = median(results[targets[i].label].samples[figure]);
      printf(" %*.1f %8.2f", width(i), base, base > 0 ? value / base : 0.0);
    }
    printf("\n");
  }
  // Every run's figure, in run order: the spread says how far to trust a median.
  for (const Target& target : targets) {
    for (const auto& [figure, samples] : results[target.label].samples) {
      printf("runs %-12s %-16s", target.label.c_str(), figure.c_str());
      for (double v : samples) printf(" %.1f", v);
      printf("\n");
    }
  }
  return 0;
}
