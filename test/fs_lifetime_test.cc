// How long an inode lives, and file handles that outlive the kernel's cache,
// through a real mount: an inode lives until its last name, its last open
// handle and the kernel's last lookup are gone (an open(O_CREAT) racing an
// unlink of the name never fails; an unlinked file the kernel still holds
// can still be opened), its space is back as soon as nothing holds it, a
// daemon killed with such orphans leaves them to the next mount, and
// name_to_handle_at / open_by_handle_at work across a remount (NFS export).
// docs/design.md, "Orphans and reclaim" and "NFS export".
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

// A file handle from name_to_handle_at (REQUIRE on failure).
struct FileHandle {
  std::vector<char> buf;
  file_handle* get() { return reinterpret_cast<file_handle*>(buf.data()); }
};

FileHandle HandleOf(const std::string& path) {
  FileHandle h;
  h.buf.resize(sizeof(file_handle) + MAX_HANDLE_SZ);
  h.get()->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  INFO(path);
  REQUIRE(name_to_handle_at(AT_FDCWD, path.c_str(), h.get(), &mount_id, 0) == 0);
  return h;
}

// A descriptor that owns nothing but a reference to the file: O_PATH opens
// send the daemon no OPEN, so the kernel holds the inode by its lookup
// alone. Reopening it through /proc/self/fd sends OPEN for that inode.
class PathRef {
 public:
  explicit PathRef(const std::string& path) : fd_(open(path.c_str(), O_PATH | O_CLOEXEC)) {
    INFO(path);
    REQUIRE(fd_ >= 0);
  }
  ~PathRef() { Close(); }
  PathRef(const PathRef&) = delete;
  PathRef& operator=(const PathRef&) = delete;
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  // open(2) of /proc/self/fd/N: -1 and errno on failure.
  int Reopen(int flags) const {
    return open(("/proc/self/fd/" + std::to_string(fd_)).c_str(), flags | O_CLOEXEC);
  }

 private:
  int fd_;
};

