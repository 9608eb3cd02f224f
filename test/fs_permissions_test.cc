// Permissions through a real mount (allow_other, default_permissions): what
// an unprivileged user may and may not do, who owns what they create, and
// the set-ID rules. Each user action runs in a child process with that
// uid/gid (RunAs), which reports an errno as its exit code.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <string>

#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

constexpr uid_t kAlice = 1001, kBob = 1002;
constexpr gid_t kAliceGroup = 1001, kBobGroup = 1002, kOtherGroup = 4242;

MountedFs::Options AllowOther() {
  MountedFs::Options o;
  o.mount_options = {"allow_other"};
  return o;
}

mode_t Mode(const std::string& path) {
  return Lstat(path).st_mode & 07777;
}

// A root-owned file with the given contents and mode (chmod, so no umask).
void RootFile(const std::string& path, const std::string& data, mode_t mode) {
  WriteFile(path, data);
  REQUIRE(chmod(path.c_str(), mode) == 0);
  REQUIRE(Mode(path) == mode);
}

void RootDir(const std::string& path, mode_t mode) {
  REQUIRE(mkdir(path.c_str(), 0700) == 0);
  REQUIRE(chmod(path.c_str(), mode) == 0);
}

// In a child: opens `path` with `flags`, returns the errno (0 on success).
int OpenAs(uid_t uid, gid_t gid, const std::string& path, int flags) {
  return RunAs(uid, gid, [&] {
    int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    close(fd);
    return 0;
  });
}

// In a child: writes `data` at offset 0 of `path`; returns the errno.
int WriteAs(uid_t uid, gid_t gid, const std::string& path, const std::string& data) {
  return RunAs(uid, gid, [&] {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t n = pwrite(fd, data.data(), data.size(), 0);
    int err = n < 0 ? errno : (n == static_cast<ssize_t>(data.size()) ? 0 : EIO);
    close(fd);
    return err;
  });
}

}  // namespace

TEST_CASE("a user cannot read a 0600 root file nor write a 0644 one", "[fs][perm]") {
  MountedFs fs(AllowOther());
  RootFile(fs.path("secret"), "root only", 0600);
  RootFile(fs.path("public"), "everyone reads", 0644);

  CHECK(OpenAs(kAlice, kAliceGroup, fs.path("secret"), O_RDONLY) == EACCES);
  CHECK(OpenAs(kAlice, kAliceGroup, fs.path("public"), O_WRONLY) == EACCES);
  CHECK(OpenAs(kAlice, kAliceGroup, fs.path("public"), O_RDWR) == EACCES);
  CHECK(OpenAs(kAlice, kAliceGroup, fs.path("public"), O_WRONLY | O_TRUNC) == EACCES);
  CHECK(RunAs(kAlice, kAliceGroup,
              [&] { return ErrnoOf(truncate(fs.path("public").c_str(), 0)); }) == EACCES);
  CHECK(RunAs(kAlice, kAliceGroup,
              [&] { return ErrnoOf(access(fs.path("public").c_str(), W_OK)); }) == EACCES);
  // What is allowed still works: the mount is reachable to others at all.
  CHECK(RunAs(kAlice, kAliceGroup, [&] {
          int fd = open(fs.path("public").c_str(), O_RDONLY | O_CLOEXEC);
          if (fd < 0) return errno;
          char buf[64];
          ssize_t n = read(fd, buf, sizeof(buf));
          close(fd);
          return n >= 0 && std::string(buf, n) == "everyone reads" ? 0 : 200;
        }) == 0);
  // The group bits apply to the file's group.
  REQUIRE(chown(fs.path("secret").c_str(), 0, kAliceGroup) == 0);
  REQUIRE(chmod(fs.path("secret").c_str(), 0640) == 0);
  CHECK(OpenAs(kAlice, kAliceGroup, fs.path("secret"), O_RDONLY) == 0);
  CHECK(OpenAs(kBob, kBobGroup, fs.path("secret"), O_RDONLY) == EACCES);
  CHECK(OpenAs(kAlice, kAliceGroup, fs.path("secret"), O_WRONLY) == EACCES);

  CHECK(ReadFile(fs.path("secret")) == "root only");
  CHECK(ReadFile(fs.path("public")) == "everyone reads");
  fs.Check();
}

