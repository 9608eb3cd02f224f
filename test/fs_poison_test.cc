// Memory poison end to end (docs/poison.md): a real daxref mount, real
// holder processes (poison_holder) that open, map and inherit files and log
// every signal they get, and daxref-poison as an admin runs it.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "test/fixture.h"
#include "test/fs_helpers.h"
#include "test/holder_process.h"
#include "test/mce.h"

namespace daxref::test {
namespace {

RunResult Poison(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {DAXREF_TEST_POISON};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv);
}

// How often `needle` occurs in `hay`.
size_t Count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

// The pool block behind byte `off` of the file at path.
uint64_t PoolBlockOf(const std::string& path, uint64_t off) {
  for (const daxref_extent& e : Extents(path))
    if (e.logical <= off && off < e.logical + e.length)
      return (e.physical + (off - e.logical)) / kBlock;
  FAIL("no block behind byte " << off << " of " << path);
  return 0;
}

// The errno of a pread of len bytes at off (0 if it read them all).
int ReadErrno(const std::string& path, uint64_t off, size_t len) {
  Fd f(path, O_RDONLY);
  std::string buf(len, '\0');
  ssize_t n = pread(f.get(), buf.data(), len, off);
  if (n < 0) return errno;
  return static_cast<size_t>(n) == len ? 0 : -1;
}

uint64_t Ino(const std::string& path) {
  return StatOf(path).st_ino;
}

// The value poison signals carry (docs/poison.md).
uint64_t SignalValue(uint64_t ino, uint64_t fblock) {
  return (ino << 32) | fblock;
}

// The line poison_holder logs for a poison signal.
std::string PoisonLine(pid_t pid, int sig, uint64_t value) {
  return "pid=" + std::to_string(pid) + " sig=" + std::to_string(sig) +
         " code=" + std::to_string(SI_QUEUE) + " errno=" + std::to_string(EHWPOISON) +
         " value=" + std::to_string(value);
}

// Shows that pid got nothing before now: a sentinel SIGUSR2 is sent after
// the poison event returned, and standard signals pending together are
// delivered lowest number first, so a SIGBUS sent earlier would be logged
// before the sentinel. Returns the lines logged before it.
std::vector<std::string> LinesBeforeSentinel(const std::string& log, pid_t pid) {
  size_t before = LinesOf(log, pid).size();
  REQUIRE(kill(pid, SIGUSR2) == 0);
  std::vector<std::string> lines = WaitForLines(log, pid, before + 1);
  auto sentinel = std::find_if(lines.begin(), lines.end(), [](const std::string& l) {
    return l.find(" sig=" + std::to_string(SIGUSR2) + " ") != std::string::npos;
  });
  REQUIRE(sentinel != lines.end());
  return std::vector<std::string>(lines.begin(), sentinel);
}

std::string Pattern(size_t len, char seed) {
  std::string s(len, '\0');
  for (size_t i = 0; i < len; ++i) s[i] = static_cast<char>(seed + i * 7 + i / 4096);
  return s;
}

}  // namespace

