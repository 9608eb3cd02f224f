// The command lines of mkfs.daxref and daxref, run as a user would: bad
// input gets one line on stderr and changes nothing; the daemon's background
// mode and mount(8) / mount.fuse3 work, including a mount started right after
// an unmount while the old daemon may still hold the pool.
#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "meta/format.h"
#include "meta/superblock.h"
#include "test/cli_expect.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

const char kKeepName[] = "keep";
const char kKeepData[] = "written before anything went wrong\n";

struct MountEntry {
  std::string point, type, source;
};

// The mounts this process sees. No Catch macros: also used in children.
std::vector<MountEntry> Mounts() {
  std::vector<MountEntry> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::vector<std::string> f;
    for (std::string w; ls >> w;) f.push_back(w);
    size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 5 || dash + 2 >= f.size()) continue;
    out.push_back({f[4], f[dash + 1], f[dash + 2]});
  }
  return out;
}

// The filesystem type mounted at `point` ("" if nothing is).
std::string MountedType(const std::string& point) {
  std::string type;
  for (const auto& m : Mounts())
    if (m.point == point) type = m.type;  // the last one is on top
  return type;
}

// Waits until no daemon holds the pool of `source` (its flock). True if that
// happened within `seconds`. No Catch macros: used in destructors and children.
bool WaitForPoolFree(const std::string& source, int seconds = 30) {
  int fd = open(PoolPath(source).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  bool free = false;
  while (!(free = flock(fd, LOCK_EX | LOCK_NB) == 0) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  close(fd);
  return free;
}

// Whatever a test mounts by hand at `mnt` is detached at the end, even if the
// test failed half way, and its daemon is waited for.
class MountGuard {
 public:
  MountGuard(std::string source, std::string mnt)
      : source_(std::move(source)), mnt_(std::move(mnt)) {}
  ~MountGuard() {
    while (!MountedType(mnt_).empty() && umount2(mnt_.c_str(), MNT_DETACH) == 0) {
    }
    WaitForPoolFree(source_);
  }
  MountGuard(const MountGuard&) = delete;
  MountGuard& operator=(const MountGuard&) = delete;

 private:
  std::string source_, mnt_;
};

// A small filesystem holding one known file, left unmounted.
MountedFs::Options Small() {
  MountedFs::Options o;
  o.size = 8ull << 20;
  return o;
}

void PrepareUnmounted(MountedFs& fs) {
  WriteFile(fs.path(kKeepName), kKeepData);
  fs.Unmount();
}

// Mounts `fs` the usual way and checks the known file is intact.
void ExpectIntact(MountedFs& fs) {
  fs.Mount();
  CHECK(ReadFile(fs.path(kKeepName)) == kKeepData);
  fs.Check();
}

std::string FsDir(const std::string& bin) {
  return std::filesystem::path(bin).parent_path().string();
}

// Runs the daemon (in the background mode unless argv says otherwise).
RunResult Daxref(std::vector<std::string> args) {
  args.insert(args.begin(), DaemonBin());
  return Run(args);
}

// The pool file's bytes, to show that a failed run did not change them.
std::string PoolBytes(const MountedFs& fs) {
  return ReadFile(PoolPath(fs.source()));
}

// ---- a child in its own mount namespace ----

// Runs argv with the process's environment, stdout and stderr going where
// they go; returns the exit code. For children, where Catch is off limits.
int Spawn(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return ExitCode(status);
}

// Runs fn in a child process that has a mount namespace of its own, in
// which `bin_dir` is bind-mounted over /usr/local/sbin: mount(8) drops PATH
// before it runs mount.fuse3, whose shell then looks in the default path.
// The child's stdout and stderr go to `log`. Returns fn's result (or 100+ on set-up).
int InMountNamespace(const std::string& bin_dir, const std::string& log,
                     const std::function<int()>& fn) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (unshare(CLONE_NEWNS) != 0) _exit(101);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(102);
    if (mount(bin_dir.c_str(), "/usr/local/sbin", nullptr, MS_BIND, nullptr) != 0) _exit(103);
    _exit(fn());
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return ExitCode(status);
}

}  // namespace

// ---------------------------------------------------------------------------
// mkfs.daxref

