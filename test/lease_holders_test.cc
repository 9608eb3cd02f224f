// admin/lease_holders: is a G record's holder still alive, and does it map
// the pool? Against real processes (a poison_holder child that maps a file:
// test/holder_process.h) and the real /proc, plus the parsers on the forms
// /proc gives and on damaged ones.
#include "admin/lease_holders.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "test/fixture.h"
#include "test/holder_process.h"

using namespace daxref;
using namespace daxref::test;

namespace {

// A lease record naming process pid as it runs now.
LeaseRecord HeldBy(pid_t pid) {
  LeaseRecord r;
  r.id = 1;
  r.ino = 2;
  r.blocks = 1;
  r.pid = static_cast<uint32_t>(pid);
  r.start_time = ProcessStartTime(pid);
  r.boot_id = BootId();
  return r;
}

}  // namespace

TEST_CASE("lease holders: a live holder that maps the pool, then gone", "[lease]") {
  TempDir t;
  const std::string pool = t.path() + "/pool", other = t.path() + "/other";
  WriteFile(pool, std::string(3 * 4096, 'p'));
  WriteFile(other, std::string(4096, 'o'));
  struct stat pst {
  }, ost{};
  REQUIRE(stat(pool.c_str(), &pst) == 0);
  REQUIRE(stat(other.c_str(), &ost) == 0);

  REQUIRE(BootId() != std::array<uint8_t, 16>{});
  REQUIRE(ProcessStartTime(getpid()) != 0);

  LeaseRecord r;
  pid_t pid = 0;
  {
    HolderProcess holder(t.path() + "/log");
    pid = holder.pid();
    r = HeldBy(pid);
    REQUIRE(r.start_time != 0);
    CHECK(RecordedHolderAlive(r));
    // Alive, but not mapping anything yet (an open descriptor is no mapping).
    const int fd = holder.Open(pool);
    CHECK_FALSE(ProcessMapsFile(pid, pst.st_dev, pst.st_ino));
    holder.Close(fd);
    const int m = holder.Map(pool);
    CHECK(ProcessMapsFile(pid, pst.st_dev, pst.st_ino));
    CHECK_FALSE(ProcessMapsFile(pid, ost.st_dev, ost.st_ino));
    CHECK_FALSE(ProcessMapsFile(pid, pst.st_dev + 1, pst.st_ino));
    // A deleted pool file is still the same file to its mapping.
    holder.Map(other);
    REQUIRE(unlink(other.c_str()) == 0);
    CHECK(ProcessMapsFile(pid, ost.st_dev, ost.st_ino));
    holder.Unmap(m);
    CHECK_FALSE(ProcessMapsFile(pid, pst.st_dev, pst.st_ino));
    holder.Map(pool);
    CHECK(ProcessMapsFile(pid, pst.st_dev, pst.st_ino));

    // Another start time is another process (a recycled pid), whatever it maps.
    LeaseRecord wrong = r;
    wrong.start_time = r.start_time + 1;
    CHECK_FALSE(RecordedHolderAlive(wrong));
    // Another boot: every holder of it is gone.
    wrong = r;
    wrong.boot_id[0] ^= 1;
    CHECK_FALSE(RecordedHolderAlive(wrong));
    wrong = r;
    wrong.pid = 0;
    CHECK_FALSE(RecordedHolderAlive(wrong));
  }  // killed and reaped
  CHECK_FALSE(RecordedHolderAlive(r));
  CHECK(ProcessStartTime(pid) == 0);
  CHECK_FALSE(ProcessMapsFile(pid, pst.st_dev, pst.st_ino));
  CHECK(ProcessStartTime(-1) == 0);
  CHECK(ProcessStartTime(0) == 0);
}

TEST_CASE("lease holders: what /proc says is parsed strictly", "[lease]") {
  std::array<uint8_t, 16> id{};
  REQUIRE(ParseBootId("0123abcd-ef01-4567-89AB-cdef01234567\n", &id));
  CHECK(id[0] == 0x01);
  CHECK(id[3] == 0xcd);
  CHECK(id[8] == 0x89);
  CHECK(id[15] == 0x67);
  for (const char* bad :
       {"", "0123abcd-ef01-4567-89ab-cdef0123456", "0123abcd-ef01-4567-89ab-cdef012345678",
        "0123abcdef01-4567-89ab-cdef01234567-", "0123abcd-ef01-4567-89ab-cdef0123456g",
        "0123abcd-ef01-4567-89ab-cdef01234567\n\n"}) {
    INFO(bad);
    CHECK_FALSE(ParseBootId(bad, &id));
  }
  char state = 0;
  uint64_t start = 0;
  // comm with spaces and parentheses: the fields start after the last ')'.
  const std::string line =
      "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
  REQUIRE(ParseStatStartTime(line, &state, &start));
  CHECK(state == 'S');
  CHECK(start == 987654);
  REQUIRE(ParseStatStartTime(line + "\n", &state, &start));
  CHECK(start == 987654);
  for (const std::string& bad :
       {std::string("1234 (a) S 1 1234"),  // short
        std::string("1234 (a) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98x7"),  // junk
        std::string("1234 (a) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 -5"),    // sign
        std::string("1234 a S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5"),  // no comm
        std::string("1234 (a) SS 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5"),
        std::string("1234 (a)  S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5"),
        std::string("1234 (a) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 "
                    "99999999999999999999999")}) {  // overflow
    INFO(bad);
    CHECK_FALSE(ParseStatStartTime(bad, &state, &start));
  }
}
