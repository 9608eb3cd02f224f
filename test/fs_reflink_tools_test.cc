// The reflink tools on a real mount, run as a user runs them:
// libdaxref-reflink.so under LD_PRELOAD for unmodified programs (cp
// --reflink=always, xfs_io, filefrag, duperemove, and reflink_probe for the
// exact errno of one call), daxref-reflink, and daxref-map.
//
// Every expectation is what docs/reflink-tools.md and the man pages
// (daxref-reflink.1, daxref-map.8, libdaxref-reflink.7) promise, checked
// against the daemon's own view of the result: the extent map from
// DAXREF_IOC_EXTENTS (shared pool blocks, reference counts), the bytes, and
// the free-space count. Where a result could also come about without the
// tool doing anything, the same command is run without the library too and
// must fail, so that a test passes only if the feature works.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "test/cli_expect.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

constexpr uid_t kAlice = 1001;
constexpr gid_t kAliceGroup = 1001;

const std::string kReflinkLib = DAXREF_TEST_REFLINK_LIB;
const std::string kReflink = DAXREF_TEST_REFLINK;
const std::string kMap = DAXREF_TEST_MAP;
const std::string kProbe = DAXREF_TEST_REFLINK_PROBE;

const std::string kCp = "/usr/bin/cp";
const std::string kXfsIo = "/usr/sbin/xfs_io";
const std::string kFilefrag = "/usr/sbin/filefrag";
const std::string kDuperemove = "/usr/bin/duperemove";

MountedFs::Options AllowOther() {
  MountedFs::Options o;
  o.mount_options = {"allow_other"};
  return o;
}

// ---- running programs with and without the library ----

// A small fixed environment: messages in English, the system's PATH, and
// `extra` ("NAME=value").
std::vector<std::string> Env(std::vector<std::string> extra = {}) {
  extra.push_back("PATH=/usr/sbin:/usr/bin:/sbin:/bin");
  extra.push_back("LC_ALL=C");
  extra.push_back("HOME=/tmp");
  return extra;
}

std::vector<std::string> LibEnv(std::vector<std::string> extra = {}) {
  extra.push_back("LD_PRELOAD=" + kReflinkLib);
  return Env(std::move(extra));
}

RunResult WithLib(const std::vector<std::string>& argv) {
  return RunWithEnv(argv, LibEnv());
}

RunResult WithoutLib(const std::vector<std::string>& argv) {
  return RunWithEnv(argv, Env());
}

// A successful run that printed nothing.
void ExpectQuietSuccess(const RunResult& r) {
  INFO("status " << r.status << "\nstdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.empty());
  CHECK(r.err.empty());
}

// ---- minimal JSON reading ----

// The values of every "key" member in `json`, in order, as text: strings
// unquoted (escapes kept as written), arrays with their brackets, numbers as
// digits. Enough for the documents the tools print (no "]" inside an array's
// strings, no nested arrays under `key`).
std::vector<std::string> JsonValues(const std::string& json, const std::string& key) {
  std::vector<std::string> out;
  const std::string pattern = "\"" + key + "\": ";
  for (size_t at = json.find(pattern); at != std::string::npos; at = json.find(pattern, at + 1)) {
    size_t v = at + pattern.size();
    REQUIRE(v < json.size());
    size_t end = v;
    if (json[v] == '"') {
      end = v + 1;
      while (end < json.size() && json[end] != '"') end += json[end] == '\\' ? 2 : 1;
      out.push_back(json.substr(v + 1, end - v - 1));
      continue;
    }
    if (json[v] == '[') {
      end = json.find(']', v);
      REQUIRE(end != std::string::npos);
      out.push_back(json.substr(v, end - v + 1));
      continue;
    }
    end = json.find_first_of(",}] \n", v);
    out.push_back(json.substr(v, end == std::string::npos ? std::string::npos : end - v));
  }
  return out;
}

std::vector<uint64_t> JsonNumbers(const std::string& json, const std::string& key) {
  std::vector<uint64_t> out;
  for (const std::string& v : JsonValues(json, key)) {
    INFO(key << ": " << v);
    REQUIRE(!v.empty());
    REQUIRE(v.find_first_not_of("0123456789") == std::string::npos);
    out.push_back(std::stoull(v));
  }
  return out;
}

// ---- the daemon's view of a file ----

struct Block {
  uint64_t pool = 0;  // pool block
  uint32_t refcount = 0;
  bool shared = false;
  bool operator==(const Block&) const = default;
};

// File block -> pool block, for every mapped block of `path`.
std::map<uint64_t, Block> Blocks(const std::string& path) {
  std::map<uint64_t, Block> m;
  for (const daxref_extent& e : Extents(path)) {
    REQUIRE(e.length % kBlock == 0);
    for (uint64_t b = 0; b < e.length / kBlock; ++b)
      m[e.logical / kBlock + b] = {e.physical / kBlock + b, e.refcount,
                                   (e.flags & DAXREF_EXTENT_SHARED) != 0};
  }
  return m;
}

// Bytes of `path` in extents flagged shared.
uint64_t SharedBytes(const std::string& path) {
  uint64_t n = 0;
  for (const daxref_extent& e : Extents(path))
    if (e.flags & DAXREF_EXTENT_SHARED) n += e.length;
  return n;
}

// Whether `count` file blocks of `a` from a_first on are the very pool blocks
// of `b` from b_first on, flagged shared, with at least `refs` references.
bool SameBlocks(const std::string& a, uint64_t a_first, const std::string& b, uint64_t b_first,
                uint64_t count, uint32_t refs = 2) {
  auto ma = Blocks(a), mb = Blocks(b);
  for (uint64_t i = 0; i < count; ++i) {
    auto x = ma.find(a_first + i), y = mb.find(b_first + i);
    if (x == ma.end() || y == mb.end()) return false;
    if (x->second.pool != y->second.pool || x->second.refcount < refs || !x->second.shared)
      return false;
  }
  return true;
}

// Bytes and extents: what a failed command must leave as they were.
struct FileState {
  std::string bytes;
  std::map<uint64_t, Block> blocks;
  bool operator==(const FileState&) const = default;
};

FileState StateOf(const std::string& path) {
  return {ReadFile(path), Blocks(path)};
}

bool Exists(const std::string& path) {
  return access(path.c_str(), F_OK) == 0;
}

// `s` with `with` written over it at `off` (growing it with zeros if need be).
std::string Replaced(std::string s, uint64_t off, const std::string& with) {
  if (s.size() < off + with.size()) s.resize(off + with.size(), '\0');
  s.replace(off, with.size(), with);
  return s;
}

// reflink_probe's answer: its output line, checked against its exit status.
std::string Probe(const std::vector<std::string>& args, bool lib = true) {
  std::vector<std::string> argv = {kProbe};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = lib ? WithLib(argv) : WithoutLib(argv);
  INFO("probe " << r.out << r.err);
  REQUIRE(r.status != 2);
  REQUIRE(r.err.empty());
  CHECK((r.status == 0) == (r.out.rfind("rc=0 ", 0) == 0));
  return r.out.empty() ? r.out : r.out.substr(0, r.out.size() - 1);
}

}  // namespace

// ---------------------------------------------------------------------------
// cp --reflink=always

