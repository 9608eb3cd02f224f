// daxref-scrub, the online check (docs/fsck.md, man/daxref-scrub.8): the
// daemon checks its store on one snapshot while the filesystem is in use.
// It must find a healthy filesystem clean, also while writers change it as
// fast as they can (the snapshot is a batch boundary: nothing it reads may
// look half done), and must report damage the daemon is serving with.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "meta/format.h"
#include "test/cli_expect.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"
#include "test/store_damage.h"

using namespace daxref;
using namespace daxref::test;

namespace {

const std::string kScrub = DAXREF_TEST_SCRUB;

RunResult Scrub(std::vector<std::string> args) {
  args.insert(args.begin(), kScrub);
  return Run(args);
}

std::string Json(const std::string& json, const std::string& expr) {
  TempDir t;
  const std::string file = t.path() + "/doc.json";
  WriteFile(file, json);
  RunResult r =
      Run({"/usr/bin/python3", "-c",
           "import json, sys\nd = json.load(open(sys.argv[1], 'rb'))\nprint(" + expr + ")", file});
  INFO(json << "\n" << r.err);
  REQUIRE(r.status == 0);
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Files of every kind the checker looks at.
void Populate(MountedFs& fs) {
  WriteFile(fs.path("a"), NonZeroBytes(1, 64 * kKiB));
  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  WriteFile(fs.path("d/b"), NonZeroBytes(2, 10 * kKiB));
  Fd in(fs.path("a"), O_RDONLY), out(fs.path("d/copy"), O_WRONLY | O_CREAT, 0644);
  loff_t io = 0, oo = 0;
  REQUIRE(copy_file_range(in.get(), &io, out.get(), &oo, 64 * kKiB, 0) ==
          static_cast<ssize_t>(64 * kKiB));
  REQUIRE(symlink("a", fs.path("s").c_str()) == 0);
  REQUIRE(link(fs.path("a").c_str(), fs.path("d/hard").c_str()) == 0);
  REQUIRE(setxattr(fs.path("d/b").c_str(), "user.x", "y", 1, 0) == 0);
}

TEST_CASE("daxref-scrub finds a healthy mounted filesystem clean", "[scrub]") {
  MountedFs::Options o;
  o.size = 64 * kMiB;
  MountedFs fs(o);
  Populate(fs);
  // A file unlinked while open: an orphan, which is no problem.
  Fd held(fs.path("held"), O_RDWR | O_CREAT, 0644);
  PwriteAll(held.get(), NonZeroBytes(3, 8 * kKiB), 0);
  REQUIRE(unlink(fs.path("held").c_str()) == 0);

  RunResult r = Scrub({"--json", fs.mnt()});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());
  ExpectValidJson(r.out);
  CHECK(Json(r.out, "d['format']") == "1");
  CHECK(Json(r.out, "d['problems_found']") == "0");
  CHECK(Json(r.out, "d['counts']['orphans']") == "1");
  CHECK(Json(r.out, "d['counts']['shared_blocks']") == "16");
  CHECK(Json(r.out, "d['mount_point']") == fs.mnt());
  // The SOURCE directory names the same filesystem; text mode says clean.
  RunResult t = Scrub({fs.source()});
  CHECK(t.status == 0);
  CHECK(Contains(t.out, ": clean"));
  // And any path on the mount.
  CHECK(Scrub({fs.path("d")}).status == 0);
  held.Close();
}

TEST_CASE("daxref-scrub stays clean while writers change the filesystem", "[scrub]") {
  MountedFs::Options o;
  o.size = 128 * kMiB;
  MountedFs fs(o);
  Populate(fs);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ops{0};
  // Each writer works in its own directory: creates, appends (extents that
  // merge and move between length classes), overwrites, clones, truncates,
  // renames, unlinks (some while open), makes and removes directories.
  auto churn = [&](int id) {
    std::mt19937_64 rng(id);
    const std::string dir = fs.path("w" + std::to_string(id));
    REQUIRE(mkdir(dir.c_str(), 0755) == 0);
    std::vector<int> open_fds;
    while (!stop) {
      const std::string f = dir + "/f" + std::to_string(rng() % 16);
      const std::string g = dir + "/f" + std::to_string(rng() % 16);
      switch (rng() % 8) {
        case 0:
        case 1: {
          int fd = open(f.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
          if (fd >= 0) {
            std::string bytes(kBlock * (1 + rng() % 8), static_cast<char>('a' + rng() % 26));
            if (write(fd, bytes.data(), bytes.size()) < 0) {
            }
            close(fd);
          }
          break;
        }
        case 2: {
          int fd = open(f.c_str(), O_WRONLY | O_CREAT, 0644);
          if (fd >= 0) {
            std::string bytes(kBlock, 'z');
            if (pwrite(fd, bytes.data(), bytes.size(), kBlock * (rng() % 32)) < 0) {
            }
            close(fd);
          }
          break;
        }
        case 3: {
          int in = open(f.c_str(), O_RDONLY), out = open(g.c_str(), O_WRONLY | O_CREAT, 0644);
          if (in >= 0 && out >= 0 && f != g) {
            loff_t a = 0, b = 0;
            if (copy_file_range(in, &a, out, &b, 64 * kKiB, 0) < 0) {
            }
          }
          if (in >= 0) close(in);
          if (out >= 0) close(out);
          break;
        }
        case 4:
          if (truncate(f.c_str(), static_cast<off_t>(kBlock * (rng() % 8) + rng() % kBlock)) < 0) {
          }
          break;
        case 5:
          if (rename(f.c_str(), g.c_str()) < 0) {
          }
          break;
        case 6: {
          // Unlinked while open: an orphan until the close below.
          int fd = open(f.c_str(), O_RDONLY);
          if (fd >= 0) open_fds.push_back(fd);
          if (unlink(f.c_str()) < 0) {
          }
          if (open_fds.size() > 4) {
            close(open_fds.front());
            open_fds.erase(open_fds.begin());
          }
          break;
        }
        default: {
          const std::string sub = dir + "/d" + std::to_string(rng() % 4);
          if (mkdir(sub.c_str(), 0755) != 0 && rmdir(sub.c_str()) != 0) {
          }
          break;
        }
      }
      ops++;
    }
    for (int fd : open_fds) close(fd);
  };
  std::vector<std::thread> writers;
  for (int i = 0; i < 2; ++i) writers.emplace_back(churn, i);
  int scrubs = 0;
  std::string failed;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until || scrubs < 3) {
    RunResult r = Scrub({"--json", fs.mnt()});
    ++scrubs;
    if (r.status != 0) {
      failed = r.out + r.err;
      break;
    }
  }
  stop = true;
  for (auto& w : writers) w.join();
  INFO("scrub " << scrubs << " during " << ops << " operations failed:\n" << failed);
  CHECK(failed.empty());
  CHECK(ops > 100);
  // The writers' work is sound offline too.
  fs.Check();
}

TEST_CASE("daxref-scrub reports damage the daemon is serving with", "[scrub]") {
  TempDir t("/dev/shm");
  const std::string src = t.path() + "/fs";
  {
    MountedFs::Options o;
    o.size = 32 * kMiB;
    MountedFs fs(o);
    Populate(fs);
    fs.Unmount();
    CopySource(fs.source(), src);
  }
  {
    // A reverse-map record gone: the daemon mounts (it reads the reverse
    // map only to find owners), the scrub sees it.
    StoreEditor ed(src);
    const uint64_t ino = ed.Lookup("/d/b");
    const Extent e = ed.Extents(ino).at(0);
    ed.Delete(keys::Rmap(e.pblock, e.len, ino, e.fblock));
  }
  MountedFs::Options o;
  o.source = src;
  MountedFs fs(o);
  RunResult r = Scrub({"--json", fs.mnt()});
  INFO(r.out << r.err);
  REQUIRE(r.status == 4);
  ExpectValidJson(r.out);
  CHECK(Contains(Json(r.out, "[p['class'] for p in d['problems']]"), "'rmap'"));
  CHECK(Contains(Json(r.out, "[p.get('path', '') for p in d['problems']]"), "/d/b"));
  RunResult text = Scrub({fs.mnt()});
  CHECK(text.status == 4);
  CHECK(Contains(text.out, "problem [rmap]"));
  CHECK(Contains(text.out, "fsck.daxref -y"));
  fs.Unmount();
}

TEST_CASE("daxref-scrub's command line and errors", "[scrub][cli]") {
  const std::string prog = "daxref-scrub";
  ExpectHelp(Scrub({"--help"}), prog);
  ExpectVersion(Scrub({"--version"}), prog);
  auto usage = [&](const RunResult& r, const std::string& needle) {
    INFO(r.status << "\n" << r.out << r.err);
    CHECK(r.status == 8);
    CHECK(r.out.empty());
    std::vector<std::string> lines = Lines(r.err);
    REQUIRE(lines.size() == 2);
    CHECK(Contains(lines[0], needle));
  };
  usage(Scrub({}), "missing FS");
  usage(Scrub({"--bogus", "/tmp"}), "unrecognized option");
  usage(Scrub({"/tmp", "/tmp"}), "too many arguments");
  ExpectOneLineFailure(Scrub({"/tmp"}), prog, "not a daxref filesystem", 8);
  TempDir t("/dev/shm");
  const std::string src = t.path() + "/fs";
  REQUIRE(Run({MkfsBin(), "-q", "--size", "32M", src}).status == 0);
  ExpectOneLineFailure(Scrub({src}), prog, "is not mounted", 8);
}

}  // namespace
