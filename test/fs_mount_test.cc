// Mounting, as an administrator and an ordinary user meet it (issue 11,
// items 10, 11 and 14): what mkfs.daxref leaves in SOURCE, the same safe
// nosuid,nodev default through mount(8)/mount.fuse3 as through daxref
// itself, a second daemon that has to wait, a mount left by a killed
// daemon, signals that must not kill the daemon, a damaged backup
// superblock, and daxref-reflink unshare stopping at EOF.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test/cli_expect.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

// The mount options (field 6 of mountinfo) of the mount on top of `mnt`,
// with commas around them; empty if nothing is mounted there.
std::string MountOptionsOf(const std::string& mnt) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, found;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, point, opts;
    ls >> id >> parent >> devno >> root >> point >> opts;
    if (point == mnt) found = "," + opts + ",";
  }
  return found;
}

int MountsAt(const std::string& mnt) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, point;
    ls >> id >> parent >> devno >> root >> point;
    n += point == mnt;
  }
  return n;
}

// Waits (up to 30 s) until no process holds the pool of `source` (a daemon
// started in the background exits after its unmount).
void WaitForPoolFree(const std::string& source) {
  const std::string pool = source + "/pool";
  for (int i = 0; i < 600; ++i) {
    int fd = open(pool.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    const bool got = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd);
    if (got) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("the daemon of " << source << " did not exit");
}

void UnmountBackground(const std::string& mnt, const std::string& source) {
  RunResult r = UnmountMountPoint(mnt);
  INFO(r.err);
  CHECK(r.status == 0);
  WaitForPoolFree(source);
}

std::string MakeSource(const std::string& parent) {
  const std::string source = parent + "/fs";
  RunResult r = Run({MkfsBin(), "-q", "--size", "64M", source});
  INFO(r.err);
  REQUIRE(r.status == 0);
  return source;
}

// A directory holding `daxref` (a link to the binary under test), for the
// PATH mount.fuse3 searches.
struct DaemonInPath {
  TempDir dir;
  DaemonInPath() { REQUIRE(symlink(DaemonBin().c_str(), (dir.path() + "/daxref").c_str()) == 0); }
  std::string Path() const { return "PATH=" + dir.path() + ":/usr/sbin:/usr/bin:/sbin:/bin"; }
};

// Detaches whatever is still mounted at `mnt` when the test ends, however
// it ends: a dead mount left by a failed case would outlive the test.
struct DetachOnExit {
  std::string mnt;
  ~DetachOnExit() {
    while (MountsAt(mnt) > 0)
      if (umount2(mnt.c_str(), MNT_DETACH) != 0) break;
  }
};

bool HaveMountFuse() {
  return access("/sbin/mount.fuse3", X_OK) == 0;
}

}  // namespace

