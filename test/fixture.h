// Test fixture: real daxref filesystems in temporary directories.
//
// MountedFs runs mkfs.daxref and the daxref daemon (built binaries, paths
// compiled in by meson) exactly as a user would: a pool under /dev/shm, a
// mountpoint under /tmp, the daemon as a child process in the foreground so
// a test can SIGKILL it. Unmount waits for the daemon to exit, so the store
// can be checked right after.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "meta/checker.h"

namespace daxref::test {

std::string MkfsBin();
std::string DaemonBin();

// A child's exit code from its wait status: the code it exited with, or
// 128 + the signal that killed it (as a shell reports it); -1 otherwise.
int ExitCode(int status);

struct RunResult {
  int status = -1;  // exit code, or 128+signal
  std::string out;
  std::string err;
};
// Runs argv[0] (a path) with its arguments, capturing stdout and stderr.
RunResult Run(const std::vector<std::string>& argv);
// As Run, with exactly the environment `env` ("NAME=value" strings) instead
// of the test's own.
RunResult RunWithEnv(const std::vector<std::string>& argv, const std::vector<std::string>& env);
// As RunWithEnv, in a child that runs as uid/gid with no supplementary
// groups (as RunAs does); exit code 126 if it could not switch.
RunResult RunAsWithEnv(uid_t uid, gid_t gid, const std::vector<std::string>& argv,
                       const std::vector<std::string>& env);

// A directory removed (recursively) on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& under = "/tmp");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class MountedFs {
 public:
  struct Options {
    uint64_t size = 256ull << 20;
    std::vector<std::string> mount_options;  // each passed as -o
    // Mount this existing SOURCE instead of making a new one (the caller
    // keeps it; `size` is then unused).
    std::string source = {};
    // Where SOURCE is made (in a fresh directory under it), and what else
    // mkfs.daxref is told (e.g. --sparse).
    std::string source_parent = "/dev/shm";
    std::vector<std::string> mkfs_options = {};
    // If set, the daemon's log (its stderr, warnings and worse) is appended
    // to this file instead of the test's stderr.
    std::string log_path = {};
  };
  MountedFs();
  explicit MountedFs(const Options& o);
  ~MountedFs();
  MountedFs(const MountedFs&) = delete;
  MountedFs& operator=(const MountedFs&) = delete;

  const std::string& source() const { return source_; }
  const std::string& mnt() const { return mnt_.path(); }
  std::string path(const std::string& rel) const { return mnt_.path() + "/" + rel; }
  pid_t daemon_pid() const { return pid_; }
  bool mounted() const { return pid_ > 0; }

  void Mount();
  // Unmounts and waits for the daemon to exit.
  void Unmount();
  void Remount() {
    Unmount();
    Mount();
  }
  // SIGKILLs the daemon and detaches its dead mount.
  void KillDaemon();
  // Waits, up to `seconds`, for a daemon that ends its own mount
  // (pre-remove) to exit; its exit code, or -1 if it was still running
  // (then it is killed). Leaves the filesystem unmounted either way.
  int WaitForExit(int seconds = 10);
  // Checks the metadata store's invariants (unmounts first if mounted and
  // leaves it unmounted). Fails the current test on any problem.
  CheckReport Check();

 private:
  Options opts_;
  TempDir src_parent_;
  TempDir mnt_;
  std::string source_;
  pid_t pid_ = -1;
};

// Checks the metadata store of an unmounted filesystem made by mkfs.daxref
// in `source`; fails the current test on any problem.
CheckReport CheckSource(const std::string& source);

// Runs fn in a child process with the given uid/gid (and no supplementary
// groups); returns the child's exit code. fn returns what the child exits with.
// Whether a daxref filesystem is mounted at `mnt` (/proc/self/mountinfo).
bool IsMounted(const std::string& mnt);
// fusermount3 -u MNT, retried for up to 5 s: the kernel answers EBUSY for a
// moment after a process that used the mount has exited (under load).
RunResult UnmountMountPoint(const std::string& mnt);
int RunAs(uid_t uid, gid_t gid, const std::function<int()>& fn);
// The same with supplementary groups.
int RunAs(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const std::function<int()>& fn);

// Reads / writes whole files with plain syscalls; REQUIRE on failure.
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& data);

}  // namespace daxref::test
