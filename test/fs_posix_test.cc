// POSIX and Linux details through a real mount (issue 11 items 3, 4, 7): a
// removed directory that is still open, set-id bits after unprivileged
// writes and fallocate as seen by another process at once, rename with
// RENAME_WHITEOUT, chown(f, -1, -1) updating ctime and chown dropping set-id bits.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <string>

#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

constexpr uid_t kAlice = 1001;
constexpr gid_t kAliceGroup = 1001;

MountedFs::Options AllowOther() {
  MountedFs::Options o;
  o.mount_options = {"allow_other"};
  return o;
}

int Renameat2(const std::string& from, const std::string& to, unsigned flags) {
  return static_cast<int>(
      syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}

// The mode bits of `path` as a fresh process sees them: what exec and any
// other reader get from the kernel's attribute cache.
mode_t ModeFromOtherProcess(const std::string& path) {
  RunResult r = Run({"/usr/bin/stat", "-c", "%a", path});
  REQUIRE(r.status == 0);
  return static_cast<mode_t>(std::stoul(r.out, nullptr, 8));
}

// A 06777 file owned by alice (group execute set, so both bits mean "run
// as"), its attributes cached by the kernel.
void SetIdFile(const std::string& path) {
  WriteFile(path, std::string(8192, 'x'));
  REQUIRE(chown(path.c_str(), kAlice, kAliceGroup) == 0);
  REQUIRE(chmod(path.c_str(), 06777) == 0);
  REQUIRE(ModeFromOtherProcess(path) == 06777);
}

}  // namespace

