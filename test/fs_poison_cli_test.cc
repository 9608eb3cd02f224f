// daxref-poison as an administrator runs it (man/daxref-poison.8): the
// command line, and the offline mode, which works on an unmounted SOURCE
// directly. Every expectation about the filesystem is checked against the
// filesystem itself, not only against what the tool printed: `list` after
// each change, the metadata checker, and reads of a poisoned file after the
// filesystem is mounted again.
//
// The last cases use a mounted filesystem for what only the command-line
// side decides: who may use the control socket, a daemon that holds the
// pool without answering, and that the online output has the offline
// shape. The daemon's own poison handling is tested in fs_poison_test.cc.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "admin/control_protocol.h"
#include "admin/poison_service.h"
#include "meta/checker.h"
#include "meta/superblock.h"
#include "meta/volume.h"
#include "pool/pool.h"
#include "test/cli_expect.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

const std::string kPoison = DAXREF_TEST_POISON;
const std::string kProg = "daxref-poison";

constexpr uid_t kAlice = 1001;
constexpr gid_t kAliceGroup = 1001;

RunResult Poison(std::vector<std::string> args) {
  args.insert(args.begin(), kPoison);
  return Run(args);
}

// Success: status 0, nothing on stderr.
void ExpectSuccess(const RunResult& r) {
  INFO("status " << r.status << "\nstdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());
}

void ExpectFailure(const RunResult& r, const std::string& needle) {
  ExpectOneLineFailure(r, kProg, needle);
}
void ExpectUsageError(const RunResult& r, const std::string& needle) {
  daxref::test::ExpectUsageError(r, kProg, needle);
}

// A fresh filesystem made by mkfs.daxref and never mounted.
class UnmountedFs {
 public:
  explicit UnmountedFs(uint64_t size = 64 * kMiB) : dir_("/dev/shm"), source_(dir_.path() + "/fs") {
    RunResult r = Run({MkfsBin(), "-q", "--size", std::to_string(size), source_});
    INFO(r.err);
    REQUIRE(r.status == 0);
  }
  const std::string& source() const { return source_; }

  // The metadata checker finds nothing wrong (bad blocks included).
  void Check() const { CheckSource(source_); }

 private:
  TempDir dir_;
  std::string source_;
};

// Makes /f, two blocks of data, and /sparse, 1 MiB of hole; returns their
// inode numbers.
std::pair<uint64_t, uint64_t> MakeDataAndHole(const MountedFs& fs) {
  WriteFile(fs.path("f"), std::string(2 * kBlock, 'x'));
  Fd sparse(fs.path("sparse"), O_CREAT | O_WRONLY);
  REQUIRE(ftruncate(sparse.get(), 1 * kMiB) == 0);
  return {StatOf(fs.path("f")).st_ino, StatOf(fs.path("sparse")).st_ino};
}

// Sends one request to the daemon serving `source` over its control socket
// and returns the last record of the reply (`done` or `error`).
control::Record Ask(const std::string& source, const control::Record& request) {
  const std::string path = control::ControlSocketPath(source);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof(addr.sun_path));
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(control::WriteRecord(fd, request));
  control::RecordReader reader(fd);
  control::Record r, last;
  int err = 0;
  while (reader.Next(&r, &err)) last = r;
  close(fd);
  return last;
}

// `text` with each time daxref-poison list prints (human or JSON) as "T",
// for comparisons that do not depend on the clock.
std::string NoTime(const std::string& text) {
  static const std::regex human("time: [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} UTC");
  static const std::regex json("\"time\": [0-9]+");
  return std::regex_replace(std::regex_replace(text, human, "time: T"), json, "\"time\": T");
}

std::string ListOf(const std::string& fs) {
  RunResult r = Poison({"list", fs});
  ExpectSuccess(r);
  return NoTime(r.out);
}

}  // namespace

TEST_CASE("daxref-poison: --help and --version", "[poison-cli]") {
  for (const char* opt : {"--help", "-h"}) {
    RunResult r = Poison({opt});
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(r.out.rfind("Usage: " + kProg, 0) == 0);
    for (const char* command : {"inject", "list", "clear", "resolve", "pre-remove"})
      CHECK(Contains(r.out, command));
  }
  for (const char* opt : {"--version", "-V"}) {
    RunResult r = Poison({opt});
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(r.out.rfind(kProg + " ", 0) == 0);
    CHECK(Lines(r.out).size() == 1);
  }
}