TEST_CASE("cp --reflink=always shares blocks only under the library", "[fs][reflink-tools]") {
  MountedFs fs;
  const std::string data = NonZeroBytes(1, 256 * kBlock + 100);
  const std::string a = fs.path("a");
  WriteFile(a, data);
  const uint64_t free0 = FreeBlocks(fs);

  // The kernel refuses FICLONE for FUSE: cp fails and nothing is shared.
  RunResult r = WithoutLib({kCp, "--reflink=always", a, fs.path("plain")});
  {
    INFO(r.err);
    CHECK(r.status != 0);
    CHECK(Contains(r.err, "Operation not supported"));
  }
  CHECK(SharedBytes(a) == 0);
  if (Exists(fs.path("plain"))) CHECK(Extents(fs.path("plain")).empty());

  const std::string b = fs.path("b");
  r = WithLib({kCp, "--reflink=always", a, b});
  ExpectQuietSuccess(r);
  REQUIRE_SAME(ReadFile(b), data);
  const uint64_t blocks = (data.size() + kBlock - 1) / kBlock;
  CHECK(SameBlocks(b, 0, a, 0, blocks));
  for (const auto& [fb, m] : Blocks(b)) CHECK(m.refcount == 2);
  CHECK(SharedBytes(a) == blocks * kBlock);
  // The copy took no space (a real one would take 257 blocks).
  const uint64_t free1 = FreeBlocks(fs);
  CHECK(free1 + 4 >= free0);
  CHECK(free1 <= free0 + 4);

  // Writing either copy leaves the other as it was.
  const std::string into_b = "written into b";
  const std::string into_a = "written into a";
  {
    Fd fd(b, O_WRONLY);
    PwriteExact(fd.get(), into_b, 5 * kBlock + 7);
  }
  {
    Fd fd(a, O_WRONLY);
    PwriteExact(fd.get(), into_a, 100 * kBlock + 1);
  }
  REQUIRE_SAME(ReadFile(a), Replaced(data, 100 * kBlock + 1, into_a));
  REQUIRE_SAME(ReadFile(b), Replaced(data, 5 * kBlock + 7, into_b));
  auto ma = Blocks(a), mb = Blocks(b);
  CHECK(ma[5].pool != mb[5].pool);
  CHECK(mb[5].refcount == 1);
  CHECK(ma[100].pool != mb[100].pool);
  CHECK(ma[100].refcount == 1);
  CHECK(ma[6] == mb[6]);
  CHECK(ma[6].refcount == 2);
  fs.Check();
}

// ---------------------------------------------------------------------------
// xfs_io and filefrag

TEST_CASE("xfs_io reflink, dedupe, funshare and fiemap, and filefrag, under the library",
          "[fs][reflink-tools]") {
  MountedFs fs;
  const std::string data = NonZeroBytes(2, 64 * kBlock);
  const std::string src = fs.path("src");
  WriteFile(src, data);
  auto xfs_io = [&](const std::string& cmd, const std::string& file, bool lib = true) {
    std::vector<std::string> argv = {kXfsIo, "-c", cmd, file};
    return lib ? WithLib(argv) : WithoutLib(argv);
  };

  SECTION("reflink SRC: the whole file") {
    const std::string c = fs.path("c");
    WriteFile(c, "");
    // xfs_io reports command errors on stderr, not in its exit status.
    RunResult r = xfs_io("reflink " + src, c, false);
    CHECK(Contains(r.err, "Operation not supported"));
    CHECK(StatOf(c).st_size == 0);

    r = xfs_io("reflink " + src, c);
    INFO(r.out << r.err);
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(Contains(r.out, "linked"));
    REQUIRE_SAME(ReadFile(c), data);
    CHECK(SameBlocks(c, 0, src, 0, 64));
  }

  SECTION("reflink SRC SOFF DOFF LEN: a range into the middle of a file") {
    const std::string d = fs.path("d");
    const std::string before = NonZeroBytes(3, 16 * kBlock);
    WriteFile(d, before);
    RunResult r = xfs_io("reflink " + src + " 32768 8192 65536", d, false);
    CHECK(Contains(r.err, "Operation not supported"));
    REQUIRE_SAME(ReadFile(d), before);

    r = xfs_io("reflink " + src + " 32768 8192 65536", d);
    INFO(r.out << r.err);
    CHECK(r.err.empty());
    CHECK(Contains(r.out, "linked 65536/65536 bytes at offset 8192"));
    const std::string want = Replaced(before, 8192, data.substr(32768, 65536));
    REQUIRE_SAME(ReadFile(d), want);
    CHECK(SameBlocks(d, 2, src, 8, 16));
    auto md = Blocks(d);
    CHECK(md.size() == 18);  // it grew by the two blocks past its end
    CHECK(md[0].refcount == 1);
    CHECK(md[1].refcount == 1);
    CHECK(Blocks(src)[7].refcount == 1);  // only the range is shared
    CHECK(SharedBytes(src) == 65536);
  }

  SECTION("dedupe: equal ranges share and free the duplicate; different ones are left alone") {
    const std::string e = fs.path("e");
    WriteFile(e, data);  // equal bytes in blocks of its own
    REQUIRE(SharedBytes(e) == 0);
    const uint64_t free0 = FreeBlocks(fs);
    RunResult r = xfs_io("dedupe " + src + " 0 0 262144", e, false);
    CHECK(Contains(r.err, "Operation not supported"));
    CHECK(SharedBytes(e) == 0);

    r = xfs_io("dedupe " + src + " 0 0 262144", e);
    INFO(r.out << r.err);
    CHECK(r.err.empty());
    CHECK(Contains(r.out, "deduped 262144/262144 bytes at offset 0"));
    CHECK(SameBlocks(e, 0, src, 0, 64));
    REQUIRE_SAME(ReadFile(e), data);
    CHECK(FreeBlocksSettled(fs, free0 + 64) >= free0 + 64);

    const std::string f = fs.path("f");
    const std::string other = Replaced(data, 10 * kBlock + 5, "X");
    WriteFile(f, other);
    r = xfs_io("dedupe " + src + " 0 0 262144", f);
    INFO(r.out << r.err);
    CHECK(Contains(r.err, "Extents did not match"));
    CHECK(SharedBytes(f) == 0);
    REQUIRE_SAME(ReadFile(f), other);
  }

  SECTION("funshare gives the range blocks of its own; the other copy keeps its blocks") {
    const std::string c = fs.path("c");
    REQUIRE(Run({kReflink, "clone", src, c}).status == 0);
    REQUIRE(SharedBytes(c) == 64 * kBlock);
    const auto src0 = Blocks(src);
    RunResult r = xfs_io("funshare 0 16384", c, false);
    CHECK(Contains(r.err, "Operation not supported"));
    CHECK(SharedBytes(c) == 64 * kBlock);

    r = xfs_io("funshare 0 16384", c);
    INFO(r.out << r.err);
    CHECK(r.err.empty());
    auto mc = Blocks(c);
    for (uint64_t b = 0; b < 4; ++b) {
      CHECK(mc[b].refcount == 1);
      CHECK(mc[b].pool != src0.at(b).pool);
    }
    CHECK(SameBlocks(c, 4, src, 4, 60));
    CHECK(SharedBytes(c) == 60 * kBlock);
    auto ms = Blocks(src);
    for (uint64_t b = 0; b < 64; ++b) CHECK(ms[b].pool == src0.at(b).pool);  // src kept its own
    CHECK(ms[0].refcount == 1);
    REQUIRE_SAME(ReadFile(c), data);
    REQUIRE_SAME(ReadFile(src), data);
    CHECK(StatOf(c).st_size == static_cast<off_t>(data.size()));
  }

  SECTION("fiemap -v and filefrag -v flag the shared extents") {
    // c: blocks 0-3 its own, 4-63 shared with src.
    const std::string c = fs.path("c");
    REQUIRE(Run({kReflink, "clone", src, c}).status == 0);
    REQUIRE(Run({kReflink, "unshare", c, "0", "16K"}).status == 0);
    const std::vector<daxref_extent> ext = Extents(c);
    REQUIRE(ext.size() >= 2);

    RunResult r = xfs_io("fiemap -v", c, false);
    CHECK(Contains(r.err, "Operation not supported"));

    r = xfs_io("fiemap -v", c);
    INFO(r.out << r.err);
    CHECK(r.err.empty());
    // "   0: [0..31]:   4112..4143   32   0x0": 512-byte units, hex flags.
    const std::regex line(
        R"(^\s*(\d+): \[(\d+)\.\.(\d+)\]:\s+(\d+)\.\.(\d+)\s+(\d+)\s+0x([0-9a-f]+)\s*$)");
    uint64_t shared_sectors = 0, last_flags = 0, first_physical = ~uint64_t{0};
    size_t n = 0;
    for (const std::string& l : Lines(r.out)) {
      std::smatch m;
      if (!std::regex_match(l, m, line)) continue;
      const uint64_t flags = std::stoull(m[7].str(), nullptr, 16);
      if (n++ == 0) first_physical = std::stoull(m[4].str());
      if (flags & 0x2000) shared_sectors += std::stoull(m[6].str());  // FIEMAP_EXTENT_SHARED
      last_flags = flags;
    }
    CHECK(n == ext.size());
    CHECK(shared_sectors * 512 == 60 * kBlock);
    CHECK((last_flags & 0x1) != 0);  // FIEMAP_EXTENT_LAST
    CHECK(first_physical * 512 == ext[0].physical);

    // filefrag falls back to FIBMAP without the library, and shows nothing shared.
    r = WithoutLib({kFilefrag, "-v", c});
    CHECK(!Contains(r.out, "shared"));
    r = WithLib({kFilefrag, "-v", c});
    INFO(r.out << r.err);
    CHECK(r.status == 0);
    size_t shared_lines = 0, last_lines = 0;
    for (const std::string& l : Lines(r.out)) {
      shared_lines += Contains(l, "shared");
      last_lines += Contains(l, "last");
    }
    size_t shared_extents = 0;
    for (const daxref_extent& e : ext) shared_extents += (e.flags & DAXREF_EXTENT_SHARED) != 0;
    CHECK(shared_lines == shared_extents);
    CHECK(last_lines == 1);
  }
  fs.Check();
}

