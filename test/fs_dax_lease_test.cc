// Layout leases (docs/dax.md) through a real mount, with real processes as
// holders, spoken to through the raw protocol client (test/dax_test_client.h),
// not the client library: grants and refusals, stores through the mapping
// seen by read(2), revocation before truncate, punch and clone (holders
// that acknowledge, and one that does not and is killed), a holder killed
// with its leases, and a daemon killed under a live lease.
#include <daxref/ioctl.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "test/dax_test_client.h"
#include "test/fs_helpers.h"

namespace daxref::test {
namespace {

constexpr uid_t kAlice = 1001;
constexpr gid_t kAliceGroup = 1001;

// What a holder does when its lease is revoked. kCheckServing acknowledges
// too, and first asks the mount's statfs through a descriptor of its root
// (statfs always reaches the daemon): U if it answered, X if the
// filesystem was shut down or gone already.
// kCloseSession closes the session right after the grant, still mapping.
enum class OnRevoke { kAcknowledge, kIgnore, kCheckServing, kCloseSession };

// A child process that holds one lease and reports through a pipe, one
// letter at a time: G granted (E then the errno on failure), U its mapping
// made inaccessible (sent before its acknowledgement, so it is in the pipe
// once the revoking operation has returned), P poison received.
class Holder {
 public:
  Holder(const std::string& path, uint64_t off, uint64_t len, bool write, OnRevoke on_revoke,
         char fill = 0) {
    int p[2];
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      // A holder dies of the daemon's signals as any process does, not
      // through the test framework's handlers.
      for (int sig : {SIGTERM, SIGBUS, SIGSEGV, SIGINT}) signal(sig, SIG_DFL);
      close(p[0]);
      _exit(Serve(p[1], path, off, len, write, on_revoke, fill));
    }
    close(p[1]);
    notes_.Reset(p[0]);
    std::string first = Read(10000, 1);
    INFO("holder said: " << first);
    REQUIRE(first == "G");
  }
  ~Holder() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // What the holder has said since the last call, waiting up to timeout_ms
  // for at least `want` bytes.
  std::string Read(int timeout_ms, size_t want = 0) {
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      pollfd pf{notes_.get(), POLLIN, 0};
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      if (got.size() >= want) left = 0;
      if (poll(&pf, 1, std::max(left, 0)) <= 0) return got;
      char buf[64];
      ssize_t n = read(notes_.get(), buf, sizeof(buf));
      if (n <= 0) return got;
      got.append(buf, n);
    }
  }
  // Reaps the holder: its wait status. Fails the test if it is still
  // running after 30 s (nobody killed it).
  int Wait() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      int status = WaitNoHang();
      if (status != -1) return status;
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  // Reaps it if it has exited already; -1 if it has not.
  int WaitNoHang() {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return -1;
    pid_ = -1;
    return status;
  }

 private:
  static int Serve(int note, const std::string& path, uint64_t off, uint64_t len, bool write,
                   OnRevoke on_revoke, char fill) {
    auto say = [&](const std::string& s) { return write_all(note, s); };
    // The mount's root, held: after a detach its path would name the
    // directory underneath.
    UniqueFd dir(on_revoke == OnRevoke::kCheckServing
                     ? open(path.substr(0, path.rfind('/')).c_str(), O_RDONLY | O_DIRECTORY)
                     : -1);
    int fd = open(path.c_str(), write ? O_RDWR : O_RDONLY);
    DaxTestClient c;
    DaxTestClient::Lease l;
    int e = fd < 0 ? errno : c.Connect(fd);
    if (e == 0) e = c.Take(fd, off, len, write, &l);
    if (fd >= 0) close(fd);  // the mapping is what holds the file now
    if (e != 0) {
      say("E" + std::to_string(e));
      return 1;
    }
    if (write && fill) memset(l.map, fill, l.length);
    say("G");
    if (on_revoke == OnRevoke::kCloseSession) {
      c.CloseSession();
      for (;;) pause();
    }
    for (;;) {
      control::Record r;
      e = c.Next(&r, -1);
      if (e != 0) {
        // The daemon went away: a stale holder stays, mapping and all.
        for (;;) pause();
      }
      if (r.kind == "revoke" && on_revoke != OnRevoke::kIgnore) {
        struct statvfs v;
        const bool serving = on_revoke != OnRevoke::kCheckServing || fstatvfs(dir.get(), &v) == 0;
        c.MakeInaccessible(&l);
        say(serving ? "U" : "X");
        c.Acknowledge(l.id);
      } else if (r.kind == "poison") {
        const std::string* at = r.Get("offset");
        say("P" + (at ? *at : std::string("?")) + ";");
      }
    }
  }
  static bool write_all(int fd, const std::string& s) {
    return write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
  }

