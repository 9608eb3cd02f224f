// daxref-info, mkfs.daxref -L, and daxref-map's extents range, block units
// and count, fsmap, and owners on an unmounted SOURCE (man/daxref-info.8,
// man/daxref-map.8): through real mounts and unmounted SOURCEs, with the
// JSON the tools print parsed back (Python's json module reads it) and
// checked against what the test made.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "test/cli_expect.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"

namespace daxref::test {
namespace {

const std::string kInfo = DAXREF_TEST_INFO;
const std::string kMap = DAXREF_TEST_MAP;
const std::string kMkfs = DAXREF_TEST_MKFS;
const std::string kPoison = DAXREF_TEST_POISON;
constexpr uid_t kAlice = 1001;
constexpr gid_t kAliceGroup = 1001;

// A JSON document read back: every scalar under its path ("space.free_blocks",
// "free_space.histogram.0.from"), as Python's json.dumps writes it (strings
// quoted). Fails the test unless `text` is one JSON document.
using Flat = std::map<std::string, std::string>;
Flat ParseJson(const std::string& text) {
  TempDir t;
  const std::string file = t.path() + "/doc.json";
  WriteFile(file, text);
  RunResult r = Run({"/usr/bin/python3", "-c",
                     "import json, sys\n"
                     "def walk(p, v):\n"
                     "  if isinstance(v, dict):\n"
                     "    for k, x in v.items(): walk(p + [k], x)\n"
                     "  elif isinstance(v, list):\n"
                     "    print('.'.join(p + ['#']) + '\\t' + str(len(v)))\n"
                     "    for i, x in enumerate(v): walk(p + [str(i)], x)\n"
                     "  else: print('.'.join(p) + '\\t' + json.dumps(v))\n"
                     "walk([], json.load(open(sys.argv[1], 'rb')))\n",
                     file});
  INFO(text << "\n" << r.err);
  REQUIRE(r.status == 0);
  Flat out;
  for (const std::string& line : Lines(r.out)) {
    const size_t tab = line.find('\t');
    REQUIRE(tab != std::string::npos);
    out[line.substr(0, tab)] = line.substr(tab + 1);
  }
  return out;
}

uint64_t Num(const Flat& j, const std::string& key) {
  INFO("key " << key);
  auto it = j.find(key);
  REQUIRE(it != j.end());
  REQUIRE(!it->second.empty());
  REQUIRE(it->second.find_first_not_of("0123456789") == std::string::npos);
  return std::stoull(it->second);
}

std::string Str(const Flat& j, const std::string& key) {
  INFO("key " << key);
  auto it = j.find(key);
  REQUIRE(it != j.end());
  return it->second;
}

Flat InfoJson(const std::string& fs) {
  RunResult r = Run({kInfo, "--json", fs});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());
  return ParseJson(r.out);
}

// The pool byte offset of a file's first block, from daxref-map's JSON.
uint64_t FirstPhysical(const std::string& file) {
  RunResult r = Run({kMap, "--json", "extents", file});
  REQUIRE(r.status == 0);
  Flat j = ParseJson(r.out);
  for (uint64_t i = 0; i < Num(j, "extents.#"); ++i)
    if (Str(j, "extents." + std::to_string(i) + ".type") == "\"data\"")
      return Num(j, "extents." + std::to_string(i) + ".physical");
  FAIL("no data extent in " << file);
  return 0;
}

// The figures that must agree between two reports of one filesystem at rest.
void ExpectSameFigures(const Flat& a, const Flat& b) {
  for (const char* k : {"format_version",
                        "uuid",
                        "label",
                        "blocks",
                        "data_blocks",
                        "generation",
                        "space.used_blocks",
                        "space.free_blocks",
                        "space.shared_blocks",
                        "space.shared_references",
                        "space.exclusive_blocks",
                        "space.referenced_blocks",
                        "space.bad_blocks",
                        "space.retired_blocks",
                        "free_space.extents",
                        "free_space.histogram.#",
                        "inodes.total",
                        "inodes.directories",
                        "inodes.regular_files",
                        "inodes.symlinks",
                        "inodes.special_files",
                        "extents"}) {
    INFO(k);
    CHECK(Str(a, k) == Str(b, k));
  }
}

}  // namespace

