// daxref: the FUSE daemon that serves a daxref filesystem.
//
// Start-up order matters. Everything a user can get wrong (options, SOURCE,
// mountpoint, a pool that is not ours or is mismatched with its metadata) is
// checked before the kernel mount, so a failed `daxref` or `mount -t
// fuse.daxref` prints one line and changes nothing. Going to the background
// happens first of all, by fork, because RocksDB's threads would not survive
// a fork made after the store is open; the parent waits on a pipe until the
// child has mounted (or failed) and exits with the child's verdict, printing
// what the child has to say on the way (that it waits for an earlier daemon).
#define FUSE_USE_VERSION 314
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "admin/control_server.h"
#include "admin/holder_scan.h"
#include "base/mutex.h"
#include "base/thread_annotations.h"
#include "fs/command_line.h"
#include "fs/filesystem.h"
#include "fs/kernel_channel.h"
#include "fs/lease_recovery.h"
#include "fs/lease_server.h"
#include "fs/lease_table.h"
#include "fs/logging.h"
#include "fs/poison_handler.h"
#include "fs/remount.h"
#include "fs/startup_checks.h"
#include "meta/superblock.h"
#include "meta/volume.h"
#include "pool/async_faults.h"
#include "pool/pool.h"

#ifndef DAXREF_VERSION
#define DAXREF_VERSION "unknown"
#endif

namespace daxref {
namespace {

// Tells the waiting parent how start-up goes, one line per message: a code
// (N: a note to print now, E: failed, K: mounted), then the text. In the
// foreground (no parent waiting, fd < 0) a note or failure is printed
// directly. Either way every note and failure is a line of the log: in the
// foreground a failure is printed as the command's one-line message, so the
// log file (if any) gets it through `file_log`.
class StartupReport {
 public:
  explicit StartupReport(int fd) : fd_(fd) {}
  void set_file_log(std::shared_ptr<spdlog::logger> l) { file_log_ = std::move(l); }
  ~StartupReport() {
    if (fd_ >= 0) close(fd_);
  }
  void Note(const std::string& msg) { Send('N', msg); }
  void Fail(const std::string& msg) { Send('E', msg); }
  void Ready() { Send('K', ""); }