TEST_CASE("a user cannot create in a 0755 root directory but can in a 0777 one", "[fs][perm]") {
  MountedFs fs(AllowOther());
  umask(022);  // the modes below assume it
  RootDir(fs.path("closed"), 0755);
  RootFile(fs.path("closed/file"), "root's", 0666);
  RootDir(fs.path("open"), 0777);
  const std::string c = fs.path("closed"), o = fs.path("open");

  CHECK(OpenAs(kAlice, kAliceGroup, c + "/new", O_WRONLY | O_CREAT) == EACCES);
  CHECK(RunAs(kAlice, kAliceGroup, [&] { return ErrnoOf(mkdir((c + "/d").c_str(), 0755)); }) ==
        EACCES);
  CHECK(RunAs(kAlice, kAliceGroup, [&] { return ErrnoOf(symlink("x", (c + "/l").c_str())); }) ==
        EACCES);
  CHECK(RunAs(kAlice, kAliceGroup, [&] { return ErrnoOf(unlink((c + "/file").c_str())); }) ==
        EACCES);
  CHECK(RunAs(kAlice, kAliceGroup, [&] {
          return ErrnoOf(rename((c + "/file").c_str(), (c + "/moved").c_str()));
        }) == EACCES);
  // A writable file in it can be written, though.
  CHECK(WriteAs(kAlice, kAliceGroup, c + "/file", "ALICE!") == 0);
  CHECK(ReadFile(c + "/file") == "ALICE!");
  CHECK(Lstat(c + "/file").st_uid == 0u);

  CHECK(RunAs(kAlice, kAliceGroup, [&] {
          int fd = open((o + "/mine").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
          if (fd < 0) return errno;
          if (write(fd, "alice", 5) != 5) return 200;
          close(fd);
          if (mkdir((o + "/mydir").c_str(), 0750) != 0) return errno;
          if (symlink("mine", (o + "/mylink").c_str()) != 0) return errno;
          if (mknod((o + "/myfifo").c_str(), S_IFIFO | 0600, 0) != 0) return errno;
          return 0;
        }) == 0);
  CHECK(RunAs(kBob, kOtherGroup, [&] {
          int fd = open((o + "/bobs").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
          if (fd < 0) return errno;
          close(fd);
          return 0;
        }) == 0);

  // Ownership as root sees it: the creator's uid and (primary) gid.
  for (const char* name : {"mine", "mydir", "mylink", "myfifo"}) {
    INFO(name);
    struct stat st = Lstat(o + "/" + name);
    CHECK(st.st_uid == kAlice);
    CHECK(st.st_gid == kAliceGroup);
  }
  CHECK(Mode(o + "/mine") == 0640);
  CHECK(Mode(o + "/mydir") == 0750);
  CHECK(Lstat(o + "/bobs").st_uid == kBob);
  CHECK(Lstat(o + "/bobs").st_gid == kOtherGroup);
  CHECK(ReadFile(o + "/mine") == "alice");
  CHECK(OpenAs(kBob, kBobGroup, o + "/mine", O_RDONLY) == EACCES);  // 0640, not Bob's group

  fs.Remount();
  CHECK(Lstat(o + "/mine").st_uid == kAlice);
  CHECK(Lstat(o + "/mydir").st_gid == kAliceGroup);
  CHECK(Lstat(o + "/bobs").st_gid == kOtherGroup);
  fs.Check();
}

TEST_CASE("in a sticky directory a user cannot remove another user's file", "[fs][perm]") {
  MountedFs fs(AllowOther());
  RootDir(fs.path("tmp"), 01777);
  const std::string t = fs.path("tmp");
  REQUIRE(Mode(t) == 01777);
  auto create = [&](const std::string& path) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) return errno;
    int err = write(fd, "owned", 5) == 5 ? 0 : EIO;
    close(fd);
    return err;
  };
  REQUIRE(RunAs(kAlice, kAliceGroup, [&] { return create(t + "/alice"); }) == 0);
  REQUIRE(RunAs(kBob, kBobGroup, [&] { return create(t + "/bob"); }) == 0);
  REQUIRE(RunAs(kBob, kBobGroup, [&] { return create(t + "/bob2"); }) == 0);

  auto denied = [](int e) { return e == EPERM || e == EACCES; };
  int e = RunAs(kBob, kBobGroup, [&] { return ErrnoOf(unlink((t + "/alice").c_str())); });
  CHECK(denied(e));
  e = RunAs(kBob, kBobGroup,
            [&] { return ErrnoOf(rename((t + "/alice").c_str(), (t + "/stolen").c_str())); });
  CHECK(denied(e));
  e = RunAs(kBob, kBobGroup,
            [&] { return ErrnoOf(rename((t + "/bob").c_str(), (t + "/alice").c_str())); });
  CHECK(denied(e));
  // The file is untouched, and even writable by Bob (0666): stickiness is about names.
  CHECK(ReadFile(t + "/alice") == "owned");
  CHECK(Lstat(t + "/alice").st_uid == kAlice);
  CHECK(ReadFile(t + "/bob") == "owned");

  // Owners remove their own; root removes anyone's.
  CHECK(RunAs(kAlice, kAliceGroup, [&] { return ErrnoOf(unlink((t + "/alice").c_str())); }) == 0);
  CHECK(RunAs(kBob, kBobGroup, [&] { return ErrnoOf(unlink((t + "/bob").c_str())); }) == 0);
  REQUIRE(unlink((t + "/bob2").c_str()) == 0);
  CHECK(ErrnoOf(access((t + "/alice").c_str(), F_OK)) == ENOENT);
  fs.Check();
}