TEST_CASE(
    "daxref-info: geometry, label, space, sharing, free-space histogram and counts, "
    "online and offline, in text and JSON",
    "[fs][info]") {
  MountedFs::Options o;
  o.mkfs_options = {"-L", "pm data"};
  o.size = 64ull << 20;
  MountedFs fs(o);
  // 1 root, 1 directory, 3 regular files (a shares b's 8 blocks), a
  // symlink and a FIFO.
  REQUIRE(mkdir(fs.path("dir").c_str(), 0755) == 0);
  WriteFile(fs.path("dir/a"), NonZeroBytes(1, 8 * kBlock));
  WriteFile(fs.path("b"), "");
  {
    Fd a(fs.path("dir/a"), O_RDONLY), b(fs.path("b"), O_WRONLY);
    REQUIRE(CloneRange(a.get(), 0, 8 * kBlock, b.get(), 0) == 0);
  }
  // Three one-block files, the middle one removed: a one-block hole in
  // free space (a fragment the histogram must show).
  WriteFile(fs.path("c1"), NonZeroBytes(2, kBlock));
  WriteFile(fs.path("c2"), NonZeroBytes(3, kBlock));
  WriteFile(fs.path("c3"), NonZeroBytes(4, kBlock));
  REQUIRE(unlink(fs.path("c2").c_str()) == 0);
  REQUIRE(symlink("dir/a", fs.path("link").c_str()) == 0);
  REQUIRE(mkfifo(fs.path("fifo").c_str(), 0644) == 0);

  const Flat on = InfoJson(fs.mnt());
  CHECK(Num(on, "format_version") == 1);
  CHECK(Str(on, "label") == "\"pm data\"");
  CHECK(Str(on, "source") == "\"" + fs.source() + "\"");
  CHECK(Str(on, "mounted") == "true");
  CHECK(Str(on, "online") == "true");
  CHECK(Str(on, "mount_point") == "\"" + fs.mnt() + "\"");
  CHECK(Num(on, "block_size") == kBlock);
  CHECK(Num(on, "blocks") == (64ull << 20) / kBlock);
  const uint64_t data = Num(on, "data_blocks");
  CHECK(data == Num(on, "blocks") - 2);
  CHECK(Num(on, "space.data_blocks") == data);
  CHECK(Num(on, "pool_format") == 2);
  CHECK(Num(on, "meta_format") == 5);
  CHECK(Num(on, "generation") >= 1);
  // Space: a and b share 8 blocks (16 references); c1 and c3 one each.
  CHECK(Num(on, "space.shared_blocks") == 8);
  CHECK(Num(on, "space.shared_references") == 16);
  CHECK(Num(on, "space.exclusive_blocks") == 2);
  CHECK(Num(on, "space.used_blocks") == 10);
  CHECK(Num(on, "space.referenced_blocks") == 18);
  CHECK(Num(on, "space.saved_blocks") == 8);
  CHECK(Num(on, "space.free_blocks") == data - 10);
  CHECK(Num(on, "space.bad_blocks") == 0);
  CHECK(Num(on, "space.retired_blocks") == 0);
  CHECK(Str(on, "space.consistent") == "true");
  // The histogram adds up to free space, and shows the one-block fragment.
  uint64_t extents = 0, blocks = 0;
  bool one_block_bucket = false;
  for (uint64_t i = 0; i < Num(on, "free_space.histogram.#"); ++i) {
    const std::string b = "free_space.histogram." + std::to_string(i) + ".";
    const uint64_t from = Num(on, b + "from"), to = Num(on, b + "to");
    CHECK(to == 2 * from - 1);
    CHECK(Num(on, b + "blocks") >= Num(on, b + "extents") * from);
    CHECK(Num(on, b + "blocks") <= Num(on, b + "extents") * to);
    extents += Num(on, b + "extents");
    blocks += Num(on, b + "blocks");
    one_block_bucket |= from == 1 && Num(on, b + "extents") >= 1;
  }
  CHECK(extents == Num(on, "free_space.extents"));
  CHECK(extents >= 2);
  CHECK(blocks == Num(on, "space.free_blocks"));
  CHECK(one_block_bucket);
  CHECK(Num(on, "inodes.total") == 8);
  CHECK(Num(on, "inodes.directories") == 2);
  CHECK(Num(on, "inodes.regular_files") == 4);
  CHECK(Num(on, "inodes.symlinks") == 1);
  CHECK(Num(on, "inodes.special_files") == 1);
  CHECK(Num(on, "inodes.orphans") == 0);
  CHECK(Num(on, "extents") == 4);
  CHECK(Num(on, "store.files") > 0);
  CHECK(Num(on, "store.disk_bytes") > 0);
  CHECK(Str(on, "host.fstype") == "\"tmpfs\"");  // SOURCE is under /dev/shm

  // The text report begins with mkfs.daxref's geometry report.
  RunResult t = Run({kInfo, fs.mnt()});
  INFO(t.out << t.err);
  CHECK(t.status == 0);
  CHECK(t.err.empty());
  const std::vector<std::string> lines = Lines(t.out);
  REQUIRE(lines.size() > 10);
  CHECK(lines[0] == "source   = " + fs.source());
  CHECK(Contains(t.out, "\nlabel    = pm data\n"));
  CHECK(Contains(t.out, "\nuuid     = " + Str(on, "uuid").substr(1, 36) + "\n"));
  CHECK(Contains(t.out, "\nmounted  = " + fs.mnt() + " (asked through the daemon)\n"));
  CHECK(Contains(t.out, "  shared     = 8 blocks (32 KiB) (referenced 16 times)\n"));
  CHECK(Contains(t.out, "\nFree space: " + std::to_string(extents) + " extents\n"));
  CHECK(Contains(t.out, "  directories= 2\n"));

  // Unmounted: the SOURCE read directly gives the same figures.
  fs.Unmount();
  const Flat off = InfoJson(fs.source());
  ExpectSameFigures(on, off);
  CHECK(Str(off, "mounted") == "false");
  CHECK(Str(off, "online") == "false");
  CHECK(Str(off, "mount_point") == "null");
  t = Run({kInfo, fs.source()});
  CHECK(t.status == 0);
  CHECK(Contains(t.out, "\nmounted  = no (read offline)\n"));

  // A bad free block (poisoned offline) is retired; the info says so.
  const uint64_t last_data = Num(off, "blocks") - 2;
  RunResult p = Run({kPoison, "inject", "--blocks", fs.source(), std::to_string(last_data)});
  INFO(p.out << p.err);
  REQUIRE(p.status == 0);
  const Flat bad = InfoJson(fs.source());
  CHECK(Num(bad, "space.bad_blocks") == 1);
  CHECK(Num(bad, "space.retired_blocks") == 1);
  CHECK(Num(bad, "space.bad_owned_blocks") == 0);
  CHECK(Num(bad, "space.free_blocks") == Num(off, "space.free_blocks") - 1);
  CHECK(Num(bad, "space.used_blocks") == 10);
  CHECK(Str(bad, "space.consistent") == "true");
  // By origin (Q records): the one injected.
  CHECK(Num(bad, "space.bad_by_origin.injected") == 1);
  for (const char* o : {"machine-check", "machine-check-async", "device", "unknown"})
    CHECK(Num(bad, std::string("space.bad_by_origin.") + o) == 0);

  // Mounted again: the daemon agrees.
  fs.Mount();
  const Flat again = InfoJson(fs.mnt());
  CHECK(Num(again, "space.retired_blocks") == 1);
  CHECK(Num(again, "space.bad_by_origin.injected") == 1);
  CHECK(Contains(Run({kInfo, fs.mnt()}).out,
                 "  bad origin = 1 injected, 0 machine-check, 0 machine-check-async, 0 device, "
                 "0 unknown\n"));
  CHECK(Num(again, "space.free_blocks") == Num(bad, "space.free_blocks"));
  CHECK(Num(again, "generation") > Num(off, "generation"));
  fs.Check();
}

