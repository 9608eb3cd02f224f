// Read-only mounts (`-o ro`) and the metadata budget, through real mounts:
// a read-only mount serves a SOURCE on read-only media and changes nothing
// under SOURCE; poison on it lives in memory only and cannot be cleared;
// one file's extended attributes are bounded, and statfs counts the
// metadata store as used space (docs/design.md, "Read-only mounts" and
// "Metadata space").
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "meta/format.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"

namespace daxref::test {
namespace {

// What a file under SOURCE is: its type, size, mtime and every byte (a
// directory: its entries, through the walk). Compared whole, which is
// stricter than a checksum.
struct FileState {
  mode_t type = 0;
  off_t size = 0;
  int64_t mtime_sec = 0;
  long mtime_nsec = 0;
  std::string bytes;
  bool operator==(const FileState&) const = default;
};

// Every file and directory under `dir` (the control and lease sockets left
// out: they are the daemon's rendezvous, not the filesystem's state).
std::map<std::string, FileState> Snapshot(const std::string& dir) {
  std::map<std::string, FileState> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string rel = e.path().string().substr(dir.size());
    if (rel == "/control" || rel == "/dax") continue;
    struct stat st = Lstat(e.path().string());
    FileState f;
    f.type = st.st_mode & S_IFMT;
    f.size = st.st_size;
    f.mtime_sec = st.st_mtim.tv_sec;
    f.mtime_nsec = st.st_mtim.tv_nsec;
    if (S_ISREG(st.st_mode)) f.bytes = ReadFile(e.path().string());
    out[rel] = f;
  }
  return out;
}

void CheckSameState(const std::map<std::string, FileState>& before,
                    const std::map<std::string, FileState>& after) {
  for (const auto& [name, f] : before) {
    INFO(name);
    auto it = after.find(name);
    REQUIRE(it != after.end());
    CHECK(it->second.type == f.type);
    CHECK(it->second.size == f.size);
    CHECK(it->second.mtime_sec == f.mtime_sec);
    CHECK(it->second.mtime_nsec == f.mtime_nsec);
    CHECK(it->second.bytes == f.bytes);
  }
  for (const auto& [name, f] : after) {
    INFO("new under SOURCE: " << name);
    CHECK(before.count(name) == 1);
  }
}

// A read-only view of `dir`: a bind mount remounted read-only, so that even
// root's writes through it fail with EROFS (chmod is no obstacle to root).
class ReadOnlyBind {
 public:
  explicit ReadOnlyBind(const std::string& dir) : path_(parent_.path() + "/ro") {
    REQUIRE(mkdir(path_.c_str(), 0700) == 0);
    REQUIRE(mount(dir.c_str(), path_.c_str(), nullptr, MS_BIND, nullptr) == 0);
    bound_ = true;
    REQUIRE(mount(nullptr, path_.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) == 0);
  }
  ~ReadOnlyBind() {
    if (bound_) umount2(path_.c_str(), MNT_DETACH);
  }
  ReadOnlyBind(const ReadOnlyBind&) = delete;
  ReadOnlyBind& operator=(const ReadOnlyBind&) = delete;
  const std::string& path() const { return path_; }