// ---------------------------------------------------------------------------
// duperemove

TEST_CASE("duperemove -d with DAXREF_REFLINK_STATFS=xfs shares identical files",
          "[fs][reflink-tools]") {
  if (access(kDuperemove.c_str(), X_OK) != 0) {
    WARN("duperemove is not installed (scripts/install-deps.sh installs it): skipped");
    return;
  }
  MountedFs fs;
  const std::string dir = fs.path("backups");
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  const std::string data = NonZeroBytes(4, 128 * kBlock);  // 4 of duperemove's 128 KiB blocks
  const std::string other = NonZeroBytes(5, 32 * kBlock);
  const std::vector<std::string> copies = {dir + "/x1", dir + "/x2", dir + "/x3"};
  for (const std::string& p : copies) WriteFile(p, data);  // each in blocks of its own
  WriteFile(dir + "/other", other);
  for (const std::string& p : copies) REQUIRE(SharedBytes(p) == 0);
  const uint64_t free0 = FreeBlocks(fs);

  // Without DAXREF_REFLINK_STATFS this duperemove refuses anything but btrfs and XFS.
  RunResult r = RunWithEnv({kDuperemove, "-dr", dir}, LibEnv());
  CHECK(Contains(r.out + r.err, "Can only dedupe files on btrfs or xfs"));
  for (const std::string& p : copies) CHECK(SharedBytes(p) == 0);

  r = RunWithEnv({kDuperemove, "-dr", dir}, LibEnv({"DAXREF_REFLINK_STATFS=xfs"}));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  for (const std::string& p : copies) {
    INFO(p);
    REQUIRE_SAME(ReadFile(p), data);
    CHECK(SharedBytes(p) == data.size());
  }
  CHECK(SameBlocks(copies[1], 0, copies[0], 0, 128, 3));
  CHECK(SameBlocks(copies[2], 0, copies[0], 0, 128, 3));
  CHECK(SharedBytes(dir + "/other") == 0);
  REQUIRE_SAME(ReadFile(dir + "/other"), other);
  // Two of the three copies' blocks came back.
  CHECK(FreeBlocksSettled(fs, free0 + 256) >= free0 + 256);
  fs.Check();
}

// ---------------------------------------------------------------------------
// the library's error contract