TEST_CASE("daxref-poison: bad command lines are usage errors and change nothing", "[poison-cli]") {
  UnmountedFs fs;
  const std::string& src = fs.source();
  ExpectUsageError(Poison({}), "missing COMMAND");
  ExpectUsageError(Poison({"frobnicate", src}), "unknown command 'frobnicate'");
  ExpectUsageError(Poison({"--bogus", "list", src}), "unrecognized option '--bogus'");
  ExpectUsageError(Poison({"-x", "list", src}), "invalid option -- 'x'");
  // FS and the range.
  ExpectUsageError(Poison({"list"}), "missing FS");
  ExpectUsageError(Poison({"inject"}), "missing FS");
  ExpectUsageError(Poison({"clear"}), "missing FS");
  ExpectUsageError(Poison({"pre-remove"}), "missing FS");
  ExpectUsageError(Poison({"inject", src}), "missing OFFSET");
  ExpectUsageError(Poison({"resolve", src}), "missing OFFSET");
  ExpectUsageError(Poison({"list", src, "0"}), "usage: list FS");
  ExpectUsageError(Poison({"inject", src, "0", "4K", "extra"}), "usage: inject FS OFFSET [LENGTH]");
  // Numbers.
  ExpectUsageError(Poison({"inject", src, "0", "0"}), "LENGTH must be more than 0");
  ExpectUsageError(Poison({"clear", src, "0", "0"}), "LENGTH must be more than 0");
  ExpectUsageError(Poison({"inject", src, "12Q"}), "invalid OFFSET '12Q'");
  ExpectUsageError(Poison({"inject", src, "-4096"}), "invalid option");
  ExpectUsageError(Poison({"inject", src, "0", "4X"}), "invalid LENGTH '4X'");
  ExpectUsageError(Poison({"inject", src, "99999999999999999999"}), "too large");
  ExpectUsageError(Poison({"--blocks", "inject", src, "4096T"}), "OFFSET '4096T' is too large");
  ExpectUsageError(Poison({"inject", src, "17179869183G", "2G"}),
                   "OFFSET plus LENGTH is too large");
  // Options that do not go with the command.
  ExpectUsageError(Poison({"list", "--file", "/a", src}), "--file applies to inject only");
  ExpectUsageError(Poison({"inject", src, "0", "--offset", "1"}),
                   "--offset and --length go with --file");
  ExpectUsageError(Poison({"--blocks", "list", src}), "--blocks applies to");
  ExpectUsageError(Poison({"inject", src, "--file"}), "needs an argument");
  ExpectUsageError(Poison({"inject", src, "--file", "/a", "--length", "0"}),
                   "--length must be more than 0");
  ExpectUsageError(Poison({"inject", src, "extra", "--file", "/a"}), "usage: inject [FS] --file");
  // Nothing was recorded.
  CHECK(ListOf(src) == "no bad blocks\n");
}

TEST_CASE("daxref-poison: FS must be a daxref mount or SOURCE directory", "[poison-cli]") {
  TempDir plain;
  ExpectFailure(
      Poison({"list", plain.path()}),
      plain.path() + ": not a daxref filesystem (neither a daxref mount nor a SOURCE directory)");
  ExpectFailure(Poison({"inject", plain.path(), "0"}), "not a daxref filesystem");
  ExpectFailure(Poison({"list", plain.path() + "/missing"}), "No such file or directory");
  // Without FS, --file must name a file on a daxref mount.
  WriteFile(plain.path() + "/f", "data");
  ExpectFailure(Poison({"inject", "--file", plain.path() + "/f"}), "not on a daxref filesystem");
  ExpectFailure(Poison({"inject", "--file", plain.path() + "/missing"}), "no such file");
}

TEST_CASE("daxref-poison offline: inject, list, resolve and clear a free block", "[poison-cli]") {
  UnmountedFs fs;
  const std::string& src = fs.source();
  CHECK(ListOf(src) == "no bad blocks\n");

  // Block 100 (byte 400 KiB) is free on a fresh filesystem.
  RunResult r = Poison({"inject", src, "400K"});
  ExpectSuccess(r);
  std::vector<std::string> lines = Lines(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "poisoned blocks 100..100 (1 block): 1 free (retired)");
  CHECK(lines[1].rfind("0 owners, 0 processes signalled in ", 0) == 0);
  const std::string listed = ListOf(src);
  CHECK(listed ==
        "bad blocks 100..100 (1 block)  origin: injected (uid 0)  time: T\n1 bad range, 1 block, "
        "0 owners\n");
  fs.Check();

  // Again, and a range overlapping it: refused, nothing changes.
  ExpectFailure(Poison({"inject", src, "400K"}), "block 100 is already poisoned");
  ExpectFailure(Poison({"--blocks", "inject", src, "99", "3"}), "block 100 is already poisoned");
  // Byte offsets are rounded out to whole blocks: 410000 lies in block 100.
  ExpectFailure(Poison({"inject", src, "410000", "1"}), "block 100 is already poisoned");
  CHECK(ListOf(src) == listed);

  // Past the end of the pool (64 MiB: 16384 blocks).
  ExpectFailure(Poison({"inject", src, "1G"}),
                "offset 1G is past the end of the pool (64 MiB, 16384 blocks)");
  ExpectFailure(Poison({"--blocks", "inject", src, "16383", "2"}), "run past the end of the pool");
  ExpectFailure(Poison({"--blocks", "resolve", src, "16384"}), "block 16384 is past the end");
  CHECK(ListOf(src) == listed);

  // resolve changes nothing and names no owner of a retired free block.
  r = Poison({"--blocks", "resolve", src, "100"});
  ExpectSuccess(r);
  CHECK(r.out == "owners of blocks 100..100 (1 block):\n0 owners\n");

  // clear gives it back; a second clear has nothing to do.
  r = Poison({"--blocks", "clear", src, "100"});
  ExpectSuccess(r);
  CHECK(r.out == "cleared 1 block, 1 returned to free space\n");
  CHECK(ListOf(src) == "no bad blocks\n");
  ExpectFailure(Poison({"--blocks", "clear", src, "100"}), "nothing in block 100 is poisoned");
  // clear cuts a range that runs past the end of the pool.
  ExpectSuccess(Poison({"--blocks", "inject", src, "16000", "2"}));
  r = Poison({"clear", src, "0", "1T"});
  ExpectSuccess(r);
  CHECK(r.out == "cleared 2 blocks, 2 returned to free space\n");
  fs.Check();

  // pre-remove needs a daemon.
  ExpectFailure(Poison({"pre-remove", src}), "is not mounted: nothing to pre-remove");
}