 private:
  TempDir parent_;
  std::string path_;
  bool bound_ = false;
};

// Fills a filesystem with a little of everything a read-only mount must
// serve: files of several sizes, a sparse one, a directory tree, a symlink,
// extended attributes, and a reflinked pair.
void Populate(const MountedFs& fs) {
  WriteFile(fs.path("small"), "hello, read-only world\n");
  WriteFile(fs.path("big"), NonZeroBytes(7, (3 << 20) + 123));
  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  REQUIRE(mkdir(fs.path("d/e").c_str(), 0700) == 0);
  WriteFile(fs.path("d/e/f"), NonZeroBytes(8, 40000));
  REQUIRE(symlink("d/e/f", fs.path("link").c_str()) == 0);
  REQUIRE(setxattr(fs.path("small").c_str(), "user.k", "v", 1, 0) == 0);
  {
    Fd f(fs.path("sparse"), O_WRONLY | O_CREAT, 0644);
    PwriteExact(f.get(), "tail", 5 << 20);
  }
  Fd src(fs.path("big"), O_RDONLY);
  Fd dst(fs.path("clone"), O_WRONLY | O_CREAT, 0644);
  REQUIRE(CloneRange(src.get(), 0, 0, dst.get(), 0) == 0);
}

// Everything a read-only mount must refuse, each with EROFS.
void CheckWritesRefused(const MountedFs& fs) {
  CHECK(ErrnoOf(open(fs.path("small").c_str(), O_WRONLY)) == EROFS);
  CHECK(ErrnoOf(open(fs.path("new").c_str(), O_WRONLY | O_CREAT, 0644)) == EROFS);
  CHECK(ErrnoOf(mkdir(fs.path("nd").c_str(), 0755)) == EROFS);
  CHECK(ErrnoOf(unlink(fs.path("small").c_str())) == EROFS);
  CHECK(ErrnoOf(rename(fs.path("small").c_str(), fs.path("moved").c_str())) == EROFS);
  CHECK(ErrnoOf(truncate(fs.path("big").c_str(), 0)) == EROFS);
  CHECK(ErrnoOf(chmod(fs.path("small").c_str(), 0600)) == EROFS);
  CHECK(ErrnoOf(setxattr(fs.path("small").c_str(), "user.n", "x", 1, 0)) == EROFS);
  CHECK(ErrnoOf(removexattr(fs.path("small").c_str(), "user.k")) == EROFS);
  CHECK(ErrnoOf(symlink("x", fs.path("l2").c_str())) == EROFS);
}

void CheckContents(const MountedFs& fs) {
  CHECK(ReadFile(fs.path("small")) == "hello, read-only world\n");
  CHECK_SAME(ReadFile(fs.path("big")), NonZeroBytes(7, (3 << 20) + 123));
  CHECK_SAME(ReadFile(fs.path("clone")), NonZeroBytes(7, (3 << 20) + 123));
  CHECK_SAME(ReadFile(fs.path("link")), NonZeroBytes(8, 40000));
  std::string sparse = ReadFile(fs.path("sparse"));
  REQUIRE(sparse.size() == (5u << 20) + 4);
  CHECK(sparse.substr(5 << 20) == "tail");
  CHECK(sparse.find_first_not_of('\0') == 5u << 20);
  char v[8];
  CHECK(getxattr(fs.path("small").c_str(), "user.k", v, sizeof(v)) == 1);
  CHECK(Lstat(fs.path("d/e")).st_mode == (S_IFDIR | 0700));
}

}  // namespace

TEST_CASE("ro: a SOURCE on read-only media mounts, reads back, refuses writes, changes nothing",
          "[fs][readonly]") {
  MountedFs fs(MountedFs::Options{.size = 32ull << 20, .mount_options = {}});
  Populate(fs);
  fs.Unmount();
  const std::string source = fs.source();
  const auto before = Snapshot(source);

  {
    ReadOnlyBind ro(source);
    // The premise: nothing can be written there, not even by root.
    CHECK(ErrnoOf(open((ro.path() + "/probe").c_str(), O_WRONLY | O_CREAT, 0600)) == EROFS);
    MountedFs rofs(MountedFs::Options{.mount_options = {"ro"}, .source = ro.path()});
    CheckContents(rofs);
    CheckWritesRefused(rofs);
    // statfs works and counts what is there.
    struct statvfs v = Vfs(rofs);
    CHECK(v.f_blocks > v.f_bfree);
    rofs.Unmount();
  }
  CheckSameState(before, Snapshot(source));

  // The filesystem is as it was for a read-write mount.
  fs.Mount();
  CheckContents(fs);
  WriteFile(fs.path("after"), "rw again");
  fs.Check();
}