TEST_CASE("daxref-info: who may ask, and what is not a daxref filesystem", "[fs][info]") {
  MountedFs::Options o;
  o.mount_options = {"allow_other"};  // so that another user reaches the mount at all
  MountedFs fs(o);
  const std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
  // SOURCE's directory is closed to others: the socket cannot be reached.
  RunResult r = RunAsWithEnv(kAlice, kAliceGroup, {kInfo, fs.mnt()}, env);
  ExpectOneLineFailure(r, "daxref-info", "permission denied");
  // Open it up: the daemon itself refuses, info and fsmap alike.
  const std::string parent = fs.source().substr(0, fs.source().rfind('/'));
  REQUIRE(chmod(parent.c_str(), 0755) == 0);
  REQUIRE(chmod(fs.source().c_str(), 0755) == 0);
  r = RunAsWithEnv(kAlice, kAliceGroup, {kInfo, fs.mnt()}, env);
  ExpectOneLineFailure(r, "daxref-info", "permission denied: only root or the owner");
  r = RunAsWithEnv(kAlice, kAliceGroup, {kMap, "fsmap", fs.mnt()}, env);
  ExpectOneLineFailure(r, "daxref-map", "permission denied: only root or the owner");
  // extents stays open to every user who can open the file.
  WriteFile(fs.path("f"), std::string(kBlock, 'x'));
  REQUIRE(chmod(fs.path("f").c_str(), 0644) == 0);
  r = RunAsWithEnv(kAlice, kAliceGroup, {kMap, "-c", "extents", fs.path("f")}, env);
  CHECK(r.status == 0);
  CHECK(r.out == fs.path("f") + ": 1 extent, 4096 bytes, 0 bytes shared\n");
  TempDir plain;
  ExpectOneLineFailure(Run({kInfo, plain.path()}), "daxref-info", plain.path());
  ExpectOneLineFailure(Run({kInfo, plain.path() + "/missing"}), "daxref-info", "missing");
  ExpectUsageError(Run({kInfo}), "daxref-info", "missing FS");
  ExpectUsageError(Run({kInfo, fs.mnt(), "extra"}), "daxref-info", "unexpected argument");
  ExpectUsageError(Run({kInfo, "--frob", fs.mnt()}), "daxref-info", "--frob");
  ExpectHelp(Run({kInfo, "--help"}), "daxref-info");
  // A daemon that holds the pool but does not answer: no offline read
  // behind its back.
  REQUIRE(unlink((fs.source() + "/control").c_str()) == 0);
  ExpectOneLineFailure(Run({kInfo, fs.source()}), "daxref-info", "does not answer");
  ExpectOneLineFailure(Run({kMap, "fsmap", fs.mnt()}), "daxref-map", "does not answer");
  ExpectVersion(Run({kInfo, "--version"}), "daxref-info");
}