TEST_CASE("daxref-poison offline: the superblock copies may be poisoned, with a note",
          "[poison-cli]") {
  UnmountedFs fs;
  RunResult r = Poison({"inject", fs.source(), "0"});
  ExpectSuccess(r);
  CHECK(Contains(r.out, "poisoned blocks 0..0 (1 block): 1 reserved (superblock)\n"));
  CHECK(Contains(r.out,
                 "note: block 0 holds the pool's superblock: the next mount will use the "
                 "backup copy (block 16383)\n"));
  CHECK(ListOf(fs.source()) ==
        "bad blocks 0..0 (1 block)  origin: injected (uid 0)  time: T\n1 bad range, 1 block, 0 "
        "owners\n");
  ExpectSuccess(Poison({"clear", fs.source(), "0"}));
  CHECK(ListOf(fs.source()) == "no bad blocks\n");
}

TEST_CASE("daxref-poison offline: --json prints one document", "[poison-cli]") {
  UnmountedFs fs;
  const std::string& src = fs.source();
  RunResult r = Poison({"--json", "--blocks", "inject", src, "200", "2"});
  ExpectSuccess(r);
  INFO(r.out);
  CHECK(r.out.rfind(
            "{\"format_version\": 2, \"command\": \"inject\", \"pblock\": 200, \"blocks\": 2, ",
            0) == 0);
  CHECK(Contains(r.out, "\"owners\": []"));
  CHECK(Contains(r.out,
                 "\"ranges\": [\n  {\"pblock\": 200, \"blocks\": 2, \"added\": 2, "
                 "\"retired\": 2, \"owned\": 0, \"reserved\": 0}\n]"));
  CHECK(Contains(r.out, "\"summary\": {\"owners\": 0, \"signalled\": 0, \"elapsed_us\": "));
  CHECK(r.out.size() > 3);
  CHECK(r.out.substr(r.out.size() - 3) == "}}\n");
  ExpectValidJson(r.out);

  r = Poison({"list", "--json", src});
  ExpectSuccess(r);
  CHECK(NoTime(r.out) ==
        "{\"format_version\": 2, \"command\": \"list\", \"bad\": [\n"
        "  {\"pblock\": 200, \"blocks\": 2, \"origin\": \"injected\", \"uid\": 0, \"time\": T, "
        "\"owners\": []}\n"
        "], \"summary\": {\"ranges\": 1, \"blocks\": 2, \"owners\": 0}}\n");
  ExpectValidJson(r.out);

  r = Poison({"--json", "--blocks", "resolve", src, "200", "2"});
  ExpectSuccess(r);
  CHECK(r.out ==
        "{\"format_version\": 1, \"command\": \"resolve\", \"pblock\": 200, \"blocks\": 2, "
        "\"owners\": [], "
        "\"summary\": {\"owners\": 0}}\n");

  // An error before any result: stdout stays empty, one line on stderr.
  ExpectFailure(Poison({"--json", "--blocks", "inject", src, "201"}),
                "block 201 is already poisoned");

  r = Poison({"--json", "clear", src, "0", "1G"});
  ExpectSuccess(r);
  CHECK(r.out ==
        "{\"format_version\": 2, \"command\": \"clear\", \"pblock\": 0, \"blocks\": 16384, "
        "\"summary\": {\"cleared\": 2, \"returned\": 2}}\n");
  ExpectValidJson(r.out);
  r = Poison({"--json", "list", src});
  ExpectSuccess(r);
  CHECK(r.out ==
        "{\"format_version\": 2, \"command\": \"list\", \"bad\": [], \"summary\": {\"ranges\": 0, "
        "\"blocks\": 0, "
        "\"owners\": 0}}\n");
}

TEST_CASE(
    "daxref-poison offline: inject --file poisons a file's block, and reads of it fail "
    "after the next mount",
    "[poison-cli]") {
  MountedFs fs;
  REQUIRE(mkdir(fs.path("dir").c_str(), 0755) == 0);
  const std::string data =
      std::string(kBlock, 'a') + std::string(kBlock, 'b') + std::string(kBlock, 'c');
  WriteFile(fs.path("dir/victim"), data);
  REQUIRE(link(fs.path("dir/victim").c_str(), fs.path("alias").c_str()) == 0);
  REQUIRE(symlink("dir/victim", fs.path("symlink").c_str()) == 0);
  {
    Fd sparse(fs.path("sparse"), O_CREAT | O_WRONLY);
    REQUIRE(ftruncate(sparse.get(), 1 * kMiB) == 0);
  }
  const uint64_t ino = StatOf(fs.path("dir/victim")).st_ino;
  fs.Unmount();
  const std::string& src = fs.source();

  // The file's second block.
  RunResult r = Poison({"inject", src, "--file", "/dir/victim", "--offset", "4K"});
  ExpectSuccess(r);
  INFO(r.out);
  std::vector<std::string> lines = Lines(r.out);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].rfind("poisoned blocks ", 0) == 0);
  CHECK(Contains(lines[0], " (1 block): 1 owned by files"));
  CHECK(lines[1].rfind("  inode " + std::to_string(ino) + " at bytes 4096..8191 (block ", 0) == 0);
  // Both names, in either order.
  CHECK(Contains(r.out, "/dir/victim"));
  CHECK(Contains(r.out, "/alias"));
  CHECK(lines[2].rfind("      also /", 0) == 0);
  CHECK(lines[3].rfind("1 owner, 0 processes signalled in ", 0) == 0);

  // list shows the same owner; a second inject of the block is refused.
  const std::string listed = ListOf(src);
  CHECK(Contains(listed, "  inode " + std::to_string(ino) + " at bytes 4096..8191"));
  CHECK(Contains(listed, "1 bad range, 1 block, 1 owner\n"));
  ExpectFailure(Poison({"inject", src, "--file", "dir/victim", "--offset", "5000"}),
                "is already poisoned");
  CHECK(ListOf(src) == listed);

  // What cannot be poisoned by name.
  ExpectFailure(Poison({"inject", src, "--file", "/dir/missing"}), "no such file: /dir/missing");
  ExpectFailure(Poison({"inject", src, "--file", "/dir"}), "/dir: not a regular file");
  ExpectFailure(Poison({"inject", src, "--file", "/symlink"}), "is a symbolic link");
  ExpectFailure(Poison({"inject", src, "--file", "/dir/victim", "--offset", "12K"}),
                "offset 12288 is past the end of /dir/victim (size 12288)");
  ExpectFailure(Poison({"inject", src, "--file", "/sparse", "--offset", "64K"}),
                "have no blocks (a hole): nothing to poison");
  CHECK(ListOf(src) == listed);
  fs.Check();

  // JSON names the paths too.
  r = Poison({"--json", "resolve", src, "0", "64M"});
  ExpectSuccess(r);
  CHECK(Contains(r.out, "\"ino\": " + std::to_string(ino) + ", "));
  CHECK(Contains(r.out, "\"/dir/victim\""));
  CHECK(Contains(r.out, "\"pids\": []"));
  ExpectValidJson(r.out);

  // Mounted again, the poisoned block cannot be read; its neighbours can.
  fs.Mount();
  Fd f(fs.path("dir/victim"), O_RDONLY);
  char buf[kBlock];
  errno = 0;
  CHECK(pread(f.get(), buf, kBlock, kBlock) == -1);
  CHECK(errno == EIO);
  CHECK(PreadExact(f.get(), 0, kBlock) == data.substr(0, kBlock));
  CHECK(PreadExact(f.get(), 2 * kBlock, kBlock) == data.substr(2 * kBlock));
}

