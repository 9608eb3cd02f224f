// The client library (libdaxref-dax.so.0, <daxref/dax.h>) and its preload
// mode (libdaxref-dax-preload.so.0) against a real mount (docs/dax.md, "The
// client library"; daxref_dax(3)): stores through a write lease reach the
// file, a read lease maps holes as zeros, a revocation leaves the mapping
// inaccessible and calls back, poison reaches the callback (or SIGBUS) at
// the right address, a dead daemon leaves every mapping inaccessible, and
// unmodified programs under the preload library map the pool directly and
// keep working after a revocation.
#include <daxref/dax.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "meta/superblock.h"
#include "test/fs_helpers.h"

using namespace daxref::test;

namespace {

const std::string kPreloadLib = DAXREF_TEST_DAX_PRELOAD_LIB;
const std::string kProbe = DAXREF_TEST_DAX_PRELOAD_PROBE;

// Whether the process can read the byte at p (process_vm_readv on itself:
// EFAULT for an inaccessible page, without a signal).
bool Readable(const void* p) {
  char c;
  iovec local{&c, 1};
  iovec remote{const_cast<void*>(p), 1};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == 1;
}

// Whether /proc/self/maps shows the page at p backed by the file `path`.
bool MapsFile(const void* p, const std::string& path) {
  struct stat st = StatOf(path);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto a = reinterpret_cast<uintptr_t>(p);
  while (std::getline(maps, line)) {
    uintptr_t lo = 0, hi = 0;
    unsigned maj = 0, min = 0;
    unsigned long off = 0, ino = 0;
    char perms[8];
    if (sscanf(line.c_str(), "%lx-%lx %7s %lx %x:%x %lu", &lo, &hi, perms, &off, &maj, &min,
               &ino) != 7)
      continue;
    if (a >= lo && a < hi) return makedev(maj, min) == st.st_dev && ino == st.st_ino;
  }
  return false;
}

// Whether process pid maps the file st (dev and inode) anywhere.
bool MapsOf(pid_t pid, const struct stat& st) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uintptr_t lo = 0, hi = 0;
    unsigned maj = 0, min = 0;
    unsigned long off = 0, ino = 0;
    char perms[8];
    if (sscanf(line.c_str(), "%lx-%lx %7s %lx %x:%x %lu", &lo, &hi, perms, &off, &maj, &min,
               &ino) == 7 &&
        makedev(maj, min) == st.st_dev && ino == st.st_ino)
      return true;
  }
  return false;
}