TEST_CASE("mkfs.daxref: bad command lines are usage errors and create nothing", "[cli]") {
  TempDir t;
  const std::string src = t.path() + "/fs";
  const std::string mkfs = MkfsBin(), prog = "mkfs.daxref";
  auto nothing_made = [&] {
    struct stat st {};
    CHECK(stat(src.c_str(), &st) != 0);
  };

  ExpectUsageError(Run({mkfs}), prog, "--size");
  nothing_made();
  ExpectUsageError(Run({mkfs, "--frobnicate", "-s", "64M", src}), prog, "--frobnicate");
  nothing_made();
  ExpectUsageError(Run({mkfs, "-Z", "-s", "64M", src}), prog, "'Z'");
  nothing_made();
  ExpectUsageError(Run({mkfs, "-s", "64M"}), prog, "SOURCE");
  ExpectUsageError(Run({mkfs, src, "-s"}), prog, "requires an argument");
  nothing_made();
  ExpectUsageError(Run({mkfs, "-s", "64M", src, src + "2"}), prog, "unexpected argument");
  nothing_made();
  // A negative number is named as one, not as an unknown option "-5".
  ExpectUsageError(Run({mkfs, "-s", "64M", src, "-5"}), prog, "negative number '-5'");
  nothing_made();
  ExpectUsageError(Run({DAXREF_TEST_REFLINK, "unshare", src, "-5", "4096"}), "daxref-reflink",
                   "negative number '-5'");

  // Values that parse but are wrong: one line, no hint.
  for (const char* bad : {"12Q", "", "M", "12MQ", "-5", "99999999999999999999"}) {
    INFO("size '" << bad << "'");
    RunResult r = Run({mkfs, "-s", bad, src});
    CHECK(r.status == 2);
    CHECK(r.out.empty());
    std::vector<std::string> lines = Lines(r.err);
    CHECK(lines.size() == 1);
    if (!lines.empty()) CHECK(lines[0].rfind("mkfs.daxref: ", 0) == 0);
    nothing_made();
  }
  RunResult r = Run({mkfs, "-s", "12Q", src});
  REQUIRE(Lines(r.err).size() == 1);
  CHECK(r.err.find("'12Q'") != std::string::npos);
  r = Run({mkfs, "-s", "100K", src});
  REQUIRE(Lines(r.err).size() == 1);
  CHECK(r.err.find("too small") != std::string::npos);
  CHECK(r.status == 2);
  nothing_made();
  r = Run({mkfs, "-s", "1048575", src});  // rounds down below the minimum
  CHECK(r.status == 2);
  CHECK(r.err.find("too small") != std::string::npos);
  nothing_made();

  // The smallest size that is allowed works.
  r = Run({mkfs, "-q", "-s", "1M", src});
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.out.empty());
  CHECK(r.err.empty());
}

TEST_CASE("mkfs.daxref: --help and --version", "[cli]") {
  for (const char* opt : {"--help", "-h"}) {
    RunResult r = Run({MkfsBin(), opt});
    ExpectHelp(r, "mkfs.daxref");
    CHECK(r.out.find("--size") != std::string::npos);
  }
  for (const char* opt : {"--version", "-V"}) ExpectVersion(Run({MkfsBin(), opt}), "mkfs.daxref");
}