// The `bad` elements of a list --json document, each as its fields.
std::vector<std::map<std::string, std::string>> BadOf(const std::string& json) {
  TempDir t;
  WriteFile(t.path() + "/doc.json", json);
  RunResult r = Run({"/usr/bin/python3", "-c",
                     "import json, sys\n"
                     "d = json.load(open(sys.argv[1]))\n"
                     "assert d['format_version'] == 2\n"
                     "for b in d['bad']:\n"
                     "  print(' '.join(k + '=' + str(v) for k, v in b.items() if k != 'owners'))\n",
                     t.path() + "/doc.json"});
  INFO(json << r.err);
  REQUIRE(r.status == 0);
  std::vector<std::map<std::string, std::string>> out;
  for (const std::string& line : Lines(r.out)) {
    std::map<std::string, std::string> fields;
    std::istringstream in(line);
    std::string kv;
    while (in >> kv) fields[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
    out.push_back(fields);
  }
  return out;
}

TEST_CASE(
    "daxref-poison list: where each bad range came from and when; rescan re-reads the "
    "device's list",
    "[poison-cli]") {
  UnmountedFs fs;
  const std::string& src = fs.source();
  const uint64_t before = static_cast<uint64_t>(time(nullptr));
  ExpectSuccess(Poison({"--blocks", "inject", src, "100", "2"}));
  // Another user who may open SOURCE: the uid recorded is theirs.
  const std::string parent = src.substr(0, src.rfind('/'));
  REQUIRE(chmod(parent.c_str(), 0755) == 0);
  REQUIRE(Run({"/bin/chown", "-R", "1001:1001", src}).status == 0);
  const std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"};
  RunResult r = RunAsWithEnv(kAlice, kAliceGroup, {kPoison, "--blocks", "inject", src, "102"}, env);
  ExpectSuccess(r);
  const uint64_t after = static_cast<uint64_t>(time(nullptr));

  // One B range of three blocks, two origins: each kept.
  r = Poison({"--json", "list", src});
  ExpectSuccess(r);
  auto bad = BadOf(r.out);
  REQUIRE(bad.size() == 2);
  CHECK(bad[0]["pblock"] == "100");
  CHECK(bad[0]["blocks"] == "2");
  CHECK(bad[0]["origin"] == "injected");
  CHECK(bad[0]["uid"] == "0");
  CHECK(bad[1]["pblock"] == "102");
  CHECK(bad[1]["blocks"] == "1");
  CHECK(bad[1]["origin"] == "injected");
  CHECK(bad[1]["uid"] == "1001");
  for (auto& b : bad) {
    CHECK(std::stoull(b["time"]) >= before);
    CHECK(std::stoull(b["time"]) <= after);
  }
  CHECK(ListOf(src) ==
        "bad blocks 100..101 (2 blocks)  origin: injected (uid 0)  time: T\n"
        "bad blocks 102..102 (1 block)  origin: injected (uid 1001)  time: T\n"
        "2 bad ranges, 3 blocks, 0 owners\n");
  fs.Check();

  // rescan offline: /dev/shm has no bad-block list, nothing new.
  r = Poison({"rescan", src});
  ExpectSuccess(r);
  CHECK(r.out == "the device lists 0 bad ranges under the pool; 0 blocks newly recorded\n");
  r = Poison({"--json", "rescan", src});
  ExpectSuccess(r);
  CHECK(r.out.rfind("{\"format_version\": 2, \"command\": \"rescan\", \"summary\": {\"ranges\": 0, "
                    "\"added\": 0, \"elapsed_us\": ",
                    0) == 0);
  ExpectValidJson(r.out);
  ExpectUsageError(Poison({"rescan"}), "missing FS (usage: rescan FS)");
  ExpectUsageError(Poison({"rescan", src, "1"}), "usage: rescan FS");

  // The same through a daemon: origins survive the mount, rescan answers.
  MountedFs::Options o;
  o.source = src;
  MountedFs mounted(o);
  CHECK(ListOf(mounted.mnt()) ==
        "bad blocks 100..101 (2 blocks)  origin: injected (uid 0)  time: T\n"
        "bad blocks 102..102 (1 block)  origin: injected (uid 1001)  time: T\n"
        "2 bad ranges, 3 blocks, 0 owners\n");
  r = Poison({"rescan", mounted.mnt()});
  ExpectSuccess(r);
  CHECK(r.out == "the device lists 0 bad ranges under the pool; 0 blocks newly recorded\n");
  // A clear of the middle block cuts the first origin piece.
  ExpectSuccess(Poison({"--blocks", "clear", mounted.mnt(), "101"}));
  CHECK(ListOf(mounted.mnt()) ==
        "bad blocks 100..100 (1 block)  origin: injected (uid 0)  time: T\n"
        "bad blocks 102..102 (1 block)  origin: injected (uid 1001)  time: T\n"
        "2 bad ranges, 2 blocks, 0 owners\n");
}

TEST_CASE(
    "daxref-poison from-device: device sectors become pool bytes through FIEMAP, as filefrag "
    "-v shows them; on tmpfs, a one-line error",
    "[poison-cli]") {
  // A pool on a filesystem with FIEMAP: the root filesystem under /tmp
  // (ext4 or XFS on the test machines). Its space reserved, so that every
  // block has a place on the device.
  TempDir parent("/tmp");
  const std::string src = parent.path() + "/fs";
  RunResult r = Run({MkfsBin(), "-q", "--size", "16M", src});
  INFO(r.err);
  REQUIRE(r.status == 0);
  r = Run({"/usr/sbin/filefrag", "-v", src + "/pool"});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  // "File size of ... (4096 blocks of 4096 bytes)", then per extent
  // "   0:        0..    4095:    1234..    5329:   4096: ...".
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex("blocks of ([0-9]+) bytes")));
  const uint64_t fs_block = std::stoull(m[1]);
  const std::regex extent(" *[0-9]+: +([0-9]+)\\.\\. *([0-9]+): +([0-9]+)\\.\\. *([0-9]+):");
  struct Ext {
    uint64_t logical, physical, blocks;
  };
  std::vector<Ext> exts;
  for (const std::string& line : Lines(r.out))
    if (std::regex_search(line, m, extent))
      exts.push_back(
          {std::stoull(m[1]), std::stoull(m[3]), std::stoull(m[2]) - std::stoull(m[1]) + 1});
  REQUIRE(!exts.empty());
  // The longest extent, and a block well inside it.
  const Ext e = *std::max_element(exts.begin(), exts.end(),
                                  [](const Ext& a, const Ext& b) { return a.blocks < b.blocks; });
  REQUIRE(e.blocks >= 4);
  const uint64_t k = e.blocks / 2;
  const uint64_t dev = (e.physical + k) * fs_block, pool = (e.logical + k) * fs_block;
  const uint64_t pb = pool / kBlock;
  const std::string pool_text = std::to_string(pool) + ".." + std::to_string(pool + 511);

  // One sector, by sector number and by device byte offset.
  r = Poison({"from-device", src, "--sector", std::to_string(dev / 512)});
  ExpectSuccess(r);
  CHECK(r.out == "device bytes " + std::to_string(dev) + ".." + std::to_string(dev + 511) +
                     ": pool bytes " + pool_text + ", blocks " + std::to_string(pb) + ".." +
                     std::to_string(pb) +
                     " (1 block)\n512 of 512 device bytes lie in the pool file\n");
  r = Poison({"--json", "from-device", src, "--device-offset", std::to_string(dev),
              "--device-length", "8192"});
  ExpectSuccess(r);
  ExpectValidJson(r.out);
  CHECK(Contains(r.out, "{\"device_offset\": " + std::to_string(dev) +
                            ", \"pool_offset\": " + std::to_string(pool) +
                            ", \"length\": 8192, \"pblock\": " + std::to_string(pb) +
                            ", \"blocks\": 2}"));
  CHECK(Contains(r.out, "\"summary\": {\"mapped\": 8192, \"unmapped\": 0}}"));
  // Bytes before the pool file's first extent on the device are not its.
  if (e.physical > 0 &&
      std::all_of(exts.begin(), exts.end(), [](const Ext& x) { return x.physical > 0; })) {
    r = Poison({"from-device", src, "--sector", "0"});
    ExpectSuccess(r);
    CHECK(r.out == "0 of 512 device bytes lie in the pool file\n");
  }
  // --inject: the block is recorded bad, as inject would.
  r = Poison({"from-device", src, "--sector", std::to_string(dev / 512), "--inject"});
  ExpectSuccess(r);
  CHECK(Contains(r.out, "poisoned blocks " + std::to_string(pb) + ".." + std::to_string(pb) +
                            " (1 block): 1 free (retired)\n"));
  CHECK(Contains(ListOf(src), "bad blocks " + std::to_string(pb) + ".." + std::to_string(pb) +
                                  " (1 block)  origin: injected (uid 0)"));
  CheckSource(src);

  ExpectUsageError(Poison({"from-device", src}),
                   "from-device needs one of --sector and --device-offset");
  ExpectUsageError(Poison({"from-device", src, "--sector", "1", "--device-offset", "0"}),
                   "from-device needs one of --sector and --device-offset");
  ExpectUsageError(Poison({"list", src, "--sector", "1"}), "go with from-device");
  ExpectUsageError(Poison({"--json", "from-device", src, "--sector", "1", "--inject"}),
                   "--inject prints inject's reports");

  // tmpfs has no FIEMAP: one line saying so.
  UnmountedFs shm;
  ExpectFailure(Poison({"from-device", shm.source(), "--sector", "8"}),
                "cannot say where the file lies on the device (no FIEMAP, as on tmpfs)");
}

