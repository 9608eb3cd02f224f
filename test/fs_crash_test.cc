// Durability across daemon death: SIGKILL the daemon (no unmount, no
// DESTROY, nothing flushed on the way out), mount again, and check that every
// operation whose syscall had returned is there, and that the store is
// consistent (no leaked or double-owned block, orphans reclaimed).
//
// The daemon promises that a returned write() is already in the pool and its
// metadata committed: a killed process loses nothing the kernel has (page
// cache of the pool file and the store's log). Power loss is another matter
// and not tested here.
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

// ---- the namespace and contents a workload expects ----

struct Model {
  std::set<std::string> dirs;                // relative paths, top level only
  std::map<std::string, std::string> files;  // relative path -> contents
  std::map<std::string, uint64_t> inodes;    // filled by Scan, for messages only
  bool operator==(const Model& o) const { return dirs == o.dirs && files == o.files; }
};

struct Op {
  enum Kind {
    kCreate,
    kWrite,
    kTruncate,
    kPunch,
    kRename,
    kUnlink,
    kMkdir,
    kRmdir,
    kRenameDir
  } kind;
  std::string a, b;  // paths
  uint64_t off = 0, len = 0;
  uint64_t seed = 0;  // of the bytes a write stores
  bool fsync = false;
  std::string data() const { return NonZeroBytes(seed, len); }
  std::string Describe() const {
    static const char* const names[] = {"create", "write", "truncate", "punch",     "rename",
                                        "unlink", "mkdir", "rmdir",    "rename-dir"};
    return std::string(names[kind]) + " " + a + (b.empty() ? "" : " -> " + b) + " off " +
           std::to_string(off) + " len " + std::to_string(len);
  }
  bool ChangesData() const { return kind == kWrite || kind == kTruncate || kind == kPunch; }
};

void Apply(Model* m, const Op& op) {
  switch (op.kind) {
    case Op::kCreate:
      m->files[op.a] = "";
      break;
    case Op::kWrite: {
      std::string& f = m->files[op.a];
      if (f.size() < op.off + op.len) f.resize(op.off + op.len, '\0');
      f.replace(op.off, op.len, op.data());
      break;
    }
    case Op::kTruncate:
      m->files[op.a].resize(op.len, '\0');
      break;
    case Op::kPunch: {
      std::string& f = m->files[op.a];
      if (op.off < f.size())
        std::fill(f.begin() + op.off, f.begin() + std::min(f.size(), op.off + op.len), '\0');
      break;
    }
    case Op::kRename: {
      std::string content = std::move(m->files[op.a]);
      m->files.erase(op.a);
      m->files[op.b] = std::move(content);
      break;
    }
    case Op::kUnlink:
      m->files.erase(op.a);
      break;
    case Op::kMkdir:
      m->dirs.insert(op.a);
      break;
    case Op::kRmdir:
      m->dirs.erase(op.a);
      break;
    case Op::kRenameDir: {
      m->dirs.erase(op.a);
      m->dirs.insert(op.b);
      std::map<std::string, std::string> moved;
      for (auto it = m->files.begin(); it != m->files.end();) {
        if (it->first.rfind(op.a + "/", 0) == 0) {
          moved[op.b + it->first.substr(op.a.size())] = std::move(it->second);
          it = m->files.erase(it);
        } else {
          ++it;
        }
      }
      m->files.merge(moved);
      break;
    }
  }
}