  pid_t pid_ = -1;
  UniqueFd notes_;
};

MountedFs::Options LeaseMount(const std::string& log = "") {
  MountedFs::Options o;
  o.size = 64ull << 20;
  o.mount_options = {"dax_revoke_ms=300", "allow_other"};
  o.log_path = log;
  return o;
}

// A file of `blocks` blocks of `fill`.
void MakeFile(const std::string& path, uint64_t blocks, char fill) {
  Fd fd(path, O_RDWR | O_CREAT | O_TRUNC, 0666);
  PwriteAll(fd.get(), std::string(blocks * kBlock, fill), 0);
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Waits (bounded) for `what` to appear in the log at `path`.
bool LogSays(const std::string& path, const std::string& what, int seconds = 10) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (Slurp(path).find(what) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

TEST_CASE("a read and a write lease map the file's blocks; stores are seen by read(2)",
          "[fs][dax]") {
  MountedFs fs(LeaseMount());
  const std::string f = fs.path("f");
  {
    // Three blocks of 'a', then a hole: four blocks in all.
    Fd fd(f, O_RDWR | O_CREAT, 0644);
    PwriteAll(fd.get(), std::string(3 * kBlock, 'a'), 0);
    REQUIRE(ftruncate(fd.get(), 4 * kBlock) == 0);
  }
  DaxTestClient c;
  {
    Fd ro(f, O_RDONLY);
    REQUIRE(c.Connect(ro.get()) == 0);
    DaxTestClient::Lease l;
    REQUIRE(c.Take(ro.get(), 0, 4 * kBlock, false, &l) == 0);
    REQUIRE(l.pieces.size() == 2);
    CHECK_FALSE(l.pieces[0].hole);
    CHECK(l.pieces[0].length == 3 * kBlock);
    CHECK(l.pieces[1].hole);
    CHECK(std::string(l.map, 3 * kBlock) == std::string(3 * kBlock, 'a'));
    CHECK(std::string(l.map + 3 * kBlock, kBlock) == std::string(kBlock, '\0'));
    // Read-only: no write lease on this descriptor.
    DaxTestClient::Lease w;
    CHECK(c.Take(ro.get(), 0, kBlock, true, &w) == EBADF);
    // Past the size rounded up to a block, unaligned, empty.
    CHECK(c.Take(ro.get(), 4 * kBlock, kBlock, false, &w) == ENXIO);
    CHECK(c.Take(ro.get(), 100, kBlock, false, &w) == EINVAL);
    CHECK(c.Take(ro.get(), 0, 0, false, &w) == EINVAL);
    REQUIRE(c.Release(&l) == 0);
  }
  Fd rw(f, O_RDWR);
  DaxTestClient::Lease l;
  REQUIRE(c.Take(rw.get(), 0, 4 * kBlock, true, &l) == 0);
  // Opened while the write lease exists: uncached, so a read before the
  // stores below caches nothing that a read after them could be served.
  Fd other(f, O_RDONLY);
  CHECK(PreadAll(other.get(), 0, kBlock) == std::string(kBlock, 'a'));
  // A write lease has no holes: the daemon allocated them.
  for (const auto& p : l.pieces) CHECK_FALSE(p.hole);
  CHECK(static_cast<uint64_t>(StatOf(rw.get()).st_blocks) * 512 >= 4 * kBlock);
  // Stores straight into the pool...
  memset(l.map + 100, 'b', 5000);
  memset(l.map + 3 * kBlock, 'c', kBlock);
  // ...are what read(2) of a descriptor opened after the grant sees.
  std::string want = std::string(3 * kBlock, 'a') + std::string(kBlock, 'c');
  std::fill(want.begin() + 100, want.begin() + 5100, 'b');
  CHECK_SAME(PreadAll(other.get(), 0, 4 * kBlock), want);
  REQUIRE(c.Release(&l) == 0);
}

TEST_CASE("leases are only for root and the pool's owner", "[fs][dax]") {
  MountedFs fs(LeaseMount());
  const std::string f = fs.path("f");
  MakeFile(f, 2, 'x');
  REQUIRE(chmod(f.c_str(), 0666) == 0);
  auto as_alice = [&] {
    return RunAs(kAlice, kAliceGroup, [&] {
      int fd = open(f.c_str(), O_RDWR);
      if (fd < 0) return 100;
      DaxTestClient c;
      int e = c.Connect(fd);
      if (e == 0) {
        DaxTestClient::Lease l;
        e = c.Take(fd, 0, kBlock, false, &l);
      }
      close(fd);
      return e == EPERM ? 0 : 100 + e;
    });
  };
  // The socket's directory keeps her out...
  CHECK(as_alice() == 0);
  // ...and with it opened up, the daemon closes her session unanswered.
  const std::string source = fs.source();
  REQUIRE(chmod(source.substr(0, source.rfind('/')).c_str(), 0755) == 0);
  REQUIRE(chmod(source.c_str(), 0755) == 0);
  REQUIRE(chmod((source + "/dax").c_str(), 0666) == 0);
  CHECK(as_alice() == 0);
}

TEST_CASE("truncate revokes the leases past the new size before it frees their blocks",
          "[fs][dax]") {
  MountedFs fs(LeaseMount());
  const std::string f = fs.path("f");
  MakeFile(f, 4, 'x');
  Holder h(f, 2 * kBlock, 2 * kBlock, true, OnRevoke::kAcknowledge, 'h');
  Fd fd(f, O_RDWR);
  // The holder's stores are in the file.
  CHECK(PreadAll(fd.get(), 2 * kBlock, kBlock) == std::string(kBlock, 'h'));
  REQUIRE(ftruncate(fd.get(), kBlock) == 0);
  // The holder had let go of its mapping before truncate returned.
  CHECK(h.Read(0) == "U");
  CHECK(StatOf(fd.get()).st_size == static_cast<off_t>(kBlock));
  // And it is alive: it was asked, not killed.
  CHECK(kill(h.pid(), 0) == 0);
}

TEST_CASE("a holder that does not acknowledge is killed, then the truncate goes on", "[fs][dax]") {
  MountedFs fs(LeaseMount());
  const std::string f = fs.path("f");
  MakeFile(f, 4, 'x');
  Holder h(f, 0, 4 * kBlock, true, OnRevoke::kIgnore);
  Fd fd(f, O_RDWR);
  REQUIRE(ftruncate(fd.get(), 0) == 0);
  const int status = h.Wait();
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK(StatOf(fd.get()).st_size == 0);
}

TEST_CASE("punch hole and clone into a leased range revoke the lease first", "[fs][dax]") {
  MountedFs fs(LeaseMount());
  const std::string f = fs.path("f");
  MakeFile(f, 4, 'x');
  Fd fd(f, O_RDWR);
  SECTION("punch hole") {
    Holder h(f, 0, 4 * kBlock, true, OnRevoke::kAcknowledge);
    REQUIRE(fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kBlock, kBlock) == 0);
    CHECK(h.Read(0) == "U");
  }
  SECTION("clone into") {
    const std::string g = fs.path("g");
    MakeFile(g, 1, 'y');
    Fd src(g, O_RDONLY);
    Holder h(f, 0, 4 * kBlock, false, OnRevoke::kAcknowledge);
    REQUIRE(CloneRange(src.get(), 0, kBlock, fd.get(), 2 * kBlock) == 0);
    CHECK(h.Read(0) == "U");
    CHECK(PreadAll(fd.get(), 2 * kBlock, kBlock) == std::string(kBlock, 'y'));
  }
  SECTION("copy_file_range into") {
    const std::string g = fs.path("g");
    MakeFile(g, 1, 'y');
    Fd src(g, O_RDONLY);
    Holder h(f, 0, 4 * kBlock, false, OnRevoke::kAcknowledge);
    loff_t in = 0, out = kBlock;
    REQUIRE(copy_file_range(src.get(), &in, fd.get(), &out, kBlock, 0) == kBlock);
    CHECK(h.Read(0) == "U");
  }
  SECTION("clone from a write lease, not from a read lease") {
    const std::string g = fs.path("g");
    MakeFile(g, 4, 'y');
    Fd dst(g, O_RDWR);
    {
      Holder r(f, 0, 4 * kBlock, false, OnRevoke::kAcknowledge);
      REQUIRE(CloneRange(fd.get(), 0, kBlock, dst.get(), 0) == 0);
      CHECK(r.Read(0).empty());
    }
    Holder w(f, 0, 4 * kBlock, true, OnRevoke::kAcknowledge);
    REQUIRE(CloneRange(fd.get(), kBlock, kBlock, dst.get(), kBlock) == 0);
    // Its later stores would have shown in the copy.
    CHECK(w.Read(0) == "U");
  }
  SECTION("a lease elsewhere in the file is left alone") {
    Holder h(f, 0, kBlock, true, OnRevoke::kAcknowledge);
    REQUIRE(fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * kBlock, kBlock) ==
            0);
    CHECK(h.Read(0).empty());
  }
}

