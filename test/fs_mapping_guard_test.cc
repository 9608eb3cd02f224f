// The SIGBUS guard (pool/mapping_guard.h) and PoolMapping's guarded accesses
// (pool/pool.h), on files under /dev/shm cut short under their MAP_SHARED
// mapping: every touch past the new end raises SIGBUS (BUS_ADRERR), as
// poisoned persistent memory would (BUS_MCEERR_AR, which the tests send
// themselves with rt_tgsigqueueinfo, allowed for a signal to oneself).
//
// A broken guard does not fail these tests politely: the test binary dies
// of SIGBUS. The cases that must die (unguarded faults, a SIGBUS nobody's
// access raised) do so in forked children.

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "meta/superblock.h"
#include "pool/async_faults.h"
#include "pool/mapping_guard.h"
#include "pool/pool.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"

namespace daxref::test {
namespace {

constexpr size_t kPage = 4096;

// A file under /dev/shm, mapped MAP_SHARED, its bytes a known pattern.
// Truncate() cuts the file short under the mapping.
class ShmMapping {
 public:
  explicit ShmMapping(size_t pages)
      : dir_("/dev/shm"), path_(dir_.path() + "/f"), len_(pages * kPage) {
    fd_ = open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd_ >= 0);
    REQUIRE(ftruncate(fd_, static_cast<off_t>(len_)) == 0);
    void* p = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    REQUIRE(p != MAP_FAILED);
    base_ = static_cast<char*>(p);
    for (size_t i = 0; i < len_; ++i) base_[i] = Pattern(i);
  }
  ~ShmMapping() {
    munmap(base_, len_);
    close(fd_);
  }
  ShmMapping(const ShmMapping&) = delete;
  ShmMapping& operator=(const ShmMapping&) = delete;

  static char Pattern(size_t i) { return static_cast<char>('a' + (i * 7 + i / kPage) % 26); }
  void Truncate(size_t pages) { REQUIRE(ftruncate(fd_, static_cast<off_t>(pages * kPage)) == 0); }
  char* base() const { return base_; }
  // The page of the mapping that `addr` falls in, or -1 outside it.
  long PageOf(const void* addr) const {
    auto a = reinterpret_cast<uintptr_t>(addr), b = reinterpret_cast<uintptr_t>(base_);
    return a >= b && a - b < len_ ? static_cast<long>((a - b) / kPage) : -1;
  }

 private:
  TempDir dir_;
  std::string path_;
  size_t len_;
  int fd_ = -1;
  char* base_ = nullptr;
};

// Sends this thread a SIGBUS as the kernel would for a machine check; it is
// handled before this returns. 0 or an errno. No test macros: it is called
// inside guarded regions, where no object may be constructed.
int SendSelfSigbus(int code, const void* addr) {
  siginfo_t si{};
  si.si_signo = SIGBUS;
  si.si_code = code;
  si.si_addr = const_cast<void*>(addr);
  si.si_addr_lsb = 12;
  return syscall(SYS_rt_tgsigqueueinfo, getpid(), syscall(SYS_gettid), SIGBUS, &si) == 0 ? 0
                                                                                         : errno;
}

// Runs fn in a forked child (no core dump) and returns how it ended: its
// exit code, or 128 + the signal that killed it.
template <typename Fn>
int InChild(Fn fn) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    struct rlimit no_core {};
    setrlimit(RLIMIT_CORE, &no_core);
    _exit(fn());
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return ExitCode(status);
}

void DrainAsyncFaults() {
  const void* a;
  while (TakeAsyncMemoryFault(&a)) {
  }
}

}  // namespace