TEST_CASE("the library keeps the kernel's errors and adds the daemon's, as libdaxref-reflink(7)",
          "[fs][reflink-tools]") {
  MountedFs fs;
  MountedFs other;
  TempDir shm("/dev/shm");  // tmpfs
  const std::string data = NonZeroBytes(6, 5 * kBlock + 100);
  const std::string src = fs.path("src"), dst = fs.path("dst"), dir = fs.path("dir");
  WriteFile(src, data);
  WriteFile(dst, "");
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  const std::string other_src = other.path("src"), other_dst = other.path("dst");
  WriteFile(other_src, data);
  WriteFile(other_dst, "");
  const std::string tmp_src = shm.path() + "/src", tmp_dst = shm.path() + "/dst";
  WriteFile(tmp_src, data);
  WriteFile(tmp_dst, "");

  SECTION("what works: errno is left alone on success, and without the library it fails") {
    CHECK(Probe({"clone", dst, src}, false) == "rc=-1 errno=EOPNOTSUPP");
    CHECK(Extents(dst).empty());
    CHECK(Probe({"clone", dst, src}) == "rc=0 errno=- errno_kept=1");
    REQUIRE_SAME(ReadFile(dst), data);
    CHECK(SameBlocks(dst, 0, src, 0, 6));
    // FICLONERANGE to the source's end: the partial last block too.
    const std::string r = fs.path("r");
    WriteFile(r, "");
    CHECK(Probe({"clone-range", r, src, "4096", "0", "8192"}) == "rc=0 errno=- errno_kept=1");
    REQUIRE_SAME(ReadFile(r), std::string(8192, '\0') + data.substr(4096));
    CHECK(SameBlocks(r, 2, src, 1, 5));
  }

  SECTION("misaligned FICLONERANGE is EINVAL and changes nothing") {
    WriteFile(dst, NonZeroBytes(22, 3 * kBlock));
    const FileState dst0 = StateOf(dst), src0 = StateOf(src);
    CHECK(Probe({"clone-range", dst, src, "100", "4096", "0"}) == "rc=-1 errno=EINVAL");
    CHECK(Probe({"clone-range", dst, src, "0", "4096", "100"}) == "rc=-1 errno=EINVAL");
    CHECK(Probe({"clone-range", dst, src, "0", "5000", "0"}) == "rc=-1 errno=EINVAL");
    // A length past the source's end of file.
    CHECK(Probe({"clone-range", dst, src, "16384", "8192", "0"}) == "rc=-1 errno=EINVAL");
    CHECK(StateOf(dst) == dst0);
    CHECK(StateOf(src) == src0);
  }

  SECTION("the kernel's own checks come first: EXDEV, EBADF, EISDIR, with or without the library") {
    const FileState other0 = StateOf(other_dst), dst0 = StateOf(dst);
    struct Case {
      std::vector<std::string> args;
      std::string want;
    };
    const std::vector<Case> cases = {
        {{"clone", tmp_dst, src}, "rc=-1 errno=EXDEV"},    // daxref -> tmpfs
        {{"clone", dst, tmp_src}, "rc=-1 errno=EXDEV"},    // tmpfs -> daxref
        {{"clone", other_dst, src}, "rc=-1 errno=EXDEV"},  // daxref A -> daxref B
        {{"clone-range", other_dst, src, "0", "4096", "0"}, "rc=-1 errno=EXDEV"},
        {{"--dest-mode=r", "clone", dst, src}, "rc=-1 errno=EBADF"},  // dest O_RDONLY
        {{"--dest-mode=a", "clone", dst, src}, "rc=-1 errno=EBADF"},  // dest O_APPEND
        {{"--dest-mode=r", "clone", dir, src}, "rc=-1 errno=EISDIR"},
        {{"--dest-mode=r", "clone-range", dir, src, "0", "4096", "0"}, "rc=-1 errno=EISDIR"},
        {{"clone", dst, dir}, "rc=-1 errno=EISDIR"},
        // Not daxref at all: the kernel's answer stands under the library.
        {{"clone", tmp_dst, tmp_src}, "rc=-1 errno=EOPNOTSUPP"},
        {{"fallocate", tmp_dst, std::to_string(FALLOC_FL_UNSHARE_RANGE), "0", "4096"},
         "rc=-1 errno=EOPNOTSUPP"},
        {{"--dest-mode=r", "fallocate", dst, std::to_string(FALLOC_FL_UNSHARE_RANGE), "0", "4096"},
         "rc=-1 errno=EBADF"},
    };
    for (const Case& c : cases) {
      std::string cmd;
      for (const auto& a : c.args) cmd += a + " ";
      INFO(cmd);
      CHECK(Probe(c.args) == c.want);
      CHECK(Probe(c.args, false) == c.want);
    }
    CHECK(StateOf(other_dst) == other0);
    CHECK(StateOf(dst) == dst0);
    CHECK(ReadFile(tmp_dst).empty());
  }

  SECTION("FIDEDUPERANGE: a status per destination, as the kernel fills them in") {
    const std::string same = fs.path("same"), differs = fs.path("differs");
    WriteFile(same, data);
    WriteFile(differs, Replaced(data, 100, "Z"));
    const std::string w = "--dest-mode=r";
    CHECK(Probe({w, "dedupe", src, "0", "8192", same, "0", differs, "0", tmp_dst, "0", dir, "0",
                 same, "100"}) ==
          "rc=0 errno=- errno_kept=1 [SAME 8192] [DIFFERS 0] [EXDEV 0] [EISDIR 0] [EINVAL 0]");
    CHECK(SameBlocks(same, 0, src, 0, 2));
    CHECK(SharedBytes(differs) == 0);
    // Misaligned source offset: this destination's EINVAL, not the call's.
    CHECK(Probe({w, "dedupe", src, "100", "4096", differs, "0"}) ==
          "rc=0 errno=- errno_kept=1 [EINVAL 0]");
    // Past the source's end: the whole call fails.
    CHECK(Probe({w, "dedupe", src, "0", std::to_string(data.size() + 1), same, "0"}) ==
          "rc=-1 errno=EINVAL");
    // Without the library nothing gets that far.
    CHECK(Probe({w, "dedupe", src, "0", "4096", differs, "0"}, false) == "rc=-1 errno=EOPNOTSUPP");
  }

  SECTION("fallocate UNSHARE_RANGE: unshares; grows the file unless KEEP_SIZE, as on XFS") {
    REQUIRE(Probe({"clone", dst, src}) == "rc=0 errno=- errno_kept=1");
    const std::string unshare = std::to_string(FALLOC_FL_UNSHARE_RANGE);
    const std::string keep = std::to_string(FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_KEEP_SIZE);
    CHECK(Probe({"fallocate", dst, unshare, "0", "4096"}, false) == "rc=-1 errno=EOPNOTSUPP");
    CHECK(Blocks(dst)[0].refcount == 2);
    CHECK(Probe({"fallocate", dst, unshare, "0", "4096"}) == "rc=0 errno=- errno_kept=1");
    CHECK(Blocks(dst)[0].refcount == 1);
    CHECK(Blocks(dst)[1].refcount == 2);
    CHECK(Probe({"fallocate", dst, keep, "0", "1048576"}) == "rc=0 errno=- errno_kept=1");
    CHECK(StatOf(dst).st_size == static_cast<off_t>(data.size()));
    CHECK(SharedBytes(dst) == 0);
    CHECK(Probe({"fallocate", dst, unshare, "0", "1048576"}) == "rc=0 errno=- errno_kept=1");
    CHECK(StatOf(dst).st_size == 1048576);
    REQUIRE_SAME(ReadFile(dst), data + std::string(1048576 - data.size(), '\0'));
    REQUIRE_SAME(ReadFile(src), data);
  }

  SECTION("pages dirtied through a shared mapping are written back before a clone or dedupe") {
    const std::string s16 = NonZeroBytes(20, 16 * kBlock), d16 = NonZeroBytes(21, 16 * kBlock);
    const std::string a = fs.path("a"), b = fs.path("b"), c = fs.path("c"), e = fs.path("e");
    for (const std::string& p : {a, b}) WriteFile(p, s16);
    for (const std::string& p : {c, e}) WriteFile(p, d16);
    const std::string m200(200, 'M');
    // A dirty page inside the destination's range: the clone's bytes win.
    CHECK(Probe({"--dirty=" + c + ",20580,200", "clone-range", c, a, "0", "32768", "8192"}) ==
          "rc=0 errno=- errno_kept=1");
    const std::string want_c = Replaced(d16, 8192, s16.substr(0, 32768));
    // A dirty page inside the source's range: the clone has what was stored there.
    CHECK(Probe({"--dirty=" + b + ",20580,200", "clone-range", e, b, "0", "32768", "8192"}) ==
          "rc=0 errno=- errno_kept=1");
    const std::string want_b = Replaced(s16, 20580, m200);
    const std::string want_e = Replaced(d16, 8192, want_b.substr(0, 32768));
    // A dedupe compares what was stored: a now differs from b.
    CHECK(Probe({"--dirty=" + a + ",100,10", "dedupe", b, "0", "16384", a, "0"}) ==
          "rc=0 errno=- errno_kept=1 [DIFFERS 0]");
    const std::string want_a = Replaced(s16, 100, std::string(10, 'M'));
    for (int pass = 0; pass < 2; ++pass) {
      INFO((pass == 0 ? "before" : "after") << " a remount");
      REQUIRE_SAME(ReadFile(c), want_c);
      REQUIRE_SAME(ReadFile(b), want_b);
      REQUIRE_SAME(ReadFile(e), want_e);
      REQUIRE_SAME(ReadFile(a), want_a);
      if (pass == 0) fs.Remount();
    }
    CHECK(SameBlocks(c, 3, a, 1, 7));  // a's block 0 got its own copy when it was written
    CHECK(SameBlocks(e, 2, b, 0, 8));
  }

  SECTION("programs that make none of these calls see no difference") {
    // Plain fallocate modes go to the daemon as before.
    const std::string f = fs.path("f");
    WriteFile(f, data);
    CHECK(Probe({"fallocate", f, "0", "0", "65536"}) == "rc=0 errno=- errno_kept=1");
    CHECK(StatOf(f).st_size == 65536);
    CHECK(Probe({"fallocate", f, std::to_string(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE), "0",
                 "4096"}) == "rc=0 errno=- errno_kept=1");
    CHECK(Blocks(f).count(0) == 0);
    // cat and dd read and write as they do without it.
    RunResult r = WithLib({"/usr/bin/cat", src});
    CHECK(r.status == 0);
    REQUIRE_SAME(r.out, data);
    r = WithLib({"/usr/bin/dd", "if=" + src, "of=" + fs.path("dd"), "bs=4096", "status=none"});
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    REQUIRE_SAME(ReadFile(fs.path("dd")), data);
    CHECK(SharedBytes(fs.path("dd")) == 0);  // dd writes; it does not clone
    r = WithLib({"/usr/bin/dd", "if=" + src, "bs=1000", "skip=3", "count=2", "status=none"});
    CHECK(r.out == data.substr(3000, 2000));
  }
  other.Check();
  fs.Check();
}

