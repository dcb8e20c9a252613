// dfs-passthrough: a benchmark baseline, not part of DFS. It mirrors SOURCE_DIR at
// MOUNTPOINT through FUSE doing nothing but the syscalls on the source files — the fastest
// a FUSE file system can be on this machine. `dfs-bench fs --fuse-baseline` measures it next
// to a DFS mount, so that the FUSE-bound targets of DESIGN.md §9 ("FUSE ceiling": libfuse's
// passthrough_hp over ext4) are judged as ratios taken in the same run.
//
//   dfs-passthrough SOURCE_DIR MOUNTPOINT [-f] [-d] [-o opt,...]
//
// Built like passthrough_hp: the low-level API, the multi-threaded loop, an inode table of
// O_PATH descriptors with lookup counts, *at() syscalls, 86400 s entry/attribute timeouts,
// the kernel's writeback cache, keep_cache, readdirplus, splice. It assumes it is the only
// writer of SOURCE_DIR (the long timeouts rely on that) and acts with its own credentials:
// new files belong to the user running it, and the kernel checks permissions
// (default_permissions). See README.md in this folder.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tools/dfs-passthrough/passthrough_ops.h"

namespace {

constexpr int kMaxIdleThreads = 16;  // as dfs-fuse

struct Arguments {
  std::string source;
  std::string mountpoint;
  std::vector<std::string> fuseOptions;  // -o, passed to libfuse
  bool foreground = false;
  bool debug = false;
};

void printUsage(FILE* out) {
  fprintf(out,
          "usage: dfs-passthrough SOURCE_DIR MOUNTPOINT [-f] [-d] [-o opt,...]\n"
          "A bare FUSE passthrough of SOURCE_DIR at MOUNTPOINT: the benchmark baseline of\n"
          "`dfs-bench fs --fuse-baseline`. Nothing else may write SOURCE_DIR while mounted.\n"
          "  -f          stay in the foreground\n"
          "  -d          FUSE debug output (implies -f)\n"
          "  -o OPTIONS  FUSE mount options (e.g. allow_other)\n"
          "Unmount with `fusermount3 -u MOUNTPOINT` (or SIGTERM).\n");
}

// Returns false (after printing why) on a bad command line.
bool parseArguments(int argc, char** argv, Arguments* out) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-f") {
      out->foreground = true;
    } else if (arg == "-d") {
      out->debug = out->foreground = true;
    } else if (arg == "-o" && i + 1 < argc) {
      out->fuseOptions.push_back(argv[++i]);
    } else if (arg.rfind("-o", 0) == 0 && arg.size() > 2) {
      out->fuseOptions.push_back(arg.substr(2));
    } else if (!arg.empty() && arg[0] == '-') {
      fprintf(stderr, "dfs-passthrough: unknown option %s\n", arg.c_str());
      return false;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) {
    fprintf(stderr, "dfs-passthrough: need SOURCE_DIR and MOUNTPOINT\n");
    return false;
  }
  out->source = positional[0];
  out->mountpoint = positional[1];
  return true;
}

// An O_PATH descriptor per known inode: a large tree needs many descriptors.
void raiseDescriptorLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) perror("dfs-passthrough: setrlimit(RLIMIT_NOFILE)");
}

// A mount option value with libfuse's separators escaped.
std::string escapeOption(const std::string& value) {
  std::string escaped;
  for (char ch : value) {
    if (ch == ',' || ch == '\\') escaped += '\\';
    escaped += ch;
  }
  return escaped;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
    printUsage(stdout);
    return 0;
  }
  Arguments args;
  if (!parseArguments(argc, argv, &args)) {
    printUsage(stderr);
    return 2;
  }
  char source[PATH_MAX], mountpoint[PATH_MAX];
  if (!realpath(args.source.c_str(), source)) {
    fprintf(stderr, "dfs-passthrough: %s: %s\n", args.source.c_str(), strerror(errno));
    return 1;
  }
  if (!realpath(args.mountpoint.c_str(), mountpoint)) {
    fprintf(stderr, "dfs-passthrough: %s: %s\n", args.mountpoint.c_str(), strerror(errno));
    return 1;
  }
  raiseDescriptorLimit();
  // The kernel has applied the caller's umask to the modes it sends; ours must not again.
  umask(0);

  int rootFd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct stat rootStat;
  if (rootFd < 0 || fstat(rootFd, &rootStat) != 0) {
    fprintf(stderr, "dfs-passthrough: %s: %s\n", source, strerror(errno));
    return 1;
  }
  dfs::passthrough::PassthroughContext context;
  context.inodes = std::make_unique<dfs::passthrough::InodeTable>(rootFd, rootStat);

  std::string mountOptions =
      "default_permissions,fsname=" + escapeOption(source) + ",subtype=dfs-passthrough";
  for (const auto& option : args.fuseOptions) mountOptions += "," + option;
  std::vector<std::string> fuseArgv = {argv[0], "-o", mountOptions};
  if (args.debug) fuseArgv.push_back("-d");
  std::vector<char*> cargv;
  for (auto& arg : fuseArgv) cargv.push_back(arg.data());
  fuse_args fuseArgs = FUSE_ARGS_INIT(int(cargv.size()), cargv.data());

  const fuse_lowlevel_ops& ops = dfs::passthrough::passthroughOps();
  fuse_session* session = fuse_session_new(&fuseArgs, &ops, sizeof(ops), &context);
  if (!session) {
    fprintf(stderr, "dfs-passthrough: invalid FUSE options: %s\n", mountOptions.c_str());
    return 1;
  }
  int result = 1;
  if (fuse_set_signal_handlers(session) != 0) {
    fprintf(stderr, "dfs-passthrough: cannot install signal handlers\n");
  } else {
    if (fuse_session_mount(session, mountpoint) != 0) {
      fprintf(stderr, "dfs-passthrough: cannot mount at %s\n", mountpoint);
    } else {
      // Forks into the background unless -f; the mount is live before the parent exits.
      fuse_daemonize(args.foreground ? 1 : 0);
      fuse_loop_config config;
      memset(&config, 0, sizeof(config));
      config.clone_fd = 0;
      config.max_idle_threads = kMaxIdleThreads;
      // A signal (SIGTERM/SIGINT/SIGHUP) or an unmount ends the loop cleanly.
      result = fuse_session_loop_mt(session, &config) < 0 ? 1 : 0;
      fuse_session_unmount(session);
    }
    fuse_remove_signal_handlers(session);
  }
  fuse_session_destroy(session);
  fuse_opt_free_args(&fuseArgs);
  return result;
}