TEST_CASE(
    "Three files sharing a block through cp --reflink: inject --file signals every holder "
    "and only them, every sharer reads EIO there and good data elsewhere, also after "
    "remount",
    "[poison]") {
  MountedFs fs;
  TempDir logs;
  const std::string data = Pattern(4 * kBlock, 'a');
  WriteFile(fs.path("A"), data);
  REQUIRE(Run({"/bin/cp", "--reflink=auto", fs.path("A"), fs.path("B")}).status == 0);
  REQUIRE(Run({"/bin/cp", "--reflink=auto", fs.path("A"), fs.path("C")}).status == 0);
  WriteFile(fs.path("D"), Pattern(2 * kBlock, 'z'));  // shares nothing
  const uint64_t pb = PoolBlockOf(fs.path("A"), 0);
  REQUIRE(PoolBlockOf(fs.path("B"), 0) == pb);
  REQUIRE(PoolBlockOf(fs.path("C"), 0) == pb);

  const std::string log = logs.path() + "/signals";
  HolderProcess by_fd(log), by_map(log), by_inherit(log), other(log), idle(log);
  by_fd.Open(fs.path("A"));
  by_map.Map(fs.path("B"));  // the mapping alone holds B
  int c_fd = by_inherit.Open(fs.path("C"));
  pid_t heir = by_inherit.Fork();
  by_inherit.Close(c_fd);  // only the child still holds C
  other.Open(fs.path("D"));

  RunResult r = Poison({"inject", "--file", fs.path("A"), "--offset", "0"});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  for (const char* p : {"/A", "/B", "/C"}) CHECK(r.out.find(p) != std::string::npos);
  CHECK(r.out.find("/D") == std::string::npos);

  struct Expect {
    pid_t pid;
    std::string file;
  };
  for (const Expect& e : {Expect{by_fd.pid(), "A"}, Expect{by_map.pid(), "B"}, Expect{heir, "C"}}) {
    INFO("holder " << e.pid << " of " << e.file);
    std::vector<std::string> lines = WaitForLines(log, e.pid, 1);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == PoisonLine(e.pid, SIGBUS, SignalValue(Ino(fs.path(e.file)), 0)));
  }
  // The parent let go of C before the event: not a holder any more.
  CHECK(LinesBeforeSentinel(log, by_inherit.pid()).empty());
  CHECK(LinesBeforeSentinel(log, other.pid()).empty());
  CHECK(LinesBeforeSentinel(log, idle.pid()).empty());

  auto expect_state = [&] {
    for (const char* f : {"A", "B", "C"}) {
      INFO("file " << f);
      CHECK(ReadErrno(fs.path(f), 0, kBlock) == EIO);
      CHECK(ReadErrno(fs.path(f), 100, 10) == EIO);
      Fd fd(fs.path(f), O_RDONLY);
      CHECK(PreadExact(fd.get(), kBlock, 3 * kBlock) == data.substr(kBlock));
    }
    Fd d(fs.path("D"), O_RDONLY);
    CHECK(PreadExact(d.get(), 0, 2 * kBlock) == Pattern(2 * kBlock, 'z'));
    RunResult l = Poison({"list", fs.mnt()});
    INFO(l.out << l.err);
    REQUIRE(l.status == 0);
    for (const char* p : {"/A", "/B", "/C"}) CHECK(l.out.find(p) != std::string::npos);
  };
  expect_state();
  by_fd.Kill();
  by_map.Kill();
  by_inherit.Kill();
  other.Kill();
  fs.Remount();
  expect_state();

  // Overwriting the whole block heals that sharer only.
  {
    Fd b(fs.path("B"), O_WRONLY);
    PwriteExact(b.get(), std::string(kBlock, 'h'), 0);
  }
  Fd b(fs.path("B"), O_RDONLY);
  CHECK(PreadExact(b.get(), 0, kBlock) == std::string(kBlock, 'h'));
  CHECK(PoolBlockOf(fs.path("B"), 0) != pb);
  CHECK(ReadErrno(fs.path("A"), 0, kBlock) == EIO);
  CHECK(ReadErrno(fs.path("C"), 0, kBlock) == EIO);
  b.Close();
  fs.Remount();
  CHECK(ReadErrno(fs.path("B"), 0, kBlock) == 0);
  CHECK(ReadErrno(fs.path("A"), 0, kBlock) == EIO);
  CheckReport report = fs.Check();
  CHECK(report.poisoned_blocks == 1);
}