TEST_CASE("DAXREF_REFLINK_STATFS=xfs shows daxref files, and only those, as XFS",
          "[fs][reflink-tools]") {
  MountedFs fs;
  TempDir shm("/dev/shm");
  WriteFile(fs.path("f"), "x");
  const std::string fuse = "65735546", xfs = "58465342", tmpfs = "1021994";  // f_type, hex
  auto type = [&](const std::vector<std::string>& env, const std::string& path) {
    RunResult r = RunWithEnv({"/usr/bin/stat", "-f", "-c", "%t", path}, env);
    INFO(r.err);
    CHECK(r.status == 0);
    return r.out.empty() ? r.out : r.out.substr(0, r.out.size() - 1);
  };
  CHECK(type(Env(), fs.path("f")) == fuse);
  CHECK(type(LibEnv(), fs.path("f")) == fuse);  // not without the variable
  CHECK(type(Env({"DAXREF_REFLINK_STATFS=xfs"}), fs.path("f")) == fuse);  // nor without the library
  CHECK(type(LibEnv({"DAXREF_REFLINK_STATFS=XFS"}), fs.path("f")) == fuse);
  const std::vector<std::string> env = LibEnv({"DAXREF_REFLINK_STATFS=xfs"});
  CHECK(type(env, fs.path("f")) == xfs);
  CHECK(type(env, fs.mnt()) == xfs);
  CHECK(type(env, shm.path()) == tmpfs);
}

TEST_CASE("the library exports only its seven functions and needs only the C library",
          "[fs][reflink-tools]") {
  if (access("/usr/bin/nm", X_OK) != 0 || access("/usr/bin/readelf", X_OK) != 0) {
    WARN("nm or readelf (binutils) is not installed: skipped");
    return;
  }
  RunResult r = Run({"/usr/bin/nm", "-D", "--defined-only", kReflinkLib});
  REQUIRE(r.status == 0);
  std::vector<std::string> names;
  for (const std::string& l : Lines(r.out)) {
    std::istringstream in(l);
    std::string addr, kind, name;
    in >> addr >> kind >> name;
    names.push_back(kind + " " + name);
  }
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"T fallocate", "T fallocate64", "T fstatfs",
                                          "T fstatfs64", "T ioctl", "T statfs", "T statfs64"});
  r = Run({"/usr/bin/readelf", "-d", kReflinkLib});
  REQUIRE(r.status == 0);
  std::vector<std::string> needed;
  for (const std::string& l : Lines(r.out))
    if (Contains(l, "(NEEDED)")) needed.push_back(l.substr(l.find('[')));
  CHECK(needed == std::vector<std::string>{"[libc.so.6]"});
}

// ---------------------------------------------------------------------------
// daxref-reflink

TEST_CASE("daxref-reflink clone, clone-range, dedupe and unshare", "[fs][reflink-tools]") {
  MountedFs fs;
  umask(022);
  const std::string data = NonZeroBytes(7, 32 * kBlock + 10);
  const std::string src = fs.path("src");
  WriteFile(src, data);
  REQUIRE(chmod(src.c_str(), 0666) == 0);
  const uint64_t blocks = 33;

  // clone creates DEST with SRC's bits less the umask.
  const std::string c = fs.path("c");
  ExpectQuietSuccess(Run({kReflink, "clone", src, c}));
  REQUIRE_SAME(ReadFile(c), data);
  CHECK((StatOf(c).st_mode & 07777) == 0644);
  CHECK(SameBlocks(c, 0, src, 0, blocks));
  // ... or replaces what DEST held.
  const std::string old = fs.path("old");
  WriteFile(old, NonZeroBytes(8, 40 * kBlock));
  ExpectQuietSuccess(Run({kReflink, "clone", src, old}));
  REQUIRE_SAME(ReadFile(old), data);
  CHECK(SameBlocks(old, 0, src, 0, blocks, 3));

  // clone-range, with size suffixes: 16 KiB of src at 8 KiB go to 1 MiB.
  const std::string r = fs.path("r");
  const std::string r0 = NonZeroBytes(9, 4 * kBlock);
  WriteFile(r, r0);
  ExpectQuietSuccess(Run({kReflink, "clone-range", src, "8K", "16KiB", r, "1M"}));
  std::string want = r0 + std::string(kMiB - r0.size(), '\0') + data.substr(8192, 16384);
  REQUIRE_SAME(ReadFile(r), want);
  CHECK(SameBlocks(r, 256, src, 2, 4, 3));
  CHECK(Blocks(r)[0].refcount == 1);

  // dedupe with several destinations: lines in order, exit 3 for a difference.
  const std::string e1 = fs.path("e1"), e2 = fs.path("e2"), d1 = fs.path("d1");
  WriteFile(e1, data);
  WriteFile(e2, data);
  const std::string differing = Replaced(data, 20 * kBlock, "!");
  WriteFile(d1, differing);
  RunResult res = Run({kReflink, "dedupe", e1, "0", "0", e2, "0", d1, "0"});
  {
    INFO(res.out << res.err);
    CHECK(res.status == 3);
    CHECK(res.err.empty());
    CHECK(Lines(res.out) ==
          std::vector<std::string>{e2 + ": " + std::to_string(data.size()) + " bytes deduped",
                                   d1 + ": contents differ"});
  }
  CHECK(SameBlocks(e2, 0, e1, 0, blocks));
  CHECK(SharedBytes(d1) == 0);
  REQUIRE_SAME(ReadFile(d1), differing);
  REQUIRE_SAME(ReadFile(e2), data);

  // --json, with one destination that fails: exit 1.
  TempDir shm("/dev/shm");
  const std::string tmp = shm.path() + "/t";
  WriteFile(tmp, data);
  res = Run({kReflink, "--json", "dedupe", src, "0", "0", e1, "0", d1, "0", tmp, "0"});
  {
    INFO(res.out << res.err);
    CHECK(res.status == 1);
    ExpectValidJson(res.out);
    CHECK(JsonValues(res.out, "src") == std::vector<std::string>{src});
    CHECK(JsonNumbers(res.out, "length") == std::vector<uint64_t>{data.size()});  // 0 resolved
    CHECK(JsonValues(res.out, "dest") == std::vector<std::string>{e1, d1, tmp});
    CHECK(JsonValues(res.out, "status") == std::vector<std::string>{"deduped", "differs", "error"});
    CHECK(JsonNumbers(res.out, "bytes_deduped") == std::vector<uint64_t>{data.size(), 0, 0});
    CHECK(JsonNumbers(res.out, "errno") == std::vector<uint64_t>{EXDEV});
  }
  CHECK(SameBlocks(e1, 0, src, 0, blocks));
  CHECK(SharedBytes(d1) == 0);
  // All equal: exit 0.
  res = Run({kReflink, "dedupe", src, "0", "0", e1, "0", e2, "0"});
  CHECK(res.status == 0);
  CHECK(Lines(res.out).size() == 2);
  CHECK(SameBlocks(e2, 0, src, 0, blocks));

  // unshare a range, then all of it; the size stays, the others keep sharing.
  const auto src_blocks = Blocks(src);
  ExpectQuietSuccess(Run({kReflink, "unshare", c, "4096", "8K"}));
  auto mc = Blocks(c);
  CHECK(mc[0].pool == src_blocks.at(0).pool);
  CHECK(mc[1].refcount == 1);
  CHECK(mc[2].refcount == 1);
  CHECK(mc[3].pool == src_blocks.at(3).pool);
  ExpectQuietSuccess(Run({kReflink, "unshare", c}));
  CHECK(SharedBytes(c) == 0);
  CHECK(StatOf(c).st_size == static_cast<off_t>(data.size()));
  REQUIRE_SAME(ReadFile(c), data);
  CHECK(SameBlocks(e1, 0, src, 0, blocks));
  fs.Check();
}