// The rest of docs/dax.md's table: each operation revokes before it
// returns (U is in the pipe once it has), and the lease's holder was asked,
// not killed.
TEST_CASE("zero range, collapse, insert, unshare, allocate, dedupe, rename over and unmount revoke",
          "[fs][dax]") {
  MountedFs fs(LeaseMount());
  const std::string f = fs.path("f");
  MakeFile(f, 4, 'x');
  Fd fd(f, O_RDWR);
  SECTION("zero range") {
    Holder h(f, 0, 4 * kBlock, true, OnRevoke::kAcknowledge);
    REQUIRE(fallocate(fd.get(), FALLOC_FL_ZERO_RANGE, kBlock, kBlock) == 0);
    CHECK(h.Read(0) == "U");
    CHECK(kill(h.pid(), 0) == 0);
  }
  SECTION("collapse and insert (the daemon's ioctls)") {
    const unsigned long cmd = GENERATE(DAXREF_IOC_COLLAPSE_RANGE, DAXREF_IOC_INSERT_RANGE);
    Holder h(f, 3 * kBlock, kBlock, false, OnRevoke::kAcknowledge);
    daxref_range r{kBlock, kBlock, 0};
    REQUIRE(ioctl(fd.get(), cmd, &r) == 0);
    // The lease lies past the offset: everything there moved.
    CHECK(h.Read(0) == "U");
  }
  SECTION("unshare") {
    const std::string g = fs.path("g");
    MakeFile(g, 4, 'y');
    Fd src(g, O_RDONLY);
    REQUIRE(CloneRange(src.get(), 0, 4 * kBlock, fd.get(), 0) == 0);
    // A read lease of shared blocks: unsharing moves the file's blocks.
    Holder h(f, 0, 4 * kBlock, false, OnRevoke::kAcknowledge);
    REQUIRE(UnshareRange(fd.get(), 0, 4 * kBlock) == 0);
    CHECK(h.Read(0) == "U");
  }
  SECTION("allocate: read leases over holes, not write leases") {
    REQUIRE(fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kBlock, kBlock) == 0);
    {
      Holder r(f, 0, 4 * kBlock, false, OnRevoke::kAcknowledge);
      REQUIRE(fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 0, 4 * kBlock) == 0);
      CHECK(r.Read(0) == "U");
    }
    Holder w(f, 0, 4 * kBlock, true, OnRevoke::kAcknowledge);
    REQUIRE(fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 0, 4 * kBlock) == 0);
    CHECK(w.Read(0).empty());
  }
  SECTION("dedupe: the destination's leases, and the source's write leases") {
    const std::string g = fs.path("g");
    MakeFile(g, 4, 'x');
    Fd other(g, O_RDWR);
    {
      Holder dest(f, 0, 4 * kBlock, false, OnRevoke::kAcknowledge);
      DedupeOutcome d = Dedupe(other.get(), 0, kBlock, fd.get(), 0);
      REQUIRE(d.err == 0);
      CHECK(d.status == FILE_DEDUPE_RANGE_SAME);
      CHECK(dest.Read(0) == "U");
    }
    {
      Holder src_read(f, 0, 4 * kBlock, false, OnRevoke::kAcknowledge);
      REQUIRE(Dedupe(fd.get(), kBlock, kBlock, other.get(), kBlock).err == 0);
      CHECK(src_read.Read(0).empty());
    }
    Holder src_write(f, 0, 4 * kBlock, true, OnRevoke::kAcknowledge);
    REQUIRE(Dedupe(fd.get(), 2 * kBlock, kBlock, other.get(), 2 * kBlock).err == 0);
    CHECK(src_write.Read(0) == "U");
  }
  SECTION("rename over the leased file") {
    const std::string g = fs.path("g");
    MakeFile(g, 1, 'y');
    fd.Close();
    Holder h(f, 0, 4 * kBlock, true, OnRevoke::kAcknowledge);
    REQUIRE(rename(g.c_str(), f.c_str()) == 0);
    // Reclaimed at the kernel's FORGET of the old inode, which follows.
    CHECK(h.Read(10000, 1) == "U");
  }
  SECTION("unmount") {
    fd.Close();
    Holder h(f, 0, 4 * kBlock, true, OnRevoke::kAcknowledge);
    fs.Unmount();
    CHECK(h.Read(10000, 1) == "U");
    CHECK(kill(h.pid(), 0) == 0);
  }
}