TEST_CASE("chmod by a non-owner and chown by a non-root user are refused", "[fs][perm]") {
  MountedFs fs(AllowOther());
  RootFile(fs.path("roots"), "r", 0666);
  RootDir(fs.path("open"), 0777);
  const std::string mine = fs.path("open/mine");
  REQUIRE(RunAs(kAlice, kAliceGroup, [&] {
            int fd = open(mine.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd < 0) return errno;
            close(fd);
            return 0;
          }) == 0);

  // chmod: only the owner (or root).
  CHECK(RunAs(kAlice, kAliceGroup,
              [&] { return ErrnoOf(chmod(fs.path("roots").c_str(), 0777)); }) == EPERM);
  CHECK(Mode(fs.path("roots")) == 0666);
  CHECK(RunAs(kBob, kBobGroup, [&] { return ErrnoOf(chmod(mine.c_str(), 0777)); }) == EPERM);
  CHECK(RunAs(kAlice, kAliceGroup, [&] { return ErrnoOf(chmod(mine.c_str(), 0600)); }) == 0);
  CHECK(Mode(mine) == 0600);

  // chown: a user may not give a file away, nor take one.
  CHECK(RunAs(kAlice, kAliceGroup, [&] { return ErrnoOf(chown(mine.c_str(), kBob, -1)); }) ==
        EPERM);
  CHECK(RunAs(kAlice, kAliceGroup,
              [&] { return ErrnoOf(chown(fs.path("roots").c_str(), kAlice, -1)); }) == EPERM);
  // ... nor move it to a group they are not in; their own group is fine.
  CHECK(RunAs(kAlice, kAliceGroup, [&] { return ErrnoOf(chown(mine.c_str(), -1, kOtherGroup)); }) ==
        EPERM);
  CHECK(RunAs(kAlice, kAliceGroup,
              [&] { return ErrnoOf(chown(mine.c_str(), kAlice, kAliceGroup)); }) == 0);
  struct stat st = Lstat(mine);
  CHECK(st.st_uid == kAlice);
  CHECK(st.st_gid == kAliceGroup);
  CHECK(Lstat(fs.path("roots")).st_uid == 0u);

  // Setting explicit times needs ownership; "now" needs only write access.
  const struct timespec old[2] = {{1000, 0}, {1000, 0}};
  CHECK(RunAs(kAlice, kAliceGroup, [&] {
          return ErrnoOf(utimensat(AT_FDCWD, fs.path("roots").c_str(), old, 0));
        }) == EPERM);
  CHECK(RunAs(kAlice, kAliceGroup, [&] {
          return ErrnoOf(utimensat(AT_FDCWD, fs.path("roots").c_str(), nullptr, 0));
        }) == 0);
  CHECK(Lstat(fs.path("roots")).st_mtim.tv_sec > 1000);
  fs.Remount();
  CHECK(Mode(fs.path("roots")) == 0666);
  CHECK(Mode(mine) == 0600);
  CHECK(Lstat(mine).st_uid == kAlice);
  fs.Check();
}