TEST_CASE("daxref-poison: the control socket is for root and the mount's owner", "[poison-cli]") {
  MountedFs::Options o;
  o.mount_options = {"allow_other"};  // so that another user reaches the mount at all
  MountedFs fs(o);
  WriteFile(fs.path("f"), std::string(kBlock, 'x'));
  const std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"};
  // SOURCE's directory is closed to others: the socket cannot be reached.
  RunResult r = RunAsWithEnv(kAlice, kAliceGroup, {kPoison, "list", fs.mnt()}, env);
  ExpectFailure(r, "permission denied: only root or the owner of the mount");
  // Open it up: the daemon itself refuses.
  const std::string parent = fs.source().substr(0, fs.source().rfind('/'));
  REQUIRE(chmod(parent.c_str(), 0755) == 0);
  REQUIRE(chmod(fs.source().c_str(), 0755) == 0);
  r = RunAsWithEnv(kAlice, kAliceGroup, {kPoison, "inject", fs.mnt(), "400K"}, env);
  ExpectFailure(r, "permission denied");
  CHECK(Contains(r.err, "root"));
  CHECK(ListOf(fs.mnt()) == "no bad blocks\n");
}

TEST_CASE("daxref-poison: a daemon that holds the pool but does not answer is reported",
          "[poison-cli]") {
  MountedFs fs;
  const std::string socket = fs.source() + "/control";
  // The daemon binds its socket before the mount appears.
  struct stat st;
  REQUIRE(lstat(socket.c_str(), &st) == 0);
  REQUIRE(S_ISSOCK(st.st_mode));
  REQUIRE(unlink(socket.c_str()) == 0);
  ExpectFailure(Poison({"list", fs.source()}),
                fs.source() + " is in use by a daxref daemon that does not answer on " + socket);
  ExpectFailure(Poison({"inject", fs.mnt(), "400K"}), "does not answer");
}