 private:
  void Send(char code, std::string msg) {
    if (code == 'N') spdlog::warn("{}", msg);
    if (fd_ < 0) {
      // In the foreground a note is the log line above.
      if (code == 'E') {
        fprintf(stderr, "daxref: %s\n", msg.c_str());
        if (file_log_) file_log_->error("{}", msg);
      }
      return;
    }
    if (code == 'E') spdlog::error("{}", msg);
    for (char& c : msg)
      if (c == '\n') c = ' ';
    std::string m(1, code);
    m += msg;
    m += '\n';
    ssize_t ignored = write(fd_, m.data(), m.size());
    (void)ignored;
    if (code != 'N') {
      close(fd_);
      fd_ = -1;
    }
  }
  int fd_;
  std::shared_ptr<spdlog::logger> file_log_;
};

// Parent side of the background start: returns the exit code to use.
int WaitForChild(int fd, pid_t child) {
  std::string msg;
  char buf[512];
  ssize_t n;
  for (;;) {
    size_t nl;
    while ((nl = msg.find('\n')) != std::string::npos) {
      const std::string line = msg.substr(0, nl);
      msg.erase(0, nl + 1);
      if (line.empty()) continue;
      if (line[0] == 'K') {
        close(fd);
        return 0;
      }
      fprintf(stderr, "daxref: %s\n", line.c_str() + 1);
      if (line[0] == 'E') {
        close(fd);
        int status = 0;
        waitpid(child, &status, 0);
        return 1;
      }
    }
    n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  int status = 0;
  waitpid(child, &status, 0);
  fprintf(stderr, "daxref: daemon exited during start-up\n");
  return 1;
}

std::string Absolute(const std::string& p) {
  char buf[PATH_MAX];
  if (realpath(p.c_str(), buf)) return buf;
  // Unresolvable (a dead mount answers ENOTCONN): at least absolute, so
  // that it can be found in mountinfo.
  if (!p.empty() && p[0] != '/' && getcwd(buf, sizeof(buf))) return std::string(buf) + "/" + p;
  return p;
}

// Stores the timestamps of in-place overwrites and reads once a second, so a
// daemon that dies loses at most a second of them (the data itself is never
// lost); with lazytime, once a day (docs/design.md, "Access times").
class TimeFlusher {
 public:
  TimeFlusher(Volume* v, std::chrono::seconds period)
      : period_(period), thread_([this, v] { Run(v); }) {}
  ~TimeFlusher() {
    {
      MutexLock g(&mu_);
      stop_ = true;
    }
    cv_.SignalAll();
    thread_.join();
  }

 private:
  void Run(Volume* v) {
    MutexLock g(&mu_);
    bool failing = false;  // one line per run of failures, not one a second
    for (;;) {
      // A period, or until stopped; a wakeup may be spurious.
      const auto deadline = std::chrono::steady_clock::now() + period_;
      bool woken = true;
      while (!stop_ && woken) woken = cv_.WaitUntil(&mu_, deadline);
      if (stop_) return;
      Status s = v->FlushTimes();
      if (!s.ok() && !failing) spdlog::warn("storing file times failed: {}", s.message());
      failing = !s.ok();
    }
  }
  const std::chrono::seconds period_;
  Mutex mu_;  // held across FlushTimes, outside the Volume's locks
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Owns a FUSE session from creation to destruction.
struct SessionDeleter {
  void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};
using SessionPtr = std::unique_ptr<fuse_session, SessionDeleter>;

// The steps of Serve, in order. Each one that can fail reports the failure
// itself and returns false or null; Serve then returns 1, and the RAII
// owners it holds undo what the earlier steps did.

// The mountpoint and SOURCE exist and are directories.
bool CheckPaths(const CommandLine& cl, StartupReport* report) {
  struct stat st {};
  // A mount left by a daemon that was killed: detached if it is daxref's,
  // so that this mount does not land on top of a dead one.
  if (stat(cl.mountpoint.c_str(), &st) != 0 && errno == ENOTCONN) {
    Status s = ClearDeadMount(cl.mountpoint, [&](const std::string& m) { report->Note(m); });
    if (!s.ok()) {
      report->Fail(s.message());
      return false;
    }
  }
  if (stat(cl.mountpoint.c_str(), &st) != 0) {
    report->Fail("mountpoint " + cl.mountpoint + ": " + strerror(errno));
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    report->Fail("mountpoint " + cl.mountpoint + " is not a directory");
    return false;
  }
  if (stat(cl.source.c_str(), &st) != 0) {
    report->Fail("SOURCE " + cl.source + ": " + strerror(errno));
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    report->Fail(cl.source +
                 " is not a daxref filesystem (expected a directory made by mkfs.daxref)");
    return false;
  }
  return true;
}

// Maps and locks the pool. Runs before any thread exists (below).
std::unique_ptr<PoolMapping> OpenPool(const CommandLine& cl, StartupReport* report) {
  // Poison the kernel finds in the pool before anyone touches it is to be
  // reported now (BUS_MCEERR_AO), not at the next touch. The flag is per
  // thread and inherited: set before RocksDB, libfuse or anything else
  // starts a thread, so that whichever thread the kernel picks has it.
  if (Status mce = RequestEarlyMachineCheckNotice(); !mce.ok())
    spdlog::warn("no early notice of machine checks: {}", mce.message());
  // An earlier daemon of SOURCE may still be exiting (umount returns before
  // it has): say that this one waits, and for whom, unless the wait is over
  // within a moment (a remount right after umount: no news there).
  const std::string pool_path = PoolPath(cl.source);
  auto busy_after_grace = [&] {
    for (int waited_ms = 0; PoolLockBusy(pool_path); waited_ms += 50) {
      if (waited_ms >= 1000) return true;
      usleep(50 * 1000);
    }
    return false;
  };
  if (cl.lock_wait_ms > 0 && busy_after_grace()) {
    std::string holder = PoolLockHolder(pool_path);
    if (holder.empty()) holder = "another process";
    report->Note("waiting up to " + std::to_string(cl.lock_wait_ms / 1000) + " s (lock_wait) for " +
                 holder + " to let go of " + pool_path +
                 ": an earlier daemon of this filesystem still exiting, or still mounted");
  }
  auto pool = PoolMapping::Open(pool_path, cl.lock_wait_ms, cl.read_only);
  if (!pool.ok()) {
    report->Fail(pool.status().message());
    return nullptr;
  }
  if ((*pool)->used_backup_superblock()) {
    spdlog::warn("primary pool superblock is damaged; using the backup copy");
  } else if (std::string bad = BackupSuperblockProblem(pool_path); !bad.empty() && cl.read_only) {
    report->Note("the backup pool superblock (last block of " + pool_path + ") is damaged: " + bad +
                 "; a read-only mount leaves it so (a read-write mount rewrites it)");
  } else if (!bad.empty()) {
    // The primary is good, so the mount goes on, and opening the store
    // (which advances the generation in both copies) rewrites the backup;
    // but until now one more bad block would have left the pool
    // unreadable, and the admin is to know.
    report->Note("the backup pool superblock (last block of " + pool_path +
                 ") was damaged: " + bad + "; rewritten from the primary by this mount");
  }
  // A pool page its host filesystem cannot provide (full, cut short) is
  // ENOSPC or EIO for the request, never poison: one line each.
  (*pool)->set_host_fault_log([](const std::string& line) { spdlog::warn("{}", line); });
  return std::move(*pool);
}

std::unique_ptr<Volume> OpenVolume(const CommandLine& cl, PoolMapping* pool,
                                   StartupReport* report) {
  Volume::Options vopts;
  // A read-only Volume writes neither store nor pool (no generation advance).
  if (!cl.read_only) vopts.pool_path = PoolPath(cl.source);
  vopts.read_only = cl.read_only;
  vopts.log = [](const std::string& line) { spdlog::warn("{}", line); };
  auto volume = Volume::Open(MetaPath(cl.source), pool->superblock(), pool, vopts);
  if (!volume.ok()) {
    report->Fail(volume.status().message());
    return nullptr;
  }
  return std::move(*volume);
}

// The device's own list of bad blocks (real persistent memory): poison
// found while the filesystem was down. No process can hold a file yet.
void RecordDeviceBadBlocks(PoolMapping* pool, Volume* volume) {
  Status bb = pool->WalkBadBlocks([&](uint64_t off, uint64_t len) {
    uint64_t pb0 = off >> kBlockShift, pb1 = (off + len + kBlockSize - 1) >> kBlockShift;
    PoisonOutcome out;
    const uint64_t now = static_cast<uint64_t>(time(nullptr));
    Status s = volume->MarkBad(pb0, pb1, /*strict=*/false,
                               BadOrigin{BadOriginKind::kDevice, kNoUid, now}, &out);
    if (!s.ok())
      spdlog::error("recording the device's bad blocks {}..{}: {}", pb0, pb1 - 1, s.message());
    else if (out.added > 0)
      spdlog::warn(
          "the device reports pool blocks {}..{} bad: recorded as poison ({} owned by "
          "files)",
          pb0, pb1 - 1, out.owned);
    return true;
  });
  if (!bb.ok()) spdlog::warn("cannot read the device's bad blocks: {}", bb.message());
  if (volume->bad_blocks() > 0)
    spdlog::warn("{} pool blocks are poisoned (daxref-poison list)", volume->bad_blocks());
}

// Creates the FUSE session for fs and mounts it, with the kernel channel
// and the signal handlers in place.
SessionPtr Mount(const CommandLine& cl, Filesystem* fs, StartupReport* report) {
  std::vector<std::string> args_s = {"daxref"};
  if (cl.debug) args_s.push_back("-d");
  std::string opts = "fsname=" + cl.source + ",subtype=daxref";
  for (const auto& o : cl.fuse_options) opts += "," + o;
  args_s.push_back("-o");
  args_s.push_back(opts);
  std::vector<char*> argv;
  for (auto& s : args_s) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  SessionPtr se(fuse_session_new(&args, &Filesystem::Ops(), sizeof(fuse_lowlevel_ops), fs));
  // Parsing may have copied the arguments into memory of libfuse's; the
  // session keeps copies of what it needs.
  fuse_opt_free_args(&args);
  if (!se) {
    report->Fail("invalid mount options: " + opts);
    return nullptr;
  }
  fs->set_session(se.get());
  if (fuse_session_mount(se.get(), cl.mountpoint.c_str()) != 0) {
    report->Fail("cannot mount on " + cl.mountpoint);
    return nullptr;
  }
  if (InstallKernelChannel(se.get()) != 0) {
    fuse_session_unmount(se.get());
    report->Fail("cannot set up the kernel channel");
    return nullptr;
  }
  if (fuse_set_signal_handlers(se.get()) != 0) {
    fuse_session_unmount(se.get());
    report->Fail("cannot install signal handlers");
    return nullptr;
  }
  // HUP, INT and TERM unmount (libfuse's handlers above). What else would
  // end the daemon by default and leave the mount answering ENOTCONN is
  // ignored (daxref(8), "Signals").
  for (int sig : {SIGQUIT, SIGUSR1, SIGUSR2}) signal(sig, SIG_IGN);
  fs->set_mount(cl.mountpoint, MountDevice(cl.mountpoint));
  if (fs->dev() == 0)
    spdlog::warn(
        "cannot find the mount of {} in /proc/self/mountinfo: poison will not signal "
        "holders",
        cl.mountpoint);
  return se;
}

// Routes machine checks to the poison handler: those met while serving a
// request (the pool's fault sink) and those the kernel reports before anyone
// touched the page (the watcher). Null if the watcher could not start.
std::unique_ptr<AsyncFaultWatcher> RouteMachineChecks(PoolMapping* pool, Filesystem* fs,
                                                      PoisonHandler* poison) {
  // A machine check met while serving a request becomes EIO for it (the
  // pool's guard) and poison for its block, handled away from the request.
  pool->set_fault_sink([fs, poison](uint64_t pool_off) {
    fs->poison_worker().Post([poison, pool_off] { poison->MemoryFault(pool_off); });
  });
  // Poison the kernel reports before anyone touched it (BUS_MCEERR_AO)
  // takes the same path, from the watcher's thread through the same worker.
  AsyncFaultWatcher::Handlers on_async;
  on_async.fault = [fs, poison, pool](const void* addr) {
    uint64_t off = 0;
    if (!pool->PoolOffsetOf(addr, &off)) {
      // The kernel has unmapped that page of the daemon's own memory; the
      // next touch of it kills the daemon, as for any process.
      spdlog::critical("machine check reported in the daemon's memory at {}, outside the pool",
                       addr);
      return;
    }
    fs->poison_worker().Post([poison, off] { poison->AsyncMemoryFault(off); });
  };
  on_async.lost = [fs, poison](uint64_t lost) {
    fs->poison_worker().Post([poison, lost] { poison->DeviceBadBlocks(lost); });
  };
  auto async_faults = AsyncFaultWatcher::Start(std::move(on_async));
  if (!async_faults.ok()) {
    spdlog::error("asynchronous machine checks will not be handled: {}",
                  async_faults.status().message());
    return nullptr;
  }
  return std::move(*async_faults);
}

// Null if the control socket could not be set up: the daemon serves files
// without it. Bound before the mount appears (served after it: StartControl).
std::unique_ptr<ControlServer> BindControl(const CommandLine& cl) {
  if (cl.read_only && access(cl.source.c_str(), W_OK) != 0 && errno == EROFS) {
    // SOURCE on read-only media: there is nowhere to put the socket.
    spdlog::warn(
        "{} is on a read-only filesystem: no admin channel (daxref-poison cannot reach "
        "this daemon; machine checks are still handled)",
        cl.source);
    return nullptr;
  }
  auto control = ControlServer::Bind(cl.source);
  if (!control.ok()) {
    spdlog::error("no admin channel (daxref-poison cannot reach this daemon): {}",
                  control.status().message());
    return nullptr;
  }
  return std::move(*control);
}

// Null if the lease socket could not be set up: the daemon serves files
// without direct access. Bound before the mount appears (served after it).
std::unique_ptr<LeaseServer> BindLeases(const CommandLine& cl) {
  if (cl.read_only && access(cl.source.c_str(), W_OK) != 0 && errno == EROFS) {
    spdlog::warn("{} is on a read-only filesystem: no lease socket (no direct access)", cl.source);
    return nullptr;
  }
  auto server = LeaseServer::Bind(cl.source, cl.read_only);
  if (!server.ok()) {
    spdlog::error("no lease socket (no direct access): {}", server.status().message());
    return nullptr;
  }
  return std::move(*server);
}

// Leases a dead daemon left: their holders go before anything is served
// or any block reused (docs/dax.md, "Holders that go away").
bool RevokeLeftLeases(const CommandLine& cl, Volume* volume, StartupReport* report) {
  struct stat st {};
  if (stat(PoolPath(cl.source).c_str(), &st) != 0) {
    report->Fail(PoolPath(cl.source) + ": " + strerror(errno));
    return false;
  }
  Status s = RevokeRecordedLeases(volume, st.st_dev, st.st_ino,
                                  std::chrono::milliseconds(cl.dax_revoke_ms));
  if (!s.ok()) {
    report->Fail("leases of the last daemon: " + s.message());
    return false;
  }
  return true;
}

void StartControl(const CommandLine& cl, ControlServer* control, PoisonHandler* poison,
                  Filesystem* fs) {
  if (!control) return;
  control->set_log_destination(LogDestination(cl));
  control->Start(poison->service(), fs->volume(), [fs] { fs->Detach(); });
}

// In the background, stdin, stdout and stderr go to /dev/null once start-up
// has been reported.
void DetachStdio() {
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
  }
}

// Serves requests until unmount or a signal; libfuse's result.
int RunRequestLoop(const CommandLine& cl, fuse_session* se) {
  // Four request threads by default; docs/design.md ("Request threads")
  // has the measurements behind the number. -s or -o threads=1 for one.
  if (cl.threads <= 1) return fuse_session_loop(se);
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(cfg, 0);
  fuse_loop_cfg_set_idle_threads(cfg, cl.threads);
  fuse_loop_cfg_set_max_threads(cfg, cl.threads);
  int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  return rc;
}

int Serve(const CommandLine& cl, StartupReport* report) {
  if (!CheckPaths(cl, report)) return 1;
  std::unique_ptr<PoolMapping> pool = OpenPool(cl, report);
  if (!pool) return 1;
  std::unique_ptr<Volume> volume = OpenVolume(cl, pool.get(), report);
  if (!volume) return 1;
  if (!RevokeLeftLeases(cl, volume.get(), report)) return 1;
  RecordDeviceBadBlocks(pool.get(), volume.get());
  FilesystemOptions fs_opts;
  fs_opts.attr_timeout = cl.attr_timeout;
  fs_opts.entry_timeout = cl.entry_timeout;
  fs_opts.atime = cl.atime;
  // Before fs: it keeps a pointer to the table.
  LeaseTable leases(volume.get(), std::chrono::milliseconds(cl.dax_revoke_ms));
  Filesystem fs(pool.get(), volume.get(), fs_opts);
  std::unique_ptr<ControlServer> control = BindControl(cl);
  std::unique_ptr<LeaseServer> lease_server = BindLeases(cl);
  if (lease_server) fs.set_leases(&leases, lease_server->path());
  SessionPtr se = Mount(cl, &fs, report);
  if (!se) return 1;
  PoisonHandler poison(&fs, PoisonOptions{cl.poison_signal});
  std::unique_ptr<AsyncFaultWatcher> async_faults = RouteMachineChecks(pool.get(), &fs, &poison);
  StartControl(cl, control.get(), &poison, &fs);
  if (lease_server) lease_server->Start(&fs, &leases);
  spdlog::info("mounted {} on {} (pool {} blocks, uuid {}, {} granularity)", cl.source,
               cl.mountpoint, pool->superblock().block_count, UuidToString(pool->superblock().uuid),
               pool->granularity());
  report->Ready();
  if (!cl.foreground) DetachStdio();

  auto flusher = std::make_unique<TimeFlusher>(
      volume.get(), std::chrono::seconds(cl.atime.lazytime ? kRelatimeInterval : 1));
  int rc = RunRequestLoop(cl, se.get());

  // Every lease goes before the daemon lets go of the pool: no grant
  // starts any more, and the poll thread still reads the acknowledgements.
  if (lease_server) {
    lease_server->StopGrants();
    Status revoked = leases.RevokeAll("unmount");
    if (!revoked.ok()) spdlog::error("unmount: {}", revoked.message());
    lease_server.reset();
  }

  control.reset();
  flusher.reset();
  // Nothing posts to the poison worker once the watcher is gone.
  async_faults.reset();
  fs.StopWorkers();
  pool->set_fault_sink(nullptr);
  pool->set_host_fault_log(nullptr);
  fuse_remove_signal_handlers(se.get());
  fuse_session_unmount(se.get());
  spdlog::info("unmounted {}; closing the metadata store", cl.mountpoint);
  se.reset();
  // Order: the store closes (flushing its log) before the pool's lock goes.
  volume.reset();
  pool.reset();
  spdlog::info("daemon for {} exiting", cl.source);
  return rc == 0 ? 0 : 1;
}

}  // namespace
}  // namespace daxref

int main(int argc, char** argv) {
  using namespace daxref;
  auto parsed = ParseCommandLine(argc, argv);
  if (!parsed.ok()) {
    fprintf(stderr, "daxref: %s\nTry 'daxref --help' for more information.\n",
            parsed.status().message().c_str());
    return 2;
  }
  CommandLine cl = *parsed;
  if (cl.help) {
    fputs(Usage("daxref").c_str(), stdout);
    return 0;
  }
  if (cl.version) {
    // fuse_version() is major * 100 + minor (314 for 3.14).
    printf("daxref %s (libfuse %d.%d)\n", DAXREF_VERSION, fuse_version() / 100,
           fuse_version() % 100);
    return 0;
  }
  cl.source = Absolute(cl.source);
  cl.mountpoint = Absolute(cl.mountpoint);
  // mount -o remount: the running daemon switches; none is started.
  if (cl.remount) return Remount(cl);
  if (!cl.log_file.empty()) cl.log_file = Absolute(cl.log_file);

  int report_fd = -1;
  if (!cl.foreground) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
      perror("daxref: pipe");
      return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
      perror("daxref: fork");
      return 1;
    }
    if (pid > 0) {
      close(p[1]);
      return WaitForChild(p[0], pid);
    }
    close(p[0]);
    setsid();
    if (chdir("/") != 0) {
      // harmless: paths are absolute already
    }
    report_fd = p[1];
  }
  // What the daemon creates in SOURCE (the store's files) is its owner's
  // alone, as mkfs.daxref made SOURCE.
  umask(077);
  StartupReport report(report_fd);
  std::shared_ptr<spdlog::logger> file_log;
  Status logging = SetUpLogging(cl, &file_log);
  report.set_file_log(file_log);
  if (!logging.ok()) {
    report.Fail(logging.message());
    return 1;
  }
  return Serve(cl, &report);
}