TEST_CASE("a setgid directory gives new entries its group, and subdirectories the bit",
          "[fs][perm]") {
  MountedFs fs(AllowOther());
  umask(022);  // the modes below assume it
  RootDir(fs.path("shared"), 0777);
  REQUIRE(chown(fs.path("shared").c_str(), 0, kOtherGroup) == 0);
  REQUIRE(chmod(fs.path("shared").c_str(), 02777) == 0);
  REQUIRE(Mode(fs.path("shared")) == 02777);
  RootDir(fs.path("plain"), 0777);
  const std::string s = fs.path("shared");

  REQUIRE(RunAs(kAlice, kAliceGroup, [&] {
            int fd = open((s + "/file").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd < 0) return errno;
            close(fd);
            if (mkdir((s + "/sub").c_str(), 0755) != 0) return errno;
            fd = open((s + "/sub/deeper").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd < 0) return errno;
            close(fd);
            if (mkdir((s + "/sub/subsub").c_str(), 0700) != 0) return errno;
            if (mknod((s + "/fifo").c_str(), S_IFIFO | 0644, 0) != 0) return errno;
            // Asking for setgid on a file of a group one is not in: dropped.
            fd = open((s + "/sgid").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 02755);
            if (fd < 0) return errno;
            close(fd);
            fd = open((fs.path("plain") + "/file").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd < 0) return errno;
            close(fd);
            return 0;
          }) == 0);

  for (const char* name : {"file", "sub", "sub/deeper", "sub/subsub", "fifo", "sgid"}) {
    INFO(name);
    struct stat st = Lstat(s + "/" + name);
    CHECK(st.st_uid == kAlice);
    CHECK(st.st_gid == kOtherGroup);
  }
  CHECK(Mode(s + "/sub") == (02000 | 0755));
  CHECK(Mode(s + "/sub/subsub") == (02000 | 0700));
  CHECK(Mode(s + "/file") == 0644);  // files get the group, not the bit
  CHECK(Mode(s + "/sgid") == 0755);
  CHECK(Lstat(fs.path("plain/file")).st_gid == kAliceGroup);  // the control

  fs.Remount();
  CHECK(Lstat(s + "/sub/deeper").st_gid == kOtherGroup);
  CHECK(Mode(s + "/sub") == (02000 | 0755));
  fs.Check();
}

TEST_CASE("a write by a non-owner clears set-user-ID (and executable set-group-ID)", "[fs][perm]") {
  MountedFs fs(AllowOther());
  RootFile(fs.path("suid"), "original", 04777);
  RootFile(fs.path("both"), "original", 06777);
  RootFile(fs.path("rootwrites"), "original", 04777);

  CHECK(WriteAs(kAlice, kAliceGroup, fs.path("suid"), "ALICE") == 0);
  CHECK(Mode(fs.path("suid")) == 0777);
  CHECK(ReadFile(fs.path("suid")) == "ALICEnal");
  CHECK(WriteAs(kAlice, kAliceGroup, fs.path("both"), "B") == 0);
  CHECK(Mode(fs.path("both")) == 0777);
  CHECK(Lstat(fs.path("suid")).st_uid == 0u);

  // Root (CAP_FSETID) keeps the bit.
  int fd = open(fs.path("rootwrites").c_str(), O_WRONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(pwrite(fd, "R", 1, 0) == 1);
  REQUIRE(close(fd) == 0);
  CHECK(Mode(fs.path("rootwrites")) == 04777);

  fs.Remount();  // the cleared bits are stored, not only cached
  CHECK(Mode(fs.path("suid")) == 0777);
  CHECK(Mode(fs.path("both")) == 0777);
  CHECK(Mode(fs.path("rootwrites")) == 04777);
  fs.Check();
}

TEST_CASE("a truncate by a non-owner with write permission clears set-user-ID", "[fs][perm]") {
  MountedFs fs(AllowOther());
  RootFile(fs.path("t"), "0123456789", 04666);
  RootFile(fs.path("ft"), "0123456789", 04666);
  CHECK(RunAs(kAlice, kAliceGroup, [&] { return ErrnoOf(truncate(fs.path("t").c_str(), 4)); }) ==
        0);
  struct stat st = Lstat(fs.path("t"));
  CHECK(st.st_size == 4);
  CHECK((st.st_mode & 07777) == 0666);
  CHECK(ReadFile(fs.path("t")) == "0123");

  CHECK(RunAs(kAlice, kAliceGroup, [&] {
          int fd = open(fs.path("ft").c_str(), O_WRONLY | O_CLOEXEC);
          if (fd < 0) return errno;
          int err = ErrnoOf(ftruncate(fd, 20));
          close(fd);
          return err;
        }) == 0);
  st = Lstat(fs.path("ft"));
  CHECK(st.st_size == 20);
  CHECK((st.st_mode & 07777) == 0666);
  CHECK(ReadFile(fs.path("ft")) == std::string("0123456789") + std::string(10, '\0'));

  fs.Remount();
  CHECK(Mode(fs.path("t")) == 0666);
  CHECK(Mode(fs.path("ft")) == 0666);
  fs.Check();
}
