// The pool's host filesystem is a resource, not a memory device
// (docs/design.md, "When the host filesystem fills"): a daxref filesystem on
// a small tmpfs that fills up, with the pool sparse so that the pool and
// the metadata store both run out. The writer gets ENOSPC, never EIO; no
// block is marked bad; the daemon lives and serves reads; after a remount
// with room again everything is there and the store is consistent. And
// mkfs.daxref refuses what cannot work: a pool larger than its host
// filesystem or than an address space can map, with one line each and
// nothing left behind.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include "test/fixture.h"
#include "test/fs_helpers.h"

namespace daxref::test {
namespace {

RunResult Mkfs(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {MkfsBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv);
}

size_t Lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

bool Contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

bool Empty(const std::string& dir) {
  return std::filesystem::is_empty(dir);
}

// Bad blocks as daxref-poison lists them on a mounted filesystem (JSON).
std::string PoisonList(const std::string& mnt) {
  RunResult r = Run({DAXREF_TEST_POISON, "--json", "list", mnt});
  INFO(r.err);
  REQUIRE(r.status == 0);
  return r.out;
}

}  // namespace

TEST_CASE("A full host filesystem: ENOSPC for the writer, no poison, the daemon lives",
          "[hostfull]") {
  // 64 MiB of tmpfs for a 1 GiB sparse pool and its store; 36 MiB of it
  // held by a ballast file the test gives back before the remount (the
  // store's log replay at mount needs room for up to a memtable).
  TmpfsMount host(64 * kMiB);
  const std::string ballast = host.path() + "/ballast";
  {
    Fd b(ballast, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fallocate(b.get(), 0, 0, static_cast<off_t>(36 * kMiB)) == 0);
  }
  TempDir logs;
  MountedFs::Options o;
  o.size = 1ull << 30;
  o.source_parent = host.path();
  o.mkfs_options = {"--sparse"};
  o.log_path = logs.path() + "/daemon.log";
  MountedFs fs(o);

  // 1. File data until the host is full: dd's 1 MiB writes.
  std::string written;
  int data_err = 0;
  {
    Fd f(fs.path("f"), O_WRONLY | O_CREAT | O_TRUNC);
    for (uint64_t i = 0; i < 100; ++i) {
      std::string chunk = NonZeroBytes(i, kMiB);
      ssize_t n = pwrite(f.get(), chunk.data(), chunk.size(), static_cast<off_t>(written.size()));
      if (n < 0) {
        data_err = errno;
        break;
      }
      written += chunk.substr(0, static_cast<size_t>(n));
    }
  }
  INFO("wrote " << written.size() << " bytes before the host filled");
  CHECK(data_err == ENOSPC);
  CHECK(written.size() < 64 * kMiB);

  // 2. Metadata until the store cannot take more: 60 KB attributes fill its
  // log quickly. Every failure is ENOSPC.
  int meta_err = 0;
  int made = 0;
  const std::string value(60000, 'x');
  for (int i = 0; i < 2000 && meta_err == 0; ++i) {
    const std::string p = fs.path("m" + std::to_string(i));
    int fd = open(p.c_str(), O_WRONLY | O_CREAT, 0644);
    if (fd < 0) {
      meta_err = errno;
      break;
    }
    close(fd);
    ++made;
    if (setxattr(p.c_str(), "user.big", value.data(), value.size(), 0) != 0) meta_err = errno;
  }
  INFO("made " << made << " files before the store filled");
  CHECK(meta_err == ENOSPC);
  // Once stopped, the store refuses every change the same way.
  CHECK(ErrnoOf(mkdir(fs.path("d").c_str(), 0755)) == ENOSPC);
  CHECK(ErrnoOf(open(fs.path("late").c_str(), O_WRONLY | O_CREAT, 0644)) == ENOSPC);

  // 3. The daemon is alive and serves what it acknowledged.
  REQUIRE(kill(fs.daemon_pid(), 0) == 0);
  CHECK(StatOf(fs.path("f")).st_size == static_cast<off_t>(written.size()));
  CHECK_SAME(ReadFile(fs.path("f")), written);
  CHECK(StatOf(fs.path("m0")).st_size == 0);
  {
    // fsync makes what was acknowledged durable, even now; no EIO.
    Fd f(fs.path("f"), O_RDONLY);
    int err = ErrnoOf(fsync(f.get()));
    CHECK((err == 0 || err == ENOSPC));
  }
  // No block became bad, and nothing was treated as poison.
  std::string list = PoisonList(fs.mnt());
  INFO(list);
  CHECK(Contains(list, "\"bad\": []"));
  std::string log = ReadFile(o.log_path);
  INFO(log);
  CHECK(Contains(log, "no space left on the pool's host filesystem"));
  CHECK(Contains(log, "the metadata store stopped taking changes"));
  CHECK_FALSE(Contains(log, "treating it as poison"));
  CHECK_FALSE(Contains(log, "recorded bad"));
  CHECK_FALSE(Contains(log, "Assertion"));

  // 4. Unmounted cleanly (the daemon exits 0), then room again: a remount
  // sees everything acknowledged, the store is consistent, no bad block,
  // and changes work again.
  fs.Unmount();
  REQUIRE(unlink(ballast.c_str()) == 0);
  CheckReport report = CheckSource(fs.source());
  CHECK(report.bad_blocks == 0);
  fs.Mount();
  CHECK_SAME(ReadFile(fs.path("f")), written);
  CHECK(StatOf(fs.path("m" + std::to_string(made - 1))).st_size == 0);
  WriteFile(fs.path("after"), "room again");
  CHECK(ReadFile(fs.path("after")) == "room again");
  report = fs.Check();
  CHECK(report.bad_blocks == 0);
  CHECK_FALSE(Contains(ReadFile(o.log_path), "recorded bad"));
}

TEST_CASE("mkfs.daxref reserves the pool's space, and refuses what cannot be held or mapped",
          "[hostfull][mkfs]") {
  TmpfsMount host(16 * kMiB);
  const std::string src = host.path() + "/fs";

  SECTION("the default reserves: the pool's blocks are allocated on the host") {
    const uint64_t before = host.Available();
    RunResult r = Mkfs({"-q", "-s", "8M", src});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.err.empty());
    CHECK(static_cast<uint64_t>(StatOf(src + "/pool").st_blocks) * 512 >= 8 * kMiB);
    CHECK(before - host.Available() >= 8 * kMiB);
    // -f replacing it counts the old pool's space as free: 12 MiB fits in
    // 16 only because the old 8 MiB goes.
    r = Mkfs({"-q", "-f", "-s", "12M", src});
    INFO(r.err);
    CHECK(r.status == 0);
    CHECK(static_cast<uint64_t>(StatOf(src + "/pool").st_blocks) * 512 >= 12 * kMiB);
  }

