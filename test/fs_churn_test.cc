// A file whose extents change all the time (the fsx mix: writes, punches,
// zero ranges, truncates, copy_file_range), through a real mount, checked
// against a byte model: with the daemon's extent maps in memory as the
// truth (docs/design.md, "Extent maps in memory") nothing may differ from
// the model, from the store (the online scrub compares them), or after a
// SIGKILL of the daemon in the middle of the churn and a new mount.
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

const std::string kScrub = DAXREF_TEST_SCRUB;
constexpr uint64_t kMaxSize = 1 << 20;

// One churn step, applied to the file and to the model alike. Deterministic
// in (seed, step), so that a second process can replay the model.
struct Churn {
  explicit Churn(uint64_t seed) : rng(seed) {}
  std::mt19937_64 rng;

  // Applies step `i` to the model only.
  void Model(std::string* m, const std::string& other) { Apply(-1, -1, m, other); }
  // Applies it to fd (and other_fd, the copy source) and the model; false
  // if a syscall failed (errno kept).
  bool Real(int fd, int other_fd, std::string* m, const std::string& other) {
    return Apply(fd, other_fd, m, other);
  }

 private:
  bool Apply(int fd, int other_fd, std::string* m, const std::string& other) {
    uint64_t off = rng() % kMaxSize, len = 1 + rng() % (64 * 1024);
    len = std::min(len, kMaxSize - off);
    const unsigned kind = rng() % 6;
    const uint64_t seed = rng();
    switch (kind) {
      case 0:
      case 1: {  // write
        std::string bytes = NonZeroBytes(seed, len);
        if (fd >= 0 && pwrite(fd, bytes.data(), len, off) != static_cast<ssize_t>(len))
          return false;
        if (m->size() < off + len) m->resize(off + len, '\0');
        m->replace(off, len, bytes);
        return true;
      }
      case 2:    // punch hole
      case 3: {  // zero range (keeps size unless it reaches past EOF: no KEEP_SIZE)
        int mode = kind == 2 ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE;
        if (fd >= 0 && fallocate(fd, mode, off, len) != 0) return false;
        if (kind == 3 && m->size() < off + len) m->resize(off + len, '\0');
        if (off < m->size()) {
          uint64_t n = std::min<uint64_t>(len, m->size() - off);
          std::fill(m->begin() + off, m->begin() + off + n, '\0');
        }
        return true;
      }
      case 4: {  // truncate
        if (fd >= 0 && ftruncate(fd, off) != 0) return false;
        m->resize(off, '\0');
        return true;
      }
      case 5: {  // copy_file_range from the other file (shares whole blocks)
        uint64_t src = seed % other.size();
        uint64_t n = std::min<uint64_t>(len, other.size() - src);
        uint64_t done = 0;
        while (fd >= 0 && done < n) {
          loff_t io = src + done, oo = off + done;
          ssize_t r = copy_file_range(other_fd, &io, fd, &oo, n - done, 0);
          if (r <= 0) return false;
          done += r;
        }
        if (m->size() < off + n) m->resize(off + n, '\0');
        m->replace(off, n, other, src, n);
        return true;
      }
    }
    return true;
  }
};

void RequireSameBytes(const std::string& got, const std::string& want, const std::string& what) {
  INFO(what << ": size " << got.size() << " want " << want.size() << ", first difference at "
            << FirstDiff(got, want));
  REQUIRE(got.size() == want.size());
  REQUIRE(got == want);
}

TEST_CASE("Churn on one file matches a byte model, the store and a remount", "[churn]") {
  MountedFs::Options o;
  o.size = 128 * kMiB;
  MountedFs fs(o);
  const std::string other = NonZeroBytes(99, 256 * kKiB + 123);
  WriteFile(fs.path("other"), other);
  std::string model;
  {
    Fd f(fs.path("f"), O_RDWR | O_CREAT, 0644), src(fs.path("other"), O_RDONLY);
    Churn churn(1);
    for (int i = 0; i < 3000; ++i) {
      INFO("step " << i);
      REQUIRE(churn.Real(f.get(), src.get(), &model, other));
      if (i % 500 == 499) RequireSameBytes(ReadFile(fs.path("f")), model, "during the churn");
    }
  }
  RequireSameBytes(ReadFile(fs.path("f")), model, "after the churn");
  // The online scrub checks the store and compares the daemon's maps in
  // memory with it.
  RunResult r = Run({kScrub, fs.mnt()});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  fs.Remount();
  RequireSameBytes(ReadFile(fs.path("f")), model, "after a remount");
  fs.Check();
}

