// Namespace operations through a real mount: what applications see of
// create, link, unlink, rename, directories, xattrs, attributes and free
// space, checked with plain syscalls (and ls), then against the invariant
// checker.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

// Deterministic, non-repeating bytes (so a misplaced block shows).
std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

void Touch(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  INFO(path << ": " << strerror(errno));
  REQUIRE(fd >= 0);
  REQUIRE(close(fd) == 0);
}

struct Dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// Reads one getdents64 batch of an open directory into `names`; returns the
// number of entries read (0 at the end).
size_t ReadDirBatch(int fd, std::vector<char>& buf, std::vector<std::string>* names,
                    std::map<std::string, unsigned char>* types = nullptr) {
  long n = syscall(SYS_getdents64, fd, buf.data(), buf.size());
  INFO(strerror(errno));
  REQUIRE(n >= 0);
  size_t count = 0;
  for (long off = 0; off < n;) {
    auto* d = reinterpret_cast<Dirent64*>(buf.data() + off);
    names->push_back(d->d_name);
    if (types) (*types)[d->d_name] = d->d_type;
    off += d->d_reclen;
    ++count;
  }
  return count;
}

std::vector<std::string> ListDir(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  INFO(path << ": " << strerror(errno));
  REQUIRE(fd >= 0);
  std::vector<char> buf(32768);
  std::vector<std::string> names;
  while (ReadDirBatch(fd, buf, &names) > 0) {
  }
  close(fd);
  return names;
}

std::map<std::string, int> Count(const std::vector<std::string>& names) {
  std::map<std::string, int> m;
  for (const auto& n : names) m[n]++;
  return m;
}

std::string Name(int i) {
  char b[16];
  snprintf(b, sizeof(b), "f%04d", i);
  return b;
}

std::string ReadLinkAt(const std::string& path) {
  char buf[4096];
  ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
  INFO(path << ": " << strerror(errno));
  REQUIRE(n >= 0);
  return std::string(buf, n);
}

// Everything observable about one inode, as a comparable string.
std::string Describe(const std::string& path) {
  struct stat st = Lstat(path);
  std::ostringstream d;
  d << "ino=" << st.st_ino << " mode=" << std::oct << st.st_mode << std::dec
    << " nlink=" << st.st_nlink << " uid=" << st.st_uid << " gid=" << st.st_gid
    << " size=" << st.st_size << " blocks=" << st.st_blocks << " rdev=" << st.st_rdev
    << " mtime=" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec << " ctime=" << st.st_ctim.tv_sec
    << "." << st.st_ctim.tv_nsec;
  if (S_ISREG(st.st_mode)) d << " fnv=" << std::hex << Fnv1a(ReadFile(path)) << std::dec;
  if (S_ISLNK(st.st_mode)) d << " target=" << ReadLinkAt(path);
  if (!S_ISLNK(st.st_mode)) {
    char names[4096];
    ssize_t n = listxattr(path.c_str(), names, sizeof(names));
    REQUIRE(n >= 0);
    std::vector<std::string> list;
    for (ssize_t i = 0; i < n; i += strlen(names + i) + 1) list.push_back(names + i);
    std::sort(list.begin(), list.end());
    for (const auto& x : list) {
      char v[4096];
      ssize_t len = getxattr(path.c_str(), x.c_str(), v, sizeof(v));
      REQUIRE(len >= 0);
      d << " xattr:" << x << "=" << std::string(v, len);
    }
  }
  return d.str();
}

// path (relative to the mount) -> description, for the whole tree.
void Walk(const std::string& root, const std::string& rel,
          std::map<std::string, std::string>* out) {
  std::string full = rel.empty() ? root : root + "/" + rel;
  (*out)[rel.empty() ? "/" : rel] = Describe(full);
  if (!S_ISDIR(Lstat(full).st_mode)) return;
  for (const auto& name : ListDir(full)) {
    if (name == "." || name == "..") continue;
    Walk(root, rel.empty() ? name : rel + "/" + name, out);
  }
}

}  // namespace

TEST_CASE("create, open, close and reopen regular files", "[fs][namespace]") {
  MountedFs fs;
  umask(022);  // the modes below assume it
  const std::string p = fs.path("file");
  int fd = open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  REQUIRE(fd >= 0);
  struct stat st = StatOf(fd);
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_size == 0);
  CHECK(st.st_nlink == 1);
  REQUIRE(write(fd, "abc", 3) == 3);
  REQUIRE(close(fd) == 0);

  CHECK(ErrnoOf(open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) == EEXIST);
  CHECK(ErrnoOf(open(fs.path("missing").c_str(), O_RDONLY | O_CLOEXEC)) == ENOENT);
  CHECK(ErrnoOf(open(fs.path("missing/x").c_str(), O_RDONLY | O_CLOEXEC)) == ENOENT);
  CHECK(ErrnoOf(open(fs.path("file/x").c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644)) == ENOTDIR);
  CHECK(ErrnoOf(open(fs.mnt().c_str(), O_WRONLY | O_CLOEXEC)) == EISDIR);

  CHECK(ReadFile(p) == "abc");
  // Reopened for writing without O_TRUNC, the file keeps what follows.
  fd = open(p.c_str(), O_WRONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "X", 1) == 1);
  REQUIRE(close(fd) == 0);
  CHECK(ReadFile(p) == "Xbc");
  fs.Remount();
  CHECK(ReadFile(p) == "Xbc");
  CHECK((Lstat(p).st_mode & 07777) == 0640);
  fs.Check();
}