TEST_CASE(
    "A block shared by 1,000 clones: every sharer is reported and reads EIO there, only "
    "the holders of sharers are signalled",
    "[poison]") {
  MountedFs fs;
  TempDir logs;
  const std::string data = Pattern(2 * kBlock, 'q');
  WriteFile(fs.path("f0"), data);
  {
    Fd src(fs.path("f0"), O_RDONLY);
    for (int i = 1; i < 1000; ++i) {
      Fd dst(fs.path("f" + std::to_string(i)), O_WRONLY | O_CREAT);
      REQUIRE(CloneRange(src.get(), 0, 0, dst.get(), 0) == 0);
    }
  }
  const uint64_t pb = PoolBlockOf(fs.path("f0"), 0);
  REQUIRE(PoolBlockOf(fs.path("f999"), 0) == pb);
  WriteFile(fs.path("unrelated"), "x");

  const std::string log = logs.path() + "/signals";
  HolderProcess h0(log), h500(log), h999(log), other(log);
  h0.Open(fs.path("f0"));
  h500.Map(fs.path("f500"));
  h999.Open(fs.path("f999"));
  other.Open(fs.path("unrelated"));

  RunResult r = Poison({"--json", "inject", fs.mnt(), std::to_string(pb), "1", "--blocks"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(Count(r.out, "\"ino\"") == 1000);
  for (int i : {0, 1, 499, 998, 999})
    CHECK(r.out.find("\"/f" + std::to_string(i) + "\"") != std::string::npos);
  for (auto* h : {&h0, &h500, &h999}) {
    std::vector<std::string> lines = WaitForLines(log, h->pid(), 1);
    REQUIRE(lines.size() == 1);
  }
  CHECK(WaitForLines(log, h500.pid(), 1)[0] ==
        PoisonLine(h500.pid(), SIGBUS, SignalValue(Ino(fs.path("f500")), 0)));
  CHECK(LinesBeforeSentinel(log, other.pid()).empty());

  for (int i = 0; i < 1000; i += 37) {
    INFO("f" << i);
    CHECK(ReadErrno(fs.path("f" + std::to_string(i)), 0, kBlock) == EIO);
    Fd f(fs.path("f" + std::to_string(i)), O_RDONLY);
    CHECK(PreadExact(f.get(), kBlock, kBlock) == data.substr(kBlock));
  }
  RunResult l = Poison({"--json", "list", fs.mnt()});
  REQUIRE(l.status == 0);
  CHECK(Count(l.out, "\"ino\"") == 1000);
}

TEST_CASE(
    "A process that touches a mapped poisoned page gets SIGBUS from the kernel; the good "
    "pages of the mapping still read",
    "[poison]") {
  MountedFs fs;
  TempDir logs;
  const std::string data = Pattern(3 * kBlock, 'm');
  WriteFile(fs.path("m"), data);
  HolderProcess reader(logs.path() + "/signals");
  int map = reader.Map(fs.path("m"));
  std::string first = "ok " + std::to_string(static_cast<unsigned char>(data[kBlock]));
  REQUIRE(reader.Ask("touch " + std::to_string(map) + " " + std::to_string(kBlock)) == first);

  RunResult r = Poison({"inject", "--file", fs.path("m"), "--offset", std::to_string(kBlock)});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  REQUIRE(WaitForLines(reader.log(), reader.pid(), 1).size() == 1);
  // The page was mapped before the event: the invalidation took it away.
  CHECK(reader.Ask("touch " + std::to_string(map) + " " + std::to_string(kBlock + 5)) ==
        "sigbus " + std::to_string(BUS_ADRERR));
  CHECK(reader.Ask("touch " + std::to_string(map) + " 0") ==
        "ok " + std::to_string(static_cast<unsigned char>(data[0])));
  CHECK(reader.Ask("touch " + std::to_string(map) + " " + std::to_string(2 * kBlock)) ==
        "ok " + std::to_string(static_cast<unsigned char>(data[2 * kBlock])));
}

TEST_CASE("Writes, clones and copies around a poisoned block", "[poison]") {
  MountedFs fs;
  const std::string data = Pattern(4 * kBlock, 'w');
  WriteFile(fs.path("src"), data);
  RunResult r = Poison({"inject", "--file", fs.path("src"), "--offset", std::to_string(kBlock)});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  Fd src(fs.path("src"), O_RDWR);

  SECTION("a partial write into it fails and changes nothing") {
    CHECK(ErrnoOf(pwrite(src.get(), "xy", 2, kBlock + 10)) == EIO);
    CHECK(ReadErrno(fs.path("src"), kBlock, kBlock) == EIO);
    CHECK(PreadExact(src.get(), 0, kBlock) == data.substr(0, kBlock));
  }
  SECTION("a write covering it whole gives a fresh block; a write elsewhere works") {
    const uint64_t bad = PoolBlockOf(fs.path("src"), kBlock);
    PwriteExact(src.get(), std::string(2 * kBlock, 'n'), kBlock);
    CHECK(PreadExact(src.get(), kBlock, 2 * kBlock) == std::string(2 * kBlock, 'n'));
    CHECK(PoolBlockOf(fs.path("src"), kBlock) != bad);
    // An overwrite of a good block goes on as before.
    PwriteExact(src.get(), "good", 3 * kBlock);
    CHECK(PreadExact(src.get(), 3 * kBlock, 4) == "good");
    // The bad block stays bad, with no owner left: retired (the checker at
    // the end confirms it is not free).
    RunResult l = Poison({"--json", "list", fs.mnt()});
    INFO(l.out << l.err);
    CHECK(l.out.find("{\"pblock\": " + std::to_string(bad) +
                     ", \"blocks\": 1, \"origin\": \"injected\", \"uid\": 0, \"time\": ") !=
          std::string::npos);
    CHECK(l.out.find("\"owners\": []}") != std::string::npos);
    CHECK(l.out.find("/src") == std::string::npos);
  }
  SECTION("cloning or copying the poisoned range fails with EIO and makes nothing") {
    Fd dst(fs.path("dst"), O_RDWR | O_CREAT);
    CHECK(CloneRange(src.get(), 0, 2 * kBlock, dst.get(), 0) == EIO);
    loff_t in = 0, out = 0;
    CHECK(ErrnoOf(copy_file_range(src.get(), &in, dst.get(), &out, 2 * kBlock, 0)) == EIO);
    CHECK(StatOf(dst.get()).st_size == 0);
    // The good blocks still clone.
    CHECK(CloneRange(src.get(), 2 * kBlock, 2 * kBlock, dst.get(), 0) == 0);
    CHECK(PreadExact(dst.get(), 0, 2 * kBlock) == data.substr(2 * kBlock));
  }
  src.Close();
  fs.Check();
}

TEST_CASE("Poison in a superblock copy shuts the filesystem down; the next mount uses the other",
          "[poison]") {
  MountedFs fs;
  const std::string data = Pattern(2 * kBlock, 's');
  WriteFile(fs.path("keep"), data);
  Fd held(fs.path("keep"), O_RDONLY);
  RunResult r = Poison({"inject", fs.mnt(), "0", "4096"});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("shut") != std::string::npos);
  // The same note as offline (docs/poison.md, "One service").
  CHECK(r.out.find("note: block 0 holds the pool's superblock: the next mount will use the "
                   "backup copy") != std::string::npos);

  struct stat st;
  CHECK(ErrnoOf(stat(fs.path("keep").c_str(), &st)) == EIO);
  CHECK(ErrnoOf(open(fs.path("new").c_str(), O_CREAT | O_WRONLY, 0644)) == EIO);
  char c;
  CHECK(ErrnoOf(pread(held.get(), &c, 1, 0)) == EIO);
  CHECK(ErrnoOf(pwrite(held.get(), &c, 1, 0)) == EBADF);  // read-only handle: kernel check
  held.Close();                                           // close still works

  RunResult l = Poison({"list", fs.mnt()});
  INFO(l.out << l.err);
  CHECK(l.status == 0);
  fs.Remount();
  Fd again(fs.path("keep"), O_RDONLY);
  CHECK(PreadExact(again.get(), 0, 2 * kBlock) == data);
  again.Close();
  fs.Check();
}

TEST_CASE("pre-remove with writers running loses no acknowledged write", "[poison]") {
  MountedFs fs;
  TempDir logs;
  constexpr int kWriters = 3;
  // Each writer appends 4 KiB records to its own file and, after each
  // write(2) returns, reports the record number on a pipe.
  int acks[2];
  REQUIRE(pipe(acks) == 0);
  std::vector<pid_t> writers;
  for (int w = 0; w < kWriters; ++w) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      signal(SIGBUS, SIG_IGN);
      close(acks[0]);
      std::string path = fs.path("w" + std::to_string(w));
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0) _exit(2);
      for (uint32_t i = 0;; ++i) {
        std::string rec(kBlock, static_cast<char>('a' + (i % 26)));
        memcpy(rec.data(), &i, sizeof(i));
        if (write(fd, rec.data(), rec.size()) != static_cast<ssize_t>(rec.size())) _exit(0);
        uint64_t ack = (uint64_t{static_cast<uint32_t>(w)} << 32) | i;
        if (write(acks[1], &ack, sizeof(ack)) != sizeof(ack)) _exit(3);
      }
    }
    writers.push_back(pid);
  }
  close(acks[1]);
  std::vector<uint32_t> acked(kWriters, 0);  // records acknowledged per writer
  std::atomic<bool> reading{true};
  std::thread collector([&] {
    uint64_t ack;
    while (read(acks[0], &ack, sizeof(ack)) == sizeof(ack))
      acked[ack >> 32] = static_cast<uint32_t>(ack) + 1;
    reading = false;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // A reader that never lets go: the daemon must still end (the connection
  // is aborted), and the reader is told.
  HolderProcess reader(logs.path() + "/signals");
  const int held = reader.Open(fs.path("w0"));

  RunResult r = Poison({"pre-remove", fs.mnt()});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(fs.WaitForExit() == 0);
  std::vector<std::string> told = WaitForLines(reader.log(), reader.pid(), 1);
  REQUIRE(told.size() == 1);
  CHECK(told[0].find(" sig=" + std::to_string(SIGBUS) + " code=" + std::to_string(SI_QUEUE)) !=
        std::string::npos);
  // It holds a file of a connection that is gone.
  CHECK(reader.Ask("read " + std::to_string(held) + " 0 1").rfind("err", 0) == 0);
  for (pid_t pid : writers) {
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
  }
  collector.join();
  close(acks[0]);

  fs.Mount();
  for (int w = 0; w < kWriters; ++w) {
    INFO("writer " << w << ": " << acked[w] << " records acknowledged");
    CHECK(acked[w] > 0);
    std::string got = ReadFile(fs.path("w" + std::to_string(w)));
    REQUIRE(got.size() >= uint64_t{acked[w]} * kBlock);
    for (uint32_t i = 0; i < acked[w]; ++i) {
      uint32_t n;
      memcpy(&n, got.data() + uint64_t{i} * kBlock, sizeof(n));
      REQUIRE(n == i);
      REQUIRE(got[uint64_t{i} * kBlock + 100] == static_cast<char>('a' + (i % 26)));
    }
  }
  fs.Check();
}

namespace {

// The errno of a pread of block `fblock` of path, made by a child that
// blocks SIGBUS: the poison event may signal whoever holds the file when it
// runs, and the test process must not be one.
int ChildReadErrno(const std::string& path, uint64_t fblock) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGBUS);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) _exit(100);
    char buf[kBlock];
    ssize_t n = pread(fd, buf, kBlock, static_cast<off_t>(fblock * kBlock));
    _exit(n < 0 ? errno : 0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return ExitCode(status);
}