TEST_CASE("daxref-reflink errors: one line, the documented status, nothing changed",
          "[fs][reflink-tools]") {
  MountedFs fs;
  MountedFs other;
  TempDir shm("/dev/shm");
  const std::string prog = "daxref-reflink";
  const std::string data = NonZeroBytes(10, 8 * kBlock + 1);
  const std::string src = fs.path("src"), dst = fs.path("dst");
  WriteFile(src, data);
  WriteFile(dst, NonZeroBytes(11, 3 * kBlock));
  const std::string tmp = shm.path() + "/plain";
  WriteFile(tmp, data);
  const std::string far = other.path("far");
  WriteFile(far, "on another mount");
  const FileState src0 = StateOf(src), dst0 = StateOf(dst);

  // SRC not on daxref: DEST is not created.
  ExpectOneLineFailure(Run({kReflink, "clone", tmp, fs.path("new1")}), prog,
                       tmp + ": not on a daxref filesystem");
  CHECK(!Exists(fs.path("new1")));
  // A missing SRC.
  ExpectOneLineFailure(Run({kReflink, "clone", fs.path("missing"), fs.path("new2")}), prog,
                       "No such file or directory");
  CHECK(!Exists(fs.path("new2")));
  // DEST on another mount is checked before it is emptied.
  ExpectOneLineFailure(Run({kReflink, "clone", src, far}), prog, "Invalid cross-device link");
  CHECK(ReadFile(far) == "on another mount");
  // SRC itself.
  ExpectOneLineFailure(Run({kReflink, "clone", src, src}), prog, "are the same file");
  // Misaligned.
  ExpectOneLineFailure(Run({kReflink, "clone-range", src, "100", "4096", dst, "0"}), prog,
                       "Invalid argument");
  ExpectOneLineFailure(Run({kReflink, "clone-range", src, "0", "5000", dst, "0"}), prog,
                       "Invalid argument");
  ExpectOneLineFailure(Run({kReflink, "clone-range", src, "0", "4096", tmp, "0"}), prog,
                       "Invalid cross-device link");
  ExpectOneLineFailure(Run({kReflink, "clone-range", src, "0", "4096", fs.path("nope"), "0"}), prog,
                       "No such file or directory");
  CHECK(!Exists(fs.path("nope")));
  // dedupe: a range past SRC's end fails the whole request.
  ExpectOneLineFailure(Run({kReflink, "dedupe", src, "0", "1M", dst, "0"}), prog,
                       "Invalid argument");
  ExpectOneLineFailure(Run({kReflink, "unshare", tmp}), prog, "not on a daxref filesystem");
  ExpectOneLineFailure(Run({kReflink, "unshare", fs.path("missing")}), prog,
                       "No such file or directory");
  CHECK(StateOf(src) == src0);
  CHECK(StateOf(dst) == dst0);
  CHECK(ReadFile(tmp) == data);

  // Usage errors: exit 2.
  ExpectUsageError(Run({kReflink}), prog, "missing COMMAND");
  ExpectUsageError(Run({kReflink, "frobnicate", src}), prog, "unknown command 'frobnicate'");
  ExpectUsageError(Run({kReflink, "clone", src}), prog, "clone SRC DEST");
  ExpectUsageError(Run({kReflink, "dedupe", src, "0", "0", dst}), prog, "dedupe SRC");
  ExpectUsageError(Run({kReflink, "clone-range", src, "12Q", "0", dst, "0"}), prog, "SRC_OFFSET");
  ExpectUsageError(Run({kReflink, "--json", "clone", src, dst}), prog, "--json");
  ExpectUsageError(Run({kReflink, "--bogus"}), prog, "--bogus");
  CHECK(StateOf(dst) == dst0);

  for (const char* opt : {"--help", "-h"}) {
    RunResult r = Run({kReflink, opt});
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(r.out.rfind("Usage: daxref-reflink", 0) == 0);
  }
  for (const char* opt : {"--version", "-V"}) {
    RunResult r = Run({kReflink, opt});
    CHECK(r.status == 0);
    CHECK(r.out == std::string("daxref-reflink ") + DAXREF_VERSION + "\n");
  }
  other.Check();
  fs.Check();
}

// ---------------------------------------------------------------------------
// daxref-map