// The kernel negotiates atomic O_TRUNC with the daemon, so it sends no
// separate truncate: the daemon's open must empty the file itself.
TEST_CASE("open with O_TRUNC empties an existing file and frees its blocks", "[fs][namespace]") {
  MountedFs fs;
  const std::string p = fs.path("file");
  const uint64_t free0 = FreeBlocks(fs);
  WriteFile(p, Pattern(1 << 20, 5));
  CHECK(FreeBlocks(fs) == free0 - 256);
  int fd = open(p.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(close(fd) == 0);
  CHECK(Lstat(p).st_size == 0);
  CHECK(ReadFile(p).size() == 0);
  CHECK(FreeBlocks(fs) == free0);
  // The shell's '>' is the everyday case.
  RunResult r = Run({"/bin/sh", "-c", "printf new > '" + p + "'"});
  REQUIRE(r.status == 0);
  CHECK(ReadFile(p).size() == 3);
  CHECK(ReadFile(p).substr(0, 8) == "new");
  fs.Remount();
  CHECK(ReadFile(p).substr(0, 8) == "new");
  CHECK(Lstat(p).st_size == 3);
  fs.Check();
}

TEST_CASE("changing a directory's entries updates its mtime and ctime", "[fs][namespace]") {
  MountedFs fs;
  const std::string d = fs.path("d");
  REQUIRE(mkdir(d.c_str(), 0755) == 0);
  REQUIRE(mkdir(fs.path("other").c_str(), 0755) == 0);
  WriteFile(fs.path("other/f"), "x");
  // Each step backdates d, then expects the change to have moved its times on.
  auto changes = [&](const char* what, const std::function<void()>& op) {
    INFO(what);
    const struct timespec old[2] = {{1000, 0}, {1000, 0}};
    REQUIRE(utimensat(AT_FDCWD, d.c_str(), old, 0) == 0);
    const struct timespec ctime_before = Lstat(d).st_ctim;
    op();
    struct stat st = Lstat(d);
    CHECK(st.st_mtim.tv_sec > 1000);
    CHECK((st.st_ctim.tv_sec > ctime_before.tv_sec || (st.st_ctim.tv_sec == ctime_before.tv_sec &&
                                                       st.st_ctim.tv_nsec > ctime_before.tv_nsec)));
  };
  changes("create", [&] { Touch(d + "/a"); });
  changes("mkdir", [&] { REQUIRE(mkdir((d + "/sub").c_str(), 0755) == 0); });
  changes("symlink", [&] { REQUIRE(symlink("a", (d + "/l").c_str()) == 0); });
  changes("link", [&] { REQUIRE(link((d + "/a").c_str(), (d + "/b").c_str()) == 0); });
  changes("rename within", [&] { REQUIRE(rename((d + "/b").c_str(), (d + "/c").c_str()) == 0); });
  changes("rename in",
          [&] { REQUIRE(rename(fs.path("other/f").c_str(), (d + "/f").c_str()) == 0); });
  changes("rename out",
          [&] { REQUIRE(rename((d + "/f").c_str(), fs.path("other/f").c_str()) == 0); });
  changes("unlink", [&] { REQUIRE(unlink((d + "/c").c_str()) == 0); });
  changes("rmdir", [&] { REQUIRE(rmdir((d + "/sub").c_str()) == 0); });
  fs.Check();
}

TEST_CASE("mkdir and rmdir, with ENOTEMPTY, ENOTDIR and directory link counts", "[fs][namespace]") {
  MountedFs fs;
  umask(022);  // the modes below assume it
  const std::string d = fs.path("d");
  REQUIRE(mkdir(d.c_str(), 0750) == 0);
  struct stat st = Lstat(d);
  CHECK(S_ISDIR(st.st_mode));
  CHECK((st.st_mode & 07777) == 0750);
  CHECK(st.st_nlink == 2);
  CHECK(ErrnoOf(mkdir(d.c_str(), 0755)) == EEXIST);
  CHECK(Lstat(fs.mnt()).st_nlink == 3);  // 2 + one subdirectory

  // nlink of a directory = 2 + its subdirectories; files do not count.
  for (const char* sub : {"a", "b", "c"}) REQUIRE(mkdir((d + "/" + sub).c_str(), 0755) == 0);
  Touch(d + "/f1");
  Touch(d + "/f2");
  CHECK(Lstat(d).st_nlink == 5);

  CHECK(ErrnoOf(rmdir(d.c_str())) == ENOTEMPTY);
  CHECK(ErrnoOf(rmdir((d + "/f1").c_str())) == ENOTDIR);
  CHECK(ErrnoOf(mkdir((d + "/f1/x").c_str(), 0755)) == ENOTDIR);
  CHECK(ErrnoOf(rmdir((d + "/missing").c_str())) == ENOENT);
  // A directory that holds only files is not empty either.
  REQUIRE(mkdir((d + "/onlyfile").c_str(), 0755) == 0);
  Touch(d + "/onlyfile/x");
  CHECK(ErrnoOf(rmdir((d + "/onlyfile").c_str())) == ENOTEMPTY);
  REQUIRE(unlink((d + "/onlyfile/x").c_str()) == 0);
  REQUIRE(rmdir((d + "/onlyfile").c_str()) == 0);

  REQUIRE(rmdir((d + "/a").c_str()) == 0);
  CHECK(ErrnoOf(access((d + "/a").c_str(), F_OK)) == ENOENT);
  CHECK(Lstat(d).st_nlink == 4);
  REQUIRE(rmdir((d + "/b").c_str()) == 0);
  REQUIRE(rmdir((d + "/c").c_str()) == 0);
  CHECK(Lstat(d).st_nlink == 2);
  REQUIRE(unlink((d + "/f1").c_str()) == 0);
  REQUIRE(unlink((d + "/f2").c_str()) == 0);
  REQUIRE(rmdir(d.c_str()) == 0);
  CHECK(Lstat(fs.mnt()).st_nlink == 2);
  CHECK(ListDir(fs.mnt()).size() == 2);

  fs.Remount();  // the counts are stored, not only cached by the kernel
  CHECK(Lstat(fs.mnt()).st_nlink == 2);
  fs.Check();
}

TEST_CASE("unlink removes files and refuses directories", "[fs][namespace]") {
  MountedFs fs;
  WriteFile(fs.path("f"), "data");
  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  CHECK(ErrnoOf(unlink(fs.path("d").c_str())) == EISDIR);
  CHECK(S_ISDIR(Lstat(fs.path("d")).st_mode));
  CHECK(ErrnoOf(unlink(fs.path("missing").c_str())) == ENOENT);
  REQUIRE(unlink(fs.path("f").c_str()) == 0);
  CHECK(ErrnoOf(access(fs.path("f").c_str(), F_OK)) == ENOENT);
  CHECK(ErrnoOf(unlink(fs.path("f").c_str())) == ENOENT);
  fs.Remount();
  CHECK(ErrnoOf(access(fs.path("f").c_str(), F_OK)) == ENOENT);
  CHECK(Count(ListDir(fs.mnt())) == std::map<std::string, int>{{".", 1}, {"..", 1}, {"d", 1}});
  fs.Check();
}

TEST_CASE("symlinks: create, readlink, follow, dangle", "[fs][namespace]") {
  MountedFs fs;
  REQUIRE(mkdir(fs.path("dir").c_str(), 0755) == 0);
  WriteFile(fs.path("dir/target"), "through the link");
  REQUIRE(symlink("dir/target", fs.path("rel").c_str()) == 0);
  REQUIRE(symlink("nowhere/at/all", fs.path("dangling").c_str()) == 0);
  const std::string long_target(4000, 'x');
  REQUIRE(symlink(long_target.c_str(), fs.path("long").c_str()) == 0);

  struct stat st = Lstat(fs.path("rel"));
  CHECK(S_ISLNK(st.st_mode));
  CHECK(st.st_size == static_cast<off_t>(strlen("dir/target")));
  CHECK(ReadLinkAt(fs.path("rel")) == "dir/target");
  CHECK(ReadLinkAt(fs.path("long")) == long_target);
  CHECK(ReadFile(fs.path("rel")) == "through the link");
  struct stat followed {};
  REQUIRE(stat(fs.path("rel").c_str(), &followed) == 0);
  CHECK(followed.st_ino == Lstat(fs.path("dir/target")).st_ino);

  CHECK(ErrnoOf(open(fs.path("dangling").c_str(), O_RDONLY | O_CLOEXEC)) == ENOENT);
  CHECK(ErrnoOf(symlink("x", fs.path("rel").c_str())) == EEXIST);
  char buf[16];
  CHECK(ErrnoOf(readlink(fs.path("dir/target").c_str(), buf, sizeof(buf))) == EINVAL);

  fs.Remount();
  CHECK(ReadLinkAt(fs.path("rel")) == "dir/target");
  CHECK(ReadLinkAt(fs.path("dangling")) == "nowhere/at/all");
  CHECK(ReadLinkAt(fs.path("long")) == long_target);
  // Removing the link leaves the target alone.
  REQUIRE(unlink(fs.path("rel").c_str()) == 0);
  CHECK(ReadFile(fs.path("dir/target")) == "through the link");
  fs.Check();
}

TEST_CASE("hard links share one inode and count in st_nlink", "[fs][namespace]") {
  MountedFs fs;
  REQUIRE(mkdir(fs.path("other").c_str(), 0755) == 0);
  WriteFile(fs.path("a"), "shared");
  REQUIRE(link(fs.path("a").c_str(), fs.path("b").c_str()) == 0);
  REQUIRE(link(fs.path("a").c_str(), fs.path("other/c").c_str()) == 0);
  struct stat a = Lstat(fs.path("a")), b = Lstat(fs.path("b")), c = Lstat(fs.path("other/c"));
  CHECK(a.st_ino == b.st_ino);
  CHECK(a.st_ino == c.st_ino);
  CHECK(a.st_nlink == 3);
  CHECK(b.st_nlink == 3);
  // Hard links to files do not change a directory's count.
  CHECK(Lstat(fs.path("other")).st_nlink == 2);

  WriteFile(fs.path("b"), "changed via b");
  CHECK(ReadFile(fs.path("a")) == "changed via b");
  CHECK(ReadFile(fs.path("other/c")) == "changed via b");

  CHECK(ErrnoOf(link(fs.path("a").c_str(), fs.path("b").c_str())) == EEXIST);
  CHECK(ErrnoOf(link(fs.path("other").c_str(), fs.path("dirlink").c_str())) == EPERM);
  CHECK(ErrnoOf(link(fs.path("missing").c_str(), fs.path("x").c_str())) == ENOENT);

  REQUIRE(unlink(fs.path("a").c_str()) == 0);
  CHECK(Lstat(fs.path("b")).st_nlink == 2);
  fs.Remount();
  CHECK(Lstat(fs.path("b")).st_nlink == 2);
  CHECK(Lstat(fs.path("other/c")).st_nlink == 2);
  REQUIRE(unlink(fs.path("other/c").c_str()) == 0);
  CHECK(Lstat(fs.path("b")).st_nlink == 1);
  CHECK(ReadFile(fs.path("b")) == "changed via b");
  fs.Check();
}

TEST_CASE("mknod makes a working FIFO", "[fs][namespace]") {
  MountedFs fs;
  umask(022);  // the modes below assume it
  const std::string p = fs.path("fifo");
  REQUIRE(mknod(p.c_str(), S_IFIFO | 0640, 0) == 0);
  struct stat st = Lstat(p);
  CHECK(S_ISFIFO(st.st_mode));
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_size == 0);
  CHECK(ErrnoOf(mknod(p.c_str(), S_IFIFO | 0640, 0)) == EEXIST);
  // A FIFO is a kernel pipe: O_RDWR never blocks on Linux.
  int fd = open(p.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "pipe", 4) == 4);
  char buf[8] = {};
  REQUIRE(read(fd, buf, sizeof(buf)) == 4);
  CHECK(std::string(buf, 4) == "pipe");
  REQUIRE(close(fd) == 0);
  fs.Remount();
  CHECK(S_ISFIFO(Lstat(p).st_mode));
  fs.Check();
}