TEST_CASE("ro: a read-only mount of a writable SOURCE writes nothing to store or pool",
          "[fs][readonly]") {
  MountedFs fs(MountedFs::Options{.size = 32ull << 20, .mount_options = {}});
  Populate(fs);
  // An unlinked file held open when the daemon dies is an orphan: a
  // read-write mount reclaims it, a read-only one must leave it.
  int held = open(fs.path("orphan").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(held >= 0);
  PwriteExact(held, NonZeroBytes(3, 65536), 0);
  REQUIRE(unlink(fs.path("orphan").c_str()) == 0);
  fs.KillDaemon();
  close(held);
  const auto before = Snapshot(fs.source());

  MountedFs rofs(MountedFs::Options{.mount_options = {"ro"}, .source = fs.source()});
  CheckContents(rofs);
  CheckWritesRefused(rofs);
  {
    Fd f(rofs.path("big"), O_RDONLY);
    CHECK(fsync(f.get()) == 0);  // nothing to make durable, and no error
  }
  rofs.Unmount();
  CheckSameState(before, Snapshot(fs.source()));

  fs.Mount();  // read-write: reclaims the orphan
  CheckContents(fs);
  fs.Check();
}

TEST_CASE("ro: poison on a read-only mount is reported and kept in memory; clear is refused",
          "[fs][readonly]") {
  MountedFs fs(MountedFs::Options{.size = 32ull << 20, .mount_options = {}});
  Populate(fs);
  fs.Unmount();
  const auto before = Snapshot(fs.source());

  MountedFs rofs(MountedFs::Options{.mount_options = {"ro"}, .source = fs.source()});
  std::vector<daxref_extent> ext = Extents(rofs.path("d/e/f"));
  REQUIRE(!ext.empty());
  const std::string block = std::to_string(ext[0].physical / kBlockSize);
  RunResult r = Run({DAXREF_TEST_POISON, "--blocks", "inject", fs.source(), block});
  INFO("inject: status " << r.status << "\n" << r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("/d/e/f") != std::string::npos);  // the owner is reported
  // Served as poison from now on.
  {
    Fd f(rofs.path("d/e/f"), O_RDONLY);
    char buf[4096];
    CHECK(ErrnoOf(pread(f.get(), buf, sizeof(buf), 0)) == EIO);
  }
  r = Run({DAXREF_TEST_POISON, "--json", "list", fs.source()});
  CHECK(r.status == 0);
  CHECK(r.out.find("\"pblock\": " + block + ",") != std::string::npos);
  r = Run({DAXREF_TEST_POISON, "--blocks", "clear", fs.source(), block});
  INFO("clear: status " << r.status << "\n" << r.out << r.err);
  CHECK(r.status != 0);
  CHECK(r.err.find("read-only") != std::string::npos);
  rofs.Unmount();
  CheckSameState(before, Snapshot(fs.source()));

  // Not in the store: a read-write mount reads the file whole.
  fs.Mount();
  CHECK_SAME(ReadFile(fs.path("d/e/f")), NonZeroBytes(8, 40000));
  fs.Check();
}

TEST_CASE("xattr budget: one file's attributes are bounded; a refused setxattr changes nothing",
          "[fs][xattr-budget]") {
  MountedFs fs(MountedFs::Options{.size = 32ull << 20, .mount_options = {}});
  const std::string f = fs.path("f");
  WriteFile(f, "x");
  // One attribute of the largest size always fits.
  const std::string max(kMaxXattrValueLen, 'm');
  REQUIRE(setxattr(f.c_str(), "user.a", max.data(), max.size(), 0) == 0);
  // Names + NULs + values: "user.a" 7 + 65536 so far; 65536 more cannot fit.
  const std::string big(60000, 'b');
  REQUIRE(setxattr(f.c_str(), "user.b", big.data(), big.size(), 0) == 0);
  const uint64_t used = 7 + max.size() + 7 + big.size();
  const std::string over(kMaxXattrBytesPerInode - used - 7 + 1, 'c');
  const struct stat st0 = Lstat(f);
  CHECK(ErrnoOf(setxattr(f.c_str(), "user.c", over.data(), over.size(), 0)) == ENOSPC);
  // Exactly at the bound is allowed.
  const std::string fits(over.size() - 1, 'c');
  // The refused call left the inode as it was.
  {
    std::vector<char> names(1024);
    ssize_t n = listxattr(f.c_str(), names.data(), names.size());
    REQUIRE(n >= 0);
    CHECK(std::string(names.data(), n) == std::string("user.a\0user.b\0", 14));
    CHECK(ErrnoOf(getxattr(f.c_str(), "user.c", nullptr, 0)) == ENODATA);
    const struct stat st1 = Lstat(f);
    CHECK(st1.st_ctim.tv_sec == st0.st_ctim.tv_sec);
    CHECK(st1.st_ctim.tv_nsec == st0.st_ctim.tv_nsec);
  }
  REQUIRE(setxattr(f.c_str(), "user.c", fits.data(), fits.size(), 0) == 0);
  // Replacing counts the new value instead of the old one.
  const std::string smaller(100, 'B');
  REQUIRE(setxattr(f.c_str(), "user.b", smaller.data(), smaller.size(), XATTR_REPLACE) == 0);
  REQUIRE(setxattr(f.c_str(), "user.b", big.data(), big.size(), XATTR_REPLACE) == 0);
  CHECK(ErrnoOf(setxattr(f.c_str(), "user.b", std::string(60001, 'B').data(), 60001,
                         XATTR_REPLACE)) == ENOSPC);
  std::vector<char> got(kMaxXattrValueLen);
  CHECK(getxattr(f.c_str(), "user.b", got.data(), got.size()) == static_cast<ssize_t>(big.size()));
  CHECK(std::string(got.data(), big.size()) == big);
  // Removing makes room again.
  REQUIRE(removexattr(f.c_str(), "user.a") == 0);
  REQUIRE(setxattr(f.c_str(), "user.d", max.data(), max.size(), 0) == 0);

  // The names alone: at most 64 KiB (XATTR_LIST_MAX), so listxattr can
  // always return them. 256 names of 255 bytes (with NULs) are exactly that.
  const std::string g = fs.path("g");
  WriteFile(g, "");
  int made = 0;
  int err = 0;
  for (int i = 0; i < 300 && err == 0; ++i) {
    std::string name = "user." + std::to_string(1000 + i);
    name.resize(kMaxXattrNameLen, 'n');
    if (setxattr(g.c_str(), name.c_str(), "", 0, 0) != 0)
      err = errno;
    else
      ++made;
  }
  CHECK(made == 256);
  CHECK(err == ENOSPC);
  CHECK(listxattr(g.c_str(), nullptr, 0) == 256 * 256);
  std::vector<char> list(256 * 256);
  CHECK(listxattr(g.c_str(), list.data(), list.size()) == 256 * 256);

  // The bound survives a remount (it is checked against the store).
  fs.Remount();
  CHECK(ErrnoOf(setxattr(f.c_str(), "user.e", "12345678", 8, 0)) == ENOSPC);
  fs.Check();
}

TEST_CASE("statfs counts the metadata store as used space", "[fs][xattr-budget]") {
  MountedFs fs(MountedFs::Options{.size = 32ull << 20, .mount_options = {}});
  struct statvfs v0 = Vfs(fs);
  CHECK(v0.f_blocks > v0.f_bfree);  // a fresh store is not empty either
  // 400 files with 60 KB of attributes each: about 23 MiB of metadata, no
  // pool block.
  const std::string value(60000, 'v');
  for (int i = 0; i < 400; ++i) {
    const std::string p = fs.path("m" + std::to_string(i));
    WriteFile(p, "");
    REQUIRE(setxattr(p.c_str(), "user.big", value.data(), value.size(), 0) == 0);
  }
  struct statvfs v1 = Vfs(fs);
  CHECK(v1.f_bfree == v0.f_bfree);  // the pool's free blocks are what a file can still use
  CHECK(v1.f_bavail == v1.f_bfree);
  const uint64_t used0 = v0.f_blocks - v0.f_bfree, used1 = v1.f_blocks - v1.f_bfree;
  INFO("used " << used0 << " -> " << used1 << " blocks");
  // About the attribute bytes, in 4 KiB blocks (the store's log holds
  // them, uncompressed).
  CHECK(used1 - used0 >= 400ull * 60000 / 4096 * 9 / 10);
  // Through df as well: the mount's used space is no longer 0.
  RunResult df = Run({"/bin/df", "-B4096", "--output=used", fs.mnt()});
  REQUIRE(df.status == 0);
  const uint64_t df_used = std::stoull(df.out.substr(df.out.find('\n') + 1));
  CHECK(df_used >= 400ull * 60000 / 4096 * 9 / 10);
  fs.Check();
}

}  // namespace daxref::test