TEST_CASE("mkfs.daxref: SOURCE, meta and the pool are the owner's alone", "[mount]") {
  TempDir parent("/dev/shm");
  REQUIRE(chmod(parent.path().c_str(), 0755) == 0);
  const std::string source = parent.path() + "/fs";
  // An existing SOURCE, open to all and someone else's: made root's and
  // closed.
  REQUIRE(mkdir(source.c_str(), 0755) == 0);
  REQUIRE(chown(source.c_str(), kNobody, kNogroup) == 0);
  REQUIRE(chmod(source.c_str(), 0755) == 0);
  RunResult r = Run({MkfsBin(), "-q", "--size", "64M", source});
  INFO(r.err);
  REQUIRE(r.status == 0);
  for (const auto& [path, mode] : std::vector<std::pair<std::string, mode_t>>{
           {source, 0700}, {source + "/meta", 0700}, {source + "/pool", 0600}}) {
    struct stat st = Lstat(path);
    INFO(path);
    CHECK((st.st_mode & 07777) == mode);
    CHECK(st.st_uid == 0);
    CHECK(st.st_gid == 0);
  }
  // The daemon's socket too.
  MountedFs::Options o;
  o.source = source;
  {
    MountedFs fs(o);
    struct stat st = Lstat(source + "/control");
    CHECK((st.st_mode & 07777) == 0600);
    // Another user reads nothing of the store, not even with SOURCE's
    // parent open.
    const int rc = RunAs(kNobody, kNogroup, [&] {
      int fd = open((source + "/meta/CURRENT").c_str(), O_RDONLY);
      if (fd >= 0) return 1;
      return errno == EACCES ? 0 : 2;
    });
    CHECK(rc == 0);
    fs.Unmount();
  }
  // Made by an ordinary user in a 0755 directory of theirs: theirs, 0700.
  TempDir user_parent("/dev/shm");
  REQUIRE(chown(user_parent.path().c_str(), kNobody, kNogroup) == 0);
  REQUIRE(chmod(user_parent.path().c_str(), 0755) == 0);
  const std::string user_source = user_parent.path() + "/fs";
  REQUIRE(mkdir(user_source.c_str(), 0755) == 0);
  REQUIRE(chown(user_source.c_str(), kNobody, kNogroup) == 0);
  r = RunAsWithEnv(kNobody, kNogroup, {MkfsBin(), "-q", "--size", "64M", user_source},
                   {"PATH=/usr/bin:/bin"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  for (const std::string& path : {user_source, user_source + "/meta"}) {
    struct stat st = Lstat(path);
    INFO(path);
    CHECK((st.st_mode & 07777) == 0700);
    CHECK(st.st_uid == kNobody);
  }
}

TEST_CASE("mount -t fuse.daxref is nosuid,nodev unless allow_suid/allow_dev", "[mount]") {
  if (!HaveMountFuse()) {
    WARN("no /sbin/mount.fuse3 (package fuse3): skipped");
    return;
  }
  TempDir parent("/dev/shm");
  const std::string source = MakeSource(parent.path());
  TempDir mnt;
  DetachOnExit detach{mnt.path()};
  REQUIRE(chmod(mnt.path().c_str(), 0755) == 0);
  DaemonInPath bin;
  // What mount(8) runs for `mount -t fuse.daxref SOURCE MNT` and for an
  // fstab line of that type (mount.fuse3 adds suid,dev).
  auto mount_fuse = [&](const std::string& opts) {
    RunResult r = RunWithEnv(
        {"/sbin/mount.fuse3", source, mnt.path(), "-t", "fuse.daxref", "-o", opts}, {bin.Path()});
    INFO(opts << ": " << r.err);
    REQUIRE(r.status == 0);
    return MountOptionsOf(mnt.path());
  };
  for (const std::string opts : {"rw", "rw,suid,dev", "defaults,allow_other"}) {
    const std::string got = mount_fuse(opts);
    INFO(opts << " -> " << got);
    CHECK(got.find(",nosuid,") != std::string::npos);
    CHECK(got.find(",nodev,") != std::string::npos);
    if (opts.find("allow_other") != std::string::npos) {
      // A setuid-root program stored by root does not make another user root.
      const std::string id = mnt.path() + "/id";
      RunResult cp = Run({"/bin/cp", "/usr/bin/id", id});
      REQUIRE(cp.status == 0);
      REQUIRE(chmod(id.c_str(), 04755) == 0);
      RunResult who = RunAsWithEnv(kNobody, kNogroup, {id, "-u"}, {"PATH=/usr/bin:/bin"});
      INFO(who.err);
      CHECK(who.out == "65534\n");
      REQUIRE(unlink(id.c_str()) == 0);
    }
    UnmountBackground(mnt.path(), source);
  }
  const std::string got = mount_fuse("rw,allow_suid,allow_dev");
  INFO(got);
  CHECK(got.find(",nosuid,") == std::string::npos);
  CHECK(got.find(",nodev,") == std::string::npos);
  UnmountBackground(mnt.path(), source);
  // Through mount(8) itself, with an fstab of the test's own (mount(8)
  // clears PATH for its helpers, so the program is named in the source).
  TempDir etc;
  const std::string fstab = etc.path() + "/fstab";
  WriteFile(fstab, DaemonBin() + "#" + source + " " + mnt.path() + " fuse defaults 0 0\n");
  RunResult r = Run({"/bin/mount", "-T", fstab, mnt.path()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::string fstab_got = MountOptionsOf(mnt.path());
  INFO(fstab_got);
  CHECK(fstab_got.find(",nosuid,") != std::string::npos);
  CHECK(fstab_got.find(",nodev,") != std::string::npos);
  UnmountBackground(mnt.path(), source);
  // And daxref directly: the same.
  r = Run({DaemonBin(), "-o", "suid,dev", source, mnt.path()});
  REQUIRE(r.status == 0);
  const std::string direct = MountOptionsOf(mnt.path());
  CHECK(direct.find(",nosuid,") != std::string::npos);
  CHECK(direct.find(",nodev,") != std::string::npos);
  UnmountBackground(mnt.path(), source);
}

TEST_CASE("daxref: a second mount of a busy SOURCE says at once whom it waits for", "[mount]") {
  MountedFs fs;
  TempDir mnt2;
  DetachOnExit detach{mnt2.path()};
  // In the background (no -f): the note must come through the parent at
  // once, not after the wait; the failure after lock_wait.
  RunResult r = Run({DaemonBin(), "-o", "lock_wait=1", fs.source(), mnt2.path()});
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(r.err.find("waiting up to 1 s") != std::string::npos);
  CHECK(r.err.find("pid " + std::to_string(fs.daemon_pid())) != std::string::npos);
  CHECK(r.err.find("is in use by another daxref daemon") != std::string::npos);
  // The note comes first.
  CHECK(r.err.find("waiting") < r.err.find("in use"));
  CHECK(MountsAt(mnt2.path()) == 0);
}

TEST_CASE("daxref: the dead mount of a killed daemon is detached, not stacked on", "[mount]") {
  TempDir parent("/dev/shm");
  const std::string source = MakeSource(parent.path());
  TempDir mnt;
  DetachOnExit detach{mnt.path()};
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl(DaemonBin().c_str(), "daxref", "-f", "--log-level", "error", source.c_str(),
          mnt.path().c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 600 && MountsAt(mnt.path()) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(MountsAt(mnt.path()) == 1);
  WriteFile(mnt.path() + "/f", "kept");
  REQUIRE(kill(pid, SIGKILL) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  struct stat st;
  REQUIRE(stat(mnt.path().c_str(), &st) != 0);
  REQUIRE(errno == ENOTCONN);

  RunResult r = Run({DaemonBin(), source, mnt.path()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.find("detached the dead mount") != std::string::npos);
  CHECK(MountsAt(mnt.path()) == 1);
  CHECK(ReadFile(mnt.path() + "/f") == "kept");
  UnmountBackground(mnt.path(), source);
  CHECK(MountsAt(mnt.path()) == 0);
}

TEST_CASE("daxref: a dead mount of another filesystem is refused with the way out", "[mount]") {
  // A FUSE mount whose daemon is gone, of some other type: a daxref daemon
  // that is killed right after mounting, seen under another subtype.
  TempDir parent("/dev/shm");
  const std::string source = MakeSource(parent.path());
  TempDir mnt;
  DetachOnExit detach{mnt.path()};
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl(DaemonBin().c_str(), "daxref", "-f", "--log-level", "error", "-o", "subtype=other",
          source.c_str(), mnt.path().c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 600 && MountsAt(mnt.path()) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(MountsAt(mnt.path()) == 1);
  REQUIRE(kill(pid, SIGKILL) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  RunResult r = Run({DaemonBin(), source, mnt.path()});
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(r.err.find("dead mount (fuse.other)") != std::string::npos);
  CHECK(r.err.find("fusermount3 -u -z " + mnt.path()) != std::string::npos);
  CHECK(MountsAt(mnt.path()) == 1);
  REQUIRE(umount2(mnt.path().c_str(), MNT_DETACH) == 0);
}

TEST_CASE("daxref: SIGQUIT, SIGUSR1 and SIGUSR2 do not end the daemon", "[mount]") {
  MountedFs fs;
  WriteFile(fs.path("f"), "still here");
  for (int sig : {SIGQUIT, SIGUSR1, SIGUSR2}) REQUIRE(kill(fs.daemon_pid(), sig) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int status = 0;
  CHECK(waitpid(fs.daemon_pid(), &status, WNOHANG) == 0);
  CHECK(ReadFile(fs.path("f")) == "still here");
  fs.Unmount();  // exits 0
}

TEST_CASE("daxref: a damaged backup superblock is reported at mount and by fsck", "[mount]") {
  TempDir parent("/dev/shm");
  const std::string source = MakeSource(parent.path());
  const std::string pool = source + "/pool";
  struct stat st = Lstat(pool);
  {
    int fd = open(pool.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    const std::string zeros(kBlock, '\0');
    PwriteAll(fd, zeros, static_cast<uint64_t>(st.st_size) - kBlock);
    close(fd);
  }
  // fsck finds it.
  RunResult r = Run({DAXREF_TEST_FSCK, "-n", source});
  INFO(r.out << r.err);
  CHECK(r.status == 4);
  CHECK((r.out + r.err).find("backup superblock (last block) is damaged") != std::string::npos);
  // The mount says so (and rewrites it, as every mount writes both copies).
  TempDir mnt;
  DetachOnExit detach{mnt.path()};
  r = Run({DaemonBin(), source, mnt.path()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.find("backup pool superblock") != std::string::npos);
  CHECK(r.err.find("rewritten from the primary") != std::string::npos);
  UnmountBackground(mnt.path(), source);
  r = Run({DAXREF_TEST_FSCK, "-n", source});
  CHECK(r.status == 0);
  r = Run({DaemonBin(), source, mnt.path()});
  REQUIRE(r.status == 0);
  CHECK(r.err.find("backup") == std::string::npos);
  UnmountBackground(mnt.path(), source);
}

TEST_CASE("daxref-reflink unshare of a range past EOF stops at EOF", "[mount]") {
  MountedFs fs;
  const std::string data(3 * kBlock + 100, 'u');
  WriteFile(fs.path("f"), data);
  RunResult r = Run({DAXREF_TEST_REFLINK, "clone", fs.path("f"), fs.path("g")});
  REQUIRE(r.status == 0);
  const uint64_t free_before = FreeBlocks(fs);
  r = Run({DAXREF_TEST_REFLINK, "unshare", fs.path("g"), "0", "99999T"});
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(StatOf(fs.path("g")).st_size == static_cast<off_t>(data.size()));
  // g's four blocks are its own now, and nothing past EOF was allocated.
  CHECK(FreeBlocksSettled(fs, free_before - 4) == free_before - 4);
  CHECK(ReadFile(fs.path("g")) == data);
  r = Run({DAXREF_TEST_REFLINK, "unshare", fs.path("g"), "1T", "1T"});
  CHECK(r.status == 0);
  CHECK(FreeBlocksSettled(fs, free_before - 4) == free_before - 4);
  fs.Check();
}

// The fstab line and the systemd mount unit the documentation gives
// (docs/examples/, quoted in daxref(8) and the README).
TEST_CASE("docs/examples: the fstab line mounts through mount(8); the unit verifies", "[mount]") {
  const std::string root = DAXREF_TEST_SOURCE_ROOT;
  std::string line;
  for (const auto& l : Lines(ReadFile(root + "/docs/examples/fstab")))
    if (!l.empty() && l[0] != '#') line = l;
  std::istringstream fields(line);
  std::string what, where, type, opts, freq, pass;
  fields >> what >> where >> type >> opts >> freq >> pass;
  REQUIRE(type == "fuse.daxref");
  CHECK(freq == "0");
  CHECK(pass == "0");
  // The unit says the same.
  const std::string unit = ReadFile(root + "/docs/examples/mnt-pm.mount");
  CHECK(unit.find("\nWhat=" + what + "\n") != std::string::npos);
  CHECK(unit.find("\nWhere=" + where + "\n") != std::string::npos);
  CHECK(unit.find("\nType=" + type + "\n") != std::string::npos);
  CHECK(unit.find("\nOptions=" + opts + "\n") != std::string::npos);
  // And the documentation quotes the line.
  CHECK(ReadFile(root + "/README.md").find(line) != std::string::npos);

  SECTION("systemd-analyze verify passes on the unit") {
    if (access("/usr/bin/systemd-analyze", X_OK) != 0) {
      WARN("no systemd-analyze (package systemd): skipped");
      return;
    }
    // Documentation=man:daxref(8) is checked with man(1): the tree's pages.
    TempDir man;
    REQUIRE(mkdir((man.path() + "/man8").c_str(), 0755) == 0);
    REQUIRE(symlink((root + "/man/daxref.8").c_str(), (man.path() + "/man8/daxref.8").c_str()) ==
            0);
    RunResult r =
        RunWithEnv({"/usr/bin/systemd-analyze", "verify", root + "/docs/examples/mnt-pm.mount"},
                   {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "MANPATH=" + man.path()});
    INFO(r.out << r.err);
    CHECK(r.status == 0);
    CHECK(r.err.empty());
  }
  SECTION("mount MOUNTPOINT with the line in an fstab mounts it") {
    if (!HaveMountFuse()) {
      WARN("no /sbin/mount.fuse3 (package fuse3): skipped");
      return;
    }
    TempDir parent("/dev/shm");
    const std::string source = MakeSource(parent.path());
    TempDir mnt;
    DetachOnExit detach{mnt.path()};
    TempDir logs;
    // This machine's paths for SOURCE, the mountpoint and the log file.
    std::string here = opts;
    const std::string log_default = "log_file=/var/log/daxref-pm.log";
    REQUIRE(here.find(log_default) != std::string::npos);
    here.replace(here.find(log_default), log_default.size(),
                 "log_file=" + logs.path() + "/daxref-pm.log");
    const std::string fstab = logs.path() + "/fstab";
    WriteFile(fstab, source + "  " + mnt.path() + "  " + type + "  " + here + "  0 0\n");
    // mount(8) starts mount.fuse3 with an empty environment, so its shell
    // finds `daxref` in the default PATH only: in a mount namespace of its
    // own, /usr/local/bin gets a link to the daemon under test, and
    // mount(8) reads the line from the fstab given with -T.
    const std::string script =
        "set -e; mnt=$1\n"
        "trap 'umount -l \"$mnt\" 2>/dev/null || true' EXIT\n"
        "mount -t tmpfs -o mode=0755 daxref-test-bin /usr/local/bin\n"
        "ln -s \"$2\" /usr/local/bin/daxref\n"
        "mount -T \"$3\" \"$mnt\"\n"
        "findmnt -n -o FSTYPE \"$mnt\"\n"
        "findmnt -n -o OPTIONS \"$mnt\"\n"
        "echo 'via fstab' > \"$mnt/f\"\n"
        "cat \"$mnt/f\"\n"
        "umount \"$mnt\"\n";
    RunResult r = Run({"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                       script, "sh", mnt.path(), DaemonBin(), fstab});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    const std::vector<std::string> out = Lines(r.out);
    REQUIRE(out.size() == 3);
    CHECK(out[0] == "fuse.daxref");
    CHECK(("," + out[1] + ",").find(",nosuid,") != std::string::npos);
    CHECK(out[2] == "via fstab");
    WaitForPoolFree(source);
    CHECK(
        ReadFile(logs.path() + "/daxref-pm.log").find("mounted " + source + " on " + mnt.path()) !=
        std::string::npos);
    // The file is there for the next mount.
    RunResult again = Run({DaemonBin(), source, mnt.path()});
    INFO(again.err);
    REQUIRE(again.status == 0);
    CHECK(ReadFile(mnt.path() + "/f") == "via fstab\n");
    UnmountBackground(mnt.path(), source);
    CHECK(MountsAt(mnt.path()) == 0);
  }
}