// A random operation that is valid on `m` (it should succeed while the
// daemon lives). Deterministic in (m, rng), so the parent can replay what
// the child did from the seed alone.
Op NextOp(const Model& m, std::mt19937_64& rng) {
  auto pick = [&](auto& container) {
    auto it = container.begin();
    std::advance(it, std::uniform_int_distribution<size_t>(0, container.size() - 1)(rng));
    return it;
  };
  auto fresh_file_path = [&]() -> std::optional<std::string> {
    for (int tries = 0; tries < 20; ++tries) {
      std::string dir;
      if (!m.dirs.empty() && rng() % 2) dir = *pick(m.dirs) + "/";
      std::string p = dir + "f" + std::to_string(rng() % 40);
      if (!m.files.count(p) && !m.dirs.count(p)) return p;
    }
    return std::nullopt;
  };
  for (;;) {
    Op op{};
    op.seed = rng();
    unsigned roll = rng() % 100;
    if (roll < 15) {
      auto p = fresh_file_path();
      if (!p) continue;
      op.kind = Op::kCreate;
      op.a = *p;
    } else if (roll < 50) {
      if (m.files.empty()) continue;
      op.kind = Op::kWrite;
      op.a = pick(m.files)->first;
      op.len = 1 + rng() % (64 * kKiB);
      op.off = rng() % 3 == 0 ? m.files.at(op.a).size() : rng() % (256 * kKiB);
      op.fsync = rng() % 5 == 0;
    } else if (roll < 60) {
      if (m.files.empty()) continue;
      op.kind = Op::kTruncate;
      op.a = pick(m.files)->first;
      op.len = rng() % (300 * kKiB);
    } else if (roll < 65) {
      if (m.files.empty()) continue;
      op.kind = Op::kPunch;
      op.a = pick(m.files)->first;
      op.off = rng() % (300 * kKiB);
      op.len = 1 + rng() % (64 * kKiB);
    } else if (roll < 77) {
      if (m.files.empty()) continue;
      op.kind = Op::kRename;
      op.a = pick(m.files)->first;
      if (rng() % 2) {
        op.b = pick(m.files)->first;  // replaces an existing file
        if (op.b == op.a) continue;
      } else {
        auto p = fresh_file_path();
        if (!p) continue;
        op.b = *p;
      }
    } else if (roll < 86) {
      if (m.files.empty()) continue;
      op.kind = Op::kUnlink;
      op.a = pick(m.files)->first;
    } else if (roll < 92) {
      std::string d = "d" + std::to_string(rng() % 6);
      if (m.dirs.count(d) || m.files.count(d)) continue;
      op.kind = Op::kMkdir;
      op.a = d;
    } else if (roll < 96) {
      if (m.dirs.empty()) continue;
      op.kind = Op::kRmdir;
      op.a = *pick(m.dirs);
      bool empty = std::none_of(m.files.begin(), m.files.end(),
                                [&](const auto& f) { return f.first.rfind(op.a + "/", 0) == 0; });
      if (!empty) continue;
    } else {
      if (m.dirs.empty()) continue;
      op.kind = Op::kRenameDir;
      op.a = *pick(m.dirs);
      op.b = "d" + std::to_string(rng() % 6);
      if (m.dirs.count(op.b) || m.files.count(op.b)) continue;
    }
    return op;
  }
}

// Performs op with syscalls relative to `root`; 0 or the errno of the
// first failing call. Runs in the forked child: no test macros.
int Execute(int root, const Op& op) {
  auto fail = [] { return errno ? errno : EIO; };
  switch (op.kind) {
    case Op::kCreate: {
      int fd = openat(root, op.a.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
      if (fd < 0) return fail();
      return close(fd) == 0 ? 0 : fail();
    }
    case Op::kWrite: {
      int fd = openat(root, op.a.c_str(), O_WRONLY);
      if (fd < 0) return fail();
      std::string data = op.data();
      ssize_t n = pwrite(fd, data.data(), data.size(), op.off);
      int err = n == static_cast<ssize_t>(data.size()) ? 0 : (n < 0 ? fail() : EIO);
      if (!err && op.fsync && fsync(fd) != 0) err = fail();
      close(fd);
      return err;
    }
    case Op::kTruncate: {
      int fd = openat(root, op.a.c_str(), O_WRONLY);
      if (fd < 0) return fail();
      int err = ftruncate(fd, op.len) == 0 ? 0 : fail();
      close(fd);
      return err;
    }
    case Op::kPunch: {
      int fd = openat(root, op.a.c_str(), O_WRONLY);
      if (fd < 0) return fail();
      int err = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, op.off, op.len) == 0
                    ? 0
                    : fail();
      close(fd);
      return err;
    }
    case Op::kRename:
    case Op::kRenameDir:
      return renameat(root, op.a.c_str(), root, op.b.c_str()) == 0 ? 0 : fail();
    case Op::kUnlink:
      return unlinkat(root, op.a.c_str(), 0) == 0 ? 0 : fail();
    case Op::kMkdir:
      return mkdirat(root, op.a.c_str(), 0755) == 0 ? 0 : fail();
    case Op::kRmdir:
      return unlinkat(root, op.a.c_str(), AT_REMOVEDIR) == 0 ? 0 : fail();
  }
  return EINVAL;
}

