// dfs-fuse: mounts a DFS volume. See fuse/README.md and docs/mount-options.md.
//
//   dfs-fuse META_HOST:PORT:/VOLUME MOUNTPOINT [-f] [-o opt,...]
//
// Startup order matters for the mount helper: without -f the process forks
// first (before any thread exists), the child connects to dfs-meta, mounts the
// volume and the FUSE file system, and only then tells the waiting parent to
// exit 0; on failure the parent prints the child's reason and exits non-zero,
// so `mount` fails with a clear message.
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "backend/client/client.h"
#include "backend/client/kernel_read_ahead.h"
#include "backend/client/mount_options.h"
#include "backend/common/http_server.h"
#include "backend/common/logging.h"
#include "backend/common/metrics.h"
#include "fuse/fuse_ops.h"

namespace {

constexpr int kMaxIdleThreads = 16;

// Pipe from the daemon child to the waiting parent: one status byte
// (0 = mounted) followed by an error message.
struct StartupPipe {
  int fd = -1;
  void report(int code, const std::string& message) {
    if (fd < 0) return;
    char c = char(code);
    ssize_t ignored = ::write(fd, &c, 1);
    if (!message.empty()) ignored = ::write(fd, message.data(), message.size());
    (void)ignored;
    ::close(fd);
    fd = -1;
  }
};

// Parent side: waits for the child's report and exits with it.
[[noreturn]] void waitForChild(int readFd, pid_t child) {
  char code = 1;
  std::string message;
  ssize_t n = ::read(readFd, &code, 1);
  if (n == 1) {
    char buf[4096];
    while ((n = ::read(readFd, buf, sizeof(buf))) > 0) message.append(buf, size_t(n));
  } else {
    int status = 0;
    waitpid(child, &status, 0);
    message = "dfs-fuse: the mount process died during startup";
    code = 1;
  }
  if (!message.empty()) fprintf(stderr, "%s\n", message.c_str());
  _exit(code == 0 ? 0 : 1);
}

void switchToSyslog() {
  try {
    auto logger = spdlog::syslog_logger_mt("dfs-fuse-syslog", "dfs-fuse", LOG_PID, LOG_DAEMON);
    logger->set_level(spdlog::default_logger()->level());
    spdlog::set_default_logger(logger);
  } catch (...) {
  }
}

void detachStdio() {
  int null = ::open("/dev/null", O_RDWR);
  if (null < 0) return;
  dup2(null, 0);
  dup2(null, 1);
  dup2(null, 2);
  if (null > 2) ::close(null);
}

}  // namespace

int main(int argc, char** argv) {
  // glibc gives each thread that allocates its own arena. The FUSE workers,
  // the flusher and the RPC thread would each keep freed write buffers
  // resident: measured 610-710 MiB peak with 4 concurrent writers, 437 MiB
  // with MALLOC_ARENA_MAX=2 (docs/benchmarks.md). An environment setting wins.
  if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
  // Reads free decoded chunks and fragments of ~1 MiB; glibc then raises its mmap
  // threshold and trims the freed heap, so the writes that follow took their
  // fragment buffers from freshly faulted, zeroed pages: 67-73k page faults and
  // ~40 % more CPU per GiB written after a 1 GiB read, against under 1k without
  // the read (docs/benchmarks.md, session 11). Fixed thresholds keep up to 64 MiB
  // of freed heap per arena for reuse. Blocks of 8 MiB and more come from the
  // block pool, not malloc. An environment setting wins.
  // Not under AddressSanitizer: its allocator replaces glibc's, and glibc's
  // malloc_trim (DataPath, when idle) crashed on the arena these calls set up.
#if !defined(__SANITIZE_ADDRESS__)
  if (!getenv("MALLOC_MMAP_THRESHOLD_") && !getenv("MALLOC_TRIM_THRESHOLD_") &&
      !(getenv("GLIBC_TUNABLES") && strstr(getenv("GLIBC_TUNABLES"), "malloc"))) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
  }