TEST_CASE("rename of a file within and across directories", "[fs][namespace]") {
  MountedFs fs;
  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  WriteFile(fs.path("old"), "content");
  ino_t ino = Lstat(fs.path("old")).st_ino;
  REQUIRE(rename(fs.path("old").c_str(), fs.path("new").c_str()) == 0);
  CHECK(ErrnoOf(access(fs.path("old").c_str(), F_OK)) == ENOENT);
  CHECK(Lstat(fs.path("new")).st_ino == ino);
  CHECK(ReadFile(fs.path("new")) == "content");
  REQUIRE(rename(fs.path("new").c_str(), fs.path("d/moved").c_str()) == 0);
  CHECK(Lstat(fs.path("d/moved")).st_ino == ino);
  CHECK(Lstat(fs.path("d/moved")).st_nlink == 1);
  CHECK(Lstat(fs.path("d")).st_nlink == 2);  // a file moving in changes no count
  CHECK(ErrnoOf(rename(fs.path("missing").c_str(), fs.path("x").c_str())) == ENOENT);
  // Renaming onto another link of the same inode changes nothing.
  REQUIRE(link(fs.path("d/moved").c_str(), fs.path("d/twin").c_str()) == 0);
  REQUIRE(rename(fs.path("d/moved").c_str(), fs.path("d/twin").c_str()) == 0);
  CHECK(Lstat(fs.path("d/moved")).st_nlink == 2);
  CHECK(Lstat(fs.path("d/twin")).st_nlink == 2);
  fs.Remount();
  CHECK(Count(ListDir(fs.path("d"))) ==
        std::map<std::string, int>{{".", 1}, {"..", 1}, {"moved", 1}, {"twin", 1}});
  CHECK(ReadFile(fs.path("d/twin")) == "content");
  fs.Check();
}