TEST_CASE(
    "mkfs.daxref -L: the label in the geometry, refused when unfit; JSON carries "
    "format_version",
    "[fs][info]") {
  TempDir parent("/dev/shm");
  const std::string src = parent.path() + "/fs";
  RunResult r = Run({kMkfs, "--json", "--sparse", "-L", "backups", "-s", "16M", src});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const Flat mk = ParseJson(r.out);
  CHECK(Num(mk, "format_version") == 1);
  CHECK(Str(mk, "label") == "\"backups\"");
  const Flat info = InfoJson(src);
  for (const char* k :
       {"uuid", "label", "block_size", "blocks", "first_data_block", "data_blocks", "size",
        "pool_format", "meta_format", "created", "source", "pool", "meta"}) {
    INFO(k);
    CHECK(Str(mk, k) == Str(info, k));
  }
  // No label: an empty one in JSON, no line in the text.
  r = Run({kMkfs, "-f", "--sparse", "-s", "16M", src});
  REQUIRE(r.status == 0);
  CHECK(!Contains(r.out, "label"));
  CHECK(Str(InfoJson(src), "label") == "\"\"");
  ExpectOneLineFailure(
      Run({kMkfs, "-f", "--sparse", "-L", std::string(256, 'x'), "-s", "16M", src}), "mkfs.daxref",
      "at most 255", 2);
  ExpectOneLineFailure(Run({kMkfs, "-f", "--sparse", "-L", "a\nb", "-s", "16M", src}),
                       "mkfs.daxref", "control characters", 2);
  ExpectOneLineFailure(Run({kMkfs, "-f", "--sparse", "-L", "", "-s", "16M", src}), "mkfs.daxref",
                       "must not be empty", 2);
}