TEST_CASE("daxref-poison online: the daemon's answers print as the offline ones do",
          "[poison-cli]") {
  MountedFs fs;
  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  WriteFile(fs.path("d/f"), std::string(2 * kBlock, 'x'));
  const uint64_t ino = StatOf(fs.path("d/f")).st_ino;

  // A path inside the mount names the filesystem; the file by its own path.
  RunResult r = Poison({"inject", "--file", fs.path("d/f"), "--offset", "4K"});
  ExpectSuccess(r);
  INFO(r.out);
  std::vector<std::string> lines = Lines(r.out);
  REQUIRE(lines.size() == 3);
  CHECK(Contains(lines[0], " (1 block): 1 owned by files"));
  CHECK(lines[1].rfind("  inode " + std::to_string(ino) + " at bytes 4096..8191 (block ", 0) == 0);
  CHECK(Contains(lines[1], "): /d/f"));
  CHECK(lines[2].rfind("1 owner, ", 0) == 0);

  // The same file by its path inside FS, and FS given as SOURCE.
  ExpectFailure(Poison({"inject", fs.source(), "--file", "/d/f", "--offset", "4K"}),
                "already poisoned");
  ExpectFailure(Poison({"inject", fs.mnt(), "--file", "/d/nope"}), "no such file: /d/nope");

  r = Poison({"--json", "list", fs.path("d")});
  ExpectSuccess(r);
  CHECK(r.out.rfind("{\"format_version\": 2, \"command\": \"list\", \"bad\": [\n  {\"pblock\": ",
                    0) == 0);
  CHECK(Contains(r.out, "\"paths\": [\"/d/f\"], \"pids\": []"));
  ExpectValidJson(r.out);

  errno = 0;
  Fd f(fs.path("d/f"), O_RDONLY);
  char buf[kBlock];
  CHECK(pread(f.get(), buf, kBlock, kBlock) == -1);
  CHECK(errno == EIO);
}