TEST_CASE("rename over an existing file drops the old file and returns its space",
          "[fs][namespace]") {
  MountedFs fs;
  const uint64_t free0 = FreeBlocks(fs);
  WriteFile(fs.path("src"), "new contents");          // 1 block
  WriteFile(fs.path("victim"), Pattern(1 << 20, 7));  // 256 blocks
  ino_t victim_ino = Lstat(fs.path("victim")).st_ino;
  ino_t src_ino = Lstat(fs.path("src")).st_ino;
  CHECK(FreeBlocks(fs) == free0 - 257);

  REQUIRE(rename(fs.path("src").c_str(), fs.path("victim").c_str()) == 0);
  CHECK(ErrnoOf(access(fs.path("src").c_str(), F_OK)) == ENOENT);
  struct stat st = Lstat(fs.path("victim"));
  CHECK(st.st_ino == src_ino);
  CHECK(st.st_ino != victim_ino);
  CHECK(ReadFile(fs.path("victim")) == "new contents");
  CHECK(FreeBlocksSettled(fs, free0 - 1) == free0 - 1);

  // Replacing one name of a file with two keeps the file under the other.
  WriteFile(fs.path("linked"), "still here");
  REQUIRE(link(fs.path("linked").c_str(), fs.path("alias").c_str()) == 0);
  WriteFile(fs.path("incoming"), "in");
  REQUIRE(rename(fs.path("incoming").c_str(), fs.path("linked").c_str()) == 0);
  CHECK(ReadFile(fs.path("linked")) == "in");
  CHECK(ReadFile(fs.path("alias")) == "still here");
  CHECK(Lstat(fs.path("alias")).st_nlink == 1);
  REQUIRE(unlink(fs.path("linked").c_str()) == 0);
  REQUIRE(unlink(fs.path("alias").c_str()) == 0);
  CHECK(FreeBlocksSettled(fs, free0 - 1) == free0 - 1);

  // Replacing a file that is still open keeps its data until the close.
  WriteFile(fs.path("held"), Pattern(64 << 10, 9));  // 16 blocks
  int fd = open(fs.path("held").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  WriteFile(fs.path("newer"), "x");
  REQUIRE(rename(fs.path("newer").c_str(), fs.path("held").c_str()) == 0);
  CHECK(FreeBlocks(fs) == free0 - 1 - 16 - 1);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // make the daemon serve it
  CHECK_SAME(PreadExact(fd, 0, 64 << 10), Pattern(64 << 10, 9));
  REQUIRE(close(fd) == 0);
  CHECK(FreeBlocksSettled(fs, free0 - 2) == free0 - 2);
  fs.Check();
}

TEST_CASE("rename of directories: across parents, over empty ones, and the errors",
          "[fs][namespace]") {
  MountedFs fs;
  for (const char* d : {"p1", "p2", "p1/d", "p1/d/inner", "empty", "full", "full/x"})
    REQUIRE(mkdir(fs.path(d).c_str(), 0755) == 0);
  WriteFile(fs.path("p1/d/file"), "kept");
  WriteFile(fs.path("plain"), "file");
  CHECK(Lstat(fs.path("p1")).st_nlink == 3);
  CHECK(Lstat(fs.path("p2")).st_nlink == 2);
  ino_t d_ino = Lstat(fs.path("p1/d")).st_ino;

  REQUIRE(rename(fs.path("p1/d").c_str(), fs.path("p2/d").c_str()) == 0);
  CHECK(Lstat(fs.path("p1")).st_nlink == 2);
  CHECK(Lstat(fs.path("p2")).st_nlink == 3);
  CHECK(Lstat(fs.path("p2/d")).st_ino == d_ino);
  CHECK(Lstat(fs.path("p2/d")).st_nlink == 3);
  // ".." of the moved directory is its new parent.
  CHECK(Lstat(fs.path("p2/d/..")).st_ino == Lstat(fs.path("p2")).st_ino);
  CHECK(ReadFile(fs.path("p2/d/file")) == "kept");

  // Errors: into itself, dir over file, file over dir, over a non-empty dir.
  CHECK(ErrnoOf(rename(fs.path("p2").c_str(), fs.path("p2/d/inner/p2").c_str())) == EINVAL);
  CHECK(ErrnoOf(rename(fs.path("p2/d").c_str(), fs.path("plain").c_str())) == ENOTDIR);
  CHECK(ErrnoOf(rename(fs.path("plain").c_str(), fs.path("empty").c_str())) == EISDIR);
  CHECK(ErrnoOf(rename(fs.path("p2/d").c_str(), fs.path("full").c_str())) == ENOTEMPTY);
  CHECK(Lstat(fs.path("p2/d")).st_ino == d_ino);

  // Over an empty directory: the target goes, counts stay right.
  const uint64_t root_links = Lstat(fs.mnt()).st_nlink;
  REQUIRE(rename(fs.path("p2/d").c_str(), fs.path("empty").c_str()) == 0);
  CHECK(Lstat(fs.path("empty")).st_ino == d_ino);
  CHECK(Lstat(fs.path("p2")).st_nlink == 2);
  CHECK(Lstat(fs.mnt()).st_nlink == root_links);  // lost "empty", gained d
  CHECK(Lstat(fs.path("empty/..")).st_ino == Lstat(fs.mnt()).st_ino);

  fs.Remount();
  CHECK(Lstat(fs.path("p1")).st_nlink == 2);
  CHECK(Lstat(fs.path("p2")).st_nlink == 2);
  CHECK(Lstat(fs.mnt()).st_nlink == root_links);
  CHECK(ReadFile(fs.path("empty/file")) == "kept");
  CHECK(S_ISDIR(Lstat(fs.path("empty/inner")).st_mode));
  fs.Check();
}

TEST_CASE("renameat2 RENAME_NOREPLACE and RENAME_EXCHANGE", "[fs][namespace]") {
  MountedFs fs;
  auto renameat2 = [](const std::string& a, const std::string& b, unsigned flags) {
    return syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), flags);
  };
  WriteFile(fs.path("a"), "AAAA");
  WriteFile(fs.path("b"), "BB");
  ino_t ia = Lstat(fs.path("a")).st_ino, ib = Lstat(fs.path("b")).st_ino;

  SECTION("NOREPLACE") {
    CHECK(ErrnoOf(renameat2(fs.path("a"), fs.path("b"), RENAME_NOREPLACE)) == EEXIST);
    CHECK(ReadFile(fs.path("a")) == "AAAA");
    CHECK(ReadFile(fs.path("b")) == "BB");
    REQUIRE(renameat2(fs.path("a"), fs.path("c"), RENAME_NOREPLACE) == 0);
    CHECK(ErrnoOf(access(fs.path("a").c_str(), F_OK)) == ENOENT);
    CHECK(Lstat(fs.path("c")).st_ino == ia);
  }
  SECTION("EXCHANGE of two files") {
    REQUIRE(renameat2(fs.path("a"), fs.path("b"), RENAME_EXCHANGE) == 0);
    CHECK(ReadFile(fs.path("a")) == "BB");
    CHECK(ReadFile(fs.path("b")) == "AAAA");
    CHECK(Lstat(fs.path("a")).st_ino == ib);
    CHECK(Lstat(fs.path("b")).st_ino == ia);
    CHECK(ErrnoOf(renameat2(fs.path("a"), fs.path("missing"), RENAME_EXCHANGE)) == ENOENT);
    CHECK(ErrnoOf(renameat2(fs.path("a"), fs.path("b"), RENAME_EXCHANGE | RENAME_NOREPLACE)) ==
          EINVAL);
    fs.Remount();
    CHECK(ReadFile(fs.path("a")) == "BB");
    CHECK(ReadFile(fs.path("b")) == "AAAA");
  }
  SECTION("EXCHANGE of a file and a directory in different parents") {
    REQUIRE(mkdir(fs.path("p1").c_str(), 0755) == 0);
    REQUIRE(mkdir(fs.path("p2").c_str(), 0755) == 0);
    REQUIRE(mkdir(fs.path("p2/dir").c_str(), 0755) == 0);
    WriteFile(fs.path("p2/dir/inside"), "in dir");
    REQUIRE(rename(fs.path("a").c_str(), fs.path("p1/file").c_str()) == 0);
    ino_t idir = Lstat(fs.path("p2/dir")).st_ino;
    REQUIRE(renameat2(fs.path("p1/file"), fs.path("p2/dir"), RENAME_EXCHANGE) == 0);
    CHECK(Lstat(fs.path("p1/file")).st_ino == idir);
    CHECK(Lstat(fs.path("p2/dir")).st_ino == ia);
    CHECK(ReadFile(fs.path("p1/file/inside")) == "in dir");
    CHECK(ReadFile(fs.path("p2/dir")) == "AAAA");
    CHECK(Lstat(fs.path("p1")).st_nlink == 3);
    CHECK(Lstat(fs.path("p2")).st_nlink == 2);
    CHECK(Lstat(fs.path("p1/file/..")).st_ino == Lstat(fs.path("p1")).st_ino);
    fs.Remount();
    CHECK(Lstat(fs.path("p1")).st_nlink == 3);
    CHECK(Lstat(fs.path("p2")).st_nlink == 2);
    CHECK(Lstat(fs.path("p1/file/..")).st_ino == Lstat(fs.path("p1")).st_ino);
    CHECK(ReadFile(fs.path("p1/file/inside")) == "in dir");
  }
  SECTION("EXCHANGE of two directories in different parents") {
    for (const char* d : {"p1", "p2", "p1/da", "p2/db", "p2/db/deeper"})
      REQUIRE(mkdir(fs.path(d).c_str(), 0755) == 0);
    ino_t ida = Lstat(fs.path("p1/da")).st_ino, idb = Lstat(fs.path("p2/db")).st_ino;
    REQUIRE(renameat2(fs.path("p1/da"), fs.path("p2/db"), RENAME_EXCHANGE) == 0);
    CHECK(Lstat(fs.path("p1/da")).st_ino == idb);
    CHECK(Lstat(fs.path("p2/db")).st_ino == ida);
    CHECK(S_ISDIR(Lstat(fs.path("p1/da/deeper")).st_mode));
    fs.Remount();
    CHECK(Lstat(fs.path("p1")).st_nlink == 3);
    CHECK(Lstat(fs.path("p2")).st_nlink == 3);
    CHECK(Lstat(fs.path("p1/da")).st_nlink == 3);
    CHECK(Lstat(fs.path("p1/da/..")).st_ino == Lstat(fs.path("p1")).st_ino);
    CHECK(Lstat(fs.path("p2/db/..")).st_ino == Lstat(fs.path("p2")).st_ino);
    // ".." is what the store says, not only what the kernel remembers.
    REQUIRE(rmdir(fs.path("p1/da/deeper").c_str()) == 0);
    REQUIRE(rmdir(fs.path("p1/da").c_str()) == 0);
    CHECK(Lstat(fs.path("p1")).st_nlink == 2);
  }
  fs.Check();
}

