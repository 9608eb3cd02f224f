// The filesystem of the previous format (test/data/pool-format-1.tar.gz,
// pool format 1: see test/data/README.md) mounted by this daemon: the mount
// upgrades the pool to format 2, every file reads back byte for byte through
// the kernel, and fsck.daxref -n finds nothing wrong afterwards.
// meta_upgrade_test.cc checks the same at the Volume level.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "meta/superblock.h"
#include "test/fixture.h"
#include "test/upgrade_fixture.h"

namespace daxref::test {

TEST_CASE("upgrade: a pool format 1 filesystem mounts, reads back and fscks clean",
          "[format][upgrade]") {
  TempDir dir;
  std::string err = upgrade::Unpack(DAXREF_TEST_DATA, dir.path());
  INFO(err);
  REQUIRE(err.empty());
  const std::string source = dir.path() + "/fs";
  Superblock sb;
  bool backup = true;
  REQUIRE(ReadPoolSuperblock(PoolPath(source), &sb, &backup).ok());
  REQUIRE(sb.version == 1);

  {
    MountedFs fs(MountedFs::Options{.source = source});
    REQUIRE(ReadFile(fs.path("hello.txt")) == upgrade::kHello);
    REQUIRE(ReadFile(fs.path("dir/hello-link")) == upgrade::kHello);
    struct stat a {
    }, b{};
    REQUIRE(stat(fs.path("hello.txt").c_str(), &a) == 0);
    REQUIRE(stat(fs.path("dir/hello-link").c_str(), &b) == 0);
    REQUIRE(a.st_ino == b.st_ino);
    REQUIRE(a.st_nlink == 2);
    char note[64];
    ssize_t n = getxattr(fs.path("hello.txt").c_str(), "user.note", note, sizeof(note));
    REQUIRE(n == static_cast<ssize_t>(upgrade::kNote.size()));
    REQUIRE(std::string_view(note, n) == upgrade::kNote);
    REQUIRE(ReadFile(fs.path("dir/pattern.bin")) == upgrade::Pattern());
    REQUIRE(ReadFile(fs.path("dir/pattern-clone.bin")) == upgrade::Clone());
    REQUIRE(ReadFile(fs.path("link")) == upgrade::Pattern());
    char target[64];
    n = readlink(fs.path("link").c_str(), target, sizeof(target));
    REQUIRE(std::string_view(target, n > 0 ? n : 0) == upgrade::kLinkTarget);
    REQUIRE(ReadFile(fs.path("sparse.bin")) == upgrade::Sparse());
    REQUIRE(ReadFile(fs.path("dir/sub/empty")).empty());
    fs.Unmount();
  }

  REQUIRE(ReadPoolSuperblock(PoolPath(source), &sb, &backup).ok());
  REQUIRE_FALSE(backup);
  REQUIRE(sb.version == 2);
  REQUIRE(sb.generation == 1);
  RunResult fsck = Run({DAXREF_TEST_FSCK, "-n", source});
  INFO(fsck.out << fsck.err);
  REQUIRE(fsck.status == 0);
}

}  // namespace daxref::test
