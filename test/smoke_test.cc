#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>

#include "test/fixture.h"

using namespace daxref;
using namespace daxref::test;

TEST_CASE("a file written on a fresh mount reads back after remount", "[fs][smoke]") {
  MountedFs fs;
  WriteFile(fs.path("hello"), "hello, pmem\n");
  REQUIRE(ReadFile(fs.path("hello")) == "hello, pmem\n");
  fs.Remount();
  REQUIRE(ReadFile(fs.path("hello")) == "hello, pmem\n");
  CheckReport r = fs.Check();
  REQUIRE(r.inodes == 2);
}

TEST_CASE("one request thread, no kernel caching and fstab atime words still serve files",
          "[fs][smoke]") {
  MountedFs::Options o;
  o.mount_options = {"threads=1", "relatime,noatime", "attr_timeout=0,entry_timeout=0"};
  MountedFs fs(o);
  WriteFile(fs.path("a"), "first\n");
  REQUIRE(rename(fs.path("a").c_str(), fs.path("b").c_str()) == 0);
  REQUIRE(ReadFile(fs.path("b")) == "first\n");
  struct stat st;
  REQUIRE(stat(fs.path("a").c_str(), &st) == -1);
  REQUIRE(errno == ENOENT);
  fs.Remount();
  REQUIRE(ReadFile(fs.path("b")) == "first\n");
  fs.Check();
}