TEST_CASE("GuardedCopy returns the fault address past a truncated file's end", "[guard]") {
  InstallMappingGuard();
  ShmMapping m(16);
  m.Truncate(10);  // pages 10..15 lose their backing
  std::vector<char> buf(16 * kPage);
  GuardFault fault;

  SECTION("reads") {
    // Straddles the end and stops inside page 10: whatever order memcpy
    // reads in, the fault is in page 10. Again and again: the guard recovers.
    for (int i = 0; i < 100; ++i) {
      fault = GuardFault{};
      REQUIRE_FALSE(GuardedCopy(buf.data(), m.base() + 10 * kPage - 3000, 3000 + 100, &fault));
      REQUIRE(m.PageOf(fault.addr) == 10);
      REQUIRE(fault.addr < m.base() + 10 * kPage + 100);
      // What the kernel says of a page past the file's end: not a machine check.
      REQUIRE(fault.code == BUS_ADRERR);
    }
    // All of one bad page, and a large read running into the bad part.
    REQUIRE_FALSE(GuardedCopy(buf.data(), m.base() + 13 * kPage, kPage, &fault));
    CHECK(m.PageOf(fault.addr) == 13);
    REQUIRE_FALSE(GuardedCopy(buf.data(), m.base(), 16 * kPage, &fault));
    CHECK(m.PageOf(fault.addr) >= 10);
  }
  SECTION("writes") {
    REQUIRE_FALSE(GuardedCopy(m.base() + 12 * kPage + 64, buf.data(), 64, &fault));
    CHECK(fault.addr >= m.base() + 12 * kPage + 64);
    CHECK(fault.addr < m.base() + 12 * kPage + 128);
    CHECK(fault.code == BUS_ADRERR);
  }
  // The backed part still works, through the guard and without it.
  REQUIRE(GuardedCopy(buf.data(), m.base(), 10 * kPage, &fault));
  size_t wrong = 0;
  for (size_t i = 0; i < 10 * kPage; ++i) wrong += buf[i] != ShmMapping::Pattern(i);
  CHECK(wrong == 0);
  REQUIRE(GuardedCopy(m.base() + 5, "xyz", 3, &fault));
  CHECK(std::string(m.base() + 5, 3) == "xyz");
}

TEST_CASE("Each thread has its own guard", "[guard]") {
  InstallMappingGuard();
  ShmMapping m(16);
  m.Truncate(8);
  // Threads fault at once, each on its own bad page, many times; each must
  // get back its own address, and the good part still reads right.
  constexpr int kThreads = 4;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      char buf[256];
      for (int i = 0; i < 2000; ++i) {
        GuardFault fault;
        const char* bad = m.base() + (8 + t) * kPage + 16;
        if (GuardedCopy(buf, bad, sizeof(buf), &fault) || m.PageOf(fault.addr) != 8 + t) ++wrong;
        if (!GuardedCopy(buf, m.base() + t * kPage, sizeof(buf), &fault) ||
            buf[7] != ShmMapping::Pattern(t * kPage + 7))
          ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong.load() == 0);
  // And this thread's guard was never armed by the others' faults.
  GuardFault fault;
  char c;
  REQUIRE(GuardedCopy(&c, m.base(), 1, &fault));
  CHECK(fault.addr == nullptr);
}

TEST_CASE("Guarded runs any callable; guards nest", "[guard]") {
  InstallMappingGuard();
  ShmMapping m(4);
  m.Truncate(2);
  GuardFault outer;
  GuardFault inner;
  bool inner_ok = true;
  char c = 0;
  bool ok = Guarded(
      [&] {
        inner_ok = GuardedCopy(&c, m.base() + 3 * kPage, 1, &inner);
        // Back in the outer guard, which catches the next fault.
        c = *static_cast<volatile char*>(m.base() + 2 * kPage + 9);
      },
      &outer);
  CHECK_FALSE(ok);
  CHECK_FALSE(inner_ok);
  CHECK(inner.addr == m.base() + 3 * kPage);
  CHECK(outer.addr == m.base() + 2 * kPage + 9);
}

TEST_CASE("A machine check in a guarded access is caught; one outside is recorded", "[guard]") {
  InstallMappingGuard();
  DrainAsyncFaults();
  static char bad_line[64];
  // BUS_MCEERR_AR, raised in this thread while it is guarded: caught, and
  // said to be a machine check.
  GuardFault fault;
  bool ok = Guarded([] { SendSelfSigbus(BUS_MCEERR_AR, bad_line + 8); }, &fault);
  CHECK_FALSE(ok);
  CHECK(fault.addr == bad_line + 8);
  CHECK(fault.code == BUS_MCEERR_AR);
  CHECK(IsMachineCheck(fault.code));
  CHECK_FALSE(IsMachineCheck(BUS_ADRERR));
  CHECK_FALSE(IsMachineCheck(BUS_OBJERR));
  // BUS_MCEERR_AO (poison nobody consumed yet), guarded or not: recorded for
  // the daemon, and execution goes on.
  uint64_t lost = LostAsyncMemoryFaults();
  REQUIRE(SendSelfSigbus(BUS_MCEERR_AO, bad_line) == 0);
  int err = -1;
  ok = Guarded([&] { err = SendSelfSigbus(BUS_MCEERR_AO, bad_line + 32); }, &fault);
  CHECK(ok);
  CHECK(err == 0);
  std::vector<const void*> got;
  const void* a;
  while (TakeAsyncMemoryFault(&a)) got.push_back(a);
  REQUIRE(got.size() == 2);
  CHECK(((got[0] == bad_line && got[1] == bad_line + 32) ||
         (got[1] == bad_line && got[0] == bad_line + 32)));
  CHECK(LostAsyncMemoryFaults() == lost);
  // More than the table holds: the rest are counted as lost.
  for (size_t i = 0; i < kAsyncMemoryFaultSlots + 3; ++i)
    REQUIRE(SendSelfSigbus(BUS_MCEERR_AO, bad_line) == 0);
  size_t n = 0;
  while (TakeAsyncMemoryFault(&a)) ++n;
  CHECK(n == kAsyncMemoryFaultSlots);
  CHECK(LostAsyncMemoryFaults() == lost + 3);
}