uint64_t InodeOf(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// What the mounted filesystem holds, in the model's terms.
Model Scan(const std::string& mnt) {
  Model m;
  for (const auto& e : std::filesystem::recursive_directory_iterator(mnt)) {
    std::string rel = std::filesystem::relative(e.path(), mnt).string();
    if (e.is_directory())
      m.dirs.insert(rel);
    else
      m.files[rel] = ReadFile(e.path());
    m.inodes[rel] = InodeOf(e.path());
  }
  return m;
}

// Whether `got` can be the contents of a file that was `before` when a write
// or truncate taking it to `after` was cut short: each byte is what one of
// them has there (zero past its end), and the size is one of the two or,
// for a write (`may_split`), anything between them: the kernel sends a
// buffered write that starts inside a page it does not have as two
// requests (the partial page first), and a daemon killed between them has
// grown the file to the end of the first, as any local filesystem may show
// after a crash in the middle of a write.
bool PlausibleMix(const std::string& got, const std::string& before, const std::string& after,
                  bool may_split) {
  size_t lo = std::min(before.size(), after.size()), hi = std::max(before.size(), after.size());
  bool size_ok = got.size() == before.size() || got.size() == after.size() ||
                 (may_split && got.size() >= lo && got.size() <= hi);
  if (!size_ok) return false;
  for (size_t i = 0; i < got.size(); ++i) {
    char b = i < before.size() ? before[i] : 0;
    char a = i < after.size() ? after[i] : 0;
    if (got[i] != b && got[i] != a) return false;
  }
  return true;
}

std::string Summary(const Model& m) {
  std::string s = "dirs:";
  for (const auto& d : m.dirs) s += " " + d;
  s += "\nfiles:";
  for (const auto& [p, c] : m.files) s += " " + p + "(" + std::to_string(c.size()) + ")";
  return s;
}

// How `got` differs from `want`, in words; empty if it does not.
std::string Differences(const Model& got, const Model& want) {
  std::string s;
  for (const auto& d : want.dirs)
    if (!got.dirs.count(d)) s += "missing dir " + d + "\n";
  for (const auto& d : got.dirs)
    if (!want.dirs.count(d)) s += "unexpected dir " + d + "\n";
  for (const auto& [p, c] : want.files) {
    auto it = got.files.find(p);
    if (it == got.files.end()) {
      s += "missing file " + p + "\n";
    } else if (int64_t at = FirstDiff(it->second, c); at >= 0) {
      s += "file " + p + " (inode " + std::to_string(got.inodes.count(p) ? got.inodes.at(p) : 0) +
           "): " + std::to_string(it->second.size()) + " bytes, want " + std::to_string(c.size()) +
           ", first difference at " + std::to_string(at) + "\n";
    }
  }
  for (const auto& [p, c] : got.files)
    if (!want.files.count(p)) s += "unexpected file " + p + "\n";
  return s;
}

// What the child tells the parent, one record per operation.
struct Record {
  uint32_t index;
  int32_t err;  // 0: the operation's syscalls all returned success
};

}  // namespace