TEST_CASE("daxref-map extents: a range, block units and counts, in text and JSON", "[fs][info]") {
  MountedFs fs;
  // f: blocks 0-3 data, 4-7 a hole, 8-9 data; size 10 blocks.
  const std::string f = fs.path("f");
  {
    Fd fd(f, O_WRONLY | O_CREAT | O_TRUNC);
    PwriteExact(fd.get(), NonZeroBytes(5, 4 * kBlock), 0);
    PwriteExact(fd.get(), NonZeroBytes(6, 2 * kBlock), 8 * kBlock);
  }
  const uint64_t phys0 = FirstPhysical(f);

  // -r: bytes [2 blocks, 9 blocks) -> data [2,4), hole [4,8), data [8,9).
  RunResult r = Run({kMap, "--json", "extents", "-r", "8K", "28K", f});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  Flat j = ParseJson(r.out);
  CHECK(Num(j, "format_version") == 1);
  CHECK(Str(j, "units") == "\"bytes\"");
  CHECK(Num(j, "range.offset") == 2 * kBlock);
  CHECK(Num(j, "range.length") == 7 * kBlock);
  REQUIRE(Num(j, "extents.#") == 3);
  CHECK(Str(j, "extents.0.type") == "\"data\"");
  CHECK(Num(j, "extents.0.logical") == 2 * kBlock);
  CHECK(Num(j, "extents.0.physical") == phys0 + 2 * kBlock);
  CHECK(Num(j, "extents.0.length") == 2 * kBlock);
  CHECK(Str(j, "extents.1.type") == "\"hole\"");
  CHECK(Num(j, "extents.1.logical") == 4 * kBlock);
  CHECK(Num(j, "extents.1.length") == 4 * kBlock);
  CHECK(Num(j, "extents.2.logical") == 8 * kBlock);
  CHECK(Num(j, "extents.2.length") == kBlock);
  CHECK(Num(j, "extent_count") == 2);
  CHECK(Num(j, "bytes") == 3 * kBlock);
  CHECK(Num(j, "blocks") == 3);

  // --blocks: the same range typed and shown in blocks.
  r = Run({kMap, "--json", "--blocks", "extents", "-r", "2", "7", f});
  REQUIRE(r.status == 0);
  j = ParseJson(r.out);
  CHECK(Str(j, "units") == "\"blocks\"");
  CHECK(Num(j, "range.offset") == 2);
  CHECK(Num(j, "range.length") == 7);
  REQUIRE(Num(j, "extents.#") == 3);
  CHECK(Num(j, "extents.0.logical") == 2);
  CHECK(Num(j, "extents.0.physical") == phys0 / kBlock + 2);
  CHECK(Num(j, "extents.0.length") == 2);
  CHECK(Num(j, "extents.1.length") == 4);
  r = Run({kMap, "--blocks", "extents", f});
  REQUIRE(r.status == 0);
  CHECK(Lines(r.out).back() == "2 extents, 6 blocks, 0 blocks shared");
  CHECK(Contains(r.out, "[0..3]"));

  // -c: totals only.
  r = Run({kMap, "-c", "extents", f});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out == f + ": 2 extents, 24576 bytes, 0 bytes shared\n");
  r = Run({kMap, "--count", "--json", "extents", f});
  REQUIRE(r.status == 0);
  j = ParseJson(r.out);
  CHECK(j.count("extents.#") == 0);
  CHECK(Num(j, "extent_count") == 2);
  CHECK(Num(j, "size") == 10 * kBlock);
  CHECK(Str(j, "range") == "null");

  ExpectUsageError(Run({kMap, "extents", f, "-r", "0"}), "daxref-map", "OFFSET and LENGTH");
  ExpectUsageError(Run({kMap, "extents", "-r", "0", "0", f}), "daxref-map", "LENGTH");
  ExpectUsageError(Run({kMap, "-c", "owners", fs.mnt(), "0"}), "daxref-map", "extents only");
  ExpectUsageError(Run({kMap, "owners", fs.mnt(), "0", "-r", "0", "1"}), "daxref-map",
                   "extents only");
}