TEST_CASE("A SIGBUS the guard does not own still kills, or goes to the previous handler",
          "[guard]") {
  ShmMapping m(4);
  m.Truncate(2);
  char* bad = m.base() + 3 * kPage;
  auto touch = [bad] { return static_cast<int>(*static_cast<volatile char*>(bad)); };

  // Control: a guarded touch in a child survives.
  CHECK(InChild([&] {
          InstallMappingGuard();
          GuardFault fault;
          return Guarded([&] { touch(); }, &fault) ? 1 : 0;
        }) == 0);
  // An unguarded fault.
  CHECK(InChild([&] {
          InstallMappingGuard();
          return touch();
        }) == 128 + SIGBUS);
  // A SIGBUS sent by a process (here, raise), even inside a guard.
  CHECK(InChild([&] {
          InstallMappingGuard();
          GuardFault fault;
          return Guarded([] { raise(SIGBUS); }, &fault) ? 1 : 2;
        }) == 128 + SIGBUS);
  // A misaligned access (BUS_ADRALN) is a bug, not bad memory.
  CHECK(InChild([&] {
          InstallMappingGuard();
          GuardFault fault;
          return Guarded([&] { SendSelfSigbus(BUS_ADRALN, bad); }, &fault) ? 1 : 2;
        }) == 128 + SIGBUS);
  // A handler installed before the guard gets the faults the guard does not
  // take; guarded ones never reach it.
  CHECK(InChild([&] {
          struct sigaction sa {};
          sa.sa_handler = [](int) { _exit(42); };
          sigemptyset(&sa.sa_mask);
          sigaction(SIGBUS, &sa, nullptr);
          InstallMappingGuard();
          InstallMappingGuard();  // idempotent: must not chain to itself
          GuardFault fault;
          if (Guarded([&] { touch(); }, &fault)) return 1;
          return touch();
        }) == 42);
}

// ---- PoolMapping ----

namespace {

// A pool made by mkfs.daxref (under /dev/shm unless told where, sparse when
// asked), opened, with a fault sink and a host-fault log that record what
// they are told.
struct PoolFixture {
  explicit PoolFixture(uint64_t bytes = kPoolBytes, const std::string& under = "/dev/shm",
                       bool sparse = false)
      : dir(under) {
    std::vector<std::string> argv = {MkfsBin(), "-q", "--size", std::to_string(bytes)};
    if (sparse) argv.push_back("--sparse");
    argv.push_back(dir.path() + "/fs");
    RunResult r = Run(argv);
    INFO(r.err);
    REQUIRE(r.status == 0);
    path = PoolPath(dir.path() + "/fs");
    auto p = PoolMapping::Open(path, 0);
    INFO(p.status().message());
    REQUIRE(p.ok());
    pool = std::move(*p);
    REQUIRE(pool->size() == bytes);
    pool->set_fault_sink([this](uint64_t off) {
      std::lock_guard<std::mutex> lock(mu);
      told.push_back(off);
    });
    pool->set_host_fault_log([this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu);
      logged.push_back(line);
    });
  }
  void Truncate(uint64_t bytes) { REQUIRE(truncate(path.c_str(), static_cast<off_t>(bytes)) == 0); }
  std::vector<uint64_t> TakeTold() {
    std::lock_guard<std::mutex> lock(mu);
    return std::exchange(told, {});
  }
  std::vector<std::string> TakeLogged() {
    std::lock_guard<std::mutex> lock(mu);
    return std::exchange(logged, {});
  }
  // A host fault, not poison: the call failed with `err`, the poison sink
  // heard nothing, and one line naming the byte and `why` was logged.
  void OneHostFault(const Status& s, int err, uint64_t block, const std::string& why) {
    INFO(s.message());
    CHECK(s.err() == err);
    CHECK(TakeTold().empty());
    std::vector<std::string> lines = TakeLogged();
    REQUIRE(lines.size() == 1);
    INFO(lines[0]);
    CHECK(lines[0].find(why) != std::string::npos);
    CHECK(lines[0].find("not poison") != std::string::npos);
    // The line names the byte, which is in `block`.
    size_t at = lines[0].find("pool byte ");
    REQUIRE(at != std::string::npos);
    CHECK(std::stoull(lines[0].substr(at + 10)) / kPage == block);
  }

