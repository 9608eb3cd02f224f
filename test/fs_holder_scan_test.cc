// HolderIndex, SignalHolder and MountDevice (admin/holder_scan.h) against real
// processes: poison_holder children that open, map, close and fork on
// command and log every signal they get.
//
// The held files live under /dev/shm and the holders' logs under /tmp, on
// another device, so that the only files a holder has on the device under
// test are the ones a test told it to take. A file created by the test is
// held by no one else, so the holders of its inode are known exactly.
//
// That a process was NOT signalled is shown without sleeping: the test then
// queues a sentinel with the same real-time signal (sigqueue). Real-time
// signals of one number are delivered in the order they were sent, so once
// the sentinel is in the log, anything SignalHolder had sent would be too.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include "admin/holder_scan.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"
#include "test/holder_process.h"

namespace daxref::test {
namespace {

constexpr auto kDeadline = std::chrono::seconds(5);

// The signal most tests send, and the sentinels with it: real-time, so
// queued in order (see the top of the file).
int TestSignal() {
  return SIGRTMIN + 1;
}

std::string Errno(int err) {
  return std::to_string(err) + " (" + strerror(err) + ")";
}

// A fork of the test process that only waits to be killed; killed and
// reaped on destruction.
class IdleChild {
 public:
  IdleChild() {
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      for (;;) pause();
    }
  }
  ~IdleChild() {
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
  IdleChild(const IdleChild&) = delete;
  IdleChild& operator=(const IdleChild&) = delete;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

// Stops a process (SIGSTOP) for as long as it lives, then lets it go on.
class StoppedProcess {
 public:
  // pid must be a child of the test: the stop is waited for with waitid.
  explicit StoppedProcess(pid_t pid) : pid_(pid) {
    REQUIRE(kill(pid_, SIGSTOP) == 0);
    siginfo_t info;
    REQUIRE(waitid(P_PID, pid_, &info, WSTOPPED | WNOWAIT) == 0);
  }
  ~StoppedProcess() { kill(pid_, SIGCONT); }
  StoppedProcess(const StoppedProcess&) = delete;
  StoppedProcess& operator=(const StoppedProcess&) = delete;

 private:
  pid_t pid_;
};

// A test file of 2 pages (mappable, so not empty).
struct TestFile {
  std::string path;
  dev_t dev;
  uint64_t ino;
};
TestFile MakeFile(const TempDir& dir, const std::string& name) {
  TestFile f{dir.path() + "/" + name, 0, 0};
  WriteFile(f.path, std::string(8192, 'x'));
  struct stat st;
  REQUIRE(stat(f.path.c_str(), &st) == 0);
  f.dev = st.st_dev;
  f.ino = st.st_ino;
  return f;
}

// The distinct holders of ino in the index, sorted; fails the test if the
// index names a process twice.
std::vector<pid_t> HoldersOf(const HolderIndex& index, uint64_t ino) {
  std::vector<pid_t> pids;
  index.ForEachHolder(ino, [&](pid_t pid) { pids.push_back(pid); });
  std::sort(pids.begin(), pids.end());
  CHECK(std::adjacent_find(pids.begin(), pids.end()) == pids.end());
  return pids;
}
std::vector<pid_t> Sorted(std::vector<pid_t> pids) {
  std::sort(pids.begin(), pids.end());
  return pids;
}
bool Contains(const std::vector<pid_t>& pids, pid_t pid) {
  return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

// Whether pid has a descriptor on (dev, ino), read from /proc independently
// of holder_scan.cc.
bool HasDescriptorOn(pid_t pid, dev_t dev, uint64_t ino) {
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    struct stat st;
    if (stat(e.path().c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) return true;
  }
  return false;
}

// ---- the holders' logs ----

std::string SignalLine(pid_t pid, int sig, int code, int err, uint64_t value) {
  return "pid=" + std::to_string(pid) + " sig=" + std::to_string(sig) +
         " code=" + std::to_string(code) + " errno=" + std::to_string(err) +
         " value=" + std::to_string(value);
}

// What poison_holder logs for a SignalHolder signal.
std::string PoisonLine(pid_t pid, int sig, uint64_t value) {
  return SignalLine(pid, sig, SI_QUEUE, EHWPOISON, value);
}

// Signals `pid` about `file` and checks that exactly that signal arrived:
// the log gains one line, with code SI_QUEUE, errno EHWPOISON and `value`.
void ExpectSignalled(pid_t pid, const std::string& log, const TestFile& file, uint64_t ino, int sig,
                     uint64_t value) {
  INFO("pid " << pid << ", inode " << ino);
  const size_t before = LinesOf(log, pid).size();
  int err = 0;
  const SignalOutcome outcome = SignalHolder(pid, file.dev, ino, sig, value, &err);
  INFO("errno " << Errno(err));
  REQUIRE(outcome == SignalOutcome::kSent);
  const std::vector<std::string> lines = WaitForLines(log, pid, before + 1);
  REQUIRE(lines.size() == before + 1);
  CHECK(lines.back() == PoisonLine(pid, sig, value));
}

// Checks that `pid` got no signal beyond the `had` lines of its log: queues
// a sentinel and requires it to be the only new line.
void ExpectNoNewSignal(pid_t pid, const std::string& log, size_t had) {
  const uint64_t sentinel = 0x5e41'1e11'0000'0000ull | static_cast<uint32_t>(pid);
  sigval v;
  v.sival_ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(sentinel));
  REQUIRE(sigqueue(pid, TestSignal(), v) == 0);
  const std::vector<std::string> lines = WaitForLines(log, pid, had + 1);
  INFO("pid " << pid);
  REQUIRE(lines.size() == had + 1);
  CHECK(lines.back() == SignalLine(pid, TestSignal(), SI_QUEUE, 0, sentinel));
}

}  // namespace

TEST_CASE(
    "Holders by descriptor, by mapping alone and by inherited descriptor are found and "
    "signalled",
    "[holders]") {
  TempDir files("/dev/shm"), logs("/tmp");
  const TestFile file = MakeFile(files, "shared");
  const TestFile unheld = MakeFile(files, "unheld");
  struct stat log_dir;
  REQUIRE(stat(logs.path().c_str(), &log_dir) == 0);
  REQUIRE(log_dir.st_dev != file.dev);  // the logs are on another device

  HolderProcess by_fd(logs.path() + "/by_fd");
  by_fd.Open(file.path);
  HolderProcess by_map(logs.path() + "/by_map");
  by_map.Map(file.path);
  REQUIRE_FALSE(HasDescriptorOn(by_map.pid(), file.dev, file.ino));  // only mapped
  // The parent lets go; the child keeps the descriptor it inherited.
  HolderProcess parent(logs.path() + "/parent");
  const int fd = parent.Open(file.path);
  const pid_t child = parent.Fork();
  parent.Close(fd);
  // The scanning process itself (the daemon) is never its own holder.
  const Fd own(file.path, O_RDONLY);

  const HolderIndex index = HolderIndex::Scan(file.dev);
  REQUIRE(index.error() == 0);
  CHECK(index.dev() == file.dev);
  CHECK(HoldersOf(index, file.ino) == Sorted({by_fd.pid(), by_map.pid(), child}));
  CHECK(HoldersOf(index, unheld.ino).empty());

  // Every process holding anything on the device, once each; none of ours
  // that holds nothing there.
  std::vector<pid_t> processes;
  index.ForEachProcess([&](pid_t pid) { processes.push_back(pid); });
  CHECK(processes.size() == index.processes());
  const std::vector<pid_t> sorted = Sorted(processes);
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
  CHECK(Contains(processes, by_fd.pid()));
  CHECK(Contains(processes, by_map.pid()));
  CHECK(Contains(processes, child));
  CHECK_FALSE(Contains(processes, parent.pid()));
  CHECK_FALSE(Contains(processes, getpid()));  // the scanner itself
  CHECK(index.entries() >= index.processes());

  // Each holder is signalled, with the poison's code, errno and value; a
  // queued SIGBUS does not kill a process that handles it.
  ExpectSignalled(by_fd.pid(), by_fd.log(), file, file.ino, SIGBUS, 0xfeed'0000'0000'0001ull);
  ExpectSignalled(by_map.pid(), by_map.log(), file, file.ino, TestSignal(), 0x1000'2000);
  ExpectSignalled(child, parent.log(), file, file.ino, SIGUSR1, 3);
  CHECK(by_fd.Ask("pid") == "pid " + std::to_string(by_fd.pid()));

  // The parent closed its descriptor before the scan: not holding.
  int err = 0;
  CHECK(SignalHolder(parent.pid(), file.dev, file.ino, TestSignal(), 4, &err) ==
        SignalOutcome::kNotHolding);
  ExpectNoNewSignal(parent.pid(), parent.log(), 0);
}

TEST_CASE("As another user, processes the scan cannot read are counted", "[holders]") {
  TempDir files("/dev/shm");
  const TestFile file = MakeFile(files, "file");
  // Run as nobody: root's processes (this test's among them) are closed to it.
  const int code = RunAs(65534, 65534, [&] {
    const HolderIndex index = HolderIndex::Scan(file.dev);
    return index.error() == 0 && index.unreadable() > 0 ? 0 : 1;
  });
  CHECK(code == 0);
}

TEST_CASE("poison_holder reports a fault on a mapping and lives on", "[holders]") {
  TempDir files("/dev/shm"), logs("/tmp");
  const TestFile file = MakeFile(files, "file");
  HolderProcess holder(logs.path() + "/holder");
  const int fd = holder.Open(file.path);
  const int idx = holder.Map(file.path);
  CHECK(holder.Ask("read " + std::to_string(fd) + " 4096 8192") == "ok 4096");
  CHECK(holder.Ask("touch " + std::to_string(idx) + " 4097") == "ok " + std::to_string('x'));
  // Past the end of the file, the kernel raises SIGBUS (BUS_ADRERR).
  REQUIRE(truncate(file.path.c_str(), 0) == 0);
  CHECK(holder.Ask("touch " + std::to_string(idx) + " 4097") ==
        "sigbus " + std::to_string(BUS_ADRERR));
  CHECK(WaitForLines(holder.log(), holder.pid(), 1) ==
        std::vector<std::string>{SignalLine(holder.pid(), SIGBUS, BUS_ADRERR, 0, 0)});
  CHECK(holder.Ask("pid") == "pid " + std::to_string(holder.pid()));
  CHECK(holder.Ask("touch 99 0") == "err " + std::to_string(EINVAL));
}

TEST_CASE("A process holding another file of the same device is neither found nor signalled",
          "[holders]") {
  TempDir files("/dev/shm"), logs("/tmp");
  const TestFile ours = MakeFile(files, "ours");
  const TestFile other = MakeFile(files, "other");
  REQUIRE(ours.dev == other.dev);

  HolderProcess holder(logs.path() + "/holder");
  holder.Open(ours.path);
  HolderProcess bystander(logs.path() + "/bystander");
  bystander.Open(other.path);
  bystander.Map(other.path);

  const HolderIndex index = HolderIndex::Scan(ours.dev);
  REQUIRE(index.error() == 0);
  CHECK(HoldersOf(index, ours.ino) == std::vector<pid_t>{holder.pid()});
  CHECK(HoldersOf(index, other.ino) == std::vector<pid_t>{bystander.pid()});

  int err = 0;
  CHECK(SignalHolder(bystander.pid(), ours.dev, ours.ino, TestSignal(), 7, &err) ==
        SignalOutcome::kNotHolding);
  ExpectNoNewSignal(bystander.pid(), bystander.log(), 0);
  ExpectSignalled(holder.pid(), holder.log(), ours, ours.ino, TestSignal(), 8);
  // Inode 0: any file of the device will do.
  ExpectSignalled(bystander.pid(), bystander.log(), other, 0, TestSignal(), 9);
}

TEST_CASE("A process that let go of the file after the scan is not signalled", "[holders]") {
  TempDir files("/dev/shm"), logs("/tmp");
  const TestFile file = MakeFile(files, "file");
  HolderProcess by_fd(logs.path() + "/by_fd");
  const int fd = by_fd.Open(file.path);
  HolderProcess by_map(logs.path() + "/by_map");
  const int idx = by_map.Map(file.path);

  const HolderIndex index = HolderIndex::Scan(file.dev);
  REQUIRE(HoldersOf(index, file.ino) == Sorted({by_fd.pid(), by_map.pid()}));

  by_fd.Close(fd);
  by_map.Unmap(idx);
  int err = 0;
  index.ForEachHolder(file.ino, [&](pid_t pid) {
    CHECK(SignalHolder(pid, file.dev, file.ino, TestSignal(), 10, &err) ==
          SignalOutcome::kNotHolding);
  });
  ExpectNoNewSignal(by_fd.pid(), by_fd.log(), 0);
  ExpectNoNewSignal(by_map.pid(), by_map.log(), 0);
}

TEST_CASE("A holder that has exited is gone, a zombie included", "[holders]") {
  TempDir files("/dev/shm"), logs("/tmp");
  const TestFile file = MakeFile(files, "file");

  SECTION("reaped") {
    HolderProcess holder(logs.path() + "/holder");
    holder.Open(file.path);
    const pid_t pid = holder.pid();
    REQUIRE(HoldersOf(HolderIndex::Scan(file.dev), file.ino) == std::vector<pid_t>{pid});
    holder.Kill();
    int err = 0;
    CHECK(SignalHolder(pid, file.dev, file.ino, TestSignal(), 11, &err) == SignalOutcome::kGone);
  }
  SECTION("zombie") {
    // The child inherits the descriptor, which the test then closes.
    const int fd = open(file.path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    IdleChild child;
    close(fd);
    REQUIRE(HoldersOf(HolderIndex::Scan(file.dev), file.ino) == std::vector<pid_t>{child.pid()});
    REQUIRE(kill(child.pid(), SIGKILL) == 0);
    siginfo_t info;
    REQUIRE(waitid(P_PID, child.pid(), &info, WEXITED | WNOWAIT) == 0);  // dead, not reaped
    int err = 0;
    CHECK(SignalHolder(child.pid(), file.dev, file.ino, TestSignal(), 12, &err) ==
          SignalOutcome::kGone);
  }
  SECTION("never there") {
    // A pid above any the kernel hands out (PID_MAX_LIMIT is 2^22).
    int err = 0;
    CHECK(SignalHolder((1 << 22) + 1, file.dev, file.ino, TestSignal(), 13, &err) ==
          SignalOutcome::kGone);
  }
}

TEST_CASE(
    "On a daxref mount, a stopped daemon is asked nothing by MountDevice, the scan and "
    "the signal",
    "[holders]") {
  TempDir logs("/tmp");
  // No attribute caching: a stat that may ask the daemon always does.
  MountedFs::Options options;
  options.mount_options = {"attr_timeout=0"};
  MountedFs fs(options);
  WriteFile(fs.path("opened"), std::string(8192, 'o'));
  WriteFile(fs.path("mapped"), std::string(8192, 'm'));
  struct stat opened, mapped;
  REQUIRE(stat(fs.path("opened").c_str(), &opened) == 0);
  REQUIRE(stat(fs.path("mapped").c_str(), &mapped) == 0);
  HolderProcess holder(logs.path() + "/holder");
  holder.Open(fs.path("opened"));
  holder.Map(fs.path("mapped"));

  // With every daemon thread stopped, any request to the filesystem would
  // wait for SIGCONT: the work must finish without one.
  struct Outcome {
    dev_t dev = 0;
    std::vector<pid_t> holders_of_opened, holders_of_mapped;
    SignalOutcome signalled = SignalOutcome::kFailed;
    int err = 0;
  };
  std::optional<StoppedProcess> stopped(std::in_place, fs.daemon_pid());
  std::future<Outcome> work = std::async(std::launch::async, [&] {
    Outcome o;
    o.dev = MountDevice(fs.mnt());
    const HolderIndex index = HolderIndex::Scan(o.dev);
    index.ForEachHolder(opened.st_ino, [&](pid_t pid) { o.holders_of_opened.push_back(pid); });
    index.ForEachHolder(mapped.st_ino, [&](pid_t pid) { o.holders_of_mapped.push_back(pid); });
    o.signalled = SignalHolder(holder.pid(), o.dev, mapped.st_ino, TestSignal(), 14, &o.err);
    return o;
  });
  const bool finished = work.wait_for(kDeadline) == std::future_status::ready;
  stopped.reset();  // a scan that did ask the daemon can finish now
  const Outcome o = work.get();
  CHECK(finished);

  CHECK(o.dev == opened.st_dev);
  CHECK(major(o.dev) == 0);  // FUSE: an anonymous device
  CHECK(o.holders_of_opened == std::vector<pid_t>{holder.pid()});
  CHECK(o.holders_of_mapped == std::vector<pid_t>{holder.pid()});
  INFO("errno " << Errno(o.err));
  REQUIRE(o.signalled == SignalOutcome::kSent);
  const std::vector<std::string> lines = WaitForLines(holder.log(), holder.pid(), 1);
  CHECK(lines == std::vector<std::string>{PoisonLine(holder.pid(), TestSignal(), 14)});
  holder.Kill();  // lets go of the files before the mount goes
}

TEST_CASE("MountDevice finds only a fuse.daxref mount at exactly the path", "[holders]") {
  // Not mounted: nothing in this process's mountinfo.
  CHECK(MountDevice("/nonexistent/daxref holder test") == 0);
  // Mounted, but not daxref.
  CHECK(MountDevice("/") == 0);
  CHECK(MountDevice("/proc") == 0);

  const std::string mountinfo =
      "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
      "40 22 0:35 / /mnt/a rw,nosuid,nodev,relatime shared:20 - fuse.daxref /dev/shm/pool "
      "rw,user_id=0,group_id=0\n"
      // Optional fields, several or none; a mount point with a space, a tab
      // and a backslash in it; the same point mounted over twice.
      "41 22 0:36 / /mnt/with\\040space\\011tab\\134slash rw shared:21 master:3 - fuse.daxref "
      "src rw\n"
      "42 22 0:37 / /mnt/stacked rw - fuse.daxref src rw\n"
      "43 42 0:300 / /mnt/stacked rw - fuse.daxref src rw\n"
      "44 22 0:39 / /mnt/other rw - fuse.sshfs host: rw\n"
      "45 22 0:40 / /mnt/under rw - tmpfs tmpfs rw\n"
      "46 45 0:41 / /mnt/under rw - fuse.daxref src rw\n"
      "47 46 0:42 / /mnt/under rw - tmpfs tmpfs rw";  // the last line has no '\n'
  CHECK(MountDeviceIn(mountinfo, "/mnt/a") == makedev(0, 35));
  CHECK(MountDeviceIn(mountinfo, "/mnt/with space\ttab\\slash") == makedev(0, 36));
  CHECK(MountDeviceIn(mountinfo, "/mnt/with\\040space\\011tab\\134slash") == 0);  // escaped
  CHECK(MountDeviceIn(mountinfo, "/mnt/stacked") == makedev(0, 300));             // topmost
  CHECK(MountDeviceIn(mountinfo, "/mnt/other") == 0);                             // not daxref
  CHECK(MountDeviceIn(mountinfo, "/mnt/under") == makedev(0, 41));  // the daxref one of the stack
  CHECK(MountDeviceIn(mountinfo, "/mnt") == 0);
  CHECK(MountDeviceIn(mountinfo, "/mnt/a/") == 0);
  CHECK(MountDeviceIn(mountinfo, "/") == 0);
  CHECK(MountDeviceIn("", "/mnt/a") == 0);
  CHECK(MountDeviceIn("garbage\n\n40 22 0:35 / /mnt/a rw fuse.daxref\n", "/mnt/a") == 0);
}

TEST_CASE("ParseMapsLine reads the device and inode columns", "[holders]") {
  dev_t dev = 1;
  uint64_t ino = 1;
  CHECK(
      ParseMapsLine("7f2c4a000000-7f2c4a021000 r--s 00000000 00:2f 1234       /mnt/x", &dev, &ino));
  CHECK(dev == makedev(0, 0x2f));
  CHECK(ino == 1234);
  // Minors above 0xff print with more digits; a path with spaces, deleted.
  CHECK(
      ParseMapsLine("7f2c4a000000-7f2c4a021000 r--s 00001000 103:1a3 18446744073709551615 "
                    "  /a b (deleted)",
                    &dev, &ino));
  CHECK(dev == makedev(0x103, 0x1a3));
  CHECK(ino == UINT64_MAX);
  // Anonymous: inode 0, no path.
  CHECK(ParseMapsLine("7ffd1c5e0000-7ffd1c601000 rw-p 00000000 00:00 0 ", &dev, &ino));
  CHECK(ino == 0);
  CHECK(ParseMapsLine("7ffd1c5e0000-7ffd1c601000 rw-p 00000000 00:00 0", &dev, &ino));
  CHECK(ino == 0);
  CHECK_FALSE(ParseMapsLine("", &dev, &ino));
  CHECK_FALSE(ParseMapsLine("7ffd1c5e0000-7ffd1c601000 rw-p 00000000 0000 0", &dev, &ino));
  CHECK_FALSE(ParseMapsLine("7ffd1c5e0000-7ffd1c601000 rw-p 00000000 00:00", &dev, &ino));
}

}  // namespace daxref::test