TEST_CASE("data that was written (and fsynced) survives SIGKILL of the daemon", "[fs][crash]") {
  MountedFs fs;
  std::map<std::string, std::string> want;
  REQUIRE(mkdir(fs.path("dir").c_str(), 0755) == 0);
  for (int i = 0; i < 24; ++i) {
    std::string name = (i % 3 == 0 ? "dir/" : "") + std::string("file") + std::to_string(i);
    std::string data = NonZeroBytes(100 + i, (i * 37 * kKiB) % (3 * kMiB) + i);
    int fd = open(fs.path(name).c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    PwriteExact(fd, data, 0);
    if (i % 2 == 0) REQUIRE(fsync(fd) == 0);  // the odd ones rely on write() alone
    REQUIRE(close(fd) == 0);
    want[name] = data;
  }
  // Namespace and size changes too.
  REQUIRE(rename(fs.path("file1").c_str(), fs.path("dir/renamed").c_str()) == 0);
  want["dir/renamed"] = want["file1"];
  want.erase("file1");
  REQUIRE(unlink(fs.path("file2").c_str()) == 0);
  want.erase("file2");
  REQUIRE(truncate(fs.path("file4").c_str(), 5000) == 0);
  want["file4"].resize(5000);
  int dfd = open(fs.path("dir").c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(dfd >= 0);
  REQUIRE(fsync(dfd) == 0);
  close(dfd);

  fs.KillDaemon();
  fs.Mount();
  Model got = Scan(fs.mnt());
  REQUIRE(got.dirs == std::set<std::string>{"dir"});
  REQUIRE(got.files.size() == want.size());
  for (const auto& [name, data] : want) {
    INFO(name);
    REQUIRE(got.files.count(name) == 1);
    REQUIRE_SAME(got.files[name], data);
  }
  CheckReport r = fs.Check();
  REQUIRE(r.orphans == 0);
}

TEST_CASE("every completed operation survives SIGKILL at a random moment", "[fs][crash]") {
  const uint64_t base_seed = 0xc4a5 + Catch::rngSeed();
  const int kIterations = 8;
  for (int iter = 0; iter < kIterations; ++iter) {
    const uint64_t seed = base_seed * 1000 + iter;
    INFO("iteration " << iter << ", seed " << seed);
    std::mt19937_64 parent_rng(seed ^ 0x9e3779b97f4a7c15ull);
    const uint32_t kill_after = 1 + parent_rng() % 400;  // completed operations
    INFO("kill after " << kill_after << " operations");

    MountedFs fs;
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      close(pipefd[0]);
      int root = open(fs.mnt().c_str(), O_RDONLY | O_DIRECTORY);
      if (root < 0) _exit(3);
      // The working directory too: nothing may fall through to the
      // directory under the mountpoint once the dead mount is detached.
      if (fchdir(root) != 0) _exit(3);
      std::mt19937_64 rng(seed);
      Model m;
      for (uint32_t i = 0; i < 100000; ++i) {
        Op op = NextOp(m, rng);
        Record rec{i, Execute(root, op)};
        if (write(pipefd[1], &rec, sizeof(rec)) != sizeof(rec)) _exit(4);
        if (rec.err) _exit(0);
        Apply(&m, op);
      }
      _exit(0);
    }
    close(pipefd[1]);

    uint32_t done = 0;
    int final_err = 0;
    bool killed = false;
    Record rec;
    while (read(pipefd[0], &rec, sizeof(rec)) == sizeof(rec)) {
      REQUIRE(rec.index == done);
      if (rec.err) {
        final_err = rec.err;
        break;
      }
      ++done;
      if (done == kill_after) {
        fs.KillDaemon();
        killed = true;
      }
    }
    close(pipefd[0]);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    // The operation the kill interrupted fails as a dead connection does
    // (and none failed before).
    INFO("first failure after " << done << " operations: " << strerror(final_err));
    REQUIRE(killed);
    REQUIRE((final_err == ENOTCONN || final_err == ECONNABORTED || final_err == EIO));

    // Replay: before = all completed operations, after = also the one in
    // flight, which may or may not have reached the store.
    std::mt19937_64 rng(seed);
    Model before;
    for (uint32_t i = 0; i < done; ++i) Apply(&before, NextOp(before, rng));
    Op pending = NextOp(before, rng);
    Model after = before;
    Apply(&after, pending);
    INFO("in flight: " << pending.Describe());

    fs.Mount();
    Model got = Scan(fs.mnt());
    INFO("found\n" << Summary(got) << "\nexpected\n" << Summary(before));
    if (pending.ChangesData()) {
      REQUIRE(got.dirs == before.dirs);
      REQUIRE(got.files.size() == before.files.size());
      for (const auto& [path, content] : before.files) {
        INFO(path);
        REQUIRE(got.files.count(path) == 1);
        if (path == pending.a) {
          REQUIRE(PlausibleMix(got.files[path], content, after.files.at(path),
                               pending.kind == Op::kWrite));
        } else {
          REQUIRE_SAME(got.files[path], content);
        }
      }
    } else {
      INFO("differences from the state before:\n"
           << Differences(got, before) << "differences from the state after:\n"
           << Differences(got, after));
      REQUIRE((got == before || got == after));
    }
    CheckReport r = fs.Check();
    REQUIRE(r.orphans == 0);
  }
}

TEST_CASE("an unlinked file still open when the daemon dies is reclaimed at mount", "[fs][crash]") {
  MountedFs fs;
  const uint64_t free0 = FreeBlocks(fs);
  // A file that stays, so that "reclaimed" is not "everything was freed".
  std::string kept = NonZeroBytes(1, 3 * kBlock);
  WriteFile(fs.path("kept"), kept);
  const uint64_t free_kept = FreeBlocks(fs);
  REQUIRE(free_kept == free0 - 3);

  int fds[2];
  for (int i = 0; i < 2; ++i) {
    std::string name = fs.path("doomed" + std::to_string(i));
    fds[i] = open(name.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fds[i] >= 0);
    std::string data = NonZeroBytes(10 + i, (i + 1) * kMiB + 5);
    PwriteExact(fds[i], data, 0);
    REQUIRE(fsync(fds[i]) == 0);
    REQUIRE(unlink(name.c_str()) == 0);
    // Still readable through the open descriptor: the blocks are held.
    REQUIRE_SAME(PreadExact(fds[i], 0, data.size()), data);
  }
  const uint64_t held = (kMiB / kBlock + 1) + (2 * kMiB / kBlock + 1);
  REQUIRE(FreeBlocks(fs) == free_kept - held);

  fs.KillDaemon();
  for (int fd : fds) close(fd);
  // The store as the dead daemon left it: consistent, with two orphans.
  CheckReport dead = fs.Check();
  REQUIRE(dead.orphans == 2);
  REQUIRE(dead.owned_blocks == 3 + held);

  fs.Mount();
  REQUIRE(FreeBlocks(fs) == free_kept);
  REQUIRE(ReadFile(fs.path("kept")) == kept);
  CheckReport r = fs.Check();
  REQUIRE(r.orphans == 0);
  REQUIRE(r.owned_blocks == 3);
  REQUIRE(r.free_blocks == free_kept);
}

// fsync persists the file's own pool ranges (not the whole pool) and its
// pending times, and syncs the metadata log. In-place overwrites leave the
// metadata alone (their times wait in memory): after fsync and SIGKILL,
// with the file still open (so no close stored anything), both the bytes
// and the times are there.
TEST_CASE("fsync makes a file's own overwrites and times durable across SIGKILL", "[fs][crash]") {
  MountedFs fs;
  std::string a = NonZeroBytes(21, 2 * kMiB), b = NonZeroBytes(22, kMiB);
  // Laid out in pieces, the two files interleaved: a has several extents.
  {
    Fd fa(fs.path("a"), O_RDWR | O_CREAT | O_TRUNC);
    Fd fb(fs.path("b"), O_RDWR | O_CREAT | O_TRUNC);
    for (uint64_t off = 0; off < a.size(); off += 256 * kKiB) {
      PwriteExact(fa.get(), a.substr(off, 256 * kKiB), off);
      if (off < b.size()) PwriteExact(fb.get(), b.substr(off, 256 * kKiB), off);
    }
    REQUIRE(fsync(fa.get()) == 0);
    REQUIRE(fsync(fb.get()) == 0);
  }
  int fa = open(fs.path("a").c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fa >= 0);
  std::mt19937_64 rng(23);
  for (int i = 0; i < 64; ++i) {
    uint64_t off = rng() % (a.size() - 5000);
    std::string patch = NonZeroBytes(100 + i, 1 + rng() % 5000);
    PwriteExact(fa, patch, off);
    a.replace(off, patch.size(), patch);
  }
  REQUIRE(fsync(fa) == 0);
  const struct stat before = StatOf(fa);

  fs.KillDaemon();
  close(fa);
  fs.Mount();
  CHECK_SAME(ReadFile(fs.path("a")), a);
  CHECK_SAME(ReadFile(fs.path("b")), b);
  const struct stat after = StatOf(fs.path("a"));
  CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
  CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
  CHECK(after.st_size == static_cast<off_t>(a.size()));
  CheckReport r = fs.Check();
  CHECK(r.orphans == 0);
}