TEST_CASE("an open directory that is removed answers fstat with nlink 0", "[fs_posix_test]") {
  MountedFs fs;
  SECTION("rmdir") {
    REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
    int fd = open(fs.path("d").c_str(), O_RDONLY | O_DIRECTORY);
    REQUIRE(fd >= 0);
    REQUIRE(rmdir(fs.path("d").c_str()) == 0);
    struct stat st;
    REQUIRE(fstat(fd, &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
    CHECK(st.st_nlink == 0);
    // Nothing can be made in it.
    CHECK(openat(fd, "x", O_CREAT | O_WRONLY, 0644) == -1);
    close(fd);
  }
  SECTION("replaced by rename") {
    REQUIRE(mkdir(fs.path("a").c_str(), 0755) == 0);
    REQUIRE(mkdir(fs.path("b").c_str(), 0755) == 0);
    int fd = open(fs.path("b").c_str(), O_RDONLY | O_DIRECTORY);
    REQUIRE(fd >= 0);
    REQUIRE(rename(fs.path("a").c_str(), fs.path("b").c_str()) == 0);
    struct stat st;
    REQUIRE(fstat(fd, &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
    CHECK(st.st_nlink == 0);
    close(fd);
  }
  SECTION("one still open when the daemon dies is reclaimed at the next mount") {
    REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
    int fd = open(fs.path("d").c_str(), O_RDONLY | O_DIRECTORY);
    REQUIRE(fd >= 0);
    REQUIRE(rmdir(fs.path("d").c_str()) == 0);
    fs.KillDaemon();
    close(fd);
    fs.Mount();
  }
  REQUIRE(mkdir(fs.path("after").c_str(), 0755) == 0);
  fs.Remount();
  struct stat st;
  CHECK(lstat(fs.path("d").c_str(), &st) == -1);
  CHECK(lstat(fs.path("a").c_str(), &st) == -1);
  CHECK(lstat(fs.path("after").c_str(), &st) == 0);
  fs.Check();
}

TEST_CASE("an unprivileged write or fallocate drops set-id bits visible at once",
          "[fs_posix_test]") {
  MountedFs fs(AllowOther());
  REQUIRE(chmod(fs.mnt().c_str(), 0777) == 0);
  const std::string f = fs.path("f");
  SetIdFile(f);
  // mode -1: the unshare ioctl (fallocate's unshare range, which the kernel
  // keeps from FUSE).
  auto as_alice = [&](int mode, bool write) {
    return RunAs(kAlice, kAliceGroup, [&] {
      int fd = open(f.c_str(), O_WRONLY);
      if (fd < 0) return errno;
      if (mode == -1) {
        int err = UnshareRange(fd, 0, 4096);
        close(fd);
        return err;
      }
      int rc =
          write ? static_cast<int>(pwrite(fd, "y", 1, 10)) - 1 : fallocate(fd, mode, 100, 4096);
      int err = rc == 0 ? 0 : errno;
      close(fd);
      return err;
    });
  };
  SECTION("write") {
    REQUIRE(as_alice(0, true) == 0);
  }
  SECTION("allocate") {
    REQUIRE(as_alice(0, false) == 0);
  }
  SECTION("unshare range (ioctl)") {
    REQUIRE(as_alice(-1, false) == 0);
  }
  SECTION("punch hole") {
    REQUIRE(as_alice(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, false) == 0);
  }
  SECTION("zero range") {
    REQUIRE(as_alice(FALLOC_FL_ZERO_RANGE, false) == 0);
  }
  CHECK(ModeFromOtherProcess(f) == 0777);
  struct stat st;
  REQUIRE(stat(f.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0777);
}

TEST_CASE("root's fallocate keeps set-id bits", "[fs_posix_test]") {
  MountedFs fs;
  const std::string f = fs.path("f");
  SetIdFile(f);
  int fd = open(f.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0);
  close(fd);
  CHECK(ModeFromOtherProcess(f) == 06777);
}

TEST_CASE("rename with RENAME_WHITEOUT leaves a whiteout in the source's place",
          "[fs_posix_test]") {
  MountedFs fs;
  WriteFile(fs.path("src"), "data");
  SECTION("to a new name") {}
  SECTION("replacing a file") {
    WriteFile(fs.path("dst"), "old");
  }
  SECTION("into another directory") {
    REQUIRE(mkdir(fs.path("sub").c_str(), 0755) == 0);
    REQUIRE(Renameat2(fs.path("src"), fs.path("sub/dst"), RENAME_WHITEOUT) == 0);
    REQUIRE(rename(fs.path("sub/dst").c_str(), fs.path("dst").c_str()) == 0);
    REQUIRE(unlink(fs.path("src").c_str()) == 0);
    WriteFile(fs.path("src"), "data");
  }
  REQUIRE(Renameat2(fs.path("src"), fs.path("dst"), RENAME_WHITEOUT) == 0);
  CHECK(ReadFile(fs.path("dst")) == "data");
  struct stat st = Lstat(fs.path("src"));
  CHECK(S_ISCHR(st.st_mode));
  CHECK((st.st_mode & 07777) == 0);
  CHECK(st.st_rdev == makedev(0, 0));
  CHECK(st.st_nlink == 1);
  CHECK(st.st_uid == 0);
  // After a remount, from the store.
  fs.Remount();
  st = Lstat(fs.path("src"));
  CHECK(S_ISCHR(st.st_mode));
  CHECK(st.st_rdev == makedev(0, 0));
  CHECK(ReadFile(fs.path("dst")) == "data");
  fs.Check();
}

TEST_CASE("RENAME_WHITEOUT with RENAME_EXCHANGE is refused", "[fs_posix_test]") {
  MountedFs fs;
  WriteFile(fs.path("a"), "a");
  WriteFile(fs.path("b"), "b");
  CHECK(Renameat2(fs.path("a"), fs.path("b"), RENAME_WHITEOUT | RENAME_EXCHANGE) == -1);
  CHECK(errno == EINVAL);
  CHECK(ReadFile(fs.path("a")) == "a");
}

TEST_CASE("chown with uid and gid -1 updates ctime", "[fs_posix_test]") {
  MountedFs fs;
  WriteFile(fs.path("f"), "x");
  struct stat before = Lstat(fs.path("f"));
  // A ctime later than before's, whatever the clock's granularity.
  struct timespec req = {0, 20 * 1000 * 1000};
  nanosleep(&req, nullptr);
  REQUIRE(chown(fs.path("f").c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)) == 0);
  struct stat after = Lstat(fs.path("f"));
  bool later = after.st_ctim.tv_sec > before.st_ctim.tv_sec ||
               (after.st_ctim.tv_sec == before.st_ctim.tv_sec &&
                after.st_ctim.tv_nsec > before.st_ctim.tv_nsec);
  CHECK(later);
  CHECK(after.st_uid == before.st_uid);
  CHECK(after.st_gid == before.st_gid);
}

TEST_CASE("chown to the owner a file already has still drops its set-id bits", "[fs_posix_test]") {
  // Linux drops set-user-id, and set-group-id with group execute, on every
  // chown of a non-directory, also one that names the current owner
  // (xfstests generic/193). A directory keeps its bits.
  MountedFs fs;
  const std::string f = fs.path("f"), d = fs.path("d");
  WriteFile(f, "x");
  REQUIRE(chmod(f.c_str(), 06755) == 0);
  REQUIRE(chown(f.c_str(), 0, 0) == 0);
  CHECK((Lstat(f).st_mode & 07777) == 0755);
  REQUIRE(chmod(f.c_str(), 06745) == 0);  // no group execute: set-gid stays
  REQUIRE(chown(f.c_str(), 0, static_cast<gid_t>(-1)) == 0);
  CHECK((Lstat(f).st_mode & 07777) == 02745);
  REQUIRE(mkdir(d.c_str(), 0755) == 0);
  REQUIRE(chmod(d.c_str(), 02755) == 0);
  REQUIRE(chown(d.c_str(), 0, 0) == 0);
  CHECK((Lstat(d).st_mode & 07777) == 02755);
}

TEST_CASE("a write drops set-group-id without group execute unless the writer is in the group",
          "[fs_posix_test]") {
  // Linux's rule (xfstests generic/683-685): the bit then marks mandatory
  // locking and stays for a member of the file's group, supplementary
  // groups included; a writer outside the group takes it away.
  MountedFs fs(AllowOther());
  REQUIRE(chmod(fs.mnt().c_str(), 0777) == 0);
  const std::string f = fs.path("f");
  auto write_as_alice = [&](const std::vector<gid_t>& groups) {
    return RunAs(kAlice, kAliceGroup, groups, [&] {
      int fd = open(f.c_str(), O_WRONLY);
      if (fd < 0) return errno;
      int rc = static_cast<int>(pwrite(fd, "y", 1, 10)) - 1;
      int err = rc == 0 ? 0 : errno;
      close(fd);
      return err;
    });
  };
  auto set_id_file = [&](gid_t group) {
    WriteFile(f, std::string(8192, 'x'));
    REQUIRE(chown(f.c_str(), 0, group) == 0);
    REQUIRE(chmod(f.c_str(), 06666) == 0);
  };
  set_id_file(0);  // root's group: alice is not in it
  REQUIRE(write_as_alice({}) == 0);
  CHECK(ModeFromOtherProcess(f) == 0666);
  set_id_file(kAliceGroup);  // her own group
  REQUIRE(write_as_alice({}) == 0);
  CHECK(ModeFromOtherProcess(f) == 02666);
  set_id_file(2000);  // a supplementary group of hers
  REQUIRE(write_as_alice({2000}) == 0);
  CHECK(ModeFromOtherProcess(f) == 02666);
  set_id_file(2000);  // the same group, without the membership
  REQUIRE(write_as_alice({}) == 0);
  CHECK(ModeFromOtherProcess(f) == 0666);
}