TEST_CASE("mkfs.daxref: an existing filesystem is refused without -f and left intact", "[cli]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  const std::string pool = PoolBytes(fs);

  RunResult r = Run({MkfsBin(), "-s", "16M", fs.source()});
  ExpectOneLineFailure(r, "mkfs.daxref", "-f");
  CHECK(r.err.find("already contains a daxref filesystem") != std::string::npos);
  bool same = PoolBytes(fs) == pool;
  CHECK(same);
  ExpectIntact(fs);  // mounts, reads the file, checks the store

  // With -f, but while the filesystem is mounted: refused as well.
  fs.Mount();
  r = Run({MkfsBin(), "-f", "-s", "16M", fs.source()});
  ExpectOneLineFailure(r, "mkfs.daxref", "in use");
  CHECK(ReadFile(fs.path(kKeepName)) == kKeepData);
  fs.Unmount();
  ExpectIntact(fs);

  // A directory with something else in it is not overwritten either.
  TempDir other;
  WriteFile(other.path() + "/precious", "x");
  r = Run({MkfsBin(), "-s", "16M", other.path()});
  ExpectOneLineFailure(r, "mkfs.daxref", "not empty");
  CHECK(ReadFile(other.path() + "/precious") == "x");
  // And a SOURCE that is a file is no directory.
  r = Run({MkfsBin(), "-s", "16M", other.path() + "/precious"});
  CHECK(r.status != 0);
  CHECK(Lines(r.err).size() == 1);
  CHECK(ReadFile(other.path() + "/precious") == "x");

  // Unmounted, -f makes a new, empty filesystem.
  r = Run({MkfsBin(), "-q", "-f", "-s", "16M", fs.source()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  fs.Mount();
  CHECK(access(fs.path(kKeepName).c_str(), F_OK) != 0);
  CheckReport report = fs.Check();
  CHECK(report.inodes == 1);
}

// ---------------------------------------------------------------------------
// daxref: refusals

TEST_CASE("daxref: --help and --version", "[cli]") {
  for (const char* opt : {"--help", "-h"}) ExpectHelp(Daxref({opt}), "daxref");
  for (const char* opt : {"--version", "-V"}) ExpectVersion(Daxref({opt}), "daxref");
  // libfuse's version as people write it (3.14), not fuse_version()'s 314.
  RunResult v = Daxref({"--version"});
  CHECK(v.out.find("(libfuse 3.") != std::string::npos);
}

TEST_CASE("daxref: usage errors print the message and a hint, and mount nothing", "[cli]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  const std::string& src = fs.source();
  const std::string& mnt = fs.mnt();
  ExpectUsageError(Daxref({"--frobnicate", src, mnt}), "daxref", "--frobnicate");
  ExpectUsageError(Daxref({"-o", "frobnicate", src, mnt}), "daxref", "frobnicate");
  ExpectUsageError(Daxref({"-o", "allow_other,frobnicate=1", src, mnt}), "daxref", "frobnicate");
  ExpectUsageError(Daxref({"-o", "lock_wait=soon", src, mnt}), "daxref", "lock_wait");
  // A kernel option with a bad value gets daxref's own line, not libfuse's.
  ExpectUsageError(Daxref({"-o", "max_read=abc", src, mnt}), "daxref", "max_read");
  ExpectUsageError(Daxref({"-o", "max_read=-5", src, mnt}), "daxref", "max_read");
  // source= naming another directory than SOURCE is a conflict, not an
  // override (a placeholder that names nothing is what fstab lines use).
  TempDir elsewhere;
  ExpectUsageError(Daxref({"-o", "source=" + elsewhere.path(), src, mnt}), "daxref", "source");
  ExpectUsageError(Daxref({"-o", "threads=0", src, mnt}), "daxref", "threads");
  ExpectUsageError(Daxref({"-o", "threads=65", src, mnt}), "daxref", "threads");
  ExpectUsageError(Daxref({"-o", "attr_timeout=-1", src, mnt}), "daxref", "attr_timeout");
  ExpectUsageError(Daxref({"-o", "entry_timeout=", src, mnt}), "daxref", "entry_timeout");
  ExpectUsageError(Daxref({"-o", "blksize=4096", src, mnt}), "daxref", "blksize");
  ExpectUsageError(Daxref({"--log-level", "loud", src, mnt}), "daxref", "loud");
  ExpectUsageError(Daxref({src}), "daxref", "SOURCE and MOUNTPOINT");
  ExpectUsageError(Daxref({}), "daxref", "SOURCE and MOUNTPOINT");
  ExpectUsageError(Daxref({src, mnt, "extra"}), "daxref", "SOURCE and MOUNTPOINT");
  ExpectUsageError(Daxref({src, mnt, "-o"}), "daxref", "-o");
  CHECK(MountedType(mnt).empty());
  ExpectIntact(fs);
}

TEST_CASE("daxref: a SOURCE that is not a daxref filesystem is refused", "[cli]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  const std::string& mnt = fs.mnt();
  TempDir junk;
  const std::string empty_dir = junk.path() + "/empty", file = junk.path() + "/file";
  REQUIRE(mkdir(empty_dir.c_str(), 0755) == 0);
  WriteFile(file, "not a filesystem");

  SECTION("an empty directory") {
    ExpectOneLineFailure(Daxref({empty_dir, mnt}), "daxref", "not a daxref filesystem");
    // Nothing was created in it.
    CHECK(std::filesystem::is_empty(empty_dir));
  }
  SECTION("a regular file") {
    ExpectOneLineFailure(Daxref({file, mnt}), "daxref", "not a daxref filesystem");
    CHECK(ReadFile(file) == "not a filesystem");
  }
  SECTION("a path that does not exist") {
    ExpectOneLineFailure(Daxref({junk.path() + "/nothing", mnt}), "daxref",
                         "No such file or directory");
    CHECK(access((junk.path() + "/nothing").c_str(), F_OK) != 0);
  }
  SECTION("a directory whose pool is not a pool") {
    const std::string fake = junk.path() + "/fake";
    REQUIRE(mkdir(fake.c_str(), 0755) == 0);
    WriteFile(fake + "/pool", std::string(1 << 20, 'p'));
    RunResult r = Daxref({fake, mnt});
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(Lines(r.err).size() == 1);
    CHECK(r.err.rfind("daxref: ", 0) == 0);
  }
  CHECK(MountedType(mnt).empty());
  ExpectIntact(fs);
}

TEST_CASE("daxref: a truncated pool is refused and left as it is", "[cli]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  const std::string pool = PoolPath(fs.source());
  const off_t full = std::filesystem::file_size(pool);
  REQUIRE(truncate(pool.c_str(), full / 2) == 0);
  const std::string before = PoolBytes(fs);

  RunResult r = Daxref({fs.source(), fs.mnt()});
  ExpectOneLineFailure(r, "daxref", "truncated");
  CHECK(MountedType(fs.mnt()).empty());
  CHECK(std::filesystem::file_size(pool) == static_cast<uintmax_t>(full / 2));
  bool same = PoolBytes(fs) == before;
  CHECK(same);
  // In the foreground, too.
  r = Daxref({"-f", fs.source(), fs.mnt()});
  CHECK(r.status == 1);
  CHECK(r.err.find("truncated") != std::string::npos);
  CHECK(MountedType(fs.mnt()).empty());

  // Put the size back (the file's data lives near the start) and all is well.
  REQUIRE(truncate(pool.c_str(), full) == 0);
  ExpectIntact(fs);
}

TEST_CASE("daxref: metadata of another pool is refused", "[cli]") {
  MountedFs fs(Small()), other(Small());
  PrepareUnmounted(fs);
  WriteFile(other.path("theirs"), "other filesystem\n");
  other.Unmount();

  Superblock mine, theirs;
  bool backup = false;
  REQUIRE(ReadPoolSuperblock(PoolPath(fs.source()), &mine, &backup).ok());
  REQUIRE(ReadPoolSuperblock(PoolPath(other.source()), &theirs, &backup).ok());
  const std::string meta = MetaPath(fs.source()), saved = fs.source() + "/meta.saved";
  REQUIRE(rename(meta.c_str(), saved.c_str()) == 0);
  RunResult cp = Run({"/bin/cp", "-a", MetaPath(other.source()), meta});
  INFO(cp.err);
  REQUIRE(cp.status == 0);
  const std::string pool = PoolBytes(fs);

  RunResult r = Daxref({fs.source(), fs.mnt()});
  ExpectOneLineFailure(r, "daxref", "pool");
  // It names both pools, so the mix-up can be undone.
  CHECK(r.err.find(UuidToString(mine.uuid)) != std::string::npos);
  CHECK(r.err.find(UuidToString(theirs.uuid)) != std::string::npos);
  CHECK(MountedType(fs.mnt()).empty());
  bool same = PoolBytes(fs) == pool;
  CHECK(same);

  std::filesystem::remove_all(meta);
  REQUIRE(rename(saved.c_str(), meta.c_str()) == 0);
  ExpectIntact(fs);
  other.Mount();
  CHECK(ReadFile(other.path("theirs")) == "other filesystem\n");
  other.Check();
}

TEST_CASE("daxref: missing metadata is refused", "[cli]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  const std::string meta = MetaPath(fs.source()), saved = fs.source() + "/meta.saved";
  REQUIRE(rename(meta.c_str(), saved.c_str()) == 0);
  const std::string pool = PoolBytes(fs);

  ExpectOneLineFailure(Daxref({fs.source(), fs.mnt()}), "daxref", "missing");
  CHECK(MountedType(fs.mnt()).empty());
  // It did not make a new, empty store in its place.
  CHECK(access(meta.c_str(), F_OK) != 0);
  bool same = PoolBytes(fs) == pool;
  CHECK(same);
  // An empty meta directory is no better.
  REQUIRE(mkdir(meta.c_str(), 0700) == 0);
  ExpectOneLineFailure(Daxref({fs.source(), fs.mnt()}), "daxref", "missing");
  CHECK(std::filesystem::is_empty(meta));
  REQUIRE(rmdir(meta.c_str()) == 0);

  REQUIRE(rename(saved.c_str(), meta.c_str()) == 0);
  ExpectIntact(fs);
}

// Every file under `dir` with its bytes: a refused mount changes none.
std::map<std::string, std::string> TreeBytes(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file())
      out[std::filesystem::relative(e.path(), dir).string()] = ReadFile(e.path().string());
  return out;
}

std::string ManifestOf(const std::string& source) {
  for (const auto& e : std::filesystem::directory_iterator(MetaPath(source)))
    if (e.path().filename().string().rfind("MANIFEST-", 0) == 0) return e.path().string();
  return "";
}

TEST_CASE("daxref: a damaged MANIFEST is refused and the copy left byte for byte", "[cli]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  // Mounted once more, so the store has history in several table files.
  fs.Mount();
  WriteFile(fs.path("second"), "second session\n");
  fs.Unmount();
  TempDir scratch;
  const std::string copy = scratch.path() + "/S2", mnt = scratch.path() + "/m";
  REQUIRE(mkdir(mnt.c_str(), 0755) == 0);
  RunResult cp = Run({"/bin/cp", "-a", fs.source(), copy});
  REQUIRE(cp.status == 0);
  const std::string manifest = ManifestOf(copy);
  REQUIRE(!manifest.empty());
  REQUIRE(truncate(manifest.c_str(), 168) == 0);
  const auto before = TreeBytes(copy);

  MountGuard guard(copy, mnt);
  RunResult r = Daxref({copy, mnt});
  ExpectOneLineFailure(r, "daxref", "metadata");
  CHECK(MountedType(mnt).empty());
  bool same = TreeBytes(copy) == before;
  CHECK(same);  // RocksDB deleted no table file, wrote no log
  // The original is untouched and whole.
  fs.Mount();
  CHECK(ReadFile(fs.path("second")) == "second session\n");
  fs.Unmount();
  ExpectIntact(fs);
}

TEST_CASE("daxref: a bit flipped in a table file is refused or read as EIO, never as data",
          "[cli]") {
  MountedFs fs(Small());
  // Files whose bytes and names are all in the one table file a clean
  // unmount leaves.
  WriteFile(fs.path(kKeepName), kKeepData);
  std::map<std::string, std::string> files;
  for (int i = 0; i < 20; ++i) {
    std::string name = "f" + std::to_string(i);
    files[name] = std::string(3000 + 977 * i, static_cast<char>('a' + i));
    WriteFile(fs.path(name), files[name]);
  }
  fs.Unmount();
  std::string sst;
  for (const auto& e : std::filesystem::directory_iterator(MetaPath(fs.source())))
    if (e.path().extension() == ".sst" &&
        (sst.empty() || e.file_size() > std::filesystem::file_size(sst)))
      sst = e.path().string();
  REQUIRE(!sst.empty());
  const std::string original = ReadFile(sst);
  TempDir scratch;
  const std::string mnt = scratch.path() + "/m";
  REQUIRE(mkdir(mnt.c_str(), 0755) == 0);
  std::mt19937_64 rng(20261207);
  int refused = 0, served = 0;
  for (int trial = 0; trial < 12; ++trial) {
    size_t at = rng() % original.size();
    CAPTURE(trial, at, original.size());
    std::string damaged = original;
    damaged[at] = static_cast<char>(damaged[at] ^ (1 << (rng() % 8)));
    WriteFile(sst, damaged);
    const std::string copy = scratch.path() + "/S" + std::to_string(trial);
    REQUIRE(Run({"/bin/cp", "-a", fs.source(), copy}).status == 0);
    const auto before = TreeBytes(copy);
    MountGuard guard(copy, mnt);
    RunResult r = Daxref({copy, mnt});
    if (r.status != 0) {
      ExpectOneLineFailure(r, "daxref", "metadata");
      bool same = TreeBytes(copy) == before;
      CHECK(same);
      refused++;
    } else {
      // Served: every file reads back whole or fails; none reads other bytes.
      for (const auto& [name, bytes] : files) {
        int fd = open((mnt + "/" + name).c_str(), O_RDONLY);
        if (fd < 0) {
          CHECK((errno == EIO || errno == ENOENT));  // a damaged directory block
          continue;
        }
        std::string got(bytes.size() + 1, '\0');
        ssize_t n = pread(fd, got.data(), got.size(), 0);
        int err = errno;
        close(fd);
        if (n < 0) {
          CHECK(err == EIO);
          continue;
        }
        got.resize(static_cast<size_t>(n));
        CHECK(got == bytes);
      }
      REQUIRE(umount2(mnt.c_str(), 0) == 0);
      REQUIRE(WaitForPoolFree(copy));
      served++;
    }
    std::filesystem::remove_all(copy);
  }
  WriteFile(sst, original);
  INFO("refused " << refused << ", served " << served);
  CHECK(refused + served == 12);
  ExpectIntact(fs);
}

TEST_CASE("daxref: an older copy of the metadata, or of the pool, is refused", "[cli]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  TempDir saved;
  REQUIRE(Run({"/bin/cp", "-a", MetaPath(fs.source()), saved.path() + "/meta"}).status == 0);
  REQUIRE(Run({"/bin/cp", "-a", PoolPath(fs.source()), saved.path() + "/pool"}).status == 0);
  fs.Mount();
  WriteFile(fs.path("newer"), std::string(20000, 'n'));
  fs.Unmount();
  const std::string meta = MetaPath(fs.source()), current = fs.source() + "/meta.current";
  const std::string pool = PoolPath(fs.source()), current_pool = fs.source() + "/pool.current";

  SECTION("the metadata") {
    REQUIRE(rename(meta.c_str(), current.c_str()) == 0);
    REQUIRE(Run({"/bin/cp", "-a", saved.path() + "/meta", meta}).status == 0);
    const auto before = TreeBytes(fs.source());
    ExpectOneLineFailure(Daxref({fs.source(), fs.mnt()}), "daxref",
                         "metadata is older than the pool: generation");
    CHECK(MountedType(fs.mnt()).empty());
    bool same = TreeBytes(fs.source()) == before;
    CHECK(same);
    std::filesystem::remove_all(meta);
    REQUIRE(rename(current.c_str(), meta.c_str()) == 0);
  }
  SECTION("the pool") {
    REQUIRE(rename(pool.c_str(), current_pool.c_str()) == 0);
    REQUIRE(Run({"/bin/cp", "-a", saved.path() + "/pool", pool}).status == 0);
    const auto before = TreeBytes(fs.source());
    ExpectOneLineFailure(Daxref({fs.source(), fs.mnt()}), "daxref",
                         "pool is older than the metadata: generation");
    CHECK(MountedType(fs.mnt()).empty());
    bool same = TreeBytes(fs.source()) == before;
    CHECK(same);
    REQUIRE(rename(current_pool.c_str(), pool.c_str()) == 0);
  }
  fs.Mount();
  CHECK(ReadFile(fs.path("newer")) == std::string(20000, 'n'));
  fs.Unmount();
  ExpectIntact(fs);
}

TEST_CASE("daxref: a mountpoint that does not exist or is not a directory is refused", "[cli]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  TempDir t;
  const std::string missing = t.path() + "/nowhere", file = t.path() + "/file";
  WriteFile(file, "f");
  const std::string pool = PoolBytes(fs);

  ExpectOneLineFailure(Daxref({fs.source(), missing}), "daxref", "mountpoint");
  CHECK(access(missing.c_str(), F_OK) != 0);
  CHECK(MountedType(missing).empty());
  ExpectOneLineFailure(Daxref({fs.source(), file}), "daxref", "not a directory");
  CHECK(MountedType(file).empty());
  bool same = PoolBytes(fs) == pool;
  CHECK(same);
  ExpectIntact(fs);
}

TEST_CASE("daxref: a pool another daemon holds is refused after lock_wait", "[cli]") {
  MountedFs fs(Small());
  WriteFile(fs.path(kKeepName), kKeepData);
  TempDir second;
  RunResult r = Daxref({"-o", "lock_wait=0", fs.source(), second.path()});
  ExpectOneLineFailure(r, "daxref", "in use");
  CHECK(MountedType(second.path()).empty());
  // The first mount is unharmed.
  CHECK(ReadFile(fs.path(kKeepName)) == kKeepData);
  WriteFile(fs.path("after"), "still served\n");
  fs.Remount();
  CHECK(ReadFile(fs.path("after")) == "still served\n");
  fs.Check();
}

// In the foreground the daemon logs to stderr as well; a start-up failure
// should still be reported once.
TEST_CASE("daxref -f: a start-up failure is one line on stderr", "[cli]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  TempDir t;
  ExpectOneLineFailure(Daxref({"-f", t.path(), fs.mnt()}), "daxref", "not a daxref filesystem");
  ExpectOneLineFailure(Daxref({"-f", fs.source(), t.path() + "/nowhere"}), "daxref", "mountpoint");
  CHECK(MountedType(fs.mnt()).empty());
  ExpectIntact(fs);
}

// ---------------------------------------------------------------------------
// daxref: background mode, mount(8), mount.fuse3

TEST_CASE("daxref in the background: returns once mounted, and remounts right after umount",
          "[cli]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  const std::string& src = fs.source();
  const std::string& mnt = fs.mnt();
  MountGuard guard(src, mnt);

  for (int round = 0; round < 5; ++round) {
    INFO("round " << round);
    RunResult r = Daxref({src, mnt});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.empty());
    CHECK(r.err.empty());
    // Mounted by the time it returned: no waiting here.
    REQUIRE(MountedType(mnt) == "fuse.daxref");
    CHECK(ReadFile(fs.path(kKeepName)) == kKeepData);
    for (int i = 0; i < round; ++i)
      CHECK(ReadFile(fs.path("round" + std::to_string(i))) == std::to_string(i));
    WriteFile(fs.path("round" + std::to_string(round)), std::to_string(round));
    // The kernel lets go at once; the daemon may still be closing its store
    // when the next one starts, which must wait for it rather than fail.
    r = UnmountMountPoint(mnt);
    INFO(r.err);
    REQUIRE(r.status == 0);
  }
  CHECK(WaitForPoolFree(src));
  CHECK(MountedType(mnt).empty());
  fs.Mount();
  for (int i = 0; i < 5; ++i)
    CHECK(ReadFile(fs.path("round" + std::to_string(i))) == std::to_string(i));
  fs.Check();
}