  static constexpr uint64_t kPoolBytes = 1 << 20;
  TempDir dir;
  std::string path;
  std::unique_ptr<PoolMapping> pool;
  std::mutex mu;
  std::vector<uint64_t> told;
  std::vector<std::string> logged;
};

std::string Bytes(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 13 + 1);
  return s;
}

}  // namespace

TEST_CASE("PoolMapping: a pool cut short is EIO for the access, never poison", "[guard]") {
  PoolFixture f;
  PoolMapping& pool = *f.pool;
  const std::string good = Bytes(28 * kPage, 'A');
  REQUIRE(pool.Write(100 * kPage, good.data(), good.size()).ok());
  f.Truncate(128 * kPage);  // blocks 128..255 lose their backing
  std::string buf(16 * kPage, '\0');
  const uint64_t end = 128 * kPage;
  const std::string past = "past the end of the pool file";

  // Each range ends inside the first bad block it reaches, so the fault is
  // there whatever order the copy runs in.
  f.OneHostFault(pool.Load(end - 2 * kPage, buf.data(), 2 * kPage + 10), EIO, 128, past);
  f.OneHostFault(pool.Write(end + 100, good.data(), 50), EIO, 128, past);
  f.OneHostFault(pool.Copy(110 * kPage, end - kPage, 2 * kPage), EIO, 128, past);  // source
  f.OneHostFault(pool.Copy(140 * kPage, 100 * kPage, kPage), EIO, 140, past);      // destination
  f.OneHostFault(pool.Zero(end - 2 * kPage, 3 * kPage), EIO, 128, past);
  f.OneHostFault(pool.Zero(200 * kPage, kPage), EIO, 200, past);

  // CheckReadable finds the first bad page exactly.
  uint64_t bad = 0;
  f.OneHostFault(pool.CheckReadable(0, PoolFixture::kPoolBytes, &bad), EIO, 128, past);
  CHECK(bad == end);
  f.OneHostFault(pool.CheckReadable(end - 3, 4, &bad), EIO, 128, past);
  CHECK(bad == end);  // the 4th byte is the first bad one
  f.OneHostFault(pool.CheckReadable(200 * kPage + 5, 10, &bad), EIO, 200, past);
  CHECK(bad == 200 * kPage + 5);
  bad = 7;
  CHECK(pool.CheckReadable(kPage + 1, end - kPage - 1, &bad).ok());
  CHECK(bad == 7);
  CHECK(pool.CheckReadable(end, 0, &bad).ok());
  CHECK(pool.CheckReadable(PoolFixture::kPoolBytes - 1, 2, &bad).err() == EINVAL);

  // The backed part still reads and writes. (Zero above cleared 126..127.)
  std::string back(good.size(), '\0');
  REQUIRE(pool.Load(100 * kPage, back.data(), back.size()).ok());
  CHECK(back.compare(0, 10 * kPage, good, 0, 10 * kPage) == 0);  // 110 was overwritten by Copy
  CHECK(back.compare(11 * kPage, 15 * kPage, good, 11 * kPage, 15 * kPage) == 0);
  CHECK(back.substr(26 * kPage) == std::string(2 * kPage, '\0'));
  REQUIRE(pool.Write(50 * kPage, "fine", 4).ok());
  REQUIRE(pool.Load(50 * kPage, buf.data(), 4).ok());
  CHECK(buf.substr(0, 4) == "fine");
  CHECK(f.TakeTold().empty());
  CHECK(f.TakeLogged().empty());
}