TEST_CASE(
    "daxref-map fsmap: the pool in order, online and offline; owners on an unmounted "
    "SOURCE",
    "[fs][info]") {
  MountedFs fs;
  const std::string a = fs.path("a"), b = fs.path("b");
  WriteFile(a, NonZeroBytes(7, 4 * kBlock));
  WriteFile(b, "");
  {
    Fd fa(a, O_RDONLY), fb(b, O_WRONLY);
    REQUIRE(CloneRange(fa.get(), 0, 4 * kBlock, fb.get(), 0) == 0);
  }
  const uint64_t pa = FirstPhysical(a) / kBlock;
  const uint64_t ino_a = StatOf(a).st_ino, ino_b = StatOf(b).st_ino;

  // Whole pool, JSON: in pool order, covering every block exactly once but
  // for the owners of shared blocks (one row each).
  auto check_map = [&](const Flat& j, uint64_t blocks) {
    CHECK(Num(j, "format_version") == 1);
    CHECK(Str(j, "units") == "\"blocks\"");
    const uint64_t n = Num(j, "rows.#");
    REQUIRE(n >= 4);
    uint64_t prev = 0, covered = 0, end = 0, owners_at_pa = 0;
    std::vector<uint64_t> inos;
    for (uint64_t i = 0; i < n; ++i) {
      const std::string row = "rows." + std::to_string(i) + ".";
      const std::string kind = Str(j, row + "kind");
      const uint64_t p = Num(j, row + "physical"), len = Num(j, row + "length");
      CHECK(p >= prev);
      prev = p;
      if (kind == "\"owner\"") {
        if (p == pa) {
          ++owners_at_pa;
          CHECK(len == 4);
          CHECK(Num(j, row + "logical") == 0);
          inos.push_back(Num(j, row + "ino"));
        }
        if (p < end) continue;  // a further owner of blocks already counted
      }
      CHECK(p == end);  // no gap, no overlap
      covered += len;
      end = p + len;
    }
    CHECK(covered == blocks);
    CHECK(Str(j, "rows.0.kind") == "\"reserved\"");
    CHECK(Str(j, "rows." + std::to_string(n - 1) + ".kind") == "\"reserved\"");
    CHECK(owners_at_pa == 2);
    CHECK(inos == std::vector<uint64_t>{ino_a, ino_b});
    CHECK(Num(j, "summary.reserved") == 2);
    CHECK(Num(j, "summary.owned") == 8);  // two owners of 4 blocks
  };
  RunResult r = Run({kMap, "--json", "--blocks", "fsmap", fs.mnt()});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const Flat on = ParseJson(r.out);
  const uint64_t blocks = Num(on, "range.length");
  CHECK(blocks == (256ull << 20) / kBlock);
  check_map(on, blocks);
  // A range: clipped to it.
  r = Run({kMap, "--json", "--blocks", "fsmap", fs.mnt(), std::to_string(pa + 1), "2"});
  REQUIRE(r.status == 0);
  Flat part = ParseJson(r.out);
  REQUIRE(Num(part, "rows.#") == 2);
  for (const char* row : {"rows.0.", "rows.1."}) {
    CHECK(Str(part, std::string(row) + "kind") == "\"owner\"");
    CHECK(Num(part, std::string(row) + "physical") == pa + 1);
    CHECK(Num(part, std::string(row) + "length") == 2);
    CHECK(Num(part, std::string(row) + "logical") == 1);
  }
  // Text, in bytes.
  r = Run({kMap, "fsmap", fs.mnt()});
  CHECK(r.status == 0);
  CHECK(Contains(r.out, "superblock"));
  CHECK(Contains(r.out, "free space"));
  CHECK(Contains(r.out, "inode " + std::to_string(ino_a)));
  CHECK(Contains(r.out, "[" + std::to_string(pa * kBlock) + ".." +
                            std::to_string((pa + 4) * kBlock - 1) + "]"));
  // owners, online, for comparison with the offline answer.
  r = Run({kMap, "--json", "--blocks", "owners", fs.mnt(), std::to_string(pa), "4"});
  REQUIRE(r.status == 0);
  const Flat owners_on = ParseJson(r.out);

  fs.Unmount();
  r = Run({kMap, "--json", "--blocks", "fsmap", fs.source()});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const Flat off = ParseJson(r.out);
  check_map(off, blocks);
  CHECK(off == on);

  r = Run({kMap, "--json", "--blocks", "owners", fs.source(), std::to_string(pa), "4"});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const Flat owners_off = ParseJson(r.out);
  CHECK(owners_off == owners_on);
  CHECK(Num(owners_off, "format_version") == 1);
  CHECK(Num(owners_off, "summary.owners") == 2);
  CHECK(Str(owners_off, "owners.0.paths.0") == "\"/a\"");
  CHECK(Str(owners_off, "owners.1.paths.0") == "\"/b\"");
  r = Run({kMap, "owners", fs.source(), std::to_string(pa * kBlock)});
  CHECK(r.status == 0);
  CHECK(Lines(r.out).back() == "2 owners");
  ExpectOneLineFailure(Run({kMap, "fsmap", fs.source(), "1T"}), "daxref-map",
                       "past the end of the pool");

  // A bad free block: a row of its own, between free ranges.
  const uint64_t last_data = blocks - 2;
  RunResult p = Run({kPoison, "inject", "--blocks", fs.source(), std::to_string(last_data)});
  INFO(p.out << p.err);
  REQUIRE(p.status == 0);
  r = Run({kMap, "--json", "--blocks", "fsmap", fs.source()});
  REQUIRE(r.status == 0);
  const Flat bad = ParseJson(r.out);
  check_map(bad, blocks);
  const uint64_t n = Num(bad, "rows.#");
  const std::string row = "rows." + std::to_string(n - 2) + ".";
  CHECK(Str(bad, row + "kind") == "\"bad\"");
  CHECK(Num(bad, row + "physical") == last_data);
  CHECK(Num(bad, row + "length") == 1);
  CHECK(Num(bad, "summary.bad") == 1);
  CHECK(Num(bad, "summary.free") == Num(off, "summary.free") - 1);
  fs.Check();
}

}  // namespace daxref::test