TEST_CASE("mount.fuse3 starts daxref found in PATH", "[cli]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  const std::string& src = fs.source();
  const std::string& mnt = fs.mnt();
  MountGuard guard(src, mnt);
  const std::vector<std::string> env = {"PATH=" + FsDir(DaemonBin()) +
                                        ":/usr/sbin:/usr/bin:/sbin:/bin"};

  // What mount(8) runs for "-t fuse.daxref SOURCE MNT".
  RunResult r = RunWithEnv({"/sbin/mount.fuse3", src, mnt, "-o", "rw", "-t", "fuse.daxref"}, env);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  REQUIRE(MountedType(mnt) == "fuse.daxref");
  CHECK(ReadFile(fs.path(kKeepName)) == kKeepData);
  WriteFile(fs.path("via-helper"), "1");
  r = Run({"/bin/umount", mnt});
  REQUIRE(r.status == 0);

  // The fstab form with the source in the options and a placeholder first.
  r = RunWithEnv({"/sbin/mount.fuse3", "placeholder", mnt, "-o",
                  "rw,source=" + src + ",allow_other,noatime", "-t", "fuse.daxref"},
                 env);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  REQUIRE(MountedType(mnt) == "fuse.daxref");
  for (const auto& m : Mounts())
    if (m.point == mnt) CHECK(m.source == src);
  CHECK(ReadFile(fs.path("via-helper")) == "1");
  r = Run({"/bin/umount", mnt});
  REQUIRE(r.status == 0);

  // A refusal through the helper is still one line from daxref.
  r = RunWithEnv({"/sbin/mount.fuse3", src, mnt, "-o", "rw,bogus_option", "-t", "fuse.daxref"},
                 env);
  CHECK(r.status != 0);
  CHECK(r.err.rfind("daxref: ", 0) == 0);
  CHECK(MountedType(mnt).empty());

  REQUIRE(WaitForPoolFree(src));
  ExpectIntact(fs);
}