TEST_CASE("PoolMapping: host faults on other threads are logged from those threads", "[guard]") {
  PoolFixture f;
  PoolMapping& pool = *f.pool;
  f.Truncate(128 * kPage);
  std::mutex mu;
  std::vector<std::pair<std::string, std::thread::id>> seen;
  pool.set_host_fault_log([&](const std::string& line) {
    std::lock_guard<std::mutex> lock(mu);
    seen.emplace_back(line, std::this_thread::get_id());
  });
  std::vector<std::thread> threads;
  std::vector<std::thread::id> ids(3);
  std::vector<int> errs(3, 0);
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      ids[t] = std::this_thread::get_id();
      char c;
      errs[t] = pool.Load((150 + t) * kPage + 1, &c, 1).err();
    });
  }
  for (auto& th : threads) th.join();
  CHECK(errs == std::vector<int>{EIO, EIO, EIO});
  CHECK(f.TakeTold().empty());
  REQUIRE(seen.size() == 3);
  for (int t = 0; t < 3; ++t) {
    bool found = false;
    const std::string byte = "pool byte " + std::to_string((150 + t) * kPage + 1) + " ";
    for (const auto& [line, id] : seen)
      found |= line.find(byte) != std::string::npos && id == ids[t];
    CHECK(found);
  }
}

TEST_CASE("PoolMapping: a full host filesystem is ENOSPC, never poison", "[guard]") {
  // A 64 MiB sparse pool on a 2 MiB tmpfs, and 1 MiB of it held by another
  // file: the pool's pages run out after about 1 MiB of new data.
  TmpfsMount host(2 * kMiB);
  PoolFixture f(64 * kMiB, host.path(), /*sparse=*/true);
  f.TakeLogged();
  PoolMapping& pool = *f.pool;
  const std::string ballast = host.path() + "/ballast";
  {
    Fd b(ballast, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fallocate(b.get(), 0, 0, static_cast<off_t>(kMiB)) == 0);
  }
  const std::string block = Bytes(kPage, 'q');
  uint64_t pb = 16;
  Status s;
  for (; pb < 16 + 1024; ++pb) {
    s = pool.Write(pb * kPage, block.data(), block.size());
    if (!s.ok()) break;
  }
  INFO("stopped at block " << pb);
  REQUIRE(pb < 16 + 1024);  // the host filled before 4 MiB were written
  f.OneHostFault(s, ENOSPC, pb, "no space left on the pool's host filesystem");
  // Every kind of access that needs a new page says the same, and a read
  // of a page never written needs one too (tmpfs gives a shared mapping's
  // read fault a page).
  f.OneHostFault(pool.Zero((pb + 1) * kPage, kPage), ENOSPC, pb + 1, "no space left");
  f.OneHostFault(pool.Copy((pb + 2) * kPage, 16 * kPage, kPage), ENOSPC, pb + 2, "no space left");
  uint64_t bad = 0;
  f.OneHostFault(pool.CheckReadable((pb + 3) * kPage, kPage, &bad), ENOSPC, pb + 3,
                 "no space left");
  CHECK(bad == (pb + 3) * kPage);
  // What was written before is intact.
  std::string got(kPage, '\0');
  REQUIRE(pool.Load(16 * kPage, got.data(), got.size()).ok());
  CHECK(got == block);
  // Room again on the host: the same write works.
  REQUIRE(unlink(ballast.c_str()) == 0);
  REQUIRE(pool.Write(pb * kPage, block.data(), block.size()).ok());
  REQUIRE(pool.Load(pb * kPage, got.data(), got.size()).ok());
  CHECK(got == block);
  CHECK(f.TakeTold().empty());
}

TEST_CASE("PoolMapping: a bad caller buffer fails the call but is not the pool's", "[guard]") {
  PoolFixture f;
  ShmMapping m(2);
  m.Truncate(1);
  Status s = f.pool->Load(10 * kPage, m.base() + kPage, 64);
  CHECK(s.err() == EIO);
  CHECK(s.message().find("outside the pool") != std::string::npos);
  CHECK(f.TakeTold().empty());
}

TEST_CASE("PoolMapping: WalkBadBlocks on a /dev/shm pool reports none", "[guard]") {
  PoolFixture f;
  int calls = 0;
  Status s = f.pool->WalkBadBlocks([&](uint64_t, uint64_t) {
    ++calls;
    return true;
  });
  INFO(s.message());
  CHECK(s.ok());
  CHECK(calls == 0);
}

}  // namespace daxref::test

// ---- asynchronous machine checks (pool/async_faults.h) ----

