// Access times through real mounts: relatime by default, noatime,
// strictatime, nodiratime, lazytime, ro; a read's atime seen by stat at
// once and stored without a batch per read, so that it survives a remount
// (docs/design.md, "Access times"). No sleeps: times are set with
// utimensat where a test needs them apart, and the daemon's clock has
// nanoseconds.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "meta/atime_policy.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"

namespace daxref::test {
namespace {

struct Times {
  struct timespec a, m, c;
};

bool Same(const struct timespec& x, const struct timespec& y) {
  return x.tv_sec == y.tv_sec && x.tv_nsec == y.tv_nsec;
}

Times TimesOf(const std::string& path) {
  struct stat st = StatOf(path);
  return Times{st.st_atim, st.st_mtim, st.st_ctim};
}

// A file of whole pages: its write leaves them cached and up to date in the
// kernel, so a read the kernel answers from its cache cannot update the
// atime unless the open dropped them.
void MakeFile(const std::string& path) {
  WriteFile(path, std::string(64 * 1024, 'x'));
}

// Reads the whole file through a new open, as cat does.
void Cat(const std::string& path) {
  REQUIRE(ReadFile(path).size() == 64 * 1024);
}

// Lists a directory with opendir/readdir, as ls does.
void List(const std::string& path) {
  DIR* d = opendir(path.c_str());
  REQUIRE(d != nullptr);
  while (readdir(d) != nullptr) {
  }
  closedir(d);
}

// Sets the atime `secs` from now (mtime untouched; ctime becomes now).
void SetAtime(const std::string& path, long secs) {
  struct timespec ts[2];
  REQUIRE(clock_gettime(CLOCK_REALTIME, &ts[0]) == 0);
  ts[0].tv_sec += secs;
  ts[1].tv_nsec = UTIME_OMIT;
  REQUIRE(utimensat(AT_FDCWD, path.c_str(), ts, 0) == 0);
}

MountedFs::Options With(std::vector<std::string> mount_options, const std::string& source = {}) {
  MountedFs::Options o;
  o.size = 16 << 20;
  o.mount_options = std::move(mount_options);
  o.source = source;
  return o;
}

TEST_CASE("relatime by default: the first read after a change updates the atime", "[atime]") {
  MountedFs fs(With({}));
  const std::string f = fs.path("f");
  MakeFile(f);
  Times t0 = TimesOf(f);
  Cat(f);
  Times t1 = TimesOf(f);
  // Seen by stat at once, and only the atime moved.
  REQUIRE_FALSE(Same(t1.a, t0.a));
  CHECK(Same(t1.m, t0.m));
  CHECK(Same(t1.c, t0.c));
  // A second read changes nothing: atime is newer than mtime and ctime.
  Cat(f);
  CHECK(Same(TimesOf(f).a, t1.a));
  // A write makes the next read update it again.
  WriteFile(f, std::string(64 * 1024, 'y'));
  Times t2 = TimesOf(f);
  CHECK(Same(t2.a, t1.a));
  Cat(f);
  Times t3 = TimesOf(f);
  CHECK_FALSE(Same(t3.a, t2.a));
  // An atime two days old is updated too.
  SetAtime(f, -2 * 24 * 3600);
  Times old = TimesOf(f);
  Cat(f);
  CHECK(TimesOf(f).a.tv_sec > old.a.tv_sec + 24 * 3600);
  // An atime in the future, newer than mtime and ctime: relatime leaves it.
  SetAtime(f, 1000);
  Times future = TimesOf(f);
  Cat(f);
  CHECK(Same(TimesOf(f).a, future.a));
}

TEST_CASE("strictatime updates the atime on every read", "[atime]") {
  MountedFs fs(With({"strictatime"}));
  const std::string f = fs.path("f");
  MakeFile(f);
  Cat(f);
  Times t1 = TimesOf(f);
  Cat(f);
  Times t2 = TimesOf(f);
  CHECK_FALSE(Same(t2.a, t1.a));
  // Even an atime newer than mtime and ctime, which relatime would keep.
  SetAtime(f, 1000);
  Times future = TimesOf(f);
  Cat(f);
  Times t3 = TimesOf(f);
  CHECK_FALSE(Same(t3.a, future.a));
  CHECK(t3.a.tv_sec < future.a.tv_sec);
}

TEST_CASE("noatime never updates the atime; relatime on the same files does", "[atime]") {
  MountedFs first(With({}));
  MakeFile(first.path("f"));
  Times t0 = TimesOf(first.path("f"));
  Cat(first.path("f"));
  REQUIRE_FALSE(Same(TimesOf(first.path("f")).a, t0.a));  // the control: relatime works
  REQUIRE(mkdir(first.path("d").c_str(), 0755) == 0);
  first.Unmount();

  MountedFs fs(With({"noatime"}, first.source()));
  const std::string f = fs.path("f");
  WriteFile(f, std::string(64 * 1024, 'z'));
  Times t1 = TimesOf(f);
  Cat(f);
  Cat(f);
  CHECK(Same(TimesOf(f).a, t1.a));
  WriteFile(fs.path("d/g"), "g");
  Times d0 = TimesOf(fs.path("d"));
  List(fs.path("d"));
  CHECK(Same(TimesOf(fs.path("d")).a, d0.a));
}

TEST_CASE("readdir updates a directory's atime, unless nodiratime", "[atime]") {
  SECTION("relatime") {
    MountedFs fs(With({}));
    REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
    WriteFile(fs.path("d/f"), "f");  // the directory's mtime moves past its atime
    Times t0 = TimesOf(fs.path("d"));
    List(fs.path("d"));
    Times t1 = TimesOf(fs.path("d"));
    CHECK_FALSE(Same(t1.a, t0.a));
    CHECK(Same(t1.m, t0.m));
    List(fs.path("d"));
    CHECK(Same(TimesOf(fs.path("d")).a, t1.a));
  }
  SECTION("nodiratime: files still get theirs") {
    MountedFs fs(With({"nodiratime"}));
    REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
    MakeFile(fs.path("d/f"));
    Times d0 = TimesOf(fs.path("d"));
    Times f0 = TimesOf(fs.path("d/f"));
    List(fs.path("d"));
    Cat(fs.path("d/f"));
    CHECK(Same(TimesOf(fs.path("d")).a, d0.a));
    CHECK_FALSE(Same(TimesOf(fs.path("d/f")).a, f0.a));
  }
}

TEST_CASE("a read's atime is stored, and survives a remount", "[atime]") {
  for (const char* opt : {"relatime", "lazytime"}) {
    INFO(opt);
    MountedFs fs(With({opt}));
    const std::string f = fs.path("f");
    MakeFile(f);
    Times t0 = TimesOf(f);
    Cat(f);
    Times t1 = TimesOf(f);
    REQUIRE_FALSE(Same(t1.a, t0.a));
    fs.Remount();
    Times t2 = TimesOf(f);
    CHECK(Same(t2.a, t1.a));
    CHECK(Same(t2.m, t1.m));
    CHECK(Same(t2.c, t1.c));
  }
}

TEST_CASE("a read-only mount never updates an atime, even with strictatime", "[atime]") {
  MountedFs first(With({"strictatime"}));
  MakeFile(first.path("f"));
  REQUIRE(mkdir(first.path("d").c_str(), 0755) == 0);
  WriteFile(first.path("d/g"), "g");
  Times t0 = TimesOf(first.path("f"));
  Cat(first.path("f"));
  REQUIRE_FALSE(Same(TimesOf(first.path("f")).a, t0.a));    // the control: reads do update
  WriteFile(first.path("f"), std::string(64 * 1024, 'w'));  // due again
  first.Unmount();

  MountedFs ro(With({"ro", "strictatime"}, first.source()));
  Times f0 = TimesOf(ro.path("f"));
  Times d0 = TimesOf(ro.path("d"));
  Cat(ro.path("f"));
  List(ro.path("d"));
  CHECK(Same(TimesOf(ro.path("f")).a, f0.a));
  CHECK(Same(TimesOf(ro.path("d")).a, d0.a));
  ro.Unmount();
  MountedFs again(With({"noatime"}, first.source()));
  CHECK(Same(TimesOf(again.path("f")).a, f0.a));
}

TEST_CASE("atime policy: the kernel's rules", "[atime]") {
  InodeRecord r;
  r.mtime = {1000, 0};
  r.ctime = {1000, 0};
  r.atime = {2000, 0};
  const Timespec soon{2100, 0}, next_day{2000 + kRelatimeInterval, 0};
  AtimePolicy rel;
  CHECK_FALSE(AtimeNeedsUpdate(rel, r, false, soon));
  CHECK(AtimeNeedsUpdate(rel, r, false, next_day));
  InodeRecord changed = r;
  changed.ctime = {2000, 0};  // equal counts, as in the kernel
  CHECK(AtimeNeedsUpdate(rel, changed, false, soon));
  AtimePolicy strict;
  strict.mode = AtimePolicy::Mode::kStrictatime;
  CHECK(AtimeNeedsUpdate(strict, r, false, soon));
  CHECK_FALSE(AtimeNeedsUpdate(strict, r, false, r.atime));  // no change to make
  AtimePolicy none;
  none.mode = AtimePolicy::Mode::kNoatime;
  CHECK_FALSE(AtimeNeedsUpdate(none, changed, false, next_day));
  AtimePolicy nodir;
  nodir.nodiratime = true;
  CHECK_FALSE(AtimeNeedsUpdate(nodir, changed, true, soon));
  CHECK(AtimeNeedsUpdate(nodir, changed, false, soon));
  AtimePolicy ro = strict;
  ro.read_only = true;
  CHECK_FALSE(AtimeNeedsUpdate(ro, changed, false, soon));
}

}  // namespace
}  // namespace daxref::test