#endif
  auto parsed = dfs::parseMountOptions(argc, argv);
  if (!parsed.ok()) {
    fprintf(stderr, "dfs-fuse: %s\n%s", parsed.status().message.c_str(),
            dfs::mountUsage("dfs-fuse").c_str());
    return 2;
  }
  dfs::MountOptions opts = parsed.value();
  if (!opts.help && !opts.version) {
    // Absolute, because the daemon changes to / before serving (and unmounts at exit).
    char resolved[PATH_MAX];
    if (!realpath(opts.mountpoint.c_str(), resolved)) {
      fprintf(stderr, "dfs-fuse: mount point %s: %s\n", opts.mountpoint.c_str(), strerror(errno));
      return 1;
    }
    opts.mountpoint = resolved;
  }
  if (opts.help) {
    printf("%s", dfs::mountUsage("dfs-fuse").c_str());
    return 0;
  }
  if (opts.version) {
    printf("dfs-fuse 0.1.0 (protocol %u, libfuse %d)\n", dfs::proto::PROTOCOL_VERSION, fuse_version());
    return 0;
  }
  auto logged = dfs::initLogging("dfs-fuse", opts.logLevel, opts.logJson);
  if (!logged.ok()) {
    fprintf(stderr, "dfs-fuse: %s\n", logged.message.c_str());
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);

  StartupPipe startup;
  if (!opts.foreground) {
    int fds[2];
    if (pipe(fds) != 0) {
      perror("dfs-fuse: pipe");
      return 1;
    }
    pid_t child = fork();
    if (child < 0) {
      perror("dfs-fuse: fork");
      return 1;
    }
    if (child > 0) {
      ::close(fds[1]);
      waitForChild(fds[0], child);
    }
    ::close(fds[0]);
    startup.fd = fds[1];
    setsid();
  }

  auto fail = [&](const std::string& message) {
    // In the foreground the log is the report; a daemon hands it to the parent.
    if (startup.fd < 0) spdlog::error("{}", message);
    startup.report(1, "dfs-fuse: " + message);
    return 1;
  };

  dfs::ClientOptions clientOptions;
  clientOptions.meta.address = opts.source.metaAddress;
  clientOptions.meta.volume = opts.source.volume;
  char host[256] = "?";
  gethostname(host, sizeof(host) - 1);
  clientOptions.meta.clientName = std::string("dfs-fuse@") + host + ":" + std::to_string(getpid());
  clientOptions.meta.opTimeoutMs = opts.opTimeoutMs;
  // The client answers the kernel's repeated getattr/getxattr for as long as
  // the kernel itself may cache attributes.
  clientOptions.meta.cacheTtlNs = int64_t(opts.attrTimeoutSec * 1e9);
  clientOptions.data.totalDirtyLimit = opts.dirtyLimitBytes;
  clientOptions.data.fileDirtyLimit = std::min<uint64_t>(32ull << 20, opts.dirtyLimitBytes / 4);
  clientOptions.cacheDir = opts.cacheDir;
  clientOptions.absorb = opts.absorb;
  if (clientOptions.cacheDir.empty()) {
    const char* home = getenv("HOME");
    const char* xdg = getenv("XDG_CACHE_HOME");
    std::string base = geteuid() == 0 ? "/var/cache/dfs"
                       : xdg && *xdg  ? std::string(xdg) + "/dfs"
                       : home         ? std::string(home) + "/.cache/dfs"
                                      : "/tmp/dfs-cache-" + std::to_string(geteuid());
    clientOptions.cacheDir = dfs::defaultCacheDir(base, opts.source, opts.mountpoint);
  }
  dfs::Client client(clientOptions);
  dfs::Status started = client.start();
  if (!started.ok()) {
    return fail("cannot mount volume '" + opts.source.volume + "' from " +
                opts.source.metaAddress + ": " + started.message);
  }
  // /metrics is served by a thread of its own: started after the fork (threads do not
  // survive it) and after the volume mounted, so a bad address fails the mount clearly.
  std::unique_ptr<dfs::HttpServer> metricsServer;
  dfs::MetricsCallbackHandle dirtyGauge, filesGauge;
  if (!opts.metricsListen.empty()) {
    dirtyGauge = dfs::metrics().gaugeCallback(
        "dfs_fuse_cache_dirty_bytes", "Bytes written by applications, not yet committed", {},
        [&client]() { return double(client.data().dirtyBytes()); });
    filesGauge = dfs::metrics().gaugeCallback(
        "dfs_fuse_files_tracked", "Inodes the client keeps per-file state for (kernel-known or uncommitted)", {},
        [&client]() { return double(client.data().trackedFiles()); });
    metricsServer = std::make_unique<dfs::HttpServer>();
    dfs::Status served = metricsServer->start(opts.metricsListen);
    if (!served.ok()) {
      client.stop();
      return fail(served.message);
    }
  }
  dfs::VolumeInfo volume = client.meta().volume();
  spdlog::info("mounted volume '{}' (id {}, root inode {}, EC {}+{}, chunks {}/{}/{}, inline <= {})",
               volume.name, volume.id, volume.rootIno, volume.ecK, volume.ecM, volume.chunkMin,
               volume.chunkAvg, volume.chunkMax, volume.inlineThreshold);

  dfs::FuseContext context;
  context.client = &client;
  context.rootIno = volume.rootIno;
  context.entryTimeoutSec = opts.entryTimeoutSec;
  context.attrTimeoutSec = opts.attrTimeoutSec;
  context.directWrites = opts.directWrites;
  context.delegatedTimeoutSec = opts.absorb ? opts.delegatedTimeoutSec : 0;

  std::string mountOpts = "default_permissions,fsname=dfs:" + opts.source.metaAddress + "/" +
                          opts.source.volume + ",subtype=dfs";
  if (geteuid() == 0) mountOpts += ",allow_other";
  for (const auto& o : opts.fuseOptions) {
    if (o == "allow_other" && geteuid() == 0) continue;
    if (o == "default_permissions") continue;
    mountOpts += "," + o;
  }
  std::vector<std::string> fuseArgv = {argv[0], "-o", mountOpts};
  if (opts.debug) fuseArgv.push_back("-d");
  std::vector<char*> cargv;
  for (auto& a : fuseArgv) cargv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(int(cargv.size()), cargv.data());

  fuse_session* session = fuse_session_new(&args, &dfs::fuseOps(), sizeof(fuse_lowlevel_ops), &context);
  if (!session) return fail("invalid FUSE options: " + mountOpts);
  if (fuse_set_signal_handlers(session) != 0) {
    fuse_session_destroy(session);
    return fail("cannot install signal handlers");
  }
  if (fuse_session_mount(session, opts.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(session);
    fuse_session_destroy(session);
    return fail("cannot mount FUSE file system at " + opts.mountpoint);
  }
  if (opts.readAheadBytes > 0) {
    dfs::Status ra = dfs::setKernelReadAhead(opts.mountpoint, opts.readAheadBytes);
    if (ra.ok()) {
      spdlog::info("kernel read-ahead of {}: {} KiB", opts.mountpoint, opts.readAheadBytes / 1024);
    } else {
      spdlog::warn("kernel read-ahead left at its default: {}", ra.message);
    }
  }
  // From now on other clients' changes reach the kernel's caches (the client
  // core's own caches are dropped from the start). Client::stop() removes the
  // sink before the session is unmounted.
  context.session = session;
  client.setInvalidationSink(
      [&context](const dfs::InvalidationBatch& batch) { dfs::invalidateKernel(context, batch); });
  spdlog::info("serving {} at {}", opts.source.metaAddress + ":/" + opts.source.volume,
               opts.mountpoint);
  if (!opts.foreground) {
    switchToSyslog();
    if (chdir("/") != 0) spdlog::warn("chdir / failed");
    detachStdio();
    startup.report(0, "");
  }

  fuse_loop_config config;
  memset(&config, 0, sizeof(config));
  config.clone_fd = 0;
  config.max_idle_threads = kMaxIdleThreads;
  int loopResult = fuse_session_loop_mt(session, &config);

  spdlog::info("unmounting {}", opts.mountpoint);
  // No new kernel notifications once no worker answers requests any more.
  context.session = nullptr;
  dfs::Status stopped = client.stop();  // commits buffered writes, ends the session
  if (!stopped.ok()) spdlog::error("flushing at exit failed: {}", stopped.message);
  fuse_session_unmount(session);
  fuse_remove_signal_handlers(session);
  fuse_session_destroy(session);
  fuse_opt_free_args(&args);
  // A signal (SIGTERM/SIGINT) ending the loop is a clean exit.
  if (loopResult < 0) {
    spdlog::error("FUSE loop failed: {}", strerror(-loopResult));
    return 1;
  }
  return stopped.ok() ? 0 : 1;
}