// Closes a descriptor that may be -1.
struct OwnedFd {
  int fd;
  ~OwnedFd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

TEST_CASE("open(O_CREAT) racing unlink of the same name never fails", "[lifetime]") {
  MountedFs fs;
  const std::string name = fs.path("raced");
  constexpr int kOpens = 5000;
  std::atomic<bool> done{false};
  std::atomic<int> unlinks{0};
  std::thread unlinker([&] {
    while (!done.load()) {
      if (unlink(name.c_str()) == 0) unlinks++;
    }
  });
  int enoent = 0, other = 0, first_other = 0;
  for (int i = 0; i < kOpens; ++i) {
    int fd = open(name.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd >= 0) {
      close(fd);
    } else if (errno == ENOENT) {
      enoent++;
    } else if (other++ == 0) {
      first_other = errno;
    }
  }
  done = true;
  unlinker.join();
  INFO("unlinks that removed the name: " << unlinks.load());
  INFO("first other error: " << strerror(first_other));
  CHECK(enoent == 0);
  CHECK(other == 0);
  unlink(name.c_str());
  CheckReport r = fs.Check();
  CHECK(r.orphans == 0);
}

TEST_CASE("an unlinked file that only the kernel holds stays readable until it lets go",
          "[lifetime][export]") {
  REQUIRE(geteuid() == 0);  // open_by_handle_at needs CAP_DAC_READ_SEARCH
  MountedFs fs;
  const uint64_t free0 = FreeBlocks(fs);
  const std::string data = NonZeroBytes(7, kMiB + 123);
  WriteFile(fs.path("held"), data);
  FileHandle h = HandleOf(fs.path("held"));
  PathRef ref(fs.path("held"));  // no open file: only the kernel's lookup
  REQUIRE(unlink(fs.path("held").c_str()) == 0);
  CHECK(FreeBlocks(fs) < free0);  // its blocks are still held

  // Still the inode the kernel knows: opened again through the reference,
  // and by its handle, it reads as it was.
  {
    OwnedFd fd{ref.Reopen(O_RDWR)};
    INFO("reopen: " << strerror(errno));
    REQUIRE(fd.fd >= 0);
    CHECK(StatOf(fd.fd).st_nlink == 0);
    CHECK(PreadAll(fd.fd, 0, data.size() + 10) == data);
  }
  Fd mnt(fs.mnt(), O_RDONLY | O_DIRECTORY);
  {
    OwnedFd fd{open_by_handle_at(mnt.get(), h.get(), O_RDONLY)};
    INFO("open_by_handle_at: " << strerror(errno));
    REQUIRE(fd.fd >= 0);
    CHECK(PreadAll(fd.fd, 0, data.size() + 10) == data);
  }
  CHECK(FreeBlocks(fs) < free0);

  // The reference goes, the kernel forgets the inode: reclaimed, and its
  // handle is stale.
  ref.Close();
  CHECK(FreeBlocksSettled(fs, free0) == free0);
  errno = 0;
  OwnedFd stale{open_by_handle_at(mnt.get(), h.get(), O_RDONLY)};
  CHECK(stale.fd < 0);
  CHECK(errno == ESTALE);
  mnt.Close();
  CheckReport r = fs.Check();
  CHECK(r.orphans == 0);
}

TEST_CASE("a removed directory that is a process's cwd still answers stat and readdir",
          "[lifetime]") {
  MountedFs fs;
  REQUIRE(mkdir(fs.path("gone").c_str(), 0755) == 0);
  PathRef ref(fs.path("gone"));  // as a cwd holds it: no open directory
  REQUIRE(rmdir(fs.path("gone").c_str()) == 0);
  // What `stat .` and `ls` in a removed cwd do: fstatat and opendir.
  {
    OwnedFd dir{ref.Reopen(O_RDONLY | O_DIRECTORY)};
    INFO("reopen: " << strerror(errno));
    REQUIRE(dir.fd >= 0);
    CHECK(StatOf(dir.fd).st_nlink == 0);
    CHECK(openat(dir.fd, "new", O_CREAT | O_RDWR, 0644) == -1);
    CHECK(errno == ENOENT);
  }
  ref.Close();
  CheckReport r = fs.Check();
  CHECK(r.orphans == 0);
}

TEST_CASE("rm of a closed file gives its space back by the time unlink returns", "[lifetime]") {
  MountedFs fs;
  const uint64_t free0 = FreeBlocks(fs);
  constexpr int kFiles = 20;
  for (int i = 0; i < kFiles; ++i)
    WriteFile(fs.path("f" + std::to_string(i)), NonZeroBytes(i, kMiB));
  // Remounted, so that no release of the writers' descriptors is still on
  // its way: these files are closed for certain.
  fs.Remount();
  uint64_t free = FreeBlocks(fs);
  REQUIRE(free == free0 - kFiles * (kMiB / kBlock));
  for (int i = 0; i < kFiles; ++i) {
    INFO("file " << i);
    REQUIRE(unlink(fs.path("f" + std::to_string(i)).c_str()) == 0);
    // No settling: statfs right after unlink.
    const uint64_t now = FreeBlocks(fs);
    CHECK(now == free + kMiB / kBlock);
    free = now;
  }
  CHECK(free == free0);
  // A directory the same way.
  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  REQUIRE(rmdir(fs.path("d").c_str()) == 0);
  CheckReport r = fs.Check();
  CHECK(r.orphans == 0);
  CHECK(r.free_blocks == free0);
}

TEST_CASE("a daemon killed with unlinked files still held leaves orphans the next mount reclaims",
          "[lifetime]") {
  MountedFs fs;
  const uint64_t free0 = FreeBlocks(fs);
  const std::string kept = NonZeroBytes(1, 3 * kBlock);
  WriteFile(fs.path("kept"), kept);
  const uint64_t free_kept = FreeBlocks(fs);

  // One held by an open descriptor, one only by the kernel's lookup.
  const std::string a = NonZeroBytes(2, kMiB), b = NonZeroBytes(3, 2 * kMiB);
  Fd fd(fs.path("open"), O_RDWR | O_CREAT);
  PwriteExact(fd.get(), a, 0);
  WriteFile(fs.path("held"), b);
  PathRef ref(fs.path("held"));
  REQUIRE(unlink(fs.path("open").c_str()) == 0);
  REQUIRE(unlink(fs.path("held").c_str()) == 0);
  const uint64_t held = (a.size() + b.size()) / kBlock;
  REQUIRE(FreeBlocks(fs) == free_kept - held);

  fs.KillDaemon();
  fd.Close();
  ref.Close();
  CheckReport dead = fs.Check();  // the checker accepts the orphan state
  CHECK(dead.orphans == 2);
  CHECK(dead.owned_blocks == 3 + held);

  fs.Mount();
  CHECK(FreeBlocks(fs) == free_kept);
  CHECK(ReadFile(fs.path("kept")) == kept);
  CheckReport r = fs.Check();
  CHECK(r.orphans == 0);
  CHECK(r.free_blocks == free0 - 3);
}

TEST_CASE("file handles survive a remount (NFS export)", "[lifetime][export]") {
  REQUIRE(geteuid() == 0);  // open_by_handle_at needs CAP_DAC_READ_SEARCH
  MountedFs fs;
  const std::string data = NonZeroBytes(11, 3 * kBlock + 17);
  WriteFile(fs.path("file"), data);
  REQUIRE(mkdir(fs.path("dir").c_str(), 0755) == 0);
  REQUIRE(mkdir(fs.path("dir/sub").c_str(), 0755) == 0);
  WriteFile(fs.path("dir/sub/child"), "child bytes");
  WriteFile(fs.path("gone"), "soon deleted");
  const ino_t file_ino = StatOf(fs.path("file")).st_ino;
  const ino_t sub_ino = StatOf(fs.path("dir/sub")).st_ino;
  FileHandle hf = HandleOf(fs.path("file"));
  FileHandle hd = HandleOf(fs.path("dir/sub"));
  FileHandle hg = HandleOf(fs.path("gone"));
  REQUIRE(unlink(fs.path("gone").c_str()) == 0);

  // The kernel of the new mount has never seen these inodes: it asks the
  // daemon for them by number (LOOKUP "." and, for a directory, "..").
  fs.Remount();
  Fd mnt(fs.mnt(), O_RDONLY | O_DIRECTORY);
  {
    OwnedFd fd{open_by_handle_at(mnt.get(), hf.get(), O_RDONLY)};
    INFO("open_by_handle_at(file): " << strerror(errno));
    REQUIRE(fd.fd >= 0);
    CHECK(StatOf(fd.fd).st_ino == file_ino);
    CHECK(PreadAll(fd.fd, 0, data.size() + 10) == data);
  }
  {
    // A directory is reconnected to the tree: LOOKUP ".." up to the root.
    OwnedFd dir{open_by_handle_at(mnt.get(), hd.get(), O_RDONLY | O_DIRECTORY)};
    INFO("open_by_handle_at(dir): " << strerror(errno));
    REQUIRE(dir.fd >= 0);
    CHECK(StatOf(dir.fd).st_ino == sub_ino);
    OwnedFd child{openat(dir.fd, "child", O_RDONLY)};
    REQUIRE(child.fd >= 0);
    CHECK(PreadAll(child.fd, 0, 100) == "child bytes");
  }
  {
    // A deleted file's handle is stale.
    errno = 0;
    OwnedFd fd{open_by_handle_at(mnt.get(), hg.get(), O_RDONLY)};
    CHECK(fd.fd < 0);
    CHECK(errno == ESTALE);
  }
  mnt.Close();
  CheckReport r = fs.Check();
  CHECK(r.orphans == 0);
}

TEST_CASE("a file handle of another filesystem is stale, whatever has its inode number now",
          "[lifetime][export]") {
  REQUIRE(geteuid() == 0);  // open_by_handle_at needs CAP_DAC_READ_SEARCH
  // Two filesystems made alike: the same inode numbers, other uuids (as
  // after mkfs.daxref of the same SOURCE again).
  MountedFs a, b;
  WriteFile(a.path("x"), "first filesystem");
  WriteFile(b.path("x"), "second filesystem");
  REQUIRE(StatOf(a.path("x")).st_ino == StatOf(b.path("x")).st_ino);
  FileHandle h = HandleOf(a.path("x"));
  Fd mnt(b.mnt(), O_RDONLY | O_DIRECTORY);
  {
    errno = 0;
    OwnedFd fd{open_by_handle_at(mnt.get(), h.get(), O_RDONLY)};
    CHECK(fd.fd < 0);
    CHECK(errno == ESTALE);
  }
  // And after a remount, when the kernel must ask the daemon.
  mnt.Close();
  b.Remount();
  Fd mnt2(b.mnt(), O_RDONLY | O_DIRECTORY);
  errno = 0;
  OwnedFd fd{open_by_handle_at(mnt2.get(), h.get(), O_RDONLY)};
  CHECK(fd.fd < 0);
  CHECK(errno == ESTALE);
}