TEST_CASE("a holder that closes its session while still mapping the pool is killed", "[fs][dax]") {
  MountedFs fs(LeaseMount());
  const std::string f = fs.path("f");
  MakeFile(f, 4, 'x');
  Holder h(f, 0, 4 * kBlock, true, OnRevoke::kCloseSession);
  const int status = h.Wait();
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
}

TEST_CASE("a holder killed with SIGKILL gives its leases back", "[fs][dax]") {
  TempDir logs;
  const std::string log = logs.path() + "/daxref.log";
  MountedFs fs(LeaseMount(log));
  const std::string f = fs.path("f");
  MakeFile(f, 4, 'x');
  pid_t pid;
  {
    Holder h(f, 0, 4 * kBlock, true, OnRevoke::kIgnore);
    pid = h.pid();
    REQUIRE(kill(pid, SIGKILL) == 0);
    h.Wait();
  }
  // The daemon saw it go (its pidfd) and dropped the lease and its record...
  REQUIRE(LogSays(log, "process " + std::to_string(pid) + " went away"));
  // ...so a truncate has nobody to revoke.
  Fd fd(f, O_RDWR);
  REQUIRE(ftruncate(fd.get(), 0) == 0);
  CHECK(Slurp(log).find("did not acknowledge") == std::string::npos);
}