TEST_CASE("readdir lists 2,000 entries exactly once each", "[fs][namespace]") {
  MountedFs fs;
  const std::string d = fs.path("big");
  REQUIRE(mkdir(d.c_str(), 0755) == 0);
  constexpr int kN = 2000;
  for (int i = 0; i < kN; ++i) Touch(d + "/" + Name(i));
  auto check = [&] {
    std::map<std::string, int> seen = Count(ListDir(d));
    CHECK(seen.size() == kN + 2);
    CHECK(seen["."] == 1);
    CHECK(seen[".."] == 1);
    int missing = 0, repeated = 0;
    for (int i = 0; i < kN; ++i) {
      int c = seen.count(Name(i)) ? seen[Name(i)] : 0;
      missing += c == 0;
      repeated += c > 1;
    }
    CHECK(missing == 0);
    CHECK(repeated == 0);
  };
  check();
  fs.Remount();
  check();
  fs.Check();
}

TEST_CASE("readdir while entries are removed and added misses no surviving entry",
          "[fs][namespace]") {
  MountedFs fs;
  const std::string d = fs.path("big");
  REQUIRE(mkdir(d.c_str(), 0755) == 0);
  constexpr int kN = 2000;
  for (int i = 0; i < kN; ++i) Touch(d + "/" + Name(i));
  // Every third entry goes, in an order that mixes entries already listed
  // with ones still ahead of the reader.
  std::vector<int> doomed;
  for (int i = 0; i < kN; i += 3) doomed.push_back(i);
  std::shuffle(doomed.begin(), doomed.end(), std::mt19937(42));

  int fd = open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  std::vector<char> buf(2048);  // a few dozen entries per call
  std::vector<std::string> seen;
  size_t next = 0;
  int added = 0;
  while (ReadDirBatch(fd, buf, &seen) > 0) {
    for (int k = 0; k < 25 && next < doomed.size(); ++k, ++next)
      REQUIRE(unlink((d + "/" + Name(doomed[next])).c_str()) == 0);
    if (added < 100) Touch(d + "/new" + std::to_string(added++));
  }
  close(fd);
  INFO("removed " << next << " of " << doomed.size() << " during the listing");
  CHECK(next > doomed.size() / 2);  // the removals really overlapped the listing

  std::map<std::string, int> count = Count(seen);
  std::set<std::string> removed;
  for (size_t k = 0; k < next; ++k) removed.insert(Name(doomed[k]));
  int missing = 0, repeated = 0, foreign = 0;
  for (int i = 0; i < kN; ++i)
    if (!removed.count(Name(i)) && !count.count(Name(i))) ++missing;
  for (const auto& [name, c] : count) {
    repeated += c > 1;
    bool known = name == "." || name == ".." || name.rfind("new", 0) == 0 ||
                 (name.size() == 5 && name[0] == 'f');
    foreign += !known;
  }
  CHECK(missing == 0);
  CHECK(repeated == 0);
  CHECK(foreign == 0);
  // Afterwards a fresh listing is exact.
  for (; next < doomed.size(); ++next) REQUIRE(unlink((d + "/" + Name(doomed[next])).c_str()) == 0);
  std::map<std::string, int> after = Count(ListDir(d));
  CHECK(after.size() == static_cast<size_t>(kN - doomed.size() + added + 2));
  for (int i = 0; i < kN; ++i) CHECK(after.count(Name(i)) == (i % 3 == 0 ? 0u : 1u));
  fs.Check();
}