TEST_CASE(
    "daxref-poison: mounted and unmounted, a hole and a block already bad get the same answer",
    "[poison-cli][poison]") {
  MountedFs fs;
  const auto [f_ino, sparse_ino] = MakeDataAndHole(fs);

  // The file's first block goes bad; then each refusal, from the daemon.
  RunResult injected = Poison({"inject", fs.mnt(), "--file", "/f"});
  ExpectSuccess(injected);
  const std::string prefix = "poisoned blocks ";
  REQUIRE(injected.out.rfind(prefix, 0) == 0);
  const std::string block =
      injected.out.substr(prefix.size(), injected.out.find("..") - prefix.size());
  struct Refusal {
    std::vector<std::string> args;  // after FS
    std::string message;
  };
  const std::vector<Refusal> refusals = {
      {{"--file", "/sparse", "--offset", "64K"},
       "/sparse bytes 65536..69631 have no blocks (a hole): nothing to poison"},
      {{"--file", "/f", "--length", "8K"},
       "/f bytes 0..8191: block " + block + " is already poisoned"},
      {{"--blocks", block, "2"}, "block " + block + " is already poisoned"},
  };
  auto run = [&](const std::string& where, const Refusal& c) {
    std::vector<std::string> args = {"inject", where};
    args.insert(args.end(), c.args.begin(), c.args.end());
    return Poison(args);
  };
  std::vector<RunResult> online;
  for (const Refusal& c : refusals) {
    online.push_back(run(fs.mnt(), c));
    ExpectFailure(online.back(), c.message);
  }
  // The same errno over the wire as offline (ENODATA: a hole holds no data;
  // EEXIST: already poisoned), whoever asks.
  control::Record hole("inject");
  hole.Add("ino", sparse_ino).Add("offset", uint64_t{0}).Add("length", kBlock);
  control::Record reply = Ask(fs.source(), hole);
  uint64_t err = 0;
  CHECK(reply.kind == "error");
  CHECK((reply.GetU64("errno", &err) && err == ENODATA));
  CHECK(*reply.Get("message") == "inode " + std::to_string(sparse_ino) +
                                     " bytes 0..4095 have no blocks (a hole): nothing to poison");
  control::Record again("inject");
  again.Add("ino", f_ino).Add("offset", uint64_t{0}).Add("length", kBlock).Add("name", "/f");
  reply = Ask(fs.source(), again);
  CHECK(reply.kind == "error");
  CHECK((reply.GetU64("errno", &err) && err == EEXIST));
  CHECK(*reply.Get("message") == "/f bytes 0..4095: block " + block + " is already poisoned");
  const std::string listed = ListOf(fs.mnt());

  // Unmounted: word for word the same.
  fs.Unmount();
  for (size_t i = 0; i < refusals.size(); ++i) {
    RunResult offline = run(fs.source(), refusals[i]);
    INFO("offline: " << offline.err << "online: " << online[i].err);
    ExpectFailure(offline, refusals[i].message);
    CHECK(offline.err == online[i].err);
  }
  CHECK(ListOf(fs.source()) == listed);
  fs.Check();
}

TEST_CASE("daxref-map owners and daxref-poison resolve give one answer in one form",
          "[poison-cli][reflink-tools]") {
  MountedFs fs;
  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  WriteFile(fs.path("d/a"), std::string(3 * kBlock, 'a'));
  WriteFile(fs.path("b"), std::string(kBlock, 'b'));
  REQUIRE(link(fs.path("d/a").c_str(), fs.path("a2").c_str()) == 0);
  const std::string map = DAXREF_TEST_MAP;
  for (const char* json : {"", "--json"}) {
    INFO(json);
    std::vector<std::string> flags;
    if (*json) flags.push_back(json);
    auto args = [&](std::vector<std::string> v) {
      v.insert(v.begin() + 1, flags.begin(), flags.end());
      return v;
    };
    // The whole pool (cut at its end), in bytes and in blocks.
    RunResult owners = Run(args({map, "owners", fs.mnt(), "0", "1T"}));
    RunResult resolved = Poison(args({"resolve", fs.mnt(), "0", "1T"}));
    ExpectSuccess(owners);
    ExpectSuccess(resolved);
    std::string expected = resolved.out;
    if (*json) {
      const std::string from = "{\"format_version\": 1, \"command\": \"resolve\"",
                        to = "{\"format_version\": 1, \"command\": \"owners\"";
      REQUIRE(expected.rfind(from, 0) == 0);
      expected.replace(0, from.size(), to);
      ExpectValidJson(owners.out);
    }
    CHECK(owners.out == expected);
    CHECK(Contains(owners.out, "/d/a"));
    CHECK(Contains(owners.out, "/a2"));
    CHECK(Contains(owners.out, "/b"));
    RunResult in_blocks = Run(args({map, "--blocks", "owners", fs.mnt(), "0", "1T"}));
    CHECK(in_blocks.out == owners.out);
  }
  // Unmounted, resolve still gives the same answer.
  const std::string text = Run({map, "owners", fs.mnt(), "0", "1T"}).out;
  fs.Unmount();
  RunResult offline = Poison({"resolve", fs.source(), "0", "1T"});
  ExpectSuccess(offline);
  CHECK(offline.out == text);
}