TEST_CASE("after a daemon crash, the next mount makes a holder still mapping the pool go first",
          "[fs][dax]") {
  TempDir logs;
  const std::string log = logs.path() + "/daxref.log";
  MountedFs fs(LeaseMount(log));
  const std::string f = fs.path("f");
  MakeFile(f, 4, 'x');
  Holder h(f, 0, 4 * kBlock, true, OnRevoke::kIgnore);
  fs.KillDaemon();
  // The holder outlives the daemon, still mapping the pool.
  CHECK(kill(h.pid(), 0) == 0);
  fs.Mount();
  // Gone before the mount appeared (the mount waits for it).
  const int status = h.WaitNoHang();
  REQUIRE(status != -1);
  REQUIRE(WIFSIGNALED(status));
  CHECK((WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGKILL));
  CHECK(Slurp(log).find("left by the last daemon") != std::string::npos);
  // The file is served, and a truncate has nobody to revoke.
  Fd fd(f, O_RDWR);
  REQUIRE(ftruncate(fd.get(), 0) == 0);
}

TEST_CASE("a write(2) that fills a hole of a read lease revokes it; one in place does not",
          "[fs][dax]") {
  MountedFs fs(LeaseMount());
  const std::string f = fs.path("f");
  {
    Fd fd(f, O_RDWR | O_CREAT, 0644);
    PwriteAll(fd.get(), std::string(2 * kBlock, 'x'), 0);
    REQUIRE(ftruncate(fd.get(), 3 * kBlock) == 0);  // block 2 is a hole
  }
  Holder h(f, 0, 3 * kBlock, false, OnRevoke::kAcknowledge);
  Fd fd(f, O_RDWR);
  PwriteAll(fd.get(), "overwritten in place", 10);
  CHECK(h.Read(0).empty());
  PwriteAll(fd.get(), "into the hole", 2 * kBlock + 10);
  CHECK(h.Read(0) == "U");
}

