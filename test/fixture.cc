#include "test/fixture.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "meta/superblock.h"

namespace daxref::test {

std::string MkfsBin() {
  return DAXREF_TEST_MKFS;
}
std::string DaemonBin() {
  return DAXREF_TEST_DAEMON;
}

namespace {

std::string Drain(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) s.append(buf, n);
  return s;
}

std::vector<char*> Argv(const std::vector<std::string>& v) {
  std::vector<char*> a;
  for (const auto& s : v) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  return a;
}

struct Creds {
  uid_t uid;
  gid_t gid;
};

// Run, RunWithEnv and RunAsWithEnv: `env` null means the test's own
// environment, `creds` null the test's own user.
RunResult RunImpl(const std::vector<std::string>& argv, const std::vector<std::string>* env,
                  const Creds* creds = nullptr) {
  int out[2], err[2];
  REQUIRE(pipe(out) == 0);
  REQUIRE(pipe(err) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    // Only 1 and 2 may keep the pipes open: a daemon that outlives its
    // parent would otherwise hold them and Drain would never see EOF.
    close(out[0]);
    close(err[0]);
    close(out[1]);
    close(err[1]);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    if (null > 2) close(null);
    if (creds != nullptr &&
        (setgroups(0, nullptr) != 0 || setresgid(creds->gid, creds->gid, creds->gid) != 0 ||
         setresuid(creds->uid, creds->uid, creds->uid) != 0))
      _exit(126);
    auto a = Argv(argv);
    if (env) {
      auto e = Argv(*env);
      execve(a[0], a.data(), e.data());
    } else {
      execv(a[0], a.data());
    }
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  RunResult r;
  // Read both pipes without deadlocking on either filling up.
  std::thread t([&] { r.err = Drain(err[0]); });
  r.out = Drain(out[0]);
  t.join();
  close(out[0]);
  close(err[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.status = ExitCode(status);
  return r;
}

}  // namespace

bool IsMounted(const std::string& mnt) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, point;
    ls >> id >> parent >> devno >> root >> point;
    if (point == mnt && line.find("fuse.daxref") != std::string::npos) return true;
  }
  return false;
}

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

RunResult Run(const std::vector<std::string>& argv) {
  return RunImpl(argv, nullptr);
}

RunResult RunWithEnv(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  return RunImpl(argv, &env);
}

RunResult RunAsWithEnv(uid_t uid, gid_t gid, const std::vector<std::string>& argv,
                       const std::vector<std::string>& env) {
  const Creds creds{uid, gid};
  return RunImpl(argv, &env, &creds);
}

TempDir::TempDir(const std::string& under) {
  std::string tmpl = under + "/daxref-test.XXXXXX";
  char* p = mkdtemp(tmpl.data());
  REQUIRE(p != nullptr);
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

MountedFs::MountedFs() : MountedFs(Options{}) {}

MountedFs::MountedFs(const Options& o) : opts_(o), src_parent_(o.source_parent), mnt_("/tmp") {
  if (!opts_.source.empty()) {
    source_ = opts_.source;
    Mount();
    return;
  }
  source_ = src_parent_.path() + "/fs";
  std::vector<std::string> mkfs = {MkfsBin(), "-q", "--size", std::to_string(opts_.size)};
  mkfs.insert(mkfs.end(), opts_.mkfs_options.begin(), opts_.mkfs_options.end());
  mkfs.push_back(source_);
  RunResult r = Run(mkfs);
  INFO(r.err);
  REQUIRE(r.status == 0);
  Mount();
}

MountedFs::~MountedFs() {
  if (pid_ > 0) {
    Run({"/bin/fusermount3", "-u", "-z", mnt_.path()});
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
}

void MountedFs::Mount() {
  REQUIRE(pid_ < 0);
  std::vector<std::string> argv = {DaemonBin(), "-f", "--log-level", "warn"};
  for (const auto& o : opts_.mount_options) {
    argv.push_back("-o");
    argv.push_back(o);
  }
  argv.push_back(source_);
  argv.push_back(mnt_.path());
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (!opts_.log_path.empty()) {
      int fd = open(opts_.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) dup2(fd, STDERR_FILENO);
    }
    auto a = Argv(argv);
    execv(a[0], a.data());
    _exit(127);
  }
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!IsMounted(mnt_.path())) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      FAIL("daxref exited during mount with status " << ExitCode(status));
    }
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

RunResult UnmountMountPoint(const std::string& mnt) {
  RunResult r = Run({"/bin/fusermount3", "-u", mnt});
  for (int i = 0; r.status != 0 && i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    r = Run({"/bin/fusermount3", "-u", mnt});
  }
  return r;
}

void MountedFs::Unmount() {
  REQUIRE(pid_ > 0);
  RunResult r = UnmountMountPoint(mnt_.path());
  INFO(r.err);
  REQUIRE(r.status == 0);
  int status = 0;
  REQUIRE(waitpid(pid_, &status, 0) == pid_);
  pid_ = -1;
  REQUIRE(ExitCode(status) == 0);
}

void MountedFs::KillDaemon() {
  REQUIRE(pid_ > 0);
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  Run({"/bin/fusermount3", "-u", "-z", mnt_.path()});
  if (IsMounted(mnt_.path())) umount2(mnt_.path().c_str(), MNT_DETACH);
}

int MountedFs::WaitForExit(int seconds) {
  REQUIRE(pid_ > 0);
  int status = 0;
  for (int i = 0; i < seconds * 20; ++i) {
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (IsMounted(mnt_.path())) umount2(mnt_.path().c_str(), MNT_DETACH);
      return ExitCode(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  KillDaemon();
  return -1;
}

CheckReport CheckSource(const std::string& source) {
  Superblock sb;
  bool backup = false;
  Status s = ReadPoolSuperblock(PoolPath(source), &sb, &backup);
  REQUIRE(s.ok());
  std::vector<std::string> problems;
  CheckReport report;
  s = CheckStoreAt(
      MetaPath(source), sb.block_count, [&](const std::string& p) { problems.push_back(p); },
      &report);
  INFO(s.message());
  REQUIRE(s.ok());
  std::string all;
  for (size_t i = 0; i < problems.size() && i < 20; ++i) all += problems[i] + "\n";
  INFO(all);
  CHECK(problems.empty());
  return report;
}

CheckReport MountedFs::Check() {
  if (pid_ > 0) Unmount();
  return CheckSource(source_);
}

int RunAs(uid_t uid, gid_t gid, const std::function<int()>& fn) {
  return RunAs(uid, gid, {}, fn);
}

int RunAs(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const std::function<int()>& fn) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (setgroups(groups.size(), groups.data()) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(uid, uid, uid) != 0)
      _exit(126);
    _exit(fn());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return ExitCode(status);
}

std::string ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  INFO(path << ": " << strerror(errno));
  REQUIRE(fd >= 0);
  std::string s = Drain(fd);
  close(fd);
  return s;
}

void WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  INFO(path << ": " << strerror(errno));
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
  REQUIRE(close(fd) == 0);
}

}  // namespace daxref::test