TEST_CASE("ls -la shows every kind of entry, . and .. included", "[fs][namespace]") {
  MountedFs fs;
  umask(022);  // the modes below assume it
  const std::string d = fs.path("dir");
  REQUIRE(mkdir(d.c_str(), 0755) == 0);
  WriteFile(d + "/file", "12345");
  REQUIRE(mkdir((d + "/sub").c_str(), 0700) == 0);
  REQUIRE(symlink("file", (d + "/link").c_str()) == 0);
  REQUIRE(mknod((d + "/fifo").c_str(), S_IFIFO | 0600, 0) == 0);

  RunResult r = Run({"/bin/ls", "-la", d});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());
  std::istringstream in(r.out);
  std::string line;
  REQUIRE(std::getline(in, line));
  CHECK(line.rfind("total ", 0) == 0);
  std::map<std::string, std::vector<std::string>> rows;  // name -> fields
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<std::string> f;
    for (std::string w; ls >> w;) f.push_back(w);
    REQUIRE(f.size() >= 9);  // mode links owner group size month day time name
    rows[f[8]] = f;
  }
  REQUIRE(rows.size() == 6);
  REQUIRE(rows.count("."));
  REQUIRE(rows.count(".."));
  CHECK(rows["."][0][0] == 'd');
  CHECK(rows["."][1] == "3");  // dir: 2 + sub
  CHECK(rows[".."][0][0] == 'd');
  CHECK(rows[".."][1] == std::to_string(Lstat(fs.mnt()).st_nlink));
  CHECK(rows["file"][0] == "-rw-r--r--");
  CHECK(rows["file"][2] == "root");
  CHECK(rows["file"][4] == "5");
  CHECK(rows["sub"][0] == "drwx------");
  CHECK(rows["sub"][1] == "2");
  CHECK(rows["link"][0][0] == 'l');
  REQUIRE(rows["link"].size() == 11);
  CHECK(rows["link"][9] == "->");
  CHECK(rows["link"][10] == "file");
  CHECK(rows["fifo"][0] == "prw-------");

  // The types getdents reports, which ls -l did not need.
  int fd = open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  std::vector<char> buf(8192);
  std::vector<std::string> names;
  std::map<std::string, unsigned char> types;
  while (ReadDirBatch(fd, buf, &names, &types) > 0) {
  }
  close(fd);
  CHECK(types == std::map<std::string, unsigned char>{{".", DT_DIR},
                                                      {"..", DT_DIR},
                                                      {"file", DT_REG},
                                                      {"sub", DT_DIR},
                                                      {"link", DT_LNK},
                                                      {"fifo", DT_FIFO}});
  fs.Check();
}

TEST_CASE("extended attributes: set, get, list, remove and their errors", "[fs][namespace]") {
  MountedFs fs;
  WriteFile(fs.path("f"), "x");
  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  for (const std::string& p : {fs.path("f"), fs.path("d")}) {
    INFO(p);
    const char* c = p.c_str();
    REQUIRE(setxattr(c, "user.one", "1", 1, 0) == 0);
    const std::string big(3000, 'v');
    REQUIRE(setxattr(c, "user.big", big.data(), big.size(), XATTR_CREATE) == 0);
    REQUIRE(setxattr(c, "user.empty", "", 0, 0) == 0);

    char buf[4096];
    CHECK(getxattr(c, "user.one", nullptr, 0) == 1);  // size query
    REQUIRE(getxattr(c, "user.one", buf, sizeof(buf)) == 1);
    CHECK(buf[0] == '1');
    REQUIRE(getxattr(c, "user.big", buf, sizeof(buf)) == 3000);
    CHECK(std::string(buf, 3000) == big);
    CHECK(getxattr(c, "user.empty", buf, sizeof(buf)) == 0);
    CHECK(ErrnoOf(getxattr(c, "user.big", buf, 10)) == ERANGE);
    CHECK(ErrnoOf(getxattr(c, "user.none", buf, sizeof(buf))) == ENODATA);

    CHECK(ErrnoOf(setxattr(c, "user.one", "2", 1, XATTR_CREATE)) == EEXIST);
    CHECK(ErrnoOf(setxattr(c, "user.none", "2", 1, XATTR_REPLACE)) == ENODATA);
    REQUIRE(setxattr(c, "user.one", "22", 2, XATTR_REPLACE) == 0);
    REQUIRE(getxattr(c, "user.one", buf, sizeof(buf)) == 2);
    CHECK(std::string(buf, 2) == "22");

    ssize_t n = listxattr(c, nullptr, 0);
    REQUIRE(n > 0);
    REQUIRE(listxattr(c, buf, sizeof(buf)) == n);
    std::set<std::string> names;
    for (ssize_t i = 0; i < n; i += strlen(buf + i) + 1) names.insert(buf + i);
    CHECK(names == std::set<std::string>{"user.one", "user.big", "user.empty"});
    CHECK(ErrnoOf(listxattr(c, buf, 5)) == ERANGE);

    REQUIRE(removexattr(c, "user.big") == 0);
    CHECK(ErrnoOf(getxattr(c, "user.big", buf, sizeof(buf))) == ENODATA);
    CHECK(ErrnoOf(removexattr(c, "user.big")) == ENODATA);
  }
  fs.Remount();
  char buf[64];
  REQUIRE(getxattr(fs.path("f").c_str(), "user.one", buf, sizeof(buf)) == 2);
  CHECK(std::string(buf, 2) == "22");
  CHECK(ErrnoOf(getxattr(fs.path("d").c_str(), "user.big", buf, sizeof(buf))) == ENODATA);
  CHECK(listxattr(fs.path("d").c_str(), buf, sizeof(buf)) ==
        static_cast<ssize_t>(sizeof("user.one") + sizeof("user.empty")));
  // Attributes go with their inode.
  REQUIRE(unlink(fs.path("f").c_str()) == 0);
  fs.Check();
}