// Waits (bounded) until `daxref-poison list` names `needle`; what it said.
std::string WaitForListed(const std::string& mnt, const std::string& needle) {
  std::string listed;
  for (int i = 0; i < 500 && listed.find(needle) == std::string::npos; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    listed = Poison({"list", mnt}).out;
  }
  return listed;
}

}  // namespace

TEST_CASE(
    "A pool cut short under the daemon: EIO for the request, the daemon lives on, and no "
    "block becomes poison",
    "[poison]") {
  // A page the pool file cannot provide is the host filesystem's failure,
  // not bad memory: only a machine check is poison.
  TempDir logs;
  MountedFs::Options o;
  o.mount_options = {"poison_signal=none"};
  o.log_path = logs.path() + "/daemon.log";
  MountedFs fs(o);
  const std::string data = Pattern(8 * kBlock, 'c');
  WriteFile(fs.path("g"), "early");  // in a block before f's, which stays
  WriteFile(fs.path("f"), data);
  fs.Remount();  // nothing of f in the kernel's cache
  const uint64_t pb = PoolBlockOf(fs.path("f"), 4 * kBlock);
  const std::string pool = fs.source() + "/pool";
  const off_t size = StatOf(pool).st_size;
  REQUIRE(truncate(pool.c_str(), static_cast<off_t>(pb * kBlock)) == 0);

  Fd f(fs.path("f"), O_RDWR);
  char buf[kBlock];
  CHECK(ErrnoOf(pread(f.get(), buf, kBlock, 4 * kBlock)) == EIO);
  // A write into the missing page fails too, without killing the daemon.
  CHECK(ErrnoOf(pwrite(f.get(), buf, 10, 5 * kBlock + 1)) == EIO);
  CHECK(kill(fs.daemon_pid(), 0) == 0);
  CHECK(ReadFile(fs.path("g")) == "early");
  CHECK(PreadExact(f.get(), 0, 4 * kBlock) == data.substr(0, 4 * kBlock));
  // Nothing was recorded bad, and the log says what it was.
  RunResult l = Poison({"list", fs.mnt()});
  INFO(l.out);
  CHECK(l.out.find(std::to_string(pb)) == std::string::npos);
  CHECK(l.out.find("/f") == std::string::npos);
  std::string log = ReadFile(o.log_path);
  INFO(log);
  CHECK(log.find("past the end of the pool file") != std::string::npos);
  CHECK(log.find("recorded bad") == std::string::npos);
  f.Close();
  // Put back, the pool serves the block again: it was never bad.
  REQUIRE(truncate(pool.c_str(), size) == 0);
  CheckReport report = fs.Check();
  CHECK(report.bad_blocks == 0);
}