TEST_CASE("daxref-map extents: pieces, holes, sharing, in text and JSON", "[fs][reflink-tools]") {
  MountedFs fs;
  // f: blocks 0-3 data (0-1 shared with g), 4-7 a hole, 8-9 data.
  const std::string f = fs.path("f"), g = fs.path("g");
  const std::string head = NonZeroBytes(12, 4 * kBlock), tail = NonZeroBytes(13, 2 * kBlock);
  {
    Fd fd(f, O_WRONLY | O_CREAT | O_TRUNC);
    PwriteExact(fd.get(), head, 0);
    PwriteExact(fd.get(), tail, 8 * kBlock);
  }
  WriteFile(g, "");
  ExpectQuietSuccess(Run({kReflink, "clone-range", f, "0", "8K", g, "0"}));
  const std::vector<daxref_extent> ext = Extents(f);
  REQUIRE(ext.size() == 3);

  RunResult r = Run({kMap, "extents", f});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  std::vector<std::string> lines = Lines(r.out);
  REQUIRE(lines.size() == 7);  // path, header, 3 extents and a hole, summary
  CHECK(lines[0] == f + ":");
  auto fields = [](const std::string& l) {
    std::vector<std::string> w;
    std::istringstream in(l);
    for (std::string s; in >> s;) w.push_back(s);
    return w;
  };
  auto range = [](uint64_t first, uint64_t len) {
    return "[" + std::to_string(first) + ".." + std::to_string(first + len - 1) + "]";
  };
  CHECK(fields(lines[2]) == std::vector<std::string>{"0:", "[0..8191]",
                                                     range(ext[0].physical, 8192), "8192", "2",
                                                     "shared"});
  CHECK(fields(lines[3]) ==
        std::vector<std::string>{"1:", "[8192..16383]", range(ext[1].physical, 8192), "8192", "1"});
  CHECK(fields(lines[4]) == std::vector<std::string>{"2:", "[16384..32767]", "hole", "16384"});
  CHECK(fields(lines[5]) == std::vector<std::string>{"3:", "[32768..40959]",
                                                     range(ext[2].physical, 8192), "8192", "1",
                                                     "last"});
  CHECK(lines[6] == "3 extents, 24576 bytes, 8192 bytes shared");

  r = Run({kMap, "--json", "extents", f});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  ExpectValidJson(r.out);
  CHECK(JsonValues(r.out, "file") == std::vector<std::string>{f});
  CHECK(JsonValues(r.out, "type") == std::vector<std::string>{"data", "data", "hole", "data"});
  CHECK(JsonNumbers(r.out, "logical") == std::vector<uint64_t>{0, 8192, 16384, 32768});
  CHECK(JsonNumbers(r.out, "physical") ==
        std::vector<uint64_t>{ext[0].physical, ext[1].physical, ext[2].physical});
  CHECK(JsonNumbers(r.out, "refcount") == std::vector<uint64_t>{2, 1, 1});
  CHECK(JsonValues(r.out, "flags") == std::vector<std::string>{"[\"shared\"]", "[]", "[\"last\"]"});
  CHECK(JsonNumbers(r.out, "size") == std::vector<uint64_t>{40960});
  CHECK(JsonNumbers(r.out, "extent_count") == std::vector<uint64_t>{3});
  CHECK(JsonNumbers(r.out, "bytes") == std::vector<uint64_t>{24576});
  CHECK(JsonNumbers(r.out, "shared_bytes") == std::vector<uint64_t>{8192});

  // An empty file, a directory, a file elsewhere, usage.
  WriteFile(fs.path("empty"), "");
  r = Run({kMap, "extents", fs.path("empty")});
  CHECK(r.status == 0);
  CHECK(Lines(r.out).back() == "0 extents, 0 bytes, 0 bytes shared");
  ExpectOneLineFailure(Run({kMap, "extents", fs.mnt()}), "daxref-map", "Is a directory");
  TempDir shm("/dev/shm");
  WriteFile(shm.path() + "/plain", "elsewhere");
  ExpectOneLineFailure(Run({kMap, "extents", shm.path() + "/plain"}), "daxref-map",
                       "not on a daxref filesystem");
  ExpectOneLineFailure(Run({kMap, "extents", fs.path("missing")}), "daxref-map",
                       "No such file or directory");
  ExpectUsageError(Run({kMap, "--count", "owners", f, "0"}), "daxref-map", "extents only");
  ExpectUsageError(Run({kMap, "extents"}), "daxref-map", "extents [-r OFFSET LENGTH] [-c] FILE");
  ExpectUsageError(Run({kMap, "owners", f, "0", "0"}), "daxref-map", "LENGTH");
  ExpectUsageError(Run({kMap, "frobnicate"}), "daxref-map", "unknown command");
  for (const char* opt : {"--help", "-h"}) {
    r = Run({kMap, opt});
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(r.out.rfind("Usage: daxref-map", 0) == 0);
  }
  for (const char* opt : {"--version", "-V"}) {
    r = Run({kMap, opt});
    CHECK(r.status == 0);
    CHECK(r.out == std::string("daxref-map ") + DAXREF_VERSION + "\n");
  }
  fs.Check();
}

TEST_CASE("daxref-map owners: every file and every path of a shared range; admin only",
          "[fs][reflink-tools]") {
  MountedFs fs(AllowOther());
  REQUIRE(mkdir(fs.path("sub").c_str(), 0755) == 0);
  const std::string p1 = fs.path("p1"), p2 = fs.path("p2"), p3 = fs.path("sub/p3"),
                    p3link = fs.path("p3link");
  WriteFile(p1, NonZeroBytes(14, 10 * kBlock));
  REQUIRE(chmod(p1.c_str(), 0644) == 0);
  ExpectQuietSuccess(Run({kReflink, "clone", p1, p2}));
  ExpectQuietSuccess(Run({kReflink, "clone", p1, p3}));
  REQUIRE(link(p3.c_str(), p3link.c_str()) == 0);
  const std::vector<daxref_extent> ext = Extents(p1);
  REQUIRE(ext.size() == 1);
  const uint64_t phys = ext[0].physical;
  const uint64_t ino1 = StatOf(p1).st_ino, ino2 = StatOf(p2).st_ino, ino3 = StatOf(p3).st_ino;

  // One block in the middle of the range: every owner of it, clipped to it
  // (the answer daxref-poison resolve gives, in the same form).
  const uint64_t pb = phys / kBlock + 4;
  RunResult r = Run({kMap, "owners", fs.mnt(), std::to_string(phys + 4 * kBlock), "4096"});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  std::vector<std::string> lines = Lines(r.out);
  REQUIRE(lines.size() == 6);  // header, 3 owners, the second path of p3, summary
  CHECK(lines[0] ==
        "owners of blocks " + std::to_string(pb) + ".." + std::to_string(pb) + " (1 block):");
  CHECK(lines.back() == "3 owners");
  std::map<uint64_t, std::vector<std::string>> paths;  // ino -> paths, from the text
  uint64_t last_ino = 0;
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    std::vector<std::string> w;
    std::istringstream in(lines[i]);
    for (std::string s; in >> s;) w.push_back(s);
    if (w.size() == 2 && w[0] == "also") {  // a further path of the previous inode
      paths[last_ino].push_back(w[1]);
      continue;
    }
    // inode N at bytes 16384..20479 (block P): PATH
    REQUIRE(w.size() == 8);
    CHECK(w[0] == "inode");
    CHECK(w[4] == std::to_string(4 * kBlock) + ".." + std::to_string(5 * kBlock - 1));
    CHECK(w[6] == std::to_string(pb) + "):");
    last_ino = std::stoull(w[1]);
    paths[last_ino].push_back(w[7]);
  }
  CHECK(paths[ino1] == std::vector<std::string>{"/p1"});
  CHECK(paths[ino2] == std::vector<std::string>{"/p2"});
  std::sort(paths[ino3].begin(), paths[ino3].end());
  CHECK(paths[ino3] == std::vector<std::string>{"/p3link", "/sub/p3"});
  CHECK(paths.size() == 3);

  // The same in JSON, from a file on the mount as PATH.
  r = Run({kMap, "--json", "owners", p2, std::to_string(phys), "4K"});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  ExpectValidJson(r.out);
  CHECK(r.out.rfind("{\"format_version\": 1, \"command\": \"owners\", \"pblock\": " +
                        std::to_string(phys / kBlock) + ", \"blocks\": 1, \"owners\": [",
                    0) == 0);
  CHECK(Contains(r.out, "\"summary\": {\"owners\": 3}}"));
  std::vector<uint64_t> inos = JsonNumbers(r.out, "ino");
  std::sort(inos.begin(), inos.end());
  std::vector<uint64_t> want_inos = {ino1, ino2, ino3};
  std::sort(want_inos.begin(), want_inos.end());
  CHECK(inos == want_inos);
  // Each inode's paths in one array (the two names of p3 in either order).
  std::vector<std::string> json_paths = JsonValues(r.out, "paths");
  for (std::string& p : json_paths)
    if (p == "[\"/sub/p3\", \"/p3link\"]") p = "[\"/p3link\", \"/sub/p3\"]";
  std::sort(json_paths.begin(), json_paths.end());
  CHECK(json_paths ==
        std::vector<std::string>{"[\"/p1\"]", "[\"/p2\"]", "[\"/p3link\", \"/sub/p3\"]"});
  CHECK(JsonNumbers(r.out, "offset") == std::vector<uint64_t>{0, 0, 0});
  CHECK(JsonNumbers(r.out, "length") == std::vector<uint64_t>{kBlock, kBlock, kBlock});
  CHECK(JsonNumbers(r.out, "pblock") ==
        std::vector<uint64_t>{phys / kBlock, phys / kBlock, phys / kBlock, phys / kBlock});

  // --blocks: the same range in 4096-byte blocks, the same answer; LENGTH
  // defaults to one block either way.
  RunResult blocks =
      Run({kMap, "--blocks", "owners", fs.mnt(), std::to_string(phys / kBlock + 4), "1"});
  CHECK(blocks.status == 0);
  CHECK(blocks.out ==
        Run({kMap, "owners", fs.mnt(), std::to_string(phys + 4 * kBlock), "4096"}).out);
  CHECK(Run({kMap, "--blocks", "owners", fs.mnt(), std::to_string(pb)}).out == blocks.out);
  CHECK(Run({kMap, "owners", fs.mnt(), std::to_string(phys + 4 * kBlock)}).out == blocks.out);

  // A file unlinked while open still owns its blocks, and has no path.
  {
    Fd keep(p2, O_RDONLY);
    REQUIRE(unlink(p2.c_str()) == 0);
    r = Run({kMap, "owners", fs.mnt(), std::to_string(phys), "1"});
    INFO(r.out);
    CHECK(Lines(r.out).back() == "3 owners");
    CHECK(Contains(r.out, "(unlinked, still open)"));
    CHECK(!Contains(r.out, "/p2"));
  }
  // A range no file uses; past the pool's end.
  r = Run({kMap, "owners", fs.mnt(), std::to_string(phys + 100 * kBlock), "4096"});
  CHECK(r.status == 0);
  CHECK(Lines(r.out).back() == "0 owners");
  ExpectOneLineFailure(Run({kMap, "owners", fs.mnt(), "1T", "4096"}), "daxref-map",
                       "past the end of the pool");

  // Not root and not the mount's owner: EPERM, exit 1, nothing on stdout.
  r = RunAsWithEnv(kAlice, kAliceGroup, {kMap, "owners", fs.mnt(), std::to_string(phys), "4096"},
                   Env());
  ExpectOneLineFailure(r, "daxref-map", "Operation not permitted");
  CHECK(Contains(r.err, "root or the mount's owner only"));
  r = RunAsWithEnv(kAlice, kAliceGroup,
                   {kMap, "--json", "owners", p1, std::to_string(phys), "4096"}, Env());
  ExpectOneLineFailure(r, "daxref-map", "Operation not permitted");
  // extents is for anyone who can open the file.
  r = RunAsWithEnv(kAlice, kAliceGroup, {kMap, "extents", p1}, Env());
  CHECK(r.status == 0);
  CHECK(Lines(r.out).back() == "1 extent, 40960 bytes, 40960 bytes shared");
  fs.Check();
}