TEST_CASE("mount -t fuse.daxref, plain and with source= in the options", "[cli]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  const std::string src = fs.source(), mnt = fs.mnt();
  TempDir bin;
  REQUIRE(symlink(DaemonBin().c_str(), (bin.path() + "/daxref").c_str()) == 0);
  const std::string log = bin.path() + "/log";

  // In the child: mount, look, write, unmount, wait for the daemon. Each
  // step that fails returns its own code.
  auto cycle = [&](const std::vector<std::string>& mount_argv, const std::string& file) {
    return [=] {
      if (Spawn(mount_argv) != 0) return 1;
      int rc = 0;
      bool seen = false;
      for (const auto& m : Mounts())
        if (m.point == mnt && m.type == "fuse.daxref" && m.source == src) seen = true;
      std::string keep;
      {
        std::ifstream in(mnt + "/" + kKeepName);  // closed before the umount
        keep.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
      if (!seen)
        rc = 2;
      else if (keep != kKeepData)
        rc = 3;
      else if (!std::ofstream(mnt + "/" + file).put('m'))
        rc = 4;
      if (Spawn({"/bin/umount", mnt}) != 0) {
        umount2(mnt.c_str(), MNT_DETACH);
        if (rc == 0) rc = 5;
      }
      if (!WaitForPoolFree(src) && rc == 0) rc = 6;
      return rc;
    };
  };
  auto read_log = [&] {
    std::ifstream in(log);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };

  int rc = InMountNamespace(bin.path(), log,
                            cycle({"/bin/mount", "-t", "fuse.daxref", src, mnt}, "plain"));
  INFO("child stderr: " << read_log());
  CHECK(rc == 0);
  rc = InMountNamespace(bin.path(), log,
                        cycle({"/bin/mount", "-t", "fuse.daxref", "-o",
                               "source=" + src + ",allow_other", "placeholder", mnt},
                              "sourceopt"));
  INFO("child stderr: " << read_log());
  CHECK(rc == 0);
  CHECK(MountedType(mnt).empty());  // nothing leaked into this namespace

  fs.Mount();
  CHECK(ReadFile(fs.path(kKeepName)) == kKeepData);
  CHECK(ReadFile(fs.path("plain")) == "m");
  CHECK(ReadFile(fs.path("sourceopt")) == "m");
  fs.Check();
}

// ---------------------------------------------------------------------------
// remount (docs/design.md, "Remounting")

namespace {

// 0 if a file can be created and written at `path`, else the errno.
int CreateErr(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

unsigned long MountFlags(const std::string& mnt) {
  struct statvfs v {};
  REQUIRE(statvfs(mnt.c_str(), &v) == 0);
  return v.f_flag;
}

}  // namespace

TEST_CASE("daxref -o remount,ro and remount,rw switch the running mount", "[cli][remount]") {
  // lazytime: the read's atime below stays pending (no timer flushes it
  // within the test), so only the remount's own flush can store it.
  MountedFs::Options o = Small();
  o.mount_options = {"lazytime"};
  MountedFs fs(o);
  const std::string src = fs.source(), mnt = fs.mnt(), f = fs.path("f");
  WriteFile(f, std::string(8192, 'a'));
  auto remount = [&](const std::string& mode) {
    return Run({DaemonBin(), "-o", "remount," + mode, src, mnt});
  };

  {
    // A file open for writing: the kernel refuses, and says why in one line.
    Fd w(f, O_WRONLY);
    RunResult r = remount("ro");
    CHECK(r.status == 1);
    CHECK(r.err ==
          "daxref: cannot remount " + mnt + " read-only: files are open for writing on it\n");
    CHECK((MountFlags(mnt) & ST_RDONLY) == 0);
  }

  // A read whose atime is pending while a reader holds the file open.
  Fd reader(f, O_RDONLY);
  const struct stat before = StatOf(f);
  REQUIRE(PreadAll(reader.get(), 0, 8192).size() == 8192);
  const struct stat after_read = StatOf(f);
  REQUIRE(after_read.st_atim.tv_nsec != before.st_atim.tv_nsec);

  RunResult r = remount("ro");
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());
  unsigned long flags = MountFlags(mnt);
  CHECK((flags & ST_RDONLY) != 0);
  CHECK((flags & ST_NOSUID) != 0);  // the mount's other flags are kept
  CHECK((flags & ST_NODEV) != 0);
  CHECK(CreateErr(fs.path("g")) == EROFS);
  CHECK(ReadFile(f) == std::string(8192, 'a'));
  // Nor may times be set.
  REQUIRE(utimensat(AT_FDCWD, f.c_str(), nullptr, 0) == -1);
  CHECK(errno == EROFS);

  // Back to read-write: writes work again, flags kept.
  r = remount("rw");
  INFO(r.err);
  REQUIRE(r.status == 0);
  flags = MountFlags(mnt);
  CHECK((flags & ST_RDONLY) == 0);
  CHECK((flags & ST_NOSUID) != 0);
  CHECK(CreateErr(fs.path("g")) == 0);
  WriteFile(fs.path("g"), "after");

  // The remount to ro stored the pending atime: a daemon killed now (the
  // reader still holding the file, so no close stored it) keeps it.
  REQUIRE(remount("ro").status == 0);
  reader.Close();
  fs.KillDaemon();
  fs.Mount();
  const struct stat back = StatOf(f);
  CHECK(back.st_atim.tv_sec == after_read.st_atim.tv_sec);
  CHECK(back.st_atim.tv_nsec == after_read.st_atim.tv_nsec);
  CHECK(ReadFile(fs.path("g")) == "after");
  fs.Check();
}

TEST_CASE("remount,rw of a mount started ro is refused in one line", "[cli][remount]") {
  MountedFs first(Small());
  WriteFile(first.path("f"), "x");
  first.Unmount();
  MountedFs::Options o;
  o.source = first.source();
  o.mount_options = {"ro"};
  MountedFs fs(o);
  RunResult r = Run({DaemonBin(), "-o", "remount,rw", fs.source(), fs.mnt()});
  CHECK(r.status == 1);
  CHECK(r.err.rfind("daxref: cannot remount " + fs.mnt() + " read-write: mounted read-only", 0) ==
        0);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK((MountFlags(fs.mnt()) & ST_RDONLY) != 0);
  CHECK(CreateErr(fs.path("g")) == EROFS);
  // remount,ro of it is a no-op that succeeds; remount of something else is refused.
  CHECK(Run({DaemonBin(), "-o", "remount,ro", fs.source(), fs.mnt()}).status == 0);
  TempDir other;
  r = Run({DaemonBin(), "-o", "remount,ro", fs.source(), other.path()});
  CHECK(r.status == 1);
  CHECK(r.err.find("nothing is mounted there") != std::string::npos);
  // Without remount, what mount(8) repeats from /proc/mounts stays unknown.
  r = Run({DaemonBin(), "-o", "user_id=0", fs.source(), other.path()});
  CHECK(r.status == 2);
}

TEST_CASE("mount -o remount,ro and remount,rw through mount(8) and mount.fuse3", "[cli][remount]") {
  MountedFs fs(Small());
  PrepareUnmounted(fs);
  const std::string src = fs.source(), mnt = fs.mnt();
  TempDir bin;
  REQUIRE(symlink(DaemonBin().c_str(), (bin.path() + "/daxref").c_str()) == 0);
  const std::string log = bin.path() + "/log";
  int rc = InMountNamespace(bin.path(), log, [=] {
    if (Spawn({"/bin/mount", "-t", "fuse.daxref", src, mnt}) != 0) return 1;
    int rc = 0;
    if (CreateErr(mnt + "/a") != 0) rc = 2;
    if (rc == 0 && Spawn({"/bin/mount", "-o", "remount,ro", mnt}) != 0) rc = 3;
    if (rc == 0 && CreateErr(mnt + "/b") != EROFS) rc = 4;
    if (rc == 0 && Spawn({"/bin/mount", "-o", "remount,rw", mnt}) != 0) rc = 5;
    if (rc == 0 && CreateErr(mnt + "/c") != 0) rc = 6;
    if (Spawn({"/bin/umount", mnt}) != 0) {
      umount2(mnt.c_str(), MNT_DETACH);
      if (rc == 0) rc = 7;
    }
    if (!WaitForPoolFree(src) && rc == 0) rc = 8;
    return rc;
  });
  std::ifstream in(log);
  INFO("child output: " << std::string(std::istreambuf_iterator<char>(in), {}));
  CHECK(rc == 0);
  fs.Mount();
  CHECK(Lstat(fs.path("a")).st_size == 0);
  CHECK(Lstat(fs.path("c")).st_size == 0);
  struct stat st {};
  CHECK(lstat(fs.path("b").c_str(), &st) == -1);
  fs.Check();
}