  SECTION("a pool larger than the host filesystem: one line naming both sizes, nothing made") {
    RunResult r = Mkfs({"-s", "64M", src});
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    CHECK(Lines(r.err) == 1);
    CHECK(Contains(r.err, "mkfs.daxref: a 64 MiB pool (67108864 bytes) does not fit"));
    CHECK(Contains(r.err, "available of 16 MiB"));
    CHECK(Contains(r.err, "--sparse"));
    CHECK(Empty(host.path()));
    // In a SOURCE that exists (empty), it stays as it was.
    REQUIRE(mkdir(src.c_str(), 0700) == 0);
    r = Mkfs({"-s", "1G", src});
    CHECK(r.status == 1);
    CHECK(Lines(r.err) == 1);
    CHECK(Empty(src));
  }

  SECTION("--sparse makes it anyway, with a warning, and reserves nothing") {
    RunResult r = Mkfs({"-q", "--sparse", "-s", "1G", src});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(Lines(r.err) == 1);
    CHECK(r.err.rfind("mkfs.daxref: warning: the pool is sparse", 0) == 0);
    CHECK(Contains(r.err, "ENOSPC"));
    CHECK(StatOf(src + "/pool").st_size == 1ll << 30);
    CHECK(static_cast<uint64_t>(StatOf(src + "/pool").st_blocks) * 512 < kMiB);
  }

  SECTION("a pool no address space can map: one line, nothing made, with or without --sparse") {
    for (bool sparse : {false, true}) {
      std::vector<std::string> args = {"-s", "4096T", src};
      if (sparse) args.insert(args.begin(), "--sparse");
      RunResult r = Mkfs(args);
      INFO(r.err);
      CHECK(r.status == 2);
      CHECK(Lines(r.err) == 1);
      CHECK(Contains(r.err,
                     "size 4096T (4503599627370496 bytes, 4 PiB) is more than the "
                     "daemon can map"));
      CHECK(Empty(host.path()));
    }
    // One the daemon could map is refused here for room, not for the
    // address space.
    RunResult r = Mkfs({"-s", "60T", src});
    CHECK(r.status == 1);
    CHECK(Contains(r.err, "does not fit"));
  }
}

}  // namespace daxref::test
