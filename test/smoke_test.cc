#include <catch2/catch.hpp>

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