TEST_CASE("unlinking a leased file revokes its leases before its blocks are freed", "[fs][dax]") {
  MountedFs fs(LeaseMount());
  const std::string f = fs.path("f");
  MakeFile(f, 4, 'x');
  Holder h(f, 0, 4 * kBlock, true, OnRevoke::kAcknowledge);
  REQUIRE(unlink(f.c_str()) == 0);
  // The reclaim runs at the kernel's FORGET, which follows the unlink.
  CHECK(h.Read(10000, 1) == "U");
}

TEST_CASE("poison in a leased range is told to its holder, who keeps the lease", "[fs][dax]") {
  MountedFs::Options o = LeaseMount();
  o.mount_options.push_back("poison_signal=none");
  MountedFs fs(o);
  const std::string f = fs.path("f");
  MakeFile(f, 4, 'x');
  Holder h(f, 0, 4 * kBlock, false, OnRevoke::kAcknowledge);
  RunResult r =
      Run({DAXREF_TEST_POISON, "inject", "--file", f, "--offset", std::to_string(2 * kBlock)});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  // The file offset of the bad block, and no revocation.
  CHECK(h.Read(10000, 1) == "P" + std::to_string(2 * kBlock) + ";");
}

TEST_CASE("pre-remove revokes every lease", "[fs][dax]") {
  MountedFs::Options o = LeaseMount();
  o.mount_options.push_back("poison_signal=none");
  MountedFs fs(o);
  const std::string f = fs.path("f");
  MakeFile(f, 4, 'x');
  Holder h(f, 0, 4 * kBlock, true, OnRevoke::kCheckServing);
  RunResult r = Run({DAXREF_TEST_POISON, "pre-remove", fs.mnt()});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  // Revoked while pre-remove ran, before the shutdown (seed 004: freeze,
  // flush, revoke, then shut down), not at the unmount that follows.
  CHECK(h.Read(10000, 1) == "U");
  CHECK(fs.WaitForExit() == 0);
}

TEST_CASE("publish drops the kernel's cached pages of a leased range", "[fs][dax]") {
  MountedFs fs(LeaseMount());
  const std::string f = fs.path("f");
  MakeFile(f, 2, 'x');
  // Opened before the grant: its pages may stay cached.
  Fd before(f, O_RDONLY);
  CHECK(PreadAll(before.get(), 0, kBlock) == std::string(kBlock, 'x'));
  DaxTestClient c;
  Fd rw(f, O_RDWR);
  REQUIRE(c.Connect(rw.get()) == 0);
  DaxTestClient::Lease l;
  REQUIRE(c.Take(rw.get(), 0, 2 * kBlock, true, &l) == 0);
  CHECK(PreadAll(before.get(), 0, kBlock) == std::string(kBlock, 'x'));
  memset(l.map, 'p', kBlock);
  REQUIRE(c.Publish(l, 0, kBlock) == 0);
  CHECK(PreadAll(before.get(), 0, kBlock) == std::string(kBlock, 'p'));
  REQUIRE(c.Release(&l) == 0);
}

}  // namespace
}  // namespace daxref::test
