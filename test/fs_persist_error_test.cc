// A pool whose host filesystem fails to write pages back: msync of the
// pool mapping fails for real, and the daemon must turn that into errors
// for the operations that needed it, never abort (libpmem2's own persist
// calls abort() when msync fails; docs/design.md, "Durability").
//
// The pool lives on test/eio_fs, a FUSE filesystem of this test's own that
// fails every write and fsync while told to (SIGUSR1 on, SIGUSR2 off). The
// usual tool, a device-mapper "error" or "flakey" target under a real
// filesystem, is not available on the development VM: its kernel has no
// CONFIG_BLK_DEV_DM and no modules. To the kernel a FUSE filesystem is a
// filesystem like any other: the daemon's msync writes the dirty pages of
// its MAP_SHARED mapping back with WRITE requests and then sends FSYNC, and
// the error they get is what msync returns.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "meta/superblock.h"
#include "pool/pool.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"

namespace daxref::test {
namespace {

bool Mounted(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.find(" " + dir + " ") != std::string::npos) return true;
  return false;
}

// eio_fs serving `back` on `mnt` for as long as it lives.
class EioFs {
 public:
  EioFs(const std::string& back, const std::string& mnt) : mnt_(mnt) {
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      execl(DAXREF_TEST_EIO_FS, DAXREF_TEST_EIO_FS, back.c_str(), mnt.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 1000 && !Mounted(mnt_); ++i) {
      int status;
      REQUIRE(waitpid(pid_, &status, WNOHANG) == 0);  // still running
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(Mounted(mnt_));
  }
  ~EioFs() {
    kill(pid_, SIGTERM);
    int status;
    waitpid(pid_, &status, 0);
    if (Mounted(mnt_)) umount2(mnt_.c_str(), MNT_DETACH);
  }
  EioFs(const EioFs&) = delete;
  EioFs& operator=(const EioFs&) = delete;
  // From now on every write and fsync fails with EIO (or works again).
  void Fail(bool fail) { REQUIRE(kill(pid_, fail ? SIGUSR1 : SIGUSR2) == 0); }
  // From now on every read fails with EIO (Fail(false) ends it).
  void FailReads() { REQUIRE(kill(pid_, SIGWINCH) == 0); }

 private:
  std::string mnt_;
  pid_t pid_ = -1;
};

}  // namespace

TEST_CASE(
    "msync of the pool fails: fsync gets EIO, a write of new blocks fails and commits "
    "nothing, the daemon lives on",
    "[persist]") {
  // SOURCE on /dev/shm as usual, but SOURCE/pool a symlink to the pool
  // moved onto eio_fs.
  TempDir base("/dev/shm");
  TempDir back_mnt("/tmp");
  const std::string src = base.path() + "/fs", back = base.path() + "/back";
  REQUIRE(mkdir(back.c_str(), 0700) == 0);
  RunResult r = Run({MkfsBin(), "-q", "-s", "16M", src});
  INFO(r.err);
  REQUIRE(r.status == 0);
  REQUIRE(rename((src + "/pool").c_str(), (back + "/pool").c_str()) == 0);
  EioFs eio(back, back_mnt.path());
  REQUIRE(symlink((back_mnt.path() + "/pool").c_str(), (src + "/pool").c_str()) == 0);

  TempDir logs;
  MountedFs::Options o;
  o.source = src;
  o.log_path = logs.path() + "/daemon.log";
  MountedFs fs(o);
  const std::string data = NonZeroBytes(1, 5 * kBlock);
  {
    Fd f(fs.path("f"), O_WRONLY | O_CREAT | O_TRUNC);
    PwriteAll(f.get(), data, 0);
    REQUIRE(fsync(f.get()) == 0);
  }

  eio.Fail(true);
  {
    Fd f(fs.path("f"), O_WRONLY);
    // The pool cannot be made durable: fsync says so.
    CHECK(ErrnoOf(fsync(f.get())) == EIO);
    // Appending maps new blocks, which must be durable before the batch
    // that maps them commits: the write fails, and nothing changed.
    CHECK(ErrnoOf(pwrite(f.get(), "more", 4, static_cast<off_t>(data.size()))) == EIO);
    CHECK(ErrnoOf(pwrite(f.get(), "hole", 4, static_cast<off_t>(20 * kBlock))) == EIO);
    CHECK(ErrnoOf(fallocate(f.get(), 0, static_cast<off_t>(8 * kBlock), kBlock)) == EIO);
  }
  CHECK(kill(fs.daemon_pid(), 0) == 0);
  CHECK(StatOf(fs.path("f")).st_size == static_cast<off_t>(data.size()));
  CHECK_SAME(ReadFile(fs.path("f")), data);
  // Namespace operations do not touch the pool: they go on.
  WriteFile(fs.path("empty"), "");
  std::string log = ReadFile(o.log_path);
  INFO(log);
  CHECK(log.find("fsync: persisting pool bytes") != std::string::npos);
  CHECK(log.find("Input/output error") != std::string::npos);

  // The host filesystem recovers: everything works again.
  eio.Fail(false);
  {
    Fd f(fs.path("f"), O_WRONLY);
    PwriteExact(f.get(), "more", data.size());
    CHECK(fsync(f.get()) == 0);
  }
  CHECK_SAME(ReadFile(fs.path("f")), data + "more");
  fs.Unmount();
  CheckReport report = CheckSource(src);
  CHECK(report.bad_blocks == 0);
  fs.Mount();
  CHECK_SAME(ReadFile(fs.path("f")), data + "more");
  fs.Unmount();
}

TEST_CASE(
    "A pool page the host filesystem fails to read: the access is retried once after "
    "fallocate, then EIO; never poison",
    "[persist][guard]") {
  TempDir base("/dev/shm");
  TempDir back_mnt("/tmp");
  const std::string src = base.path() + "/fs", back = base.path() + "/back";
  REQUIRE(mkdir(back.c_str(), 0700) == 0);
  RunResult r = Run({MkfsBin(), "-q", "-s", "4M", src});
  INFO(r.err);
  REQUIRE(r.status == 0);
  REQUIRE(rename((src + "/pool").c_str(), (back + "/pool").c_str()) == 0);
  EioFs eio(back, back_mnt.path());
  auto p = PoolMapping::Open(back_mnt.path() + "/pool", 0);
  INFO(p.status().message());
  REQUIRE(p.ok());
  PoolMapping& pool = **p;
  std::vector<uint64_t> told;
  std::vector<std::string> logged;
  pool.set_fault_sink([&](uint64_t off) { told.push_back(off); });
  pool.set_host_fault_log([&](const std::string& line) { logged.push_back(line); });

  eio.FailReads();
  // A page nothing has read yet: the fault is the host's failed read. The
  // host can allocate it (fallocate works), so the access is tried again,
  // fails the same way, and is EIO.
  char buf[64];
  Status s = pool.Load(200 * kBlock + 8, buf, sizeof(buf));
  INFO(s.message());
  CHECK(s.err() == EIO);
  CHECK(s.message().find("faulted again after its page was allocated") != std::string::npos);
  CHECK(told.empty());
  REQUIRE(logged.size() == 2);
  CHECK(logged[0].find("retrying") != std::string::npos);
  CHECK(logged[1].find("faulted again") != std::string::npos);
  CHECK(logged[1].find("not poison") != std::string::npos);
  // Reads work again: so does the access.
  eio.Fail(false);
  CHECK(pool.Load(200 * kBlock + 8, buf, sizeof(buf)).ok());
  CHECK(told.empty());
}

}  // namespace daxref::test