// ---------------------------------------------------------------------------
// an unprivileged user

TEST_CASE("a user clones with cp and the library only what it can read", "[fs][reflink-tools]") {
  MountedFs fs(AllowOther());
  REQUIRE(chmod(fs.mnt().c_str(), 0777) == 0);
  const std::string secret = NonZeroBytes(15, 6 * kBlock), pub = NonZeroBytes(16, 6 * kBlock + 9);
  WriteFile(fs.path("secret"), secret);
  REQUIRE(chmod(fs.path("secret").c_str(), 0600) == 0);
  WriteFile(fs.path("public"), pub);
  REQUIRE(chmod(fs.path("public").c_str(), 0644) == 0);
  const FileState secret0 = StateOf(fs.path("secret"));

  RunResult r =
      RunAsWithEnv(kAlice, kAliceGroup,
                   {kCp, "--reflink=always", fs.path("secret"), fs.path("stolen")}, LibEnv());
  {
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(Contains(r.err, "cannot open"));
    CHECK(Contains(r.err, "Permission denied"));
  }
  CHECK(!Exists(fs.path("stolen")));
  CHECK(StateOf(fs.path("secret")) == secret0);
  // daxref-reflink is held to the same rule.
  r = RunAsWithEnv(kAlice, kAliceGroup, {kReflink, "clone", fs.path("secret"), fs.path("stolen")},
                   Env());
  ExpectOneLineFailure(r, "daxref-reflink", "Permission denied");
  CHECK(!Exists(fs.path("stolen")));

  // What she can read, she can clone into a file of her own.
  r = RunAsWithEnv(kAlice, kAliceGroup,
                   {kCp, "--reflink=always", fs.path("public"), fs.path("mine")}, LibEnv());
  ExpectQuietSuccess(r);
  CHECK(StatOf(fs.path("mine")).st_uid == kAlice);
  REQUIRE_SAME(ReadFile(fs.path("mine")), pub);
  CHECK(SameBlocks(fs.path("mine"), 0, fs.path("public"), 0, 7));

  // She may dedupe into her own read-only file (as its owner), not into root's.
  WriteFile(fs.path("hers"), pub);
  REQUIRE(chown(fs.path("hers").c_str(), kAlice, kAliceGroup) == 0);
  REQUIRE(chmod(fs.path("hers").c_str(), 0444) == 0);
  WriteFile(fs.path("roots"), pub);
  REQUIRE(chmod(fs.path("roots").c_str(), 0644) == 0);
  r = RunAsWithEnv(kAlice, kAliceGroup,
                   {kReflink, "--json", "dedupe", fs.path("public"), "0", "0", fs.path("hers"), "0",
                    fs.path("roots"), "0"},
                   Env());
  INFO(r.out << r.err);
  CHECK(r.status == 1);
  CHECK(JsonValues(r.out, "status") == std::vector<std::string>{"deduped", "error"});
  CHECK(JsonNumbers(r.out, "errno") == std::vector<uint64_t>{EPERM});
  CHECK(SameBlocks(fs.path("hers"), 0, fs.path("public"), 0, 7, 3));
  CHECK(SharedBytes(fs.path("roots")) == 0);
  REQUIRE_SAME(ReadFile(fs.path("roots")), pub);
  fs.Check();
}

// ---------------------------------------------------------------------------
// known bug: paths in error messages are not escaped

// daxref-reflink.1: dedupe prints "One line ... for each DEST"; daxref-map.8:
// control characters in paths are escaped "so that each line stays one
// line". Both tools escape paths on standard output (cli::Printable) but
// print them raw in their error messages (Fail), so a name with a newline
// splits one error over two lines.
TEST_CASE("a path with a newline stays on one line in the tools' error messages",
          "[fs][reflink-tools]") {
  MountedFs fs;
  const std::string src = fs.path("src"), odd = fs.path("odd\nname");
  WriteFile(src, NonZeroBytes(17, 2 * kBlock));
  WriteFile(odd, NonZeroBytes(17, 2 * kBlock));

  // One DEST that succeeds, one that fails (misaligned offset).
  RunResult r = Run({kReflink, "dedupe", src, "0", "4096", odd, "0", odd, "100"});
  {
    INFO(r.out << r.err);
    CHECK(r.status == 1);
    CHECK(Lines(r.out) == std::vector<std::string>{fs.path("odd\\nname") + ": 4096 bytes deduped"});
    CHECK(Lines(r.err).size() == 1);
  }
  r = Run({kMap, "extents", fs.path("no\nsuch")});
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(Lines(r.err).size() == 1);
}