TEST_CASE("a name of 256 bytes is ENAMETOOLONG, 255 is fine", "[fs][namespace]") {
  MountedFs fs;
  const std::string ok(255, 'n'), bad(256, 'n');
  WriteFile(fs.path("f"), "x");
  CHECK(ErrnoOf(open(fs.path(bad).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) == ENAMETOOLONG);
  CHECK(ErrnoOf(mkdir(fs.path(bad).c_str(), 0755)) == ENAMETOOLONG);
  CHECK(ErrnoOf(symlink("f", fs.path(bad).c_str())) == ENAMETOOLONG);
  CHECK(ErrnoOf(link(fs.path("f").c_str(), fs.path(bad).c_str())) == ENAMETOOLONG);
  CHECK(ErrnoOf(rename(fs.path("f").c_str(), fs.path(bad).c_str())) == ENAMETOOLONG);
  CHECK(ErrnoOf(mknod(fs.path(bad).c_str(), S_IFIFO | 0644, 0)) == ENAMETOOLONG);
  struct stat st {};
  CHECK(ErrnoOf(stat(fs.path(bad).c_str(), &st)) == ENAMETOOLONG);
  CHECK(ListDir(fs.mnt()).size() == 3);

  WriteFile(fs.path(ok), "long name");
  CHECK(ReadFile(fs.path(ok)) == "long name");
  REQUIRE(mkdir(fs.path("d" + std::string(254, 'd')).c_str(), 0755) == 0);
  fs.Remount();
  CHECK(ReadFile(fs.path(ok)) == "long name");
  auto names = Count(ListDir(fs.mnt()));
  CHECK(names.count(ok) == 1);
  CHECK(names.count("d" + std::string(254, 'd')) == 1);
  fs.Check();
}

TEST_CASE("utimensat, chmod and chown show in stat and persist", "[fs][namespace]") {
  MountedFs fs;
  const std::string p = fs.path("f");
  WriteFile(p, "x");
  const struct timespec times[2] = {{1000000000, 123456789}, {1500000000, 987654321}};
  REQUIRE(utimensat(AT_FDCWD, p.c_str(), times, 0) == 0);
  struct stat st = Lstat(p);
  CHECK(st.st_atim.tv_sec == 1000000000);
  CHECK(st.st_atim.tv_nsec == 123456789);
  CHECK(st.st_mtim.tv_sec == 1500000000);
  CHECK(st.st_mtim.tv_nsec == 987654321);
  const struct timespec ctime_before = st.st_ctim;
  CHECK(st.st_ctim.tv_sec > 1600000000);  // ctime is now, not what was asked

  // UTIME_OMIT leaves one alone; UTIME_NOW is the present.
  const struct timespec omit_now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  REQUIRE(utimensat(AT_FDCWD, p.c_str(), omit_now, 0) == 0);
  st = Lstat(p);
  CHECK(st.st_atim.tv_sec == 1000000000);
  CHECK(st.st_atim.tv_nsec == 123456789);
  CHECK(st.st_mtim.tv_sec >= ctime_before.tv_sec);

  REQUIRE(chmod(p.c_str(), 0604) == 0);
  st = Lstat(p);
  CHECK((st.st_mode & 07777) == 0604);
  CHECK(S_ISREG(st.st_mode));
  REQUIRE(chmod(p.c_str(), 04755) == 0);
  CHECK((Lstat(p).st_mode & 07777) == 04755);

  REQUIRE(chown(p.c_str(), 1234, 5678) == 0);
  st = Lstat(p);
  CHECK(st.st_uid == 1234u);
  CHECK(st.st_gid == 5678u);
  CHECK((st.st_mode & 07777) == 0755);  // a change of owner drops set-user-ID
  REQUIRE(chown(p.c_str(), -1, 42) == 0);
  st = Lstat(p);
  CHECK(st.st_uid == 1234u);
  CHECK(st.st_gid == 42u);

  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  REQUIRE(chmod(fs.path("d").c_str(), 01777) == 0);
  REQUIRE(chown(fs.path("d").c_str(), 7, 8) == 0);
  REQUIRE(utimensat(AT_FDCWD, fs.path("d").c_str(), times, 0) == 0);
  REQUIRE(symlink("f", fs.path("l").c_str()) == 0);
  REQUIRE(lchown(fs.path("l").c_str(), 99, 98) == 0);

  fs.Remount();
  st = Lstat(p);
  CHECK(st.st_uid == 1234u);
  CHECK(st.st_gid == 42u);
  CHECK((st.st_mode & 07777) == 0755);
  CHECK(st.st_atim.tv_sec == 1000000000);
  CHECK(st.st_atim.tv_nsec == 123456789);
  st = Lstat(fs.path("d"));
  CHECK((st.st_mode & 07777) == 01777);
  CHECK(st.st_uid == 7u);
  CHECK(st.st_gid == 8u);
  CHECK(st.st_mtim.tv_sec == 1500000000);
  CHECK(st.st_mtim.tv_nsec == 987654321);
  st = Lstat(fs.path("l"));
  CHECK(st.st_uid == 99u);
  CHECK(st.st_gid == 98u);
  CHECK(Lstat(p).st_uid == 1234u);  // lchown did not follow the link
  fs.Check();
}

TEST_CASE("statvfs: block size, total blocks from mkfs, free blocks follow writes",
          "[fs][namespace]") {
  constexpr uint64_t kSize = 64ull << 20;
  MountedFs fs(MountedFs::Options{.size = kSize, .mount_options = {}});
  struct statvfs v = Vfs(fs);
  CHECK(v.f_bsize == 4096);
  CHECK(v.f_frsize == 4096);
  // Everything but a few reserved blocks (the superblock copies) is usable;
  // the total also counts the metadata store's blocks (used, never free).
  CHECK(v.f_bfree <= kSize / 4096);
  CHECK(v.f_bfree >= kSize / 4096 - 16);  // a fresh filesystem owns no block
  CHECK(v.f_blocks > v.f_bfree);          // the store is not empty
  CHECK(v.f_bavail == v.f_bfree);
  CHECK(v.f_namemax == 255);
  const uint64_t free0 = v.f_bfree;

  WriteFile(fs.path("f"), Pattern((1 << 20) + 100, 3));  // 257 blocks
  v = Vfs(fs);
  CHECK(v.f_bfree == free0 - 257);
  CHECK(v.f_bavail == v.f_bfree);
  CHECK(Lstat(fs.path("f")).st_blocks == 257 * 8);

  // A sparse write allocates only the block it touches.
  int fd = open(fs.path("sparse").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(pwrite(fd, "z", 1, 10 << 20) == 1);
  REQUIRE(close(fd) == 0);
  CHECK(FreeBlocks(fs) == free0 - 258);

  REQUIRE(truncate(fs.path("f").c_str(), 4096) == 0);
  CHECK(FreeBlocks(fs) == free0 - 2);
  fs.Remount();
  CHECK(FreeBlocks(fs) == free0 - 2);
  REQUIRE(unlink(fs.path("f").c_str()) == 0);
  REQUIRE(unlink(fs.path("sparse").c_str()) == 0);
  CHECK(FreeBlocksSettled(fs, free0) == free0);
  fs.Check();
}

// df -i reads f_files - f_ffree as the inodes in use.
TEST_CASE("statvfs counts the inodes in use", "[fs][namespace]") {
  MountedFs fs;
  struct statvfs v = Vfs(fs);
  const uint64_t used0 = v.f_files - v.f_ffree;
  CHECK(used0 == 1);  // the root directory
  for (int i = 0; i < 20; ++i) Touch(fs.path(Name(i)));
  v = Vfs(fs);
  CHECK(v.f_files - v.f_ffree == used0 + 20);
  for (int i = 0; i < 20; ++i) REQUIRE(unlink(fs.path(Name(i)).c_str()) == 0);
  v = Vfs(fs);
  CHECK(v.f_files - v.f_ffree == used0);
  fs.Remount();
  v = Vfs(fs);
  CHECK(v.f_files - v.f_ffree == used0);
  fs.Check();
}

TEST_CASE("an unlinked file stays readable while open and frees its space on close",
          "[fs][namespace]") {
  MountedFs fs;
  const uint64_t free0 = FreeBlocks(fs);
  const std::string data = Pattern(2 << 20, 11);  // 512 blocks
  WriteFile(fs.path("doomed"), data);
  CHECK(FreeBlocks(fs) == free0 - 512);
  int fd = open(fs.path("doomed").c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(unlink(fs.path("doomed").c_str()) == 0);
  CHECK(ErrnoOf(access(fs.path("doomed").c_str(), F_OK)) == ENOENT);
  CHECK(ListDir(fs.mnt()).size() == 2);

  struct stat st = StatOf(fd);
  CHECK(st.st_nlink == 0);
  CHECK(st.st_size == static_cast<off_t>(data.size()));

  // Drop the kernel's cached pages so that the daemon serves the reads.
  REQUIRE(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
  CHECK_SAME(PreadExact(fd, 0, data.size()), data);
  // A second handle through /proc, opened with O_DIRECT, reads it too.
  int fd2 = open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  REQUIRE(fd2 >= 0);
  CHECK_SAME(PreadExact(fd2, 0, data.size()), data);
  // Space stays taken, and the file still takes writes.
  CHECK(FreeBlocks(fs) == free0 - 512);
  REQUIRE(pwrite(fd, "tail", 4, data.size()) == 4);
  st = StatOf(fd);
  CHECK(st.st_size == static_cast<off_t>(data.size() + 4));
  CHECK(FreeBlocks(fs) == free0 - 513);

  REQUIRE(close(fd2) == 0);
  CHECK(FreeBlocks(fs) == free0 - 513);  // one handle still open
  REQUIRE(close(fd) == 0);
  CHECK(FreeBlocksSettled(fs, free0) == free0);
  CheckReport r = fs.Check();
  CHECK(r.orphans == 0);
  CHECK(r.inodes == 1);
}

TEST_CASE("the whole tree survives a remount unchanged", "[fs][namespace]") {
  MountedFs fs;
  for (const char* d : {"a", "a/b", "a/b/c", "empty", "x"})
    REQUIRE(mkdir(fs.path(d).c_str(), 0755) == 0);
  WriteFile(fs.path("zero"), "");
  WriteFile(fs.path("a/one"), "1");
  WriteFile(fs.path("a/b/block"), Pattern(4096, 1));
  WriteFile(fs.path("a/b/block_plus"), Pattern(4097, 2));
  WriteFile(fs.path("a/b/c/mib"), Pattern((1 << 20) + 333, 3));
  for (int i = 0; i < 50; ++i) WriteFile(fs.path("x/" + Name(i)), Pattern(i * 37, i));
  int fd = open(fs.path("holes").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(pwrite(fd, "start", 5, 0) == 5);
  REQUIRE(pwrite(fd, "end", 3, 8 << 20) == 3);
  REQUIRE(close(fd) == 0);
  REQUIRE(symlink("a/b/c/mib", fs.path("sym").c_str()) == 0);
  REQUIRE(link(fs.path("a/one").c_str(), fs.path("x/hard").c_str()) == 0);
  REQUIRE(mknod(fs.path("a/fifo").c_str(), S_IFIFO | 0644, 0) == 0);
  REQUIRE(setxattr(fs.path("a/b").c_str(), "user.k", "v", 1, 0) == 0);
  REQUIRE(setxattr(fs.path("zero").c_str(), "user.z", "zz", 2, 0) == 0);
  REQUIRE(chmod(fs.path("a/b/block").c_str(), 0400) == 0);
  REQUIRE(chown(fs.path("a/b/block_plus").c_str(), 500, 600) == 0);
  const struct timespec times[2] = {{1234567890, 5}, {1234567891, 6}};
  REQUIRE(utimensat(AT_FDCWD, fs.path("a/one").c_str(), times, 0) == 0);

  std::map<std::string, std::string> before, after;
  Walk(fs.mnt(), "", &before);
  REQUIRE(before.size() == 65);
  const uint64_t free_before = FreeBlocks(fs);
  fs.Remount();
  Walk(fs.mnt(), "", &after);
  CHECK(FreeBlocks(fs) == free_before);
  for (const auto& [path, desc] : before) {
    INFO(path);
    CHECK(after.count(path) == 1);
    if (after.count(path)) CHECK(after[path] == desc);
  }
  CHECK(after.size() == before.size());
  fs.Remount();  // and a second time, after a mount that only read
  std::map<std::string, std::string> again;
  Walk(fs.mnt(), "", &again);
  CHECK(again == after);
  CheckReport r = fs.Check();
  CHECK(r.inodes == 64);  // hard link: one inode, two names
}