namespace daxref::test {
namespace {

// The kernel's flags word of thread `tid` of this process (/proc stat,
// field 9): PF_MCE_PROCESS and PF_MCE_EARLY are what PR_MCE_KILL sets.
unsigned long TaskFlags(pid_t tid) {
  std::string stat =
      ReadFile("/proc/self/task/" + std::to_string(tid) + "/stat");  // "pid (comm) S ppid ..."
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 9; ++i) rest >> field;  // fields 3..9; 9 is flags
  return std::stoul(field);
}
constexpr unsigned long kPfMceProcess = 0x00000080;
constexpr unsigned long kPfMceEarly = 0x08000000;

}  // namespace

TEST_CASE("RequestEarlyMachineCheckNotice sets early kill for the thread and its children",
          "[guard][async]") {
  std::thread t([] {
    Status s = RequestEarlyMachineCheckNotice();
    INFO(s.message());
    REQUIRE(s.ok());
    pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
    CHECK((TaskFlags(self) & (kPfMceProcess | kPfMceEarly)) == (kPfMceProcess | kPfMceEarly));
    // A thread started afterwards inherits it: the daemon asks before it
    // starts any.
    std::thread child([] {
      pid_t me = static_cast<pid_t>(syscall(SYS_gettid));
      CHECK((TaskFlags(me) & kPfMceEarly) != 0);
    });
    child.join();
  });
  t.join();
}

TEST_CASE("AsyncFaultWatcher: each BUS_MCEERR_AO reaches its worker; overflow is reported lost",
          "[guard][async]") {
  InstallMappingGuard();
  DrainAsyncFaults();
  static char area[4096];
  std::mutex mu;
  std::condition_variable cv;
  std::vector<const void*> got;
  uint64_t lost_reported = 0;
  bool entered = false, release = false;
  std::thread::id worker;
  AsyncFaultWatcher::Handlers h;
  h.fault = [&](const void* addr) {
    std::unique_lock<std::mutex> g(mu);
    worker = std::this_thread::get_id();
    if (!entered) {
      // Hold the first one: what arrives meanwhile fills the table.
      entered = true;
      cv.notify_all();
      cv.wait(g, [&] { return release; });
    }
    got.push_back(addr);
    cv.notify_all();
  };
  h.lost = [&](uint64_t n) {
    std::lock_guard<std::mutex> g(mu);
    lost_reported += n;
    cv.notify_all();
  };
  auto waited = [&](auto pred) {
    std::unique_lock<std::mutex> g(mu);
    return cv.wait_for(g, std::chrono::seconds(30), pred);
  };
  auto w = AsyncFaultWatcher::Start(std::move(h));
  INFO(w.status().message());
  REQUIRE(w.ok());
  // Faults lost before the watcher started count as lost too (earlier test
  // cases lost some on purpose); wait for that report to settle first.
  const uint64_t lost0 = LostAsyncMemoryFaults();
  REQUIRE(waited([&] { return lost_reported == lost0; }));

  // One fault, delivered by the kernel as for poison nobody has touched: it
  // wakes the worker (no timer: the watcher only waits on its eventfd).
  REQUIRE(SendSelfSigbus(BUS_MCEERR_AO, area) == 0);
  REQUIRE(waited([&] { return entered; }));
  CHECK(worker != std::this_thread::get_id());
  // While the worker is held, more than the table holds arrive.
  const size_t extra = kAsyncMemoryFaultSlots + 5;
  for (size_t i = 1; i <= extra; ++i) REQUIRE(SendSelfSigbus(BUS_MCEERR_AO, area + i) == 0);
  CHECK(LostAsyncMemoryFaults() == lost0 + 5);
  {
    std::lock_guard<std::mutex> g(mu);
    release = true;
  }
  cv.notify_all();
  REQUIRE(waited(
      [&] { return got.size() == 1 + kAsyncMemoryFaultSlots && lost_reported == lost0 + 5; }));
  std::vector<const void*> want;
  for (size_t i = 0; i <= kAsyncMemoryFaultSlots; ++i) want.push_back(area + i);
  std::sort(got.begin(), got.end());
  CHECK(got == want);

  // Once the watcher is gone, faults are still recorded, for whoever
  // collects them next.
  w->reset();
  REQUIRE(SendSelfSigbus(BUS_MCEERR_AO, area + 100) == 0);
  const void* a = nullptr;
  REQUIRE(TakeAsyncMemoryFault(&a));
  CHECK(a == area + 100);
  {
    std::lock_guard<std::mutex> g(mu);
    CHECK(got.size() == 1 + kAsyncMemoryFaultSlots);
  }
}

}  // namespace daxref::test