namespace {

// Hooks that only count what the service told them.
struct CountingHooks : PoisonHooks {
  int events = 0, owners = 0, reserved = 0, commits = 0;
  uint64_t last_ino = 0;
  void BeginEvent() override { ++events; }
  void OnOwner(const PoisonFailure& f, const PoisonOwner& o, control::Record* r) override {
    ++owners;
    last_ino = o.ino;
    r->Add("pid", uint64_t{4242});  // as if a holder had been signalled
  }
  void OnReserved(const PoisonFailure& f, const PoisonSink& sink) override { ++reserved; }
  Status AfterCommit() override {
    ++commits;
    return Status::Ok();
  }
};

// A device whose bad-block list the test writes (the hook a pool on real
// persistent memory answers through libpmem2).
struct FakeDeviceHooks : PoisonHooks {
  std::vector<std::pair<uint64_t, uint64_t>> device;  // pool byte offset, bytes
  Status WalkDeviceBadBlocks(const std::function<bool(uint64_t, uint64_t)>& fn) override {
    for (const auto& [off, len] : device)
      if (!fn(off, len)) break;
    return Status::Ok();
  }
};

TEST_CASE("rescan records what the device's list adds, origin device, and nothing twice",
          "[poison-cli][poison]") {
  UnmountedFs fs;
  auto pool = PoolMapping::Open(PoolPath(fs.source()), 0);
  REQUIRE(pool.ok());
  auto volume = Volume::Open(MetaPath(fs.source()), (*pool)->superblock(), pool->get(),
                             {.pool_path = PoolPath(fs.source())});
  REQUIRE(volume.ok());
  FakeDeviceHooks hooks;
  PoisonService service(volume->get(), &hooks);
  std::vector<control::Record> replies;
  const PoisonSink sink = [&](const control::Record& r) {
    replies.push_back(r);
    return true;
  };
  auto last = [&](const char* field) {
    REQUIRE(!replies.empty());
    INFO(replies.back().kind);
    uint64_t v = 0;
    REQUIRE(replies.back().GetU64(field, &v));
    return v;
  };
  // An empty list: nothing new.
  service.Rescan(sink);
  CHECK(last("ranges") == 0);
  CHECK(last("added") == 0);
  replies.clear();
  // Block 100 injected first; then the device lists 99..101 (a byte range
  // that is not block-aligned at its end) and 200.
  service.Inject(100, 101, 1001, sink);
  replies.clear();
  hooks.device = {{99 * kBlock, 2 * kBlock + 1}, {200 * kBlock, 512}};
  service.Rescan(sink);
  CHECK(last("ranges") == 2);
  CHECK(last("added") == 3);  // 99, 101 and 200: 100 was bad already
  replies.clear();
  service.Rescan(sink);  // again: nothing new
  CHECK(last("ranges") == 2);
  CHECK(last("added") == 0);
  replies.clear();
  service.List(sink);
  std::vector<std::string> bad;
  for (const control::Record& r : replies) {
    if (r.kind != "bad") continue;
    const std::string* origin = r.Get("origin");
    REQUIRE(origin != nullptr);
    uint64_t pb = 0, n = 0, t = 0;
    REQUIRE(r.GetU64("pblock", &pb));
    REQUIRE(r.GetU64("blocks", &n));
    CHECK(r.GetU64("time", &t));
    std::string uid = r.Get("uid") ? " uid " + *r.Get("uid") : "";
    bad.push_back(std::to_string(pb) + "+" + std::to_string(n) + " " + *origin + uid);
  }
  CHECK(bad == std::vector<std::string>{"99+1 device", "100+1 injected uid 1001", "101+1 device",
                                        "200+1 device"});
  // A hook that fails: one error record, nothing recorded.
  struct Failing : PoisonHooks {
    Status WalkDeviceBadBlocks(const std::function<bool(uint64_t, uint64_t)>&) override {
      return Status::Error(EIO, "the device went away");
    }
  } failing;
  PoisonService broken(volume->get(), &failing);
  replies.clear();
  broken.Rescan(sink);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].kind == "error");
  CHECK(*replies[0].Get("message") == "cannot read the device's bad blocks: the device went away");
}

}  // namespace

TEST_CASE("The poison service calls its hooks: each owner, a superblock copy, each commit",
          "[poison-cli][poison]") {
  MountedFs fs;
  const auto [f_ino, sparse_ino] = MakeDataAndHole(fs);
  fs.Unmount();
  auto pool = PoolMapping::Open(PoolPath(fs.source()), 0);
  REQUIRE(pool.ok());
  auto volume = Volume::Open(MetaPath(fs.source()), (*pool)->superblock(), pool->get(),
                             {.pool_path = PoolPath(fs.source())});
  REQUIRE(volume.ok());
  CountingHooks hooks;
  PoisonService service(volume->get(), &hooks);
  std::vector<control::Record> replies;
  const PoisonSink sink = [&](const control::Record& r) {
    replies.push_back(r);
    return true;
  };
  auto kinds = [&] {
    std::string k;
    for (const auto& r : replies) k += (k.empty() ? "" : " ") + r.kind;
    replies.clear();
    return k;
  };

  // Both blocks of the file: one event, one commit, one owner acted on.
  service.InjectFile(f_ino, 0, 2 * kBlock, "/f", 0, sink);
  CHECK(replies.back().Get("signalled") != nullptr);
  CHECK(*replies.back().Get("signalled") == "1");
  CHECK(kinds() == "range owner done");
  CHECK(hooks.events == 1);
  CHECK(hooks.commits == 1);
  CHECK(hooks.owners == 1);
  CHECK(hooks.last_ino == f_ino);

  // The primary superblock: the note, then the hook.
  service.Inject(0, 1, 0, sink);
  CHECK(kinds() == "range note done");
  CHECK(hooks.reserved == 1);
  CHECK(hooks.commits == 2);

  // Refusals reach no hook and change nothing.
  uint64_t err = 0;
  service.InjectFile(sparse_ino, 0, kBlock, "", 0, sink);
  REQUIRE(replies.size() == 1);
  CHECK((replies[0].GetU64("errno", &err) && err == ENODATA));
  replies.clear();
  service.Inject(0, 1, 0, sink);
  REQUIRE(replies.size() == 1);
  CHECK((replies[0].GetU64("errno", &err) && err == EEXIST));
  CHECK(*replies[0].Get("message") == "block 0 is already poisoned");
  replies.clear();
  CHECK(hooks.events == 2);
  CHECK(hooks.commits == 2);

  // Resolve and list only read: the owner hook is not called.
  service.List(sink);
  const std::string listed = kinds();  // block 0 and the file's may make one range
  CHECK((listed == "bad bad owner done" || listed == "bad owner done"));
  service.Resolve(0, (*pool)->superblock().block_count, sink);
  CHECK(kinds() == "owner done");
  CHECK(hooks.owners == 1);
  // Clear commits; pre-remove has no mount to act on by default.
  service.Clear(0, 1, sink);
  CHECK(kinds() == "done");
  CHECK(hooks.commits == 3);
  service.PreRemove(sink);
  REQUIRE(replies.size() == 1);
  CHECK((replies[0].GetU64("errno", &err) && err == ENOTCONN));
}
