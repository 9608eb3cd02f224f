// The namespace path's caching rules through a real mount (docs/design.md,
// "The namespace path"): the kernel caches misses (negative entries) and
// hits for entry_timeout, which is only right because every change of a
// name goes through this one mount's kernel; inode numbers come from a
// reserved range whose mark is stored only now and then, so no number may
// come back after a remount or a crash; creates and unlinks racing in one
// directory from several processes leave a store the checker finds clean.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

void Touch(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  INFO(path << ": " << strerror(errno));
  REQUIRE(fd >= 0);
  REQUIRE(close(fd) == 0);
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// stat(2) from another process: the kernel's dentry cache is shared, a
// per-process cache would not be.
bool ExistsInChild(const std::string& path) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    struct stat st;
    _exit(lstat(path.c_str(), &st) == 0 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return ExitCode(status) == 0;
}

}  // namespace

TEST_CASE("a cached miss never hides a name made afterward through the mount",
          "[fs][namespace][negative]") {
  MountedFs fs;
  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  REQUIRE(mkdir(fs.path("other").c_str(), 0755) == 0);
  Touch(fs.path("other/src"));
  Touch(fs.path("other/linked"));
  // Each name is looked up first, so that the kernel holds a negative
  // entry for it (entry_timeout is 60 s by default), then made in one of
  // the ways a name can appear.
  const std::vector<std::string> names = {"created", "mkdir", "symlink",  "link",
                                          "renamed", "mknod", "exchanged"};
  for (const auto& n : names) {
    INFO(n);
    REQUIRE_FALSE(Exists(fs.path("d/" + n)));
    REQUIRE_FALSE(ExistsInChild(fs.path("d/" + n)));
  }
  Touch(fs.path("d/created"));
  REQUIRE(mkdir(fs.path("d/mkdir").c_str(), 0700) == 0);
  REQUIRE(symlink("created", fs.path("d/symlink").c_str()) == 0);
  REQUIRE(link(fs.path("other/linked").c_str(), fs.path("d/link").c_str()) == 0);
  REQUIRE(rename(fs.path("other/src").c_str(), fs.path("d/renamed").c_str()) == 0);
  REQUIRE(mknod(fs.path("d/mknod").c_str(), S_IFIFO | 0600, 0) == 0);
  // RENAME_EXCHANGE needs both names; a plain file takes the cached name.
  Touch(fs.path("other/x"));
  REQUIRE(renameat2(AT_FDCWD, fs.path("other/x").c_str(), AT_FDCWD, fs.path("d/exchanged").c_str(),
                    RENAME_NOREPLACE) == 0);
  for (const auto& n : names) {
    INFO(n);
    CHECK(Exists(fs.path("d/" + n)));
    CHECK(ExistsInChild(fs.path("d/" + n)));
  }
  // The rename's old name is now a miss, and is seen as one at once.
  CHECK_FALSE(Exists(fs.path("other/src")));
  CHECK_FALSE(ExistsInChild(fs.path("other/src")));

  // The other way round: a cached hit is dropped by unlink and rmdir.
  REQUIRE(unlink(fs.path("d/created").c_str()) == 0);
  REQUIRE(rmdir(fs.path("d/mkdir").c_str()) == 0);
  CHECK_FALSE(Exists(fs.path("d/created")));
  CHECK_FALSE(ExistsInChild(fs.path("d/mkdir")));
  // And made again under the same names, after their misses were cached.
  Touch(fs.path("d/created"));
  REQUIRE(mkdir(fs.path("d/mkdir").c_str(), 0700) == 0);
  CHECK(S_ISREG(Lstat(fs.path("d/created")).st_mode));
  CHECK(S_ISDIR(Lstat(fs.path("d/mkdir")).st_mode));

  fs.Remount();
  for (const auto& n : names) {
    INFO(n);
    CHECK(Exists(fs.path("d/" + n)));
  }
  fs.Check();
}

TEST_CASE("inode numbers are never handed out twice, across remounts and crashes",
          "[fs][namespace][ino]") {
  MountedFs fs;
  std::set<ino_t> seen;
  int made = 0;
  auto make = [&](int n) {
    for (int i = 0; i < n; ++i) {
      std::string p = fs.path("f" + std::to_string(made++));
      Touch(p);
      ino_t ino = Lstat(p).st_ino;
      INFO(p << " got inode " << ino);
      CHECK(seen.insert(ino).second);
    }
  };
  // More than one reservation (1,024 numbers) in one mount.
  make(1100);
  fs.Remount();
  make(10);
  // A daemon that dies keeps no record of the numbers it reserved but did
  // not use, or of the last creates it acknowledged beyond the stored mark
  // unless the mark covers them: what it handed out must not come back.
  fs.KillDaemon();
  fs.Mount();
  make(10);
  for (int i = 0; i < made; ++i) REQUIRE(Exists(fs.path("f" + std::to_string(i))));
  // Numbers of deleted files are not reused either.
  for (int i = 0; i < 20; ++i) REQUIRE(unlink(fs.path("f" + std::to_string(i)).c_str()) == 0);
  fs.Remount();
  make(20);
  CheckReport r = fs.Check();
  CHECK(r.inodes == static_cast<uint64_t>(made - 20 + 1));
}

TEST_CASE("processes creating and unlinking in one directory at once leave a clean store",
          "[fs][namespace][concurrent]") {
  MountedFs fs;
  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  constexpr int kProcs = 4;
  constexpr int kFiles = 300;
  // Each process creates its own names and a shared set that all of them
  // race for (O_EXCL: exactly one wins each), unlinks every other own name,
  // and tries to unlink the shared names (exactly one succeeds each).
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int won = 0, unlinked = 0;
      for (int i = 0; i < kFiles; ++i) {
        std::string own = fs.path("d/p" + std::to_string(p) + "_" + std::to_string(i));
        int fd = open(own.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 || close(fd) != 0) _exit(10);
        std::string shared = fs.path("d/s" + std::to_string(i));
        fd = open(shared.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
          ++won;
          if (close(fd) != 0) _exit(11);
        } else if (errno != EEXIST) {
          _exit(12);
        }
        if (i % 2 == 1 && unlink(own.c_str()) != 0) _exit(13);
        if (i >= 10) {
          std::string old = fs.path("d/s" + std::to_string(i - 10));
          if (unlink(old.c_str()) == 0)
            ++unlinked;
          else if (errno != ENOENT)
            _exit(14);
        }
      }
      (void)won;
      (void)unlinked;
      _exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(ExitCode(status) == 0);
  }
  // What is left: the even own names, and the last ten shared names.
  std::set<std::string> want;
  for (int p = 0; p < kProcs; ++p)
    for (int i = 0; i < kFiles; i += 2)
      want.insert("p" + std::to_string(p) + "_" + std::to_string(i));
  for (int i = kFiles - 10; i < kFiles; ++i) want.insert("s" + std::to_string(i));
  for (int i = 0; i < kFiles; ++i) {
    std::string n = "s" + std::to_string(i);
    INFO(n);
    CHECK(Exists(fs.path("d/" + n)) == (want.count(n) == 1));
  }
  CHECK(Lstat(fs.path("d")).st_nlink == 2);
  fs.Remount();
  for (const auto& n : want) {
    INFO(n);
    CHECK(Exists(fs.path("d/" + n)));
  }
  CheckReport r = fs.Check();
  CHECK(r.inodes == want.size() + 2);  // the root and d
}
