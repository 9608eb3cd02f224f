// The ioctl ABI checks of ioctl_abi.h, compiled as C++ (ioctl_abi_c.c
// compiles the same checks as C). Everything is checked at compile time;
// the test case only gives the checks a name in the test list.
#include "test/ioctl_abi.h"

#include <catch2/catch.hpp>

TEST_CASE("ioctl ABI: sizes, offsets and command numbers as documented", "[format][abi]") {
  STATIC_REQUIRE(sizeof(daxref_extent_query) < (1u << _IOC_SIZEBITS));
  STATIC_REQUIRE(sizeof(daxref_owner_query) < (1u << _IOC_SIZEBITS));
  STATIC_REQUIRE(sizeof(daxref_paths_query) < (1u << _IOC_SIZEBITS));
}