TEST_CASE(
    "A machine check while the daemon touches the pool: EIO for the request, the block "
    "becomes poison, and its holders are signalled",
    "[poison]") {
  // The memory under pool block pb goes bad: its page is cut from the pool
  // file, so the daemon's next touch of it faults for real, and test/
  // mce_inject makes that fault the machine check it stands for
  // (BUS_MCEERR_AR; see test/mce.h for why not MADV_HWPOISON).
  MountedFs fs;
  TempDir logs;
  const std::string signals = logs.path() + "/signals";
  const std::string data = Pattern(8 * kBlock, 'd');
  WriteFile(fs.path("g"), "early");
  WriteFile(fs.path("f"), data);
  fs.Remount();
  const uint64_t pb = PoolBlockOf(fs.path("f"), 4 * kBlock);
  const std::string pool = fs.source() + "/pool";
  const off_t size = StatOf(pool).st_size;
  HolderProcess holder(signals);
  holder.Open(fs.path("f"));
  REQUIRE(truncate(pool.c_str(), static_cast<off_t>(pb * kBlock)) == 0);
  auto [start, end] = MappingOf(fs.daemon_pid(), pool);
  {
    MachineCheckRewriter mce(fs.daemon_pid(), start, end);
    CHECK(ChildReadErrno(fs.path("f"), 4) == EIO);
    std::string listed = WaitForListed(fs.mnt(), "/f");
    INFO(listed);
    CHECK(listed.find(std::to_string(pb)) != std::string::npos);
    CHECK(listed.find("/f") != std::string::npos);
    // Where it came from: a machine check the daemon met (docs/poison.md).
    CHECK(listed.find("origin: machine-check  time: ") != std::string::npos);
    std::string rewrites = mce.Stop();
    INFO(rewrites);
    char want[64];
    snprintf(want, sizeof(want), "ar %lx", static_cast<unsigned long>(start + pb * kBlock));
    CHECK(rewrites.find(want) != std::string::npos);
  }
  std::vector<std::string> lines = WaitForLines(signals, holder.pid(), 1);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == PoisonLine(holder.pid(), SIGBUS, SignalValue(Ino(fs.path("f")), 4)));
  CHECK(kill(fs.daemon_pid(), 0) == 0);
  holder.Kill();
  // The memory is back (the page was only cut), but the block stays bad
  // until an admin clears it: reads of it fail, the rest reads.
  REQUIRE(truncate(pool.c_str(), size) == 0);
  CHECK(ReadErrno(fs.path("f"), 4 * kBlock, kBlock) == EIO);
  Fd f(fs.path("f"), O_RDONLY);
  CHECK(PreadExact(f.get(), 0, 4 * kBlock) == data.substr(0, 4 * kBlock));
  f.Close();
  CheckReport report = fs.Check();
  CHECK(report.bad_blocks == 1);
  CHECK(report.poisoned_blocks == 1);
}