TEST_CASE("SIGKILL of the daemon in the middle of a churn loses no acknowledged step",
          "[churn][crash]") {
  MountedFs::Options o;
  o.size = 128 * kMiB;
  MountedFs fs(o);
  const std::string other = NonZeroBytes(7, 128 * kKiB + 5);
  WriteFile(fs.path("other"), other);
  // The churn runs in a child, which counts the steps whose syscalls have
  // returned in shared memory; the daemon is killed under it.
  auto* acked = static_cast<std::atomic<int64_t>*>(mmap(nullptr, sizeof(std::atomic<int64_t>),
                                                        PROT_READ | PROT_WRITE,
                                                        MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  REQUIRE(acked != MAP_FAILED);
  new (acked) std::atomic<int64_t>(0);
  const std::string path = fs.path("f"), other_path = fs.path("other");
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int fd = open(path.c_str(), O_RDWR | O_CREAT, 0644);
    int src = open(other_path.c_str(), O_RDONLY);
    if (fd < 0 || src < 0) _exit(2);
    std::string m;
    Churn churn(3);
    for (;;) {
      if (!churn.Real(fd, src, &m, other)) _exit(0);  // the daemon is gone
      acked->fetch_add(1);
    }
  }
  while (acked->load() < 1500) usleep(1000);
  fs.KillDaemon();
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  const int64_t n = acked->load();
  munmap(acked, sizeof(std::atomic<int64_t>));
  fs.Mount();
  // Every acknowledged step is there. The one in flight when the daemon
  // died may be there, or not, or (an overwrite stored in place) in part:
  // each byte is the one before it or the one after it.
  std::string model;
  Churn replay(3);
  for (int64_t i = 0; i < n; ++i) replay.Model(&model, other);
  std::string with_next = model;
  replay.Model(&with_next, other);
  std::string got = ReadFile(path);
  INFO("acknowledged steps: " << n);
  REQUIRE((got.size() == model.size() || got.size() == with_next.size()));
  auto at = [](const std::string& s, size_t i) { return i < s.size() ? s[i] : '\0'; };
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != at(model, i) && got[i] != at(with_next, i)) {
      INFO("byte " << i << " is neither the acknowledged nor the next step's");
      REQUIRE(false);
    }
  }
  fs.Check();
}

TEST_CASE("Writers of disjoint ranges of one file keep each other's bytes", "[churn]") {
  MountedFs::Options o;
  o.size = 128 * kMiB;
  MountedFs fs(o);
  constexpr int kWriters = 4;
  constexpr uint64_t kRegion = 256 * kKiB;
  WriteFile(fs.path("f"), std::string(kWriters * kRegion, '\0'));
  std::vector<std::string> models(kWriters, std::string(kRegion, '\0'));
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      Fd f(fs.path("f"), O_RDWR);
      std::mt19937_64 rng(w + 1);
      std::string& m = models[w];
      const uint64_t base = w * kRegion;
      for (int i = 0; i < 400; ++i) {
        uint64_t off = rng() % kRegion, len = 1 + rng() % (16 * 1024);
        len = std::min(len, kRegion - off);
        if (rng() % 4 == 0) {
          // Punch whole blocks only inside the region: a partial block at
          // its edge is zeroed in place, never another writer's bytes.
          if (fallocate(f.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, base + off, len) != 0)
            failures++;
          std::fill(m.begin() + off, m.begin() + off + len, '\0');
        } else {
          std::string bytes = NonZeroBytes(rng(), len);
          if (pwrite(f.get(), bytes.data(), len, base + off) != static_cast<ssize_t>(len))
            failures++;
          m.replace(off, len, bytes);
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  REQUIRE(failures.load() == 0);
  std::string want;
  for (const auto& m : models) want += m;
  RequireSameBytes(ReadFile(fs.path("f")), want, "after the writers");
  fs.Remount();
  RequireSameBytes(ReadFile(fs.path("f")), want, "after a remount");
  fs.Check();
}

}  // namespace