// Waits (bounded, 10 s) for pred; the last value.
template <typename Pred>
bool WaitFor(Pred pred) {
  for (int i = 0; i < 1000 && !pred(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return pred();
}

struct Revoked {
  std::atomic<int> calls{0};
  std::atomic<int> why{-1};
};

void OnRevoke(struct daxref_dax_map* m, daxref_dax_reason why, void* arg) {
  auto* r = static_cast<Revoked*>(arg);
  r->why = why;
  r->calls++;
}

struct Poisoned {
  std::atomic<int> calls{0};
  std::atomic<char*> addr{nullptr};
  std::atomic<size_t> length{0};
};

void OnPoison(struct daxref_dax_map* m, void* addr, size_t length, void* arg) {
  auto* p = static_cast<Poisoned*>(arg);
  p->addr = static_cast<char*>(addr);
  p->length = length;
  p->calls++;
}

// Touches p (a load) and says whether that raised SIGSEGV.
sigjmp_buf g_segv_jump;
void OnSigsegv(int) {
  siglongjmp(g_segv_jump, 1);
}
bool LoadFaults(const volatile char* p) {
  struct sigaction sa {
  }, old{};
  sa.sa_handler = &OnSigsegv;
  sigaction(SIGSEGV, &sa, &old);
  volatile bool faulted = true;
  if (sigsetjmp(g_segv_jump, 1) == 0) {
    (void)*p;
    faulted = false;
  }
  sigaction(SIGSEGV, &old, nullptr);
  return faulted;
}

std::atomic<int> g_bus_code{0};
std::atomic<void*> g_bus_addr{nullptr};
void OnSigbus(int, siginfo_t* si, void*) {
  g_bus_addr = si->si_addr;
  g_bus_code = si->si_code;
}

// A running program with a pipe to its stdin and one from its stdout.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    int in[2], out[2];
    REQUIRE(pipe2(in, O_CLOEXEC) == 0);
    REQUIRE(pipe2(out, O_CLOEXEC) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      std::vector<char*> a, e;
      for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      for (const auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      e.push_back(nullptr);
      execve(a[0], a.data(), e.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = fdopen(out[0], "r");
  }
  ~Child() {
    if (to_ >= 0) close(to_);
    if (from_ != nullptr) fclose(from_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  std::string Line() {
    char buf[256];
    if (fgets(buf, sizeof(buf), from_) == nullptr) return "";
    std::string s(buf);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }
  void Say(const std::string& s) { REQUIRE(write(to_, s.data(), s.size()) == ssize_t(s.size())); }
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return ExitCode(status);
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1;
  FILE* from_ = nullptr;
};

}  // namespace

TEST_CASE("dax client: stores through a write lease reach the file", "[dax][dax_client]") {
  MountedFs fs;
  const std::string f = fs.path("f");
  WriteFile(f, std::string(64 * kKiB, 'a'));
  Fd fd(f, O_RDWR);
  void* addr = nullptr;
  struct daxref_dax_map* m = daxref_dax_map(fd.get(), 4 * kKiB, 40 * kKiB, DAXREF_DAX_WRITE, &addr);
  INFO(strerror(errno));
  REQUIRE(m != nullptr);
  CHECK(daxref_dax_addr(m) == addr);
  CHECK(daxref_dax_length(m) == 40 * kKiB);
  CHECK(daxref_dax_revoked(m) == 0);
  // The pool itself, not the file through FUSE, is behind the mapping.
  CHECK(MapsFile(addr, daxref::PoolPath(fs.source())));

  // fd was opened before the lease (cached): reading it now puts the old
  // bytes in the kernel's cache, which only publish drops.
  CHECK(PreadAll(fd.get(), 4 * kKiB, 40 * kKiB) == std::string(40 * kKiB, 'a'));
  const std::string data = NonZeroBytes(1, 40 * kKiB);
  memcpy(addr, data.data(), data.size());
  REQUIRE(daxref_dax_persist(m, addr, data.size()) == 0);
  // publish: persisted, and the kernel's pages of the range dropped, so the
  // descriptor opened before the lease reads the new bytes too.
  REQUIRE(daxref_dax_publish(m, 4 * kKiB, 40 * kKiB) == 0);
  CHECK_SAME(PreadAll(fd.get(), 4 * kKiB, 40 * kKiB), data);
  {
    // Opened while the lease exists: uncached, sees stores at once.
    Fd other(f, O_RDONLY);
    memcpy(addr, "XY", 2);
    CHECK(PreadAll(other.get(), 4 * kKiB, 2) == "XY");
    CHECK(PreadAll(other.get(), 0, 4 * kKiB) == std::string(4 * kKiB, 'a'));
    memcpy(addr, data.data(), 2);
    REQUIRE(daxref_dax_persist(m, addr, 2) == 0);
  }
  CHECK(daxref_dax_unmap(m) == 0);
  CHECK_FALSE(Readable(addr));
  CHECK_SAME(ReadFile(f).substr(4 * kKiB, 40 * kKiB), data);

  // The arguments are checked; a read-only descriptor gets no write lease.
  CHECK(daxref_dax_map(fd.get(), 0, 0, DAXREF_DAX_WRITE, &addr) == nullptr);
  CHECK(errno == EINVAL);
  CHECK(daxref_dax_map(fd.get(), 0, 4096, 3, &addr) == nullptr);
  CHECK(errno == EINVAL);
  Fd ro(f, O_RDONLY);
  CHECK(daxref_dax_map(ro.get(), 0, 4096, DAXREF_DAX_WRITE, &addr) == nullptr);
  CHECK(errno == EBADF);
  Fd tmp("/tmp", O_RDONLY | O_DIRECTORY);
  CHECK(daxref_dax_map(tmp.get(), 0, 4096, DAXREF_DAX_READ, &addr) == nullptr);
  CHECK(errno == EINVAL);
  TempDir plain;
  WriteFile(plain.path() + "/g", std::string(kBlock, 'g'));
  Fd other_fs(plain.path() + "/g", O_RDWR);
  CHECK(daxref_dax_map(other_fs.get(), 0, 4096, DAXREF_DAX_READ, &addr) == nullptr);
  CHECK(errno == ENOTTY);
  // Past the file's size rounded up to a block.
  CHECK(daxref_dax_map(fd.get(), 60 * kKiB, 8 * kKiB, DAXREF_DAX_READ, &addr) == nullptr);
  CHECK(errno == ENXIO);
}

TEST_CASE("dax client: a user who is neither root nor the pool's owner gets EPERM",
          "[dax][dax_client]") {
  constexpr uid_t kAlice = 1001;
  constexpr gid_t kAliceGroup = 1001;
  MountedFs::Options o;
  o.mount_options = {"allow_other"};
  MountedFs fs(o);
  const std::string f = fs.path("f");
  WriteFile(f, std::string(64 * kKiB, 'a'));
  REQUIRE(chmod(f.c_str(), 0666) == 0);
  // Even with SOURCE open to all, the lease socket is not.
  const std::string parent = fs.source().substr(0, fs.source().rfind('/'));
  REQUIRE(chmod(parent.c_str(), 0755) == 0);
  REQUIRE(chmod(fs.source().c_str(), 0755) == 0);
  for (int flags : {DAXREF_DAX_READ, DAXREF_DAX_WRITE}) {
    const int rc = RunAs(kAlice, kAliceGroup, [&] {
      const int fd = open(f.c_str(), O_RDWR);
      if (fd < 0) return 100 + errno;
      void* addr = nullptr;
      if (daxref_dax_map(fd, 0, 4096, flags, &addr) != nullptr) return 3;
      return errno == EPERM ? 0 : 4;
    });
    CHECK(rc == 0);
  }
}

TEST_CASE("dax client: a read lease maps holes as zeros", "[dax][dax_client]") {
  MountedFs fs;
  DirtyFreeSpace(fs, 4 * kMiB);
  const std::string f = fs.path("sparse");
  const std::string block = NonZeroBytes(2, kBlock);
  {
    Fd w(f, O_RDWR | O_CREAT);
    REQUIRE(ftruncate(w.get(), 64 * kKiB) == 0);
    PwriteAll(w.get(), block, 16 * kKiB);
  }
  Fd fd(f, O_RDONLY);
  void* addr = nullptr;
  struct daxref_dax_map* m = daxref_dax_map(fd.get(), 0, 64 * kKiB, DAXREF_DAX_READ, &addr);
  INFO(strerror(errno));
  REQUIRE(m != nullptr);
  const std::string seen(static_cast<const char*>(addr), 64 * kKiB);
  CHECK(seen.substr(0, 16 * kKiB) == std::string(16 * kKiB, '\0'));
  CHECK(seen.substr(16 * kKiB, kBlock) == block);
  CHECK(seen.substr(20 * kKiB) == std::string(44 * kKiB, '\0'));
  CHECK(MapsFile(static_cast<char*>(addr) + 16 * kKiB, daxref::PoolPath(fs.source())));
  CHECK_FALSE(MapsFile(addr, daxref::PoolPath(fs.source())));
  CHECK(daxref_dax_persist(m, addr, 4096) == 0);  // nothing to do on a read lease
  CHECK(daxref_dax_unmap(m) == 0);
}

TEST_CASE("dax client: truncate revokes; the mapping is inaccessible and the callback runs",
          "[dax][dax_client]") {
  MountedFs fs;
  const std::string f = fs.path("f");
  WriteFile(f, std::string(64 * kKiB, 'a'));
  Fd fd(f, O_RDWR);
  void* addr = nullptr;
  struct daxref_dax_map* m = daxref_dax_map(fd.get(), 0, 64 * kKiB, DAXREF_DAX_WRITE, &addr);
  INFO(strerror(errno));
  REQUIRE(m != nullptr);
  Revoked rev;
  REQUIRE(daxref_dax_on_revoke(m, &OnRevoke, &rev) == 0);
  auto* p = static_cast<volatile char*>(addr);
  p[100] = 'z';
  REQUIRE(Readable(addr));
  REQUIRE_FALSE(LoadFaults(p + 4 * kKiB));
  // A child of fork has no part of the mapping (MADV_DONTFORK).
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) _exit(Readable(addr) ? 1 : 0);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(ExitCode(status) == 0);

  // The daemon revokes before the truncate: by the time it returns, the
  // mapping is gone (marked revoked, replaced) and the holder acknowledged.
  {
    Fd other(f, O_RDWR);
    REQUIRE(ftruncate(other.get(), 8 * kKiB) == 0);
  }
  CHECK(daxref_dax_revoked(m) == 1);
  CHECK_FALSE(Readable(addr));
  CHECK_FALSE(Readable(static_cast<char*>(addr) + 60 * kKiB));
  CHECK(LoadFaults(p + 4 * kKiB));
  CHECK_FALSE(MapsFile(addr, daxref::PoolPath(fs.source())));
  REQUIRE(WaitFor([&] { return rev.calls.load() > 0; }));
  CHECK(rev.calls == 1);
  CHECK(rev.why == DAXREF_DAX_REVOKED_TRUNCATE);
  CHECK(daxref_dax_persist(m, addr, 4096) == -1);
  CHECK(errno == ENOLINK);
  CHECK(daxref_dax_unmap(m) == 0);
  // The store made before the revocation is in the file.
  CHECK(ReadFile(f) == std::string(100, 'a') + "z" + std::string(8 * kKiB - 101, 'a'));
}

TEST_CASE("dax client: poison of a leased block reaches the holder at its address",
          "[dax][dax_client]") {
  // poison_signal=none: only the lease's poison message reaches this process.
  MountedFs::Options o;
  o.mount_options = {"poison_signal=none"};
  MountedFs fs(o);
  const std::string f = fs.path("f");
  WriteFile(f, std::string(64 * kKiB, 'a'));
  void* a1 = nullptr;
  void* a2 = nullptr;
  struct daxref_dax_map* with_cb;
  struct daxref_dax_map* without_cb;
  {
    Fd fd(f, O_RDWR);
    with_cb = daxref_dax_map(fd.get(), 0, 32 * kKiB, DAXREF_DAX_WRITE, &a1);
    INFO(strerror(errno));
    REQUIRE(with_cb != nullptr);
    without_cb = daxref_dax_map(fd.get(), 36 * kKiB, 28 * kKiB, DAXREF_DAX_WRITE, &a2);
    REQUIRE(without_cb != nullptr);
  }
  Poisoned got;
  REQUIRE(daxref_dax_on_poison(with_cb, &OnPoison, &got) == 0);

  RunResult r =
      Run({DAXREF_TEST_POISON, "inject", "--file", f, "--offset", "8192", "--length", "4096"});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  REQUIRE(WaitFor([&] { return got.calls.load() > 0; }));
  CHECK(got.addr.load() == static_cast<char*>(a1) + 8192);
  CHECK(got.length == 4096);
  CHECK(daxref_dax_revoked(with_cb) == 0);  // the lease stays

  // Without a callback: SIGBUS, BUS_MCEERR_AO, at the address in the mapping.
  struct sigaction sa {
  }, old{};
  sa.sa_sigaction = &OnSigbus;
  sa.sa_flags = SA_SIGINFO;
  REQUIRE(sigaction(SIGBUS, &sa, &old) == 0);
  r = Run({DAXREF_TEST_POISON, "inject", "--file", f, "--offset", std::to_string(48 * kKiB)});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(WaitFor([] { return g_bus_code.load() != 0; }));
  sigaction(SIGBUS, &old, nullptr);
  CHECK(g_bus_code == BUS_MCEERR_AO);
  CHECK(g_bus_addr.load() == static_cast<char*>(a2) + 12 * kKiB);
  CHECK(got.calls == 1);

  CHECK(daxref_dax_unmap(with_cb) == 0);
  CHECK(daxref_dax_unmap(without_cb) == 0);
}

TEST_CASE("dax client: when the daemon dies every mapping becomes inaccessible",
          "[dax][dax_client]") {
  MountedFs fs;
  const std::string f = fs.path("f");
  WriteFile(f, std::string(64 * kKiB, 'a'));
  void* addr = nullptr;
  struct daxref_dax_map* m;
  Revoked rev;
  {
    Fd fd(f, O_RDWR);
    m = daxref_dax_map(fd.get(), 0, 64 * kKiB, DAXREF_DAX_WRITE, &addr);
    INFO(strerror(errno));
    REQUIRE(m != nullptr);
  }
  REQUIRE(daxref_dax_on_revoke(m, &OnRevoke, &rev) == 0);
  REQUIRE(Readable(addr));
  fs.KillDaemon();
  REQUIRE(WaitFor([&] { return rev.calls.load() > 0; }));
  CHECK(rev.why == DAXREF_DAX_REVOKED_DAEMON_GONE);
  CHECK(daxref_dax_revoked(m) == 1);
  CHECK_FALSE(Readable(addr));
  CHECK(daxref_dax_unmap(m) == 0);
}

TEST_CASE("dax preload: xfs_io's shared mapping is the pool's, and its stores reach the file",
          "[dax][dax_preload]") {
  MountedFs fs;
  const std::string f = fs.path("f");
  WriteFile(f, std::string(64 * kKiB, 'a'));
  const std::string pool = daxref::PoolPath(fs.source());
  const std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/bin",
                                        "LD_PRELOAD=" + kPreloadLib};
  RunResult r = RunWithEnv(
      {"/usr/sbin/xfs_io", "-c", "mmap -w 0 64k", "-c", "mwrite -S 0x5a 0 64k", "-c", "msync", f},
      env);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(ReadFile(f) == std::string(64 * kKiB, '\x5a'));

  // The same commands from stdin, so that the mapping can be looked at while
  // xfs_io holds it: /proc/PID/maps shows the pool file, not f.
  Child x({"/usr/sbin/xfs_io", f}, env);
  x.Say("mmap -w 0 64k\nmwrite -S 0x33 0 64k\nmsync\n");
  const struct stat ps = StatOf(pool);
  CHECK(WaitFor([&] { return MapsOf(x.pid(), ps); }));
  x.Say("quit\n");
  CHECK(x.Wait() == 0);
  CHECK(ReadFile(f) == std::string(64 * kKiB, '\x33'));
}

TEST_CASE("dax preload: the mapping is the pool's, and an ordinary one after a revocation",
          "[dax][dax_preload]") {
  MountedFs fs;
  const std::string f = fs.path("f");
  WriteFile(f, std::string(64 * kKiB, 'a'));
  const std::string pool = daxref::PoolPath(fs.source());
  const std::vector<std::string> argv = {kProbe, f, std::to_string(64 * kKiB), pool};

  // Without the library: the ordinary mapping.
  {
    Child c(argv, {"PATH=/usr/bin:/bin"});
    CHECK(c.Line() == "direct=0");
    CHECK(c.Line() == "stored");
    c.Say("go\n");
    CHECK(c.Line() == "direct=0");
    CHECK(c.Line() == "first=P mid=P");
    CHECK(c.Line() == "stored");
    CHECK(c.Wait() == 0);
  }
  WriteFile(f, std::string(64 * kKiB, 'a'));

  Child c(argv, {"PATH=/usr/bin:/bin", "LD_PRELOAD=" + kPreloadLib});
  CHECK(c.Line() == "direct=1");
  CHECK(c.Line() == "stored");
  CHECK(ReadFile(f) == std::string(64 * kKiB, 'P'));
  // A punched hole revokes the lease: the program's mapping becomes the
  // ordinary one, at the same address, and it never notices.
  {
    Fd other(f, O_RDWR);
    REQUIRE(fallocate(other.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, kBlock) == 0);
  }
  c.Say("go\n");
  CHECK(c.Line() == "direct=0");
  CHECK(c.Line() == "first=0 mid=P");
  CHECK(c.Line() == "stored");
  CHECK(c.Wait() == 0);
  const std::string want = std::string(kBlock, '\0') + std::string(32 * kKiB - kBlock, 'P') + "Q" +
                           std::string(32 * kKiB - 1, 'P');
  CHECK_SAME(ReadFile(f), want);
}

TEST_CASE("dax preload: munmap of part of a direct mapping leaves the rest mapped ordinarily",
          "[dax][dax_preload]") {
  MountedFs fs;
  const std::string f = fs.path("f");
  WriteFile(f, std::string(64 * kKiB, 'a'));
  const std::string pool = daxref::PoolPath(fs.source());
  Child c({kProbe, f, std::to_string(64 * kKiB), pool, "partial"},
          {"PATH=/usr/bin:/bin", "LD_PRELOAD=" + kPreloadLib});
  CHECK(c.Line() == "direct=1");
  CHECK(c.Line() == "stored");
  CHECK(c.Line() == "direct=0");
  CHECK(c.Line() == "stored");
  CHECK(c.Wait() == 0);
  CHECK(ReadFile(f) == "R" + std::string(64 * kKiB - 1, 'P'));
}

// Releases, acknowledgements and grants racing revocations. This found a
// lease that a release took out of the daemon's table after a revoker had
// picked it, so the revoker waited for an acknowledgement that could no
// longer count and killed the holder (about one run in fifty at 40 rounds).
TEST_CASE("dax client: threads map, store and unmap while punches revoke their leases",
          "[dax][dax_client]") {
  MountedFs fs;
  const std::string f = fs.path("f");
  constexpr int kThreads = 4;
  constexpr uint64_t kSlice = 16 * kKiB;
  WriteFile(f, std::string(kThreads * kSlice, 'a'));
  std::atomic<bool> stop{false};
  std::atomic<int> mapped{0}, revoked{0}, failed{0}, bad_unmaps{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const int fd = open(f.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) {
        failed++;
        return;
      }
      for (int i = 0; i < 200; ++i) {
        void* addr = nullptr;
        struct daxref_dax_map* m = daxref_dax_map(fd, t * kSlice, kSlice, DAXREF_DAX_WRITE, &addr);
        if (m == nullptr) {
          failed++;
          continue;
        }
        mapped++;
        // Stores only while the lease is live; a revocation may come
        // between the check and the store, which then faults: so store
        // through process_vm_writev, which fails instead.
        char b = static_cast<char>('A' + t);
        iovec local{&b, 1};
        iovec remote{addr, 1};
        if (process_vm_writev(getpid(), &local, 1, &remote, 1, 0) != 1) revoked++;
        daxref_dax_persist(m, addr, 1);
        if (daxref_dax_revoked(m)) revoked++;
        if (daxref_dax_unmap(m) != 0) bad_unmaps++;
      }
      close(fd);
    });
  }
  std::thread puncher([&] {
    const int fd = open(f.c_str(), O_RDWR | O_CLOEXEC);
    for (int i = 0; !stop && fd >= 0; ++i) {
      fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (i % kThreads) * kSlice + kBlock,
                kBlock);
      std::this_thread::yield();
    }
    if (fd >= 0) close(fd);
  });
  for (auto& th : threads) th.join();
  stop = true;
  puncher.join();
  INFO("mapped " << mapped << " revoked " << revoked << " failed " << failed);
  CHECK(mapped > 0);
  CHECK(bad_unmaps == 0);
  CHECK(failed == 0);
}