TEST_CASE("poison_signal picks the signal, or none", "[poison]") {
  TempDir logs;
  for (const char* opt : {"poison_signal=USR1", "poison_signal=none"}) {
    INFO(opt);
    MountedFs::Options o;
    o.mount_options = {opt};
    MountedFs fs(o);
    WriteFile(fs.path("a"), Pattern(kBlock, 'u'));
    const std::string log = logs.path() + "/" + opt;
    HolderProcess h(log);
    h.Open(fs.path("a"));
    RunResult r = Poison({"inject", "--file", fs.path("a"), "--offset", "0"});
    REQUIRE(r.status == 0);
    if (std::string(opt).find("USR1") != std::string::npos) {
      std::vector<std::string> lines = WaitForLines(log, h.pid(), 1);
      REQUIRE(lines.size() == 1);
      CHECK(lines[0] == PoisonLine(h.pid(), SIGUSR1, SignalValue(Ino(fs.path("a")), 0)));
    } else {
      CHECK(LinesBeforeSentinel(log, h.pid()).empty());
    }
    CHECK(ReadErrno(fs.path("a"), 0, kBlock) == EIO);
  }
}

TEST_CASE("Bad input to a running daemon: a clear error and no change", "[poison]") {
  MountedFs fs;
  WriteFile(fs.path("a"), Pattern(2 * kBlock, 'b'));
  WriteFile(fs.path("hole"), "");
  REQUIRE(truncate(fs.path("hole").c_str(), 1 << 20) == 0);
  const uint64_t pb = PoolBlockOf(fs.path("a"), 0);
  REQUIRE(Poison({"inject", fs.mnt(), std::to_string(pb), "1", "--blocks"}).status == 0);
  const std::string before = Poison({"list", fs.mnt()}).out;

  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"inject", fs.mnt(), "1G", "4096"}, "past the end"},
      {{"inject", fs.mnt(), "4096", "0"}, ""},
      {{"inject", fs.mnt(), std::to_string(pb), "1", "--blocks"}, "already"},
      {{"inject", "--file", fs.path("missing"), "--offset", "0"}, "missing"},
      {{"inject", "--file", fs.path("a"), "--offset", "1M"}, "past the end"},
      {{"inject", "--file", fs.path("hole"), "--offset", "0"}, "hole"},
      {{"clear", fs.mnt(), "100", "1", "--blocks"}, "poisoned"},
      {{"resolve", fs.mnt(), "1T", "4096"}, "past the end"},
  };
  for (const Case& c : cases) {
    RunResult r = Poison(c.args);
    std::string cmd;
    for (const auto& a : c.args) cmd += a + " ";
    INFO(cmd << "\n" << r.out << r.err);
    CHECK(r.status != 0);
    CHECK(r.err.rfind("daxref-poison: ", 0) == 0);
    if (!c.says.empty()) CHECK(r.err.find(c.says) != std::string::npos);
  }
  // Not the admin: root or the mount's owner only. (Through SOURCE: without
  // allow_other no other user may even look at the mount.)
  const std::string parent = fs.source().substr(0, fs.source().rfind('/'));
  REQUIRE(chmod(parent.c_str(), 0755) == 0);
  REQUIRE(chmod(fs.source().c_str(), 0755) == 0);
  RunResult nobody =
      RunAsWithEnv(65534, 65534, {DAXREF_TEST_POISON, "inject", fs.source(), "8", "1", "--blocks"},
                   {"PATH=/usr/bin:/bin"});
  INFO(nobody.out << nobody.err);
  CHECK(nobody.status == 1);
  CHECK(nobody.err.find("permission denied") != std::string::npos);
  CHECK(Poison({"list", fs.mnt()}).out == before);
  CHECK(kill(fs.daemon_pid(), 0) == 0);
  fs.Check();
}

}  // namespace daxref::test
