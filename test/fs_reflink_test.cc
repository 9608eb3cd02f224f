// Reflink through a real mount: blocks shared by cp (copy_file_range), by the
// daemon's clone and dedupe ioctls (include/daxref/ioctl.h) and by xfs_io's
// copy_range; copy-on-write on every path that changes shared bytes; what
// the kernel's caches show right after an ioctl changed a file behind their
// back; the errors of ioctl_ficlone(2), ioctl_fideduperange(2) and
// copy_file_range(2); who may clone what; free space as sharers come and go;
// SIGKILL in the middle of clones; and the owner and path queries.
//
// Everything here is syscalls, the ioctls and stock tools (cp, dd, xfs_io),
// so that the preload library and the CLIs built on the same ioctls can be
// tested against the same expectations.
//
// Expectations follow the kernel's rules for FICLONERANGE / FIDEDUPERANGE
// (fs/remap_range.c, generic_remap_checks and generic_remap_check_len) and
// XFS's results for the same calls.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

constexpr uid_t kAlice = 1001;
constexpr gid_t kAliceGroup = 1001;
constexpr uint64_t kHole = ~uint64_t{0};

uint64_t BlocksFor(uint64_t bytes) {
  return (bytes + kBlock - 1) / kBlock;
}

MountedFs::Options AllowOther() {
  MountedFs::Options o;
  o.mount_options = {"allow_other"};
  return o;
}

// A shared mapping of a file, unmapped on destruction: one left behind by a
// failed REQUIRE would keep the mount busy, and the fixture's unmount would
// wait for it forever.
class Mapping {
 public:
  Mapping(int fd, size_t len, int prot) : len_(len) {
    void* p = mmap(nullptr, len, prot, MAP_SHARED, fd, 0);
    REQUIRE(p != MAP_FAILED);
    p_ = static_cast<char*>(p);
  }
  ~Mapping() { Unmap(); }
  Mapping(Mapping&& o) noexcept : p_(o.p_), len_(o.len_) { o.p_ = nullptr; }
  Mapping& operator=(Mapping&&) = delete;
  char* data() const { return p_; }
  void Unmap() {
    if (p_) munmap(p_, len_);
    p_ = nullptr;
  }

 private:
  char* p_ = nullptr;
  size_t len_;
};

// One file block as the extent map shows it.
struct MappedBlock {
  uint64_t pool = kHole;  // pool block, or kHole
  uint32_t refcount = 0;
  bool shared_flag = false;
  bool operator==(const MappedBlock&) const = default;
};

// File block -> where it lives, for every mapped block of `ext`.
std::map<uint64_t, MappedBlock> BlockMap(const std::vector<daxref_extent>& ext) {
  std::map<uint64_t, MappedBlock> m;
  for (const daxref_extent& e : ext) {
    REQUIRE(e.logical % kBlock == 0);
    REQUIRE(e.physical % kBlock == 0);
    REQUIRE(e.length % kBlock == 0);
    REQUIRE(e.length > 0);
    for (uint64_t b = 0; b < e.length / kBlock; ++b) {
      MappedBlock mb{e.physical / kBlock + b, e.refcount, (e.flags & DAXREF_EXTENT_SHARED) != 0};
      REQUIRE(m.emplace(e.logical / kBlock + b, mb).second);  // no block listed twice
    }
  }
  return m;
}

std::map<uint64_t, MappedBlock> BlockMap(const std::string& path) {
  return BlockMap(Extents(path));
}

// The pool blocks that `paths` use, each counted once.
std::set<uint64_t> PoolBlocks(const std::vector<std::string>& paths) {
  std::set<uint64_t> s;
  for (const auto& p : paths)
    for (const auto& [fb, mb] : BlockMap(p)) s.insert(mb.pool);
  return s;
}

// The whole file as the daemon has it: an O_DIRECT descriptor bypasses the
// kernel's page cache.
std::string ReadDirect(const std::string& path) {
  Fd fd(path, O_RDONLY | O_DIRECT);
  std::string s;
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = pread(fd.get(), buf.data(), buf.size(), s.size());
    INFO(path << ": " << strerror(errno));
    REQUIRE(n >= 0);
    if (n == 0) break;
    s.append(buf.data(), n);
  }
  return s;
}

// What a failing call must not change: the bytes (as the daemon has them),
// the size and the extent map.
struct FileState {
  std::string bytes;
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t, uint32_t>> extents;
  bool operator==(const FileState&) const = default;
};

FileState StateOf(const std::string& path) {
  FileState s;
  s.bytes = ReadDirect(path);
  for (const daxref_extent& e : Extents(path))
    s.extents.emplace_back(e.logical, e.physical, e.length, e.refcount);
  return s;
}

// Writes `data` to `path` in /tmp (for dd and friends to read).
std::string TmpFile(const TempDir& dir, const std::string& name, const std::string& data) {
  std::string p = dir.path() + "/" + name;
  WriteFile(p, data);
  return p;
}

// Copies src[src_off, src_off+n) over dst at dst_off, growing dst (with
// zeros) as writing there would.
void ModelCopy(const std::string& src, uint64_t src_off, uint64_t n, std::string* dst,
               uint64_t dst_off) {
  std::string piece = src.substr(src_off, n);
  if (dst->size() < dst_off + n) dst->resize(dst_off + n, '\0');
  dst->replace(dst_off, n, piece);
}

void ModelWrite(std::string* f, uint64_t off, const std::string& data) {
  ModelCopy(data, 0, data.size(), f, off);
}

void ModelZero(std::string* f, uint64_t off, uint64_t len, bool keep_size) {
  if (!keep_size && f->size() < off + len) f->resize(off + len, '\0');
  if (off >= f->size()) return;
  uint64_t end = std::min<uint64_t>(f->size(), off + len);
  std::fill(f->begin() + off, f->begin() + end, '\0');
}

}  // namespace

// ---------------------------------------------------------------------------
// 1. cp

TEST_CASE(
    "cp shares every block through copy_file_range; a dd into either copy unshares "
    "only the blocks it touches",
    "[fs][reflink]") {
  MountedFs fs;
  TempDir tmp;
  const uint64_t size = 5 * kMiB + 1234;  // a partial last block: shared too
  const uint64_t blocks = BlocksFor(size);
  struct Variant {
    std::string name;
    std::vector<std::string> flags;
    bool write_to_copy;  // dd into the copy (else into the original)
  };
  const std::vector<Variant> variants = {{"auto", {"--reflink=auto"}, true}, {"plain", {}, false}};
  std::map<std::string, std::string> want;  // path -> contents
  for (size_t v = 0; v < variants.size(); ++v) {
    const Variant& var = variants[v];
    INFO("cp " << (var.flags.empty() ? "" : var.flags[0]));
    const std::string src = fs.path("src-" + var.name), dst = fs.path("copy-" + var.name);
    const std::string data = NonZeroBytes(100 + v, size);
    WriteFile(src, data);
    const uint64_t free0 = FreeBlocks(fs);

    std::vector<std::string> argv = {"/usr/bin/cp"};
    argv.insert(argv.end(), var.flags.begin(), var.flags.end());
    argv.insert(argv.end(), {src, dst});
    RunResult r = Run(argv);
    INFO(r.err);
    REQUIRE(r.status == 0);

    // Nothing new was allocated (a block or two of slack for a copy that
    // would copy its partial tail).
    const uint64_t free1 = FreeBlocks(fs);
    REQUIRE(free1 <= free0);
    CHECK(free0 - free1 <= 2);
    REQUIRE_SAME(ReadFile(dst), data);
    auto ms = BlockMap(src), md = BlockMap(dst);
    REQUIRE(ms.size() == blocks);
    REQUIRE(md.size() == blocks);
    for (const auto& [fb, mb] : ms) {
      INFO("file block " << fb);
      REQUIRE(md.count(fb) == 1);
      CHECK(md[fb].pool == mb.pool);
      CHECK(mb.shared_flag);
      CHECK(mb.refcount == 2);
      CHECK(md[fb].shared_flag);
      CHECK(md[fb].refcount == 2);
    }
    {
      auto es = Extents(src);
      REQUIRE(!es.empty());
      CHECK((es.back().flags & DAXREF_EXTENT_LAST));
    }
    // Each file counts its own blocks, shared or not (as XFS does).
    CHECK(static_cast<uint64_t>(StatOf(src).st_blocks) == blocks * 8);
    CHECK(static_cast<uint64_t>(StatOf(dst).st_blocks) == blocks * 8);

    // dd into the middle, a partial block on each side of a block boundary:
    // exactly those two blocks are copied on write.
    const std::string& target = var.write_to_copy ? dst : src;
    const std::string& other = var.write_to_copy ? src : dst;
    const uint64_t off = 2 * kMiB + 3000;
    const std::string patch = NonZeroBytes(200 + v, 3000);
    std::string patched = data;
    patched.replace(off, patch.size(), patch);
    const std::string patch_file = TmpFile(tmp, "patch" + std::to_string(v), patch);
    r = Run({"/usr/bin/dd", "if=" + patch_file, "of=" + target, "bs=3000", "count=1",
             "seek=" + std::to_string(off), "oflag=seek_bytes", "conv=notrunc", "status=none"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(free1 - FreeBlocks(fs) == 2);
    REQUIRE_SAME(ReadFile(target), patched);
    REQUIRE_SAME(ReadFile(other), data);
    REQUIRE_SAME(ReadDirect(other), data);
    auto mt = BlockMap(target), mo = BlockMap(other);
    const uint64_t cow0 = off / kBlock, cow1 = (off + patch.size() - 1) / kBlock;
    REQUIRE(cow1 == cow0 + 1);
    for (uint64_t fb = 0; fb < blocks; ++fb) {
      INFO("file block " << fb);
      bool cowed = fb == cow0 || fb == cow1;
      CHECK((mt[fb].pool == mo[fb].pool) == !cowed);
      CHECK(mt[fb].refcount == (cowed ? 1u : 2u));
      CHECK(mo[fb].refcount == (cowed ? 1u : 2u));
    }
    CHECK(static_cast<uint64_t>(StatOf(target).st_blocks) == blocks * 8);
    CHECK(static_cast<uint64_t>(StatOf(other).st_blocks) == blocks * 8);
    want[target] = patched;
    want[other] = data;
  }
  fs.Remount();
  for (const auto& [path, data] : want) {
    INFO(path);
    REQUIRE_SAME(ReadFile(path), data);
  }
  CheckReport report = fs.Check();
  // Per pair: the blocks once, plus the two copied on write.
  CHECK(report.shared_blocks == 2 * (blocks - 2));
}

// ---------------------------------------------------------------------------
// 2. clones and copy-on-write against a byte model

namespace {

// A random op on a few files, applied both to the mount and to a byte
// model of every file; all three views of every file (pread through the
// page cache, a shared mapping, O_DIRECT) must match the model after each.
class ModelRun {
 public:
  static constexpr int kFiles = 4;
  static constexpr uint64_t kMaxSize = 2 * kMiB;  // the mappings' window

  ModelRun(const MountedFs& fs, uint64_t seed) : rng_(seed) {
    for (int i = 0; i < kFiles; ++i) {
      paths_.push_back(fs.path("m" + std::to_string(i)));
      fds_.emplace_back(paths_[i], O_RDWR | O_CREAT | O_TRUNC);
      std::string data = NonZeroBytes(rng_, rng_() % (600 * kKiB));
      PwriteAll(fds_[i].get(), data, 0);
      model_.push_back(data);
      maps_.emplace_back(fds_[i].get(), kMaxSize, PROT_READ);
    }
  }
  ~ModelRun() { Close(); }

  void Close() {
    maps_.clear();
    fds_.clear();
  }

  // One random operation; returns its description.
  std::string Step() {
    for (;;) {
      unsigned roll = rng_() % 100;
      std::optional<std::string> done;
      if (roll < 20)
        done = Write();
      else if (roll < 50)
        done = Clone();
      else if (roll < 62)
        done = CopyRange();
      else if (roll < 70)
        done = Truncate();
      else if (roll < 77)
        done = Punch();
      else if (roll < 84)
        done = ZeroRange();
      else if (roll < 92)
        done = Unshare();
      else
        done = DedupeRandom();
      if (done) return *done;
    }
  }

  // Every file, every view.
  void Verify(bool direct) {
    for (int i = 0; i < kFiles; ++i) {
      INFO("file m" << i);
      const std::string& want = model_[i];
      const struct stat st = StatOf(fds_[i].get());
      REQUIRE(static_cast<uint64_t>(st.st_size) == want.size());
      // The kernel's cached attributes follow the daemon's: st_blocks counts
      // the file's mapped blocks, shared or not.
      // (Not right after an unshare of or a dedupe into this file: a known
      // gap, tested on its own below.)
      if (!blocks_stale_[i])
        CHECK(static_cast<uint64_t>(st.st_blocks) == 8 * BlockMap(Extents(fds_[i].get())).size());
      REQUIRE_SAME(PreadAll(fds_[i].get(), 0, want.size() + 4096), want);
      if (!maps_.empty()) REQUIRE_SAME(std::string(maps_[i].data(), want.size()), want);
      if (direct) REQUIRE_SAME(ReadDirect(paths_[i]), want);
    }
  }

  const std::vector<std::string>& model() const { return model_; }
  const std::vector<std::string>& paths() const { return paths_; }
  int clones() const { return clones_; }

 private:
  int Pick() { return static_cast<int>(rng_() % kFiles); }
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  uint64_t AlignDown(uint64_t v) { return v / kBlock * kBlock; }
  // An offset, half the time block-aligned.
  uint64_t AnyOffset(uint64_t limit) {
    uint64_t v = Below(limit + 1);
    return rng_() % 2 ? AlignDown(v) : v;
  }
  static std::string Span(uint64_t off, uint64_t len) {
    return "[" + std::to_string(off) + ", +" + std::to_string(len) + ")";
  }

  std::optional<std::string> Write() {
    int f = Pick();
    uint64_t off = AnyOffset(std::min<uint64_t>(model_[f].size() + 64 * kKiB, kMiB));
    uint64_t len = 1 + Below(rng_() % 4 ? 16 * kKiB : 256 * kKiB);
    std::string data = NonZeroBytes(rng_, len);
    PwriteAll(fds_[f].get(), data, off);
    ModelWrite(&model_[f], off, data);
    blocks_stale_[f] = false;
    return "pwrite m" + std::to_string(f) + " " + Span(off, len);
  }

  // FICLONERANGE with the kernel's rules: aligned offsets; an aligned
  // length, or 0, or one that ends at the source's EOF (unaligned then),
  // which is only allowed at or past the destination's EOF; no overlap
  // within one file (the partial EOF block counting whole).
  std::optional<std::string> Clone() {
    int s = Pick(), d = rng_() % 4 == 0 ? s : Pick();
    const uint64_t ssize = model_[s].size();
    if (ssize == 0) return std::nullopt;
    uint64_t src_off = AlignDown(Below(ssize));
    uint64_t full_blocks = (ssize - src_off) / kBlock;
    uint64_t len, arg;  // bytes cloned, and the length passed
    unsigned kind = rng_() % 3;
    if (kind == 0 && full_blocks > 0) {
      len = arg = (1 + Below(std::min<uint64_t>(full_blocks, 96))) * kBlock;
    } else {
      len = ssize - src_off;
      arg = kind == 1 ? 0 : len;
    }
    uint64_t dst_off = AlignDown(Below(std::min<uint64_t>(model_[d].size() + 256 * kKiB, kMiB)));
    if (dst_off + len > kMaxSize) return std::nullopt;
    if (len % kBlock && dst_off + len < model_[d].size()) return std::nullopt;  // EINVAL
    uint64_t span = BlocksFor(len) * kBlock;
    if (s == d && dst_off + span > src_off && dst_off < src_off + span) return std::nullopt;
    std::string what = "clone m" + std::to_string(s) + " " + Span(src_off, arg) + " -> m" +
                       std::to_string(d) + " @" + std::to_string(dst_off);
    INFO(what);
    REQUIRE(CloneRange(fds_[s].get(), src_off, arg, fds_[d].get(), dst_off) == 0);
    ModelCopy(model_[s], src_off, len, &model_[d], dst_off);
    blocks_stale_[d] = false;
    clones_++;
    return what;
  }

  std::optional<std::string> CopyRange() {
    int s = Pick(), d = rng_() % 5 == 0 ? s : Pick();
    const uint64_t ssize = model_[s].size();
    loff_t in = AnyOffset(ssize), out = AnyOffset(std::min<uint64_t>(model_[d].size(), kMiB));
    uint64_t len = 1 + Below(512 * kKiB);
    uint64_t n = std::min<uint64_t>(len, ssize - in);
    if (out + n > kMaxSize) return std::nullopt;
    if (s == d && out + n > static_cast<uint64_t>(in) && static_cast<uint64_t>(out) < in + n)
      return std::nullopt;  // EINVAL, tested on its own
    std::string what = "copy_file_range m" + std::to_string(s) + " " + Span(in, len) + " -> m" +
                       std::to_string(d) + " @" + std::to_string(out);
    INFO(what);
    const loff_t in0 = in, out0 = out;
    ssize_t got = copy_file_range(fds_[s].get(), &in, fds_[d].get(), &out, len, 0);
    INFO(strerror(errno));
    REQUIRE(got == static_cast<ssize_t>(n));
    ModelCopy(model_[s], in0, n, &model_[d], out0);
    if (n > 0) blocks_stale_[d] = false;
    return what;
  }

  std::optional<std::string> Truncate() {
    int f = Pick();
    uint64_t size = Below(kMiB + 300 * kKiB);
    if (rng_() % 3 == 0) size = AlignDown(size);
    REQUIRE(ftruncate(fds_[f].get(), size) == 0);
    model_[f].resize(size, '\0');
    blocks_stale_[f] = false;
    return "ftruncate m" + std::to_string(f) + " " + std::to_string(size);
  }

  std::optional<std::string> Punch() {
    int f = Pick();
    uint64_t off = AnyOffset(model_[f].size()), len = 1 + Below(200 * kKiB);
    REQUIRE(fallocate(fds_[f].get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0);
    ModelZero(&model_[f], off, len, true);
    blocks_stale_[f] = false;
    return "punch m" + std::to_string(f) + " " + Span(off, len);
  }

  std::optional<std::string> ZeroRange() {
    int f = Pick();
    bool keep = rng_() % 2;
    uint64_t off = AnyOffset(model_[f].size() + (keep ? 0 : 64 * kKiB));
    uint64_t len = 1 + Below(200 * kKiB);
    if (off + len > kMaxSize) return std::nullopt;
    int mode = FALLOC_FL_ZERO_RANGE | (keep ? FALLOC_FL_KEEP_SIZE : 0);
    REQUIRE(fallocate(fds_[f].get(), mode, off, len) == 0);
    ModelZero(&model_[f], off, len, keep);
    blocks_stale_[f] = false;
    return std::string("zero-range") + (keep ? " keep-size" : "") + " m" + std::to_string(f) + " " +
           Span(off, len);
  }

  // FALLOC_FL_UNSHARE_RANGE: the bytes stay, the range shares nothing after.
  std::optional<std::string> Unshare() {
    int f = Pick();
    uint64_t off = AnyOffset(model_[f].size()), len = 1 + Below(400 * kKiB);
    std::string what = "unshare m" + std::to_string(f) + " " + Span(off, len);
    INFO(what);
    REQUIRE(UnshareRange(fds_[f].get(), off, len) == 0);
    blocks_stale_[f] = true;
    for (const daxref_extent& e : Extents(fds_[f].get())) {
      bool overlaps = e.logical < off + len && off < e.logical + e.length;
      INFO("extent at " << e.logical << " refcount " << e.refcount);
      if (overlaps) CHECK(e.refcount == 1);
    }
    return what;
  }

  // A dedupe of aligned ranges inside both files: SAME exactly when the
  // model says the bytes are equal; the bytes never change.
  std::optional<std::string> DedupeRandom() {
    int s = Pick(), d = Pick();
    uint64_t ss = model_[s].size(), ds = model_[d].size();
    if (ss < kBlock || ds < kBlock) return std::nullopt;
    uint64_t so = AlignDown(Below(ss - kBlock + 1)), dof = AlignDown(Below(ds - kBlock + 1));
    uint64_t len = (1 + Below(std::min(ss - so, ds - dof) / kBlock)) * kBlock;
    if (s == d && dof + len > so && dof < so + len) return std::nullopt;
    bool same = model_[s].compare(so, len, model_[d], dof, len) == 0;
    std::string what = "dedupe m" + std::to_string(s) + " " + Span(so, len) + " -> m" +
                       std::to_string(d) + " @" + std::to_string(dof);
    INFO(what);
    DedupeOutcome r = Dedupe(fds_[s].get(), so, len, fds_[d].get(), dof);
    REQUIRE(r.err == 0);
    // Equal bytes may be a hole on one side: the block count can change.
    if (r.status == FILE_DEDUPE_RANGE_SAME) blocks_stale_[d] = true;
    CHECK(r.status == (same ? FILE_DEDUPE_RANGE_SAME : FILE_DEDUPE_RANGE_DIFFERS));
    CHECK(r.bytes == (same ? len : 0));
    return what;
  }

  std::mt19937_64 rng_;
  std::vector<std::string> paths_;
  std::vector<Fd> fds_;
  std::vector<Mapping> maps_;
  std::vector<std::string> model_;
  // The kernel may still hold st_blocks from before an unshare of file i,
  // or a dedupe into it; anything that makes it ask again clears this.
  std::vector<bool> blocks_stale_ = std::vector<bool>(kFiles, false);
  int clones_ = 0;
};

}  // namespace

TEST_CASE(
    "random clones, copy_file_range, CoW writes, truncates, punches and unshares match a "
    "byte model in the page cache, a mapping and the pool",
    "[fs][reflink]") {
  MountedFs fs;
  DirtyFreeSpace(fs, 16 * kMiB);  // new blocks cannot read as zero by luck
  const uint64_t seed = 0x2ef1 + Catch::rngSeed();
  INFO("seed " << seed);
  ModelRun run(fs, seed);
  run.Verify(true);
  std::vector<std::string> log;
  const int kSteps = 300;
  for (int i = 0; i < kSteps; ++i) {
    log.push_back(run.Step());
    std::string recent;
    for (size_t k = log.size() > 6 ? log.size() - 6 : 0; k < log.size(); ++k)
      recent += "\n  " + log[k];
    INFO("step " << i << ", the last operations:" << recent);
    run.Verify(i % 20 == 0);
  }
  CHECK(run.clones() > 40);
  run.Verify(true);
  const std::vector<std::string> model = run.model(), paths = run.paths();
  run.Close();
  CheckReport report = fs.Check();
  CHECK(report.shared_blocks > 0);
  fs.Mount();
  for (size_t i = 0; i < paths.size(); ++i) {
    INFO(paths[i]);
    REQUIRE_SAME(ReadFile(paths[i]), model[i]);
  }
  fs.Check();
}

// ---------------------------------------------------------------------------
// Kernel caches right after an ioctl clone

TEST_CASE(
    "a read right after a clone sees the new bytes and size, through the page cache and a "
    "mapping",
    "[fs][reflink]") {
  // One request thread too: the daemon invalidates the kernel's cache of
  // the destination from the thread that serves the clone.
  auto threads = GENERATE(as<std::string>{}, "threads=4", "threads=1");
  MountedFs::Options o;
  o.mount_options = {threads};
  MountedFs fs(o);
  INFO(threads);
  const std::string src_data = NonZeroBytes(1, 40 * kBlock + 77);
  std::string dst_data = NonZeroBytes(2, 24 * kBlock + 5);
  WriteFile(fs.path("src"), src_data);
  WriteFile(fs.path("dst"), dst_data);
  Fd src(fs.path("src"), O_RDONLY);
  Fd dst(fs.path("dst"), O_RDWR);
  // Everything of dst in the page cache and mapped.
  REQUIRE_SAME(PreadAll(dst.get(), 0, dst_data.size()), dst_data);
  Mapping mapping(dst.get(), 2 * kMiB, PROT_READ);
  const char* map = mapping.data();
  REQUIRE_SAME(std::string(map, dst_data.size()), dst_data);

  // Inside EOF: blocks 4..12 of dst get src's 20..28.
  REQUIRE(CloneRange(src.get(), 20 * kBlock, 8 * kBlock, dst.get(), 4 * kBlock) == 0);
  ModelCopy(src_data, 20 * kBlock, 8 * kBlock, &dst_data, 4 * kBlock);
  REQUIRE_SAME(PreadAll(dst.get(), 0, dst_data.size() + 1), dst_data);
  REQUIRE_SAME(std::string(map, dst_data.size()), dst_data);

  // Across EOF, to src's EOF (length 0): dst grows.
  REQUIRE(CloneRange(src.get(), 16 * kBlock, 0, dst.get(), 22 * kBlock) == 0);
  ModelCopy(src_data, 16 * kBlock, src_data.size() - 16 * kBlock, &dst_data, 22 * kBlock);
  CHECK(static_cast<uint64_t>(StatOf(dst.get()).st_size) == dst_data.size());
  CHECK(static_cast<uint64_t>(StatOf(fs.path("dst")).st_size) == dst_data.size());
  REQUIRE_SAME(PreadAll(dst.get(), 0, dst_data.size() + 1), dst_data);
  REQUIRE_SAME(std::string(map, dst_data.size()), dst_data);
  // A descriptor opened afterwards (keep_cache) sees the same.
  REQUIRE_SAME(ReadFile(fs.path("dst")), dst_data);
  mapping.Unmap();
  src.Close();
  dst.Close();
  fs.Remount();
  REQUIRE_SAME(ReadFile(fs.path("dst")), dst_data);
  fs.Check();
}

namespace {

constexpr char kFuseConnections[] = "/sys/fs/fuse/connections";

// The fusectl file that aborts the FUSE connection of the filesystem on
// `dev`, mounting fusectl if need be; empty if there is none.
std::string AbortFileFor(dev_t dev) {
  std::string file = std::string(kFuseConnections) + "/" + std::to_string(minor(dev)) + "/abort";
  if (access(file.c_str(), W_OK) != 0) mount("fusectl", kFuseConnections, "fusectl", 0, nullptr);
  return access(file.c_str(), W_OK) == 0 ? file : "";
}

// Runs fn in a child process. If it has not finished after `seconds`, the
// mount's FUSE connection is aborted (a daemon stuck inside the kernel
// cannot be reached by SIGKILL; the abort ends every request, its own
// included), the daemon killed, and -1 returned; else the child's exit code.
int RunWithDeadline(MountedFs* fs, const std::string& abort_file, int seconds,
                    const std::function<int()>& fn) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) _exit(fn());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      int fd = open(abort_file.c_str(), O_WRONLY);
      if (fd >= 0) {
        if (write(fd, "1", 1) != 1) WARN("writing " << abort_file << " failed");
        close(fd);
      }
      fs->KillDaemon();
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return ExitCode(status);
}

// In a child: stores into dst's block 5 through a shared mapping (no
// msync), then clones src's blocks 0..8 over dst's blocks 2..10. On XFS the
// clone writes the dirty page back first and then replaces it, so every
// byte of dst's blocks 2..10 is src's afterwards.
int CloneOverDirtyPage(MountedFs* fs, int seconds) {
  const std::string abort_file = AbortFileFor(StatOf(fs->mnt()).st_dev);
  if (abort_file.empty()) {
    WARN("no fusectl to abort a hung connection with: not run");
    return 0;
  }
  return RunWithDeadline(fs, abort_file, seconds, [&] {
    int s = open(fs->path("src").c_str(), O_RDONLY);
    int d = open(fs->path("dst").c_str(), O_RDWR);
    if (s < 0 || d < 0) return 10;
    void* p = mmap(nullptr, 16 * kBlock, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
    if (p == MAP_FAILED) return 11;
    memset(static_cast<char*>(p) + 5 * kBlock + 100, 'M', 200);
    int err = CloneRange(s, 0, 8 * kBlock, d, 2 * kBlock);
    if (err) return 100 + err;
    munmap(p, 16 * kBlock);
    close(s);
    close(d);
    return 0;
  });
}

}  // namespace

TEST_CASE(
    "a clone over a page dirtied through a shared mapping leaves the cloned bytes (the "
    "store is written back first, as FICLONE does)",
    "[fs][reflink]") {
  MountedFs fs;
  const std::string src_data = NonZeroBytes(3, 16 * kBlock);
  const std::string dst_data = NonZeroBytes(4, 16 * kBlock);
  WriteFile(fs.path("src"), src_data);
  WriteFile(fs.path("dst"), dst_data);
  int rc = CloneOverDirtyPage(&fs, 10);
  INFO("child: " << rc << " (-1: no answer in 10 s, the connection was aborted)");
  REQUIRE(rc == 0);
  std::string want = dst_data;
  ModelCopy(src_data, 0, 8 * kBlock, &want, 2 * kBlock);
  REQUIRE_SAME(ReadFile(fs.path("dst")), want);
  fs.Remount();
  REQUIRE_SAME(ReadFile(fs.path("dst")), want);
  fs.Check();
}

TEST_CASE(
    "with one request thread, a clone into a file with a page dirtied through a shared "
    "mapping returns",
    "[fs][reflink]") {
  // The daemon invalidates the destination's pages from the thread that
  // served the clone; the kernel writes a dirty page back first, as a
  // WRITE request that only a free request thread can answer.
  MountedFs::Options o;
  o.mount_options = {"threads=1"};
  MountedFs fs(o);
  WriteFile(fs.path("src"), NonZeroBytes(3, 16 * kBlock));
  WriteFile(fs.path("dst"), NonZeroBytes(4, 16 * kBlock));
  int rc = CloneOverDirtyPage(&fs, 5);
  INFO("child: " << rc << " (-1: no answer in 5 s, the connection was aborted)");
  REQUIRE(rc == 0);
  fs.Check();
}

TEST_CASE("with one request thread, clones into a file another process is writing return",
          "[fs][reflink]") {
  // A write(2) of part of a page the kernel does not have keeps that page
  // locked until the daemon answers it (full pages it unlocks before
  // sending); the invalidation after a clone waits for the lock, in the
  // daemon's only request thread.
  MountedFs::Options o;
  o.mount_options = {"threads=1"};
  MountedFs fs(o);
  WriteFile(fs.path("src"), NonZeroBytes(6, 16 * kBlock));
  WriteFile(fs.path("dst"), NonZeroBytes(7, 16 * kBlock));
  const std::string abort_file = AbortFileFor(StatOf(fs.mnt()).st_dev);
  if (abort_file.empty()) {
    WARN("no fusectl to abort a hung connection with: not run");
    return;
  }
  pid_t writer = fork();
  REQUIRE(writer >= 0);
  if (writer == 0) {
    int d = open(fs.path("dst").c_str(), O_WRONLY);
    std::string data = NonZeroBytes(8, 100);
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (d >= 0 && std::chrono::steady_clock::now() < end)
      if (pwrite(d, data.data(), data.size(), kBlock + 904) < 0) _exit(1);
    _exit(d >= 0 ? 0 : 2);
  }
  int rc = RunWithDeadline(&fs, abort_file, 5, [&] {
    int s = open(fs.path("src").c_str(), O_RDONLY);
    int d = open(fs.path("dst").c_str(), O_WRONLY);
    if (s < 0 || d < 0) return 10;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (std::chrono::steady_clock::now() < end)
      if (int err = CloneRange(s, 0, 16 * kBlock, d, 0)) return 100 + err;
    return 0;
  });
  int status = 0;
  waitpid(writer, &status, 0);
  INFO("cloner: " << rc << " (-1: no answer in 5 s, the connection was aborted); writer: "
                  << ExitCode(status));
  REQUIRE(rc == 0);
  CHECK(ExitCode(status) == 0);
  fs.Check();
}

TEST_CASE(
    "a clone from a page dirtied through a shared mapping copies what was stored once the "
    "caller has written it back (docs/ioctl.md; the preload library does it for FICLONE)",
    "[fs][reflink]") {
  MountedFs fs;
  std::string src_data = NonZeroBytes(5, 16 * kBlock);
  WriteFile(fs.path("src"), src_data);
  WriteFile(fs.path("dst"), "");
  Fd src(fs.path("src"), O_RDWR);
  Fd dst(fs.path("dst"), O_RDWR);
  Mapping mapping(src.get(), 16 * kBlock, PROT_READ | PROT_WRITE);
  memset(mapping.data() + 3 * kBlock + 10, 'S', 300);
  std::fill(src_data.begin() + 3 * kBlock + 10, src_data.begin() + 3 * kBlock + 310, 'S');
  // The daemon cannot reach the kernel's dirty pages of the source without
  // dropping every cached page of it; the caller writes them back instead.
  REQUIRE(msync(mapping.data(), 16 * kBlock, MS_SYNC) == 0);
  REQUIRE(CloneRange(src.get(), 0, 0, dst.get(), 0) == 0);
  REQUIRE_SAME(PreadAll(dst.get(), 0, src_data.size() + 1), src_data);
  mapping.Unmap();
  src.Close();
  dst.Close();
  fs.Remount();
  REQUIRE_SAME(ReadFile(fs.path("src")), src_data);
  REQUIRE_SAME(ReadFile(fs.path("dst")), src_data);
  fs.Check();
}

// ---------------------------------------------------------------------------
// 3. chains of clones and the order their sharers go

TEST_CASE(
    "A -> B -> C clones, each modified, deleted in every order: free space comes back "
    "block for block",
    "[fs][reflink]") {
  MountedFs fs;
  const uint64_t size = kMiB + 1000;
  std::vector<int> order = {0, 1, 2};
  int round = 0;
  do {
    INFO("delete order " << order[0] << order[1] << order[2]);
    const uint64_t free_empty = FreeBlocks(fs);
    const std::vector<std::string> names = {fs.path("A"), fs.path("B"), fs.path("C")};
    std::vector<std::string> want(3);
    want[0] = NonZeroBytes(10 + round, size);
    WriteFile(names[0], want[0]);
    const uint64_t free_a = FreeBlocks(fs);
    REQUIRE(free_empty - free_a == BlocksFor(size));
    for (int i = 1; i < 3; ++i) {
      Fd from(names[i - 1], O_RDONLY);
      Fd to(names[i], O_WRONLY | O_CREAT | O_TRUNC);
      REQUIRE(CloneRange(from.get(), 0, 0, to.get(), 0) == 0);
      want[i] = want[i - 1];
    }
    CHECK(FreeBlocks(fs) == free_a);
    // Each changes some blocks of its own (one of them overlapping another's).
    for (int i = 0; i < 3; ++i) {
      Fd fd(names[i], O_WRONLY);
      std::string data = NonZeroBytes(50 + 3 * round + i, 2 * kBlock + 100);
      uint64_t off = (10 + 40 * i) * kBlock + 7 * i;
      PwriteExact(fd.get(), data, off);
      ModelWrite(&want[i], off, data);
    }
    std::string tail = NonZeroBytes(90 + round, 5000);  // C grows past the shared EOF block
    {
      Fd fd(names[2], O_WRONLY);
      PwriteExact(fd.get(), tail, size - 10);
      ModelWrite(&want[2], size - 10, tail);
    }
    std::vector<bool> present = {true, true, true};
    auto check_space = [&] {
      std::vector<std::string> live;
      for (int i = 0; i < 3; ++i)
        if (present[i]) live.push_back(names[i]);
      uint64_t used = PoolBlocks(live).size();
      CHECK(FreeBlocksSettled(fs, free_empty - used) == free_empty - used);
      for (int i = 0; i < 3; ++i)
        if (present[i]) REQUIRE_SAME(ReadDirect(names[i]), want[i]);
    };
    check_space();
    for (int victim : order) {
      INFO("deleting "
           << "ABC"[victim]);
      REQUIRE(unlink(names[victim].c_str()) == 0);
      present[victim] = false;
      check_space();
    }
    REQUIRE(FreeBlocksSettled(fs, free_empty) == free_empty);
    ++round;
  } while (std::next_permutation(order.begin(), order.end()));
  REQUIRE(round == 6);
  CheckReport report = fs.Check();
  CHECK(report.owned_blocks == 0);
}

TEST_CASE(
    "a deleted sharer still open in another process stays readable; its space comes back "
    "when it is closed",
    "[fs][reflink]") {
  MountedFs fs;
  const uint64_t free_empty = FreeBlocks(fs);
  const std::string a_data = NonZeroBytes(20, 64 * kBlock + 10);
  WriteFile(fs.path("A"), a_data);
  {
    Fd a(fs.path("A"), O_RDONLY);
    Fd b(fs.path("B"), O_WRONLY | O_CREAT | O_TRUNC);
    REQUIRE(CloneRange(a.get(), 0, 0, b.get(), 0) == 0);
  }
  const std::string b_patch = NonZeroBytes(21, 3 * kBlock);
  std::string b_data = a_data;
  {
    Fd b(fs.path("B"), O_WRONLY);
    PwriteExact(b.get(), b_patch, 30 * kBlock);  // three blocks of B's own
    ModelWrite(&b_data, 30 * kBlock, b_patch);
  }
  const uint64_t blocks_a = BlocksFor(a_data.size());
  REQUIRE(free_empty - FreeBlocks(fs) == blocks_a + 3);

  // The child opens B, says so, waits, then reads all of it.
  int to_child[2], from_child[2];
  REQUIRE(pipe(to_child) == 0);
  REQUIRE(pipe(from_child) == 0);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(to_child[1]);
    close(from_child[0]);
    int fd = open(fs.path("B").c_str(), O_RDONLY);
    char c = fd >= 0 ? 'o' : 'x';
    if (write(from_child[1], &c, 1) != 1) _exit(2);
    if (read(to_child[0], &c, 1) != 1) _exit(3);
    std::string got(b_data.size() + 100, '\0');
    ssize_t n = pread(fd, got.data(), got.size(), 0);
    got.resize(n < 0 ? 0 : n);
    _exit(got == b_data ? 0 : 1);
  }
  close(to_child[0]);
  close(from_child[1]);
  char c = 0;
  REQUIRE(read(from_child[0], &c, 1) == 1);
  REQUIRE(c == 'o');
  REQUIRE(unlink(fs.path("B").c_str()) == 0);
  // A changes too (CoW): B's blocks are B's. And nothing is freed while B
  // is open but its copy of a block A just left.
  const std::string a_patch = NonZeroBytes(22, kBlock);
  std::string a_now = a_data;
  {
    Fd a(fs.path("A"), O_WRONLY);
    PwriteExact(a.get(), a_patch, 5 * kBlock);
    ModelWrite(&a_now, 5 * kBlock, a_patch);
  }
  CHECK(free_empty - FreeBlocks(fs) == blocks_a + 3 + 1);
  REQUIRE(write(to_child[1], "r", 1) == 1);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(ExitCode(status) == 0);  // read B whole and right after its unlink
  close(to_child[1]);
  close(from_child[0]);
  // Closed: B's own blocks and its reference to the rest go.
  CHECK(FreeBlocksSettled(fs, free_empty - blocks_a) == free_empty - blocks_a);
  REQUIRE_SAME(ReadDirect(fs.path("A")), a_now);
  for (const auto& [fb, mb] : BlockMap(fs.path("A"))) CHECK(mb.refcount == 1);
  REQUIRE(unlink(fs.path("A").c_str()) == 0);
  CHECK(FreeBlocksSettled(fs, free_empty) == free_empty);
  CheckReport report = fs.Check();
  CHECK(report.orphans == 0);
  CHECK(report.owned_blocks == 0);
}

TEST_CASE(
    "clones from and into unlinked files still open; reclaiming them leaves the other "
    "sharer whole, also at the mount after SIGKILL",
    "[fs][reflink]") {
  const bool kill_daemon = GENERATE(false, true);
  INFO((kill_daemon ? "the daemon is killed with the orphans open" : "the orphans are closed"));
  MountedFs fs;
  const uint64_t free_empty = FreeBlocks(fs);
  const std::string data = NonZeroBytes(23, 20 * kBlock + 1);
  const uint64_t blocks = BlocksFor(data.size());
  WriteFile(fs.path("A"), data);
  Fd a(fs.path("A"), O_RDONLY);
  REQUIRE(unlink(fs.path("A").c_str()) == 0);
  {  // from the orphan into a new file
    Fd b(fs.path("B"), O_WRONLY | O_CREAT | O_TRUNC);
    REQUIRE(CloneRange(a.get(), 0, 0, b.get(), 0) == 0);
  }
  // Into an orphan: C is unlinked while open, then gets A's blocks.
  Fd c(fs.path("C"), O_RDWR | O_CREAT | O_TRUNC);
  REQUIRE(unlink(fs.path("C").c_str()) == 0);
  REQUIRE(CloneRange(a.get(), 0, 0, c.get(), 0) == 0);
  REQUIRE_SAME(PreadAll(c.get(), 0, data.size() + 1), data);
  for (const auto& [fb, m] : BlockMap(fs.path("B"))) CHECK(m.refcount == 3);
  CHECK(free_empty - FreeBlocks(fs) == blocks);
  REQUIRE(fsync(c.get()) == 0);
  if (kill_daemon) {
    fs.KillDaemon();
    a.Close();
    c.Close();
    fs.Mount();
  } else {
    a.Close();
    c.Close();
  }
  CHECK(FreeBlocksSettled(fs, free_empty - blocks) == free_empty - blocks);
  REQUIRE_SAME(ReadDirect(fs.path("B")), data);
  for (const auto& [fb, m] : BlockMap(fs.path("B"))) CHECK(m.refcount == 1);
  CheckReport r = fs.Check();
  CHECK(r.orphans == 0);
  CHECK(r.owned_blocks == blocks);
  CHECK(r.shared_blocks == 0);
}

TEST_CASE("unshare gives a file its own copy of each shared block, once", "[fs][reflink]") {
  MountedFs fs;
  const std::string data = NonZeroBytes(24, 32 * kBlock + 5);
  const uint64_t blocks = BlocksFor(data.size());
  WriteFile(fs.path("A"), data);
  Fd a(fs.path("A"), O_RDWR);
  Fd b(fs.path("B"), O_RDWR | O_CREAT | O_TRUNC);
  REQUIRE(CloneRange(a.get(), 0, 0, b.get(), 0) == 0);
  std::string b_data = data;
  const std::string patch = NonZeroBytes(25, 2 * kBlock);
  PwriteExact(b.get(), patch, 10 * kBlock);  // whole blocks: new ones, nothing copied
  ModelWrite(&b_data, 10 * kBlock, patch);
  const uint64_t free0 = FreeBlocks(fs);
  REQUIRE(UnshareRange(b.get(), 0, data.size()) == 0);
  CHECK(free0 - FreeBlocks(fs) == blocks - 2);
  for (const auto& [fb, m] : BlockMap(fs.path("A"))) CHECK(m.refcount == 1);
  for (const auto& [fb, m] : BlockMap(fs.path("B"))) CHECK(m.refcount == 1);
  // Nothing is shared any more: again, and on the other file, it is a no-op.
  const uint64_t free1 = FreeBlocks(fs);
  REQUIRE(UnshareRange(b.get(), 0, data.size()) == 0);
  REQUIRE(UnshareRange(a.get(), 4 * kBlock, 8 * kBlock) == 0);
  CHECK(FreeBlocks(fs) == free1);
  REQUIRE_SAME(PreadAll(b.get(), 0, data.size() + 1), b_data);
  REQUIRE_SAME(ReadDirect(fs.path("A")), data);
  REQUIRE_SAME(ReadDirect(fs.path("B")), b_data);
  // A write to A now copies nothing and allocates nothing.
  PwriteExact(a.get(), "x", 7);
  CHECK(FreeBlocks(fs) == free1);
  a.Close();
  b.Close();
  CheckReport r = fs.Check();
  CHECK(r.shared_blocks == 0);
  CHECK(r.owned_blocks == 2 * blocks);
}

TEST_CASE("stat right after an unshare or a dedupe that changed the block count shows it",
          "[fs][reflink]") {
  // Unshare preallocates the holes in its range (as fallocate mode 0 does),
  // and a dedupe of zeros may map blocks over a hole: st_blocks changes
  // behind the kernel's back, as a clone's destination's does.
  MountedFs fs;
  SECTION("unshare") {
    WriteFile(fs.path("A"), NonZeroBytes(26, 8 * kBlock));
    Fd a(fs.path("A"), O_RDONLY);
    Fd b(fs.path("B"), O_RDWR | O_CREAT | O_TRUNC);
    REQUIRE(CloneRange(a.get(), 0, 0, b.get(), 0) == 0);
    REQUIRE(fallocate(b.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * kBlock,
                      2 * kBlock) == 0);
    REQUIRE(StatOf(b.get()).st_blocks == 6 * 8);  // now cached by the kernel
    REQUIRE(UnshareRange(b.get(), 0, 8 * kBlock) == 0);
    REQUIRE(BlockMap(fs.path("B")).size() == 8);
    CHECK(StatOf(b.get()).st_blocks == 8 * 8);
    CHECK(StatOf(fs.path("B")).st_blocks == 8 * 8);
  }
  SECTION("dedupe") {
    WriteFile(fs.path("A"), std::string(8 * kBlock, '\0'));  // written zeros: 8 blocks
    WriteFile(fs.path("B"), "");
    REQUIRE(truncate(fs.path("B").c_str(), 8 * kBlock) == 0);  // all hole
    Fd a(fs.path("A"), O_RDONLY);
    Fd b(fs.path("B"), O_RDWR);
    REQUIRE(StatOf(b.get()).st_blocks == 0);  // now cached by the kernel
    DedupeOutcome r = Dedupe(a.get(), 0, 8 * kBlock, b.get(), 0);
    REQUIRE(r.err == 0);
    REQUIRE(r.status == FILE_DEDUPE_RANGE_SAME);
    const uint64_t mapped = BlockMap(fs.path("B")).size();
    CHECK(static_cast<uint64_t>(StatOf(b.get()).st_blocks) == mapped * 8);
    CHECK(static_cast<uint64_t>(StatOf(fs.path("B")).st_blocks) == mapped * 8);
  }
  fs.Check();
}

TEST_CASE(
    "concurrent clones, copy-on-write writes and reads of the same files neither hang nor "
    "break the refcounts",
    "[fs][reflink]") {
  MountedFs fs;
  constexpr int kFiles = 4, kWorkers = 6;
  constexpr uint64_t kSize = 256 * kKiB;
  for (int i = 0; i < kFiles; ++i)
    WriteFile(fs.path("c" + std::to_string(i)), NonZeroBytes(i, kSize));
  const std::string abort_file = AbortFileFor(StatOf(fs.mnt()).st_dev);
  if (abort_file.empty()) {
    WARN("no fusectl to abort a hung connection with: not run");
    return;
  }
  const uint64_t seed = 0xc0c0 + Catch::rngSeed();
  INFO("seed " << seed);
  // Each worker: random clones (sizes never change, so every aligned range
  // inside kSize is valid), writes, reads and mapped reads for 2 seconds.
  // Exit code: 0, or 100 + the errno of an operation that failed.
  std::vector<pid_t> pids;
  for (int w = 0; w < kWorkers; ++w) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      std::mt19937_64 rng(seed * 100 + w);
      int fds[kFiles];
      for (int i = 0; i < kFiles; ++i) {
        fds[i] = open(fs.path("c" + std::to_string(i)).c_str(), O_RDWR);
        if (fds[i] < 0) _exit(100 + errno);
      }
      std::string buf(kSize, '\0');
      auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (std::chrono::steady_clock::now() < end) {
        int f = static_cast<int>(rng() % kFiles), g = static_cast<int>(rng() % kFiles);
        unsigned roll = rng() % 10;
        if (roll < 4) {
          uint64_t n = 1 + rng() % 16;
          uint64_t so = rng() % (kSize / kBlock - n + 1), dof = rng() % (kSize / kBlock - n + 1);
          if (f == g && dof + n > so && dof < so + n) continue;
          int err = CloneRange(fds[f], so * kBlock, n * kBlock, fds[g], dof * kBlock);
          if (err) _exit(100 + err);
        } else if (roll < 6) {
          std::string d = NonZeroBytes(rng, 1 + rng() % (3 * kBlock));
          uint64_t off = rng() % (kSize - d.size());
          if (pwrite(fds[f], d.data(), d.size(), off) != static_cast<ssize_t>(d.size()))
            _exit(100 + errno);
        } else if (roll < 9) {
          if (pread(fds[f], buf.data(), kSize, 0) != static_cast<ssize_t>(kSize))
            _exit(100 + errno);
        } else {
          void* p = mmap(nullptr, kSize, PROT_READ, MAP_SHARED, fds[f], 0);
          if (p == MAP_FAILED) _exit(100 + errno);
          char sum = 0;
          for (uint64_t o = 0; o < kSize; o += kBlock) sum ^= static_cast<volatile char*>(p)[o];
          (void)sum;
          munmap(p, kSize);
        }
      }
      _exit(0);
    }
    pids.push_back(pid);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::vector<int> codes;
  bool hung = false;
  for (pid_t pid : pids) {
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0 && !hung) {
      if (std::chrono::steady_clock::now() > deadline) {
        hung = true;
        int fd = open(abort_file.c_str(), O_WRONLY);
        if (fd >= 0) {
          if (write(fd, "1", 1) != 1) WARN("writing " << abort_file << " failed");
          close(fd);
        }
        fs.KillDaemon();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (hung) waitpid(pid, &status, 0);
    codes.push_back(ExitCode(status));
  }
  REQUIRE_FALSE(hung);
  for (int code : codes) CHECK(code == 0);
  CheckReport r = fs.Check();
  CHECK(r.shared_blocks > 0);
  fs.Mount();
  for (int i = 0; i < kFiles; ++i)
    CHECK(ReadFile(fs.path("c" + std::to_string(i))).size() == kSize);
  fs.Check();
}

// ---------------------------------------------------------------------------
// 4. errors

TEST_CASE("clone errors follow ioctl_ficlone(2) and change nothing", "[fs][reflink]") {
  MountedFs fs;
  const std::string src_data = NonZeroBytes(30, 10 * kBlock + 500);
  const std::string dst_data = NonZeroBytes(31, 6 * kBlock);
  WriteFile(fs.path("src"), src_data);
  WriteFile(fs.path("dst"), dst_data);
  REQUIRE(mkdir(fs.path("dir").c_str(), 0755) == 0);
  Fd src(fs.path("src"), O_RDWR);
  Fd dst(fs.path("dst"), O_RDWR);
  const FileState src0 = StateOf(fs.path("src")), dst0 = StateOf(fs.path("dst"));
  auto unchanged = [&] {
    CHECK(StateOf(fs.path("src")) == src0);
    CHECK(StateOf(fs.path("dst")) == dst0);
  };

  SECTION("misaligned offsets") {
    CHECK(CloneRange(src.get(), 100, kBlock, dst.get(), 0) == EINVAL);
    CHECK(CloneRange(src.get(), 0, kBlock, dst.get(), 100) == EINVAL);
    CHECK(CloneRange(src.get(), 512, 0, dst.get(), 0) == EINVAL);
    unchanged();
  }
  SECTION("a misaligned length that does not end at the source's EOF") {
    CHECK(CloneRange(src.get(), 0, 5000, dst.get(), 0) == EINVAL);
    CHECK(CloneRange(src.get(), kBlock, 10 * kBlock, dst.get(), 0) == EINVAL);  // ends at EOF+3596
    unchanged();
  }
  SECTION("a source offset past EOF") {
    CHECK(CloneRange(src.get(), 12 * kBlock, kBlock, dst.get(), 0) == EINVAL);
    CHECK(CloneRange(src.get(), 12 * kBlock, 0, dst.get(), 0) == EINVAL);
    unchanged();
  }
  SECTION("overlapping ranges in one file") {
    CHECK(CloneRange(src.get(), 0, 4 * kBlock, src.get(), 2 * kBlock) == EINVAL);
    CHECK(CloneRange(src.get(), 2 * kBlock, 4 * kBlock, src.get(), 0) == EINVAL);
    CHECK(CloneRange(src.get(), 0, 0, src.get(), 0) == EINVAL);
    // The partial EOF block counts whole: [8, 11) blocks onto [10, ...) overlaps.
    CHECK(CloneRange(src.get(), 8 * kBlock, 0, src.get(), 10 * kBlock) == EINVAL);
    unchanged();
  }
  SECTION("an empty source; an offset past the largest file") {
    WriteFile(fs.path("empty"), "");
    Fd empty(fs.path("empty"), O_RDONLY);
    CHECK(CloneRange(empty.get(), 0, 0, dst.get(), 0) == 0);  // nothing to do
    CHECK(CloneRange(src.get(), 0, kBlock, dst.get(), uint64_t{1} << 62) == EFBIG);
    loff_t in = 0, out = loff_t{1} << 62;
    CHECK(ErrnoOf(copy_file_range(src.get(), &in, dst.get(), &out, kBlock, 0)) == EFBIG);
    unchanged();
  }
  SECTION("flags must be zero") {
    daxref_token t;
    REQUIRE(GetToken(src.get(), &t) == 0);
    daxref_clone_range a{};
    a.src = t;
    a.src_length = kBlock;
    a.flags = 1;
    CHECK(ErrnoOf(ioctl(dst.get(), DAXREF_IOC_CLONE_RANGE, &a)) == EINVAL);
    unchanged();
  }
  SECTION("a destination not open for writing, or open for appending") {
    Fd ro(fs.path("dst"), O_RDONLY);
    CHECK(CloneRange(src.get(), 0, kBlock, ro.get(), 0) == EBADF);
    Fd app(fs.path("dst"), O_WRONLY | O_APPEND);
    CHECK(CloneRange(src.get(), 0, kBlock, app.get(), 0) == EBADF);
    CHECK(UnshareRange(ro.get(), 0, kBlock) == EBADF);
    unchanged();
  }
  SECTION("no token on a source not open for reading") {
    Fd wo(fs.path("src"), O_WRONLY);
    daxref_token t;
    CHECK(GetToken(wo.get(), &t) == EBADF);
    CHECK(CloneRange(wo.get(), 0, kBlock, dst.get(), 0) == EBADF);
    unchanged();
  }
  SECTION("directories") {
    Fd dir(fs.path("dir"), O_RDONLY | O_DIRECTORY);
    daxref_token t;
    CHECK(GetToken(dir.get(), &t) == EISDIR);
    CHECK(CloneRange(src.get(), 0, kBlock, dir.get(), 0) == EISDIR);
    CHECK(Dedupe(src.get(), 0, kBlock, dir.get(), 0).err == EISDIR);
    CHECK(UnshareRange(dir.get(), 0, kBlock) == EISDIR);
    unchanged();
  }
  SECTION("a token is used up by the clone that presents it, and dies with its handle") {
    daxref_token t;
    REQUIRE(GetToken(src.get(), &t) == 0);
    REQUIRE(CloneWithToken(t, 0, kBlock, dst.get(), 0) == 0);
    std::string want = dst_data;
    ModelCopy(src_data, 0, kBlock, &want, 0);
    CHECK(CloneWithToken(t, kBlock, kBlock, dst.get(), kBlock) == EXDEV);
    daxref_token made_up = t;
    made_up.value[0] ^= 1;
    CHECK(CloneWithToken(made_up, kBlock, kBlock, dst.get(), kBlock) == EXDEV);
    // A token whose handle was released (the kernel releases in the
    // background: give it a moment).
    {
      Fd other(fs.path("src"), O_RDONLY);
      REQUIRE(GetToken(other.get(), &t) == 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(CloneWithToken(t, kBlock, kBlock, dst.get(), kBlock) == EXDEV);
    // Even a clone that fails uses its token up.
    REQUIRE(GetToken(src.get(), &t) == 0);
    CHECK(CloneWithToken(t, 100, kBlock, dst.get(), kBlock) == EINVAL);
    CHECK(CloneWithToken(t, kBlock, kBlock, dst.get(), kBlock) == EXDEV);
    REQUIRE_SAME(ReadDirect(fs.path("dst")), want);
    REQUIRE_SAME(ReadDirect(fs.path("src")), src_data);
  }
  SECTION("4,096 live tokens at most: the oldest goes") {
    daxref_token first;
    REQUIRE(GetToken(src.get(), &first) == 0);
    for (int i = 0; i < 4096; ++i) {
      daxref_token t;
      REQUIRE(GetToken(src.get(), &t) == 0);
    }
    CHECK(CloneWithToken(first, 0, kBlock, dst.get(), 0) == EXDEV);
    unchanged();
  }
  SECTION("another daxref mount") {
    MountedFs other;
    WriteFile(other.path("far"), src_data);
    Fd far(other.path("far"), O_RDONLY);
    CHECK(CloneRange(far.get(), 0, kBlock, dst.get(), 0) == EXDEV);
    CHECK(Dedupe(far.get(), 0, kBlock, dst.get(), 0).err == EXDEV);
    CHECK(CloneRange(src.get(), 0, kBlock, far.get(), 0) == EBADF);  // far is read-only
    Fd far_rw(other.path("far"), O_RDWR);
    CHECK(CloneRange(src.get(), 0, kBlock, far_rw.get(), 0) == EXDEV);
    unchanged();
    CHECK(StateOf(other.path("far")).bytes == src_data);
    // copy_file_range between the mounts: the daemon cannot share across
    // pools; the kernel refuses (EXDEV) or copies by splice. Either way
    // whole bytes, nothing shared.
    WriteFile(fs.path("near"), "");
    Fd near(fs.path("near"), O_RDWR);
    loff_t in = 0, out = 0;
    ssize_t n = copy_file_range(far.get(), &in, near.get(), &out, 3 * kBlock, 0);
    INFO("copy_file_range across mounts: " << n << " " << strerror(errno));
    if (n < 0) {
      CHECK(errno == EXDEV);
    } else {
      REQUIRE(n > 0);
      CHECK(ReadDirect(fs.path("near")) == src_data.substr(0, n));
      for (const auto& [fb, m] : BlockMap(fs.path("near"))) CHECK(m.refcount == 1);
    }
    near.Close();
    far.Close();
    far_rw.Close();
    other.Check();
  }
  src.Close();
  dst.Close();
  fs.Check();
}

TEST_CASE(
    "a clone whose partial EOF block would land inside the destination's EOF fails with "
    "EINVAL and changes nothing",
    "[fs][reflink]") {
  // generic_remap_check_len: a partial EOF block is only linked at or past
  // the destination's EOF; inside it, the bytes of dst past the source's EOF
  // in that block would be replaced by the source's zeros.
  MountedFs fs;
  const std::string src_data = NonZeroBytes(40, 2 * kBlock + 100);
  const std::string dst_data = NonZeroBytes(41, 8 * kBlock);
  WriteFile(fs.path("src"), src_data);
  WriteFile(fs.path("dst"), dst_data);
  Fd src(fs.path("src"), O_RDONLY);
  Fd dst(fs.path("dst"), O_RDWR);
  const FileState dst0 = StateOf(fs.path("dst"));
  CHECK(CloneRange(src.get(), 0, 0, dst.get(), 2 * kBlock) == EINVAL);
  CHECK(CloneRange(src.get(), 0, src_data.size(), dst.get(), 2 * kBlock) == EINVAL);
  CHECK(CloneRange(src.get(), kBlock, 0, dst.get(), 6 * kBlock) == EINVAL);  // ends 3996 short
  CHECK(StateOf(fs.path("dst")) == dst0);
  REQUIRE_SAME(PreadAll(dst.get(), 0, dst_data.size()), dst_data);
  // At or past dst's EOF it is fine: the block's tail is past EOF there.
  REQUIRE(CloneRange(src.get(), kBlock, 0, dst.get(), 7 * kBlock) == 0);
  std::string want = dst_data;
  ModelCopy(src_data, kBlock, src_data.size() - kBlock, &want, 7 * kBlock);
  REQUIRE_SAME(PreadAll(dst.get(), 0, want.size() + 1), want);
  src.Close();
  dst.Close();
  fs.Check();
}

TEST_CASE("copy_file_range errors and edges: past EOF, overlap, other filesystems",
          "[fs][reflink]") {
  MountedFs fs;
  TempDir shm("/dev/shm");
  const std::string data = NonZeroBytes(50, 20 * kBlock + 33);
  WriteFile(fs.path("src"), data);
  WriteFile(fs.path("dst"), "old");
  Fd src(fs.path("src"), O_RDWR);
  Fd dst(fs.path("dst"), O_RDWR);
  const FileState src0 = StateOf(fs.path("src")), dst0 = StateOf(fs.path("dst"));

  loff_t in = data.size() + 10, out = 0;
  CHECK(copy_file_range(src.get(), &in, dst.get(), &out, kBlock, 0) == 0);
  in = data.size();
  CHECK(copy_file_range(src.get(), &in, dst.get(), &out, kBlock, 0) == 0);
  in = 0;
  out = 3 * kBlock;
  CHECK(ErrnoOf(copy_file_range(src.get(), &in, src.get(), &out, 4 * kBlock, 0)) == EINVAL);
  in = 5 * kBlock + 1;
  out = 3 * kBlock;
  CHECK(ErrnoOf(copy_file_range(src.get(), &in, src.get(), &out, 4 * kBlock, 0)) == EINVAL);
  in = 0;
  out = 0;
  CHECK(ErrnoOf(copy_file_range(src.get(), &in, dst.get(), &out, kBlock, 1)) == EINVAL);
  CHECK(StateOf(fs.path("src")) == src0);
  CHECK(StateOf(fs.path("dst")) == dst0);

  // A tmpfs file on either side. The kernel may refuse (EXDEV: copy
  // tools then fall back to read/write) or copy; it must never half-do it.
  const std::string tmpfs_file = shm.path() + "/t";
  WriteFile(tmpfs_file, NonZeroBytes(51, 3 * kBlock));
  const std::string tmpfs_data = ReadFile(tmpfs_file);
  {
    Fd t(tmpfs_file, O_RDWR);
    in = 0;
    out = 0;
    ssize_t n = copy_file_range(src.get(), &in, t.get(), &out, data.size(), 0);
    int err = errno;
    INFO("daxref -> tmpfs: " << n << " " << strerror(err));
    if (n < 0) {
      CHECK(err == EXDEV);
      CHECK(ReadFile(tmpfs_file) == tmpfs_data);
    } else {
      CHECK(n > 0);
      CHECK(ReadFile(tmpfs_file).substr(0, n) == data.substr(0, n));
    }
    in = 0;
    out = 0;
    n = copy_file_range(t.get(), &in, dst.get(), &out, tmpfs_data.size(), 0);
    err = errno;
    INFO("tmpfs -> daxref: " << n << " " << strerror(err));
    if (n < 0) {
      CHECK(err == EXDEV);
      CHECK(StateOf(fs.path("dst")) == dst0);
    } else {
      CHECK(n > 0);
      CHECK(ReadDirect(fs.path("dst")).substr(0, n) == tmpfs_data.substr(0, n));
    }
  }
  // cp gets a right copy either way.
  RunResult r = Run({"/usr/bin/cp", fs.path("src"), shm.path() + "/from-daxref"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  REQUIRE_SAME(ReadFile(shm.path() + "/from-daxref"), data);
  r = Run({"/usr/bin/cp", tmpfs_file, fs.path("from-tmpfs")});
  REQUIRE(r.status == 0);
  REQUIRE_SAME(ReadFile(fs.path("from-tmpfs")), tmpfs_data);
  REQUIRE_SAME(ReadDirect(fs.path("from-tmpfs")), tmpfs_data);
  src.Close();
  dst.Close();
  fs.Check();
}

// ---------------------------------------------------------------------------
// 5. dedupe

TEST_CASE("dedupe shares equal ranges and frees the duplicate; different ranges are left alone",
          "[fs][reflink]") {
  MountedFs fs;
  const std::string data = NonZeroBytes(60, 64 * kBlock);
  WriteFile(fs.path("a"), data);
  WriteFile(fs.path("b"), data);  // the same bytes, separate blocks
  std::string c_data = data;
  c_data[30 * kBlock + 17] ^= 0x40;
  WriteFile(fs.path("c"), c_data);
  const std::string odd = NonZeroBytes(61, 10 * kBlock + 100);  // partial EOF block
  WriteFile(fs.path("d"), odd);
  WriteFile(fs.path("e"), odd);
  Fd a(fs.path("a"), O_RDONLY), b(fs.path("b"), O_RDWR), c(fs.path("c"), O_RDWR);
  Fd d(fs.path("d"), O_RDONLY), e(fs.path("e"), O_RDWR);
  const struct stat b_before = StatOf(b.get());

  const uint64_t free0 = FreeBlocks(fs);
  DedupeOutcome r = Dedupe(a.get(), 0, data.size(), b.get(), 0);
  REQUIRE(r.err == 0);
  CHECK(r.status == FILE_DEDUPE_RANGE_SAME);
  CHECK(r.bytes == data.size());
  CHECK(FreeBlocks(fs) - free0 == 64);
  auto ma = BlockMap(fs.path("a")), mb = BlockMap(fs.path("b"));
  REQUIRE(ma.size() == 64);
  for (const auto& [fb, m] : ma) {
    INFO("block " << fb);
    CHECK(mb[fb].pool == m.pool);
    CHECK(m.refcount == 2);
    CHECK(mb[fb].shared_flag);
  }
  REQUIRE_SAME(PreadAll(b.get(), 0, data.size() + 1), data);
  REQUIRE_SAME(ReadDirect(fs.path("b")), data);

  // One byte differs in block 30: nothing is shared, whatever the length.
  const uint64_t free1 = FreeBlocks(fs);
  for (uint64_t len : {uint64_t{64 * kBlock}, uint64_t{31 * kBlock}}) {
    INFO("length " << len);
    r = Dedupe(a.get(), 0, len, c.get(), 0);
    REQUIRE(r.err == 0);
    CHECK(r.status == FILE_DEDUPE_RANGE_DIFFERS);
    CHECK(r.bytes == 0);
  }
  CHECK(FreeBlocks(fs) == free1);
  for (const auto& [fb, m] : BlockMap(fs.path("c"))) CHECK(m.refcount == 1);
  REQUIRE_SAME(ReadDirect(fs.path("c")), c_data);
  // The equal part before it can be deduped alone.
  r = Dedupe(a.get(), 0, 30 * kBlock, c.get(), 0);
  CHECK(r.status == FILE_DEDUPE_RANGE_SAME);
  CHECK(r.bytes == 30 * kBlock);
  CHECK(FreeBlocks(fs) - free1 == 30);
  REQUIRE_SAME(ReadDirect(fs.path("c")), c_data);

  // Two files that end in the same partial block, deduped to their EOF.
  const uint64_t free2 = FreeBlocks(fs);
  r = Dedupe(d.get(), 0, odd.size(), e.get(), 0);
  REQUIRE(r.err == 0);
  CHECK(r.status == FILE_DEDUPE_RANGE_SAME);
  CHECK(r.bytes == odd.size());
  CHECK(FreeBlocks(fs) - free2 == 11);
  REQUIRE_SAME(ReadDirect(fs.path("e")), odd);
  for (const auto& [fb, m] : BlockMap(fs.path("e"))) CHECK(m.refcount == 2);

  a.Close();
  b.Close();
  c.Close();
  d.Close();
  e.Close();
  fs.Remount();
  // The bytes did not change, so neither did the times (read after a
  // remount: the kernel caches attributes).
  const struct stat b_after = StatOf(fs.path("b"));
  CHECK(b_after.st_mtim.tv_sec == b_before.st_mtim.tv_sec);
  CHECK(b_after.st_mtim.tv_nsec == b_before.st_mtim.tv_nsec);
  REQUIRE_SAME(ReadFile(fs.path("b")), data);
  REQUIRE_SAME(ReadFile(fs.path("c")), c_data);
  REQUIRE_SAME(ReadFile(fs.path("e")), odd);
  fs.Check();
}

TEST_CASE("dedupe into a file the caller may not write reports -EPERM in its status",
          "[fs][reflink]") {
  MountedFs fs(AllowOther());
  const std::string data = NonZeroBytes(62, 8 * kBlock);
  WriteFile(fs.path("src"), data);   // root's, 0644
  WriteFile(fs.path("root"), data);  // root's, 0644: alice reads, cannot write
  REQUIRE(chmod(fs.path("src").c_str(), 0644) == 0);
  REQUIRE(chmod(fs.path("root").c_str(), 0644) == 0);
  REQUIRE(chmod(fs.mnt().c_str(), 0777) == 0);
  WriteFile(fs.path("mine"), data);
  REQUIRE(chown(fs.path("mine").c_str(), kAlice, kAliceGroup) == 0);
  REQUIRE(chmod(fs.path("mine").c_str(), 0444) == 0);  // hers, even read-only
  const FileState root0 = StateOf(fs.path("root"));

  // status, bytes_deduped of alice's dedupe from src into `dest`, opened
  // read-only; 1000 + errno if a call failed outright.
  auto dedupe_as_alice = [&](const std::string& dest) {
    return RunAs(kAlice, kAliceGroup, [&] {
      int s = open(fs.path("src").c_str(), O_RDONLY);
      int d = open(dest.c_str(), O_RDONLY);
      if (s < 0 || d < 0) return 1000 + errno;
      DedupeOutcome r = Dedupe(s, 0, data.size(), d, 0);
      if (r.err) return 1000 + r.err;
      if (r.status == -EPERM) return r.bytes == 0 ? 1 : 2;
      if (r.status == FILE_DEDUPE_RANGE_SAME) return r.bytes == data.size() ? 0 : 3;
      return 4;
    });
  };
  CHECK(dedupe_as_alice(fs.path("root")) == 1);  // -EPERM, nothing deduped
  CHECK(StateOf(fs.path("root")) == root0);
  CHECK(dedupe_as_alice(fs.path("mine")) == 0);  // the owner may
  for (const auto& [fb, m] : BlockMap(fs.path("mine"))) CHECK(m.refcount == 2);
  fs.Check();
}

// ---------------------------------------------------------------------------
// 6. who may clone what

TEST_CASE("a user clones only what it can read, and only into what it opened for writing",
          "[fs][reflink]") {
  MountedFs fs(AllowOther());
  REQUIRE(chmod(fs.mnt().c_str(), 0777) == 0);
  const std::string secret = NonZeroBytes(70, 6 * kBlock);
  const std::string pub = NonZeroBytes(71, 6 * kBlock + 9);
  WriteFile(fs.path("secret"), secret);
  REQUIRE(chmod(fs.path("secret").c_str(), 0600) == 0);
  WriteFile(fs.path("dropbox"), secret);  // writable by all, readable by root only
  REQUIRE(chmod(fs.path("dropbox").c_str(), 0622) == 0);
  WriteFile(fs.path("public"), pub);
  REQUIRE(chmod(fs.path("public").c_str(), 0644) == 0);

  // Alice creates her own file, then tries each source; the exit code is
  // the errno of the first call that failed.
  auto clone_as_alice = [&](const std::string& src, int src_flags) {
    return RunAs(kAlice, kAliceGroup, [&] {
      int d = open(fs.path("alice").c_str(), O_RDWR | O_CREAT, 0644);
      if (d < 0) return 200;
      int s = open(src.c_str(), src_flags);
      if (s < 0) return errno;
      int err = CloneRange(s, 0, 0, d, 0);
      close(s);
      close(d);
      return err;
    });
  };
  CHECK(clone_as_alice(fs.path("secret"), O_RDONLY) == EACCES);
  CHECK(clone_as_alice(fs.path("dropbox"), O_RDONLY) == EACCES);
  CHECK(clone_as_alice(fs.path("dropbox"), O_WRONLY) == EBADF);  // no token without read access
  CHECK(StatOf(fs.path("alice")).st_size == 0);
  CHECK(clone_as_alice(fs.path("public"), O_RDONLY) == 0);
  CHECK(StatOf(fs.path("alice")).st_uid == kAlice);
  REQUIRE_SAME(ReadFile(fs.path("alice")), pub);
  auto ma = BlockMap(fs.path("alice")), mp = BlockMap(fs.path("public"));
  REQUIRE(ma.size() == BlocksFor(pub.size()));
  for (const auto& [fb, m] : mp) CHECK(ma[fb].pool == m.pool);
  const FileState public0 = StateOf(fs.path("public"));

  // Into root's public file: she cannot open it for writing, and a
  // read-only descriptor is no destination.
  CHECK(RunAs(kAlice, kAliceGroup, [&] {
          int s = open(fs.path("alice").c_str(), O_RDONLY);
          if (s < 0) return 200;
          if (open(fs.path("public").c_str(), O_RDWR) >= 0) return 201;
          int d = open(fs.path("public").c_str(), O_RDONLY);
          if (d < 0) return 202;
          return CloneRange(s, 0, 0, d, 0);
        }) == EBADF);
  CHECK(StateOf(fs.path("public")) == public0);
  fs.Check();
}

// ---------------------------------------------------------------------------
// 7. xfs_io copy_range (copy_file_range(2))

TEST_CASE("xfs_io copy_range shares aligned ranges and copies misaligned ones", "[fs][reflink]") {
  MountedFs fs;
  const std::string src_data = NonZeroBytes(80, 64 * kBlock + 123);
  WriteFile(fs.path("src"), src_data);
  std::string dst_data = NonZeroBytes(81, 40 * kBlock);
  WriteFile(fs.path("dst"), dst_data);
  auto copy_range = [&](uint64_t s, uint64_t d, uint64_t len) {
    std::string cmd = "copy_range -s " + std::to_string(s) + " -d " + std::to_string(d) + " -l " +
                      std::to_string(len) + " " + fs.path("src");
    RunResult r = Run({"/usr/sbin/xfs_io", "-c", cmd, fs.path("dst")});
    INFO(cmd << ": " << r.out << r.err);
    REQUIRE(r.status == 0);
    REQUIRE(r.err.empty());
    ModelCopy(src_data, s, len, &dst_data, d);
  };
  const uint64_t free0 = FreeBlocks(fs);
  // Aligned: blocks 3..13 of src become blocks 5..15 of dst, shared.
  copy_range(3 * kBlock, 5 * kBlock, 10 * kBlock);
  CHECK(FreeBlocks(fs) - free0 == 10);  // dst's own ten went back
  auto ms = BlockMap(fs.path("src")), md = BlockMap(fs.path("dst"));
  for (uint64_t i = 0; i < 10; ++i) {
    INFO("block " << i);
    CHECK(md[5 + i].pool == ms[3 + i].pool);
    CHECK(md[5 + i].refcount == 2);
  }
  CHECK(md[4].refcount == 1);
  CHECK(md[15].refcount == 1);
  REQUIRE_SAME(ReadFile(fs.path("dst")), dst_data);

  // Same offset within a block on both sides: the whole blocks in the
  // middle are shared, the edges copied.
  copy_range(20 * kBlock + 100, 22 * kBlock + 100, 6 * kBlock);
  md = BlockMap(fs.path("dst"));
  for (uint64_t i = 1; i < 6; ++i) CHECK(md[22 + i].pool == ms[20 + i].pool);
  CHECK(md[22].pool != ms[20].pool);
  REQUIRE_SAME(ReadFile(fs.path("dst")), dst_data);

  // Misaligned against each other: bytes only.
  const uint64_t free1 = FreeBlocks(fs);
  copy_range(30 * kBlock + 5, 33 * kBlock + 4000, 3 * kBlock + 7);
  md = BlockMap(fs.path("dst"));
  for (uint64_t fb = 33; fb <= 36; ++fb) CHECK(md[fb].refcount == 1);
  CHECK(FreeBlocks(fs) == free1);  // dst already had those blocks
  REQUIRE_SAME(ReadFile(fs.path("dst")), dst_data);

  // To the source's EOF, past dst's EOF: the partial last block is shared.
  copy_range(60 * kBlock, 44 * kBlock, src_data.size() - 60 * kBlock);
  md = BlockMap(fs.path("dst"));
  for (uint64_t i = 0; i < 5; ++i) CHECK(md[44 + i].pool == ms[60 + i].pool);
  REQUIRE(static_cast<uint64_t>(StatOf(fs.path("dst")).st_size) == dst_data.size());
  REQUIRE_SAME(ReadFile(fs.path("dst")), dst_data);

  fs.Remount();
  REQUIRE_SAME(ReadFile(fs.path("dst")), dst_data);
  REQUIRE_SAME(ReadFile(fs.path("src")), src_data);
  fs.Check();
}

// ---------------------------------------------------------------------------
// 8. SIGKILL during clones

namespace {

// Operations of the crash workload on files f0..f5, and their model.
using Files = std::map<int, std::string>;  // index -> contents

struct CrashOp {
  enum Kind { kCreate, kWrite, kClone, kCopy, kTruncate, kUnlink } kind = kCreate;
  int a = 0, b = 0;  // file indices: the one changed is b (a: source)
  uint64_t src_off = 0, len = 0, dst_off = 0, arg_len = 0;
  uint64_t seed = 0;
  std::string Describe() const {
    static const char* const names[] = {"create", "write", "clone", "copy", "truncate", "unlink"};
    return std::string(names[kind]) + " f" + std::to_string(a) + " -> f" + std::to_string(b) +
           " src_off " + std::to_string(src_off) + " len " + std::to_string(len) + " dst_off " +
           std::to_string(dst_off);
  }
};

constexpr int kCrashFiles = 6;
constexpr uint64_t kCrashMaxSize = 768 * kKiB;

std::string CrashName(int i) {
  return "f" + std::to_string(i);
}

void ApplyCrashOp(Files* m, const CrashOp& op) {
  switch (op.kind) {
    case CrashOp::kCreate:
      (*m)[op.b] = "";
      break;
    case CrashOp::kWrite:
      ModelWrite(&(*m)[op.b], op.dst_off, NonZeroBytes(op.seed, op.len));
      break;
    case CrashOp::kClone:
    case CrashOp::kCopy:
      ModelCopy(m->at(op.a), op.src_off, op.len, &(*m)[op.b], op.dst_off);
      break;
    case CrashOp::kTruncate:
      (*m)[op.b].resize(op.len, '\0');
      break;
    case CrashOp::kUnlink:
      m->erase(op.b);
      break;
  }
}

// A random operation that succeeds on `m`; deterministic in (m, rng).
CrashOp NextCrashOp(const Files& m, std::mt19937_64& rng) {
  auto pick_present = [&]() -> std::optional<int> {
    if (m.empty()) return std::nullopt;
    auto it = m.begin();
    std::advance(it, rng() % m.size());
    return it->first;
  };
  for (;;) {
    CrashOp op;
    op.seed = rng();
    unsigned roll = rng() % 100;
    if (roll < 10) {
      int i = static_cast<int>(rng() % kCrashFiles);
      if (m.count(i)) continue;
      op.kind = CrashOp::kCreate;
      op.b = i;
    } else if (roll < 35) {
      auto f = pick_present();
      if (!f) continue;
      op.kind = CrashOp::kWrite;
      op.b = *f;
      op.dst_off = rng() % std::min<uint64_t>(m.at(*f).size() + 1, 512 * kKiB);
      op.len = 1 + rng() % (48 * kKiB);
    } else if (roll < 70) {
      auto s = pick_present(), d = pick_present();
      if (!s || !d || m.at(*s).empty()) continue;
      const uint64_t ssize = m.at(*s).size(), dsize = m.at(*d).size();
      op.kind = CrashOp::kClone;
      op.a = *s;
      op.b = *d;
      op.src_off = rng() % ssize / kBlock * kBlock;
      uint64_t full = (ssize - op.src_off) / kBlock;
      if (rng() % 2 && full > 0) {
        op.len = op.arg_len = (1 + rng() % std::min<uint64_t>(full, 64)) * kBlock;
      } else {
        op.len = ssize - op.src_off;
        op.arg_len = rng() % 2 ? 0 : op.len;
      }
      op.dst_off = rng() % std::min<uint64_t>(dsize + 128 * kKiB, 512 * kKiB) / kBlock * kBlock;
      if (op.dst_off + op.len > kCrashMaxSize) continue;
      if (op.len % kBlock && op.dst_off + op.len < dsize) continue;
      uint64_t span = BlocksFor(op.len) * kBlock;
      if (op.a == op.b && op.dst_off + span > op.src_off && op.dst_off < op.src_off + span)
        continue;
    } else if (roll < 80) {
      auto s = pick_present(), d = pick_present();
      if (!s || !d || m.at(*s).empty()) continue;
      const uint64_t ssize = m.at(*s).size();
      op.kind = CrashOp::kCopy;
      op.a = *s;
      op.b = *d;
      op.src_off = rng() % ssize;
      if (rng() % 2) op.src_off = op.src_off / kBlock * kBlock;
      op.len = std::min<uint64_t>(1 + rng() % (256 * kKiB), ssize - op.src_off);
      op.dst_off = rng() % std::min<uint64_t>(m.at(*d).size() + 1, 512 * kKiB);
      if (rng() % 2) op.dst_off = op.dst_off / kBlock * kBlock;
      if (op.dst_off + op.len > kCrashMaxSize) continue;
      if (op.a == op.b && op.dst_off + op.len > op.src_off && op.dst_off < op.src_off + op.len)
        continue;
    } else if (roll < 88) {
      auto f = pick_present();
      if (!f) continue;
      op.kind = CrashOp::kTruncate;
      op.b = *f;
      op.len = rng() % (600 * kKiB);
    } else {
      auto f = pick_present();
      if (!f) continue;
      op.kind = CrashOp::kUnlink;
      op.b = *f;
    }
    return op;
  }
}

// Performs op relative to `root`; 0 or the errno of the first failing call.
// Runs in the forked child: no test macros.
int ExecuteCrashOp(int root, const CrashOp& op) {
  auto fail = [] { return errno ? errno : EIO; };
  const std::string a = CrashName(op.a), b = CrashName(op.b);
  switch (op.kind) {
    case CrashOp::kCreate: {
      int fd = openat(root, b.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
      if (fd < 0) return fail();
      return close(fd) == 0 ? 0 : fail();
    }
    case CrashOp::kWrite: {
      int fd = openat(root, b.c_str(), O_WRONLY);
      if (fd < 0) return fail();
      std::string data = NonZeroBytes(op.seed, op.len);
      ssize_t n = pwrite(fd, data.data(), data.size(), op.dst_off);
      int err = n == static_cast<ssize_t>(data.size()) ? 0 : (n < 0 ? fail() : EIO);
      close(fd);
      return err;
    }
    case CrashOp::kClone:
    case CrashOp::kCopy: {
      int s = openat(root, a.c_str(), O_RDONLY);
      if (s < 0) return fail();
      int d = openat(root, b.c_str(), O_WRONLY);
      if (d < 0) {
        int err = fail();
        close(s);
        return err;
      }
      int err = 0;
      if (op.kind == CrashOp::kClone) {
        err = CloneRange(s, op.src_off, op.arg_len, d, op.dst_off);
      } else {
        loff_t in = op.src_off, out = op.dst_off;
        ssize_t n = copy_file_range(s, &in, d, &out, op.len, 0);
        err = n == static_cast<ssize_t>(op.len) ? 0 : (n < 0 ? fail() : EIO);
      }
      close(s);
      close(d);
      return err;
    }
    case CrashOp::kTruncate: {
      int fd = openat(root, b.c_str(), O_WRONLY);
      if (fd < 0) return fail();
      int err = ftruncate(fd, op.len) == 0 ? 0 : fail();
      close(fd);
      return err;
    }
    case CrashOp::kUnlink:
      return unlinkat(root, b.c_str(), 0) == 0 ? 0 : fail();
  }
  return EINVAL;
}

// Whether `got` is `before` with the first k bytes of write `op` stored,
// for some k.
bool WrotePrefix(const std::string& got, const std::string& before, const CrashOp& op) {
  const std::string data = NonZeroBytes(op.seed, op.len);
  uint64_t k = 0;
  if (got.size() > before.size()) {
    if (got.size() <= op.dst_off || got.size() > op.dst_off + op.len) return false;
    k = got.size() - op.dst_off;
  } else {
    while (k < op.len && op.dst_off + k < got.size() && got[op.dst_off + k] == data[k]) ++k;
  }
  std::string want = before;
  ModelWrite(&want, op.dst_off, data.substr(0, k));
  return got == want;
}

struct CrashRecord {
  uint32_t index;
  int32_t err;
};

}  // namespace

TEST_CASE(
    "every clone, copy and write that returned survives SIGKILL; the refcounts, reverse "
    "map and free space stay consistent",
    "[fs][reflink]") {
  const uint64_t base_seed = 0x5eed + Catch::rngSeed();
  const int kIterations = 6;
  for (int iter = 0; iter < kIterations; ++iter) {
    const uint64_t seed = base_seed * 1000 + iter;
    INFO("iteration " << iter << ", seed " << seed);
    std::mt19937_64 parent_rng(seed ^ 0x9e3779b97f4a7c15ull);
    // Half the time by count of completed operations, half by time.
    const bool by_time = parent_rng() % 2;
    const uint32_t kill_after = 20 + parent_rng() % 300;
    const int kill_ms = 20 + static_cast<int>(parent_rng() % 400);
    INFO("kill after " << (by_time ? std::to_string(kill_ms) + " ms (from the first operation)"
                                   : std::to_string(kill_after) + " operations"));

    MountedFs fs;
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      close(pipefd[0]);
      int root = open(fs.mnt().c_str(), O_RDONLY | O_DIRECTORY);
      if (root < 0 || fchdir(root) != 0) _exit(3);
      std::mt19937_64 rng(seed);
      Files m;
      for (uint32_t i = 0; i < 1000000; ++i) {
        CrashOp op = NextCrashOp(m, rng);
        CrashRecord rec{i, ExecuteCrashOp(root, op)};
        if (write(pipefd[1], &rec, sizeof(rec)) != sizeof(rec)) _exit(4);
        if (rec.err) _exit(0);
        ApplyCrashOp(&m, op);
      }
      _exit(0);
    }
    close(pipefd[1]);
    std::atomic<bool> killed{false};
    std::thread timer;  // started once the first operation is done
    uint32_t done = 0;
    int final_err = 0;
    CrashRecord rec;
    while (read(pipefd[0], &rec, sizeof(rec)) == sizeof(rec)) {
      REQUIRE(rec.index == done);
      if (rec.err) {
        final_err = rec.err;
        break;
      }
      ++done;
      if (by_time && done == 1) {
        timer = std::thread([&] {
          std::this_thread::sleep_for(std::chrono::milliseconds(kill_ms));
          kill(fs.daemon_pid(), SIGKILL);
          killed = true;
        });
      }
      if (!by_time && done == kill_after) {
        kill(fs.daemon_pid(), SIGKILL);
        killed = true;
      }
    }
    if (timer.joinable()) timer.join();
    fs.KillDaemon();  // reaps the killed daemon and detaches the mount
    close(pipefd[0]);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    REQUIRE(ExitCode(status) == 0);
    INFO("first failure after " << done << " operations: " << strerror(final_err));
    REQUIRE(killed);
    REQUIRE(done > 0);
    REQUIRE((final_err == ENOTCONN || final_err == ECONNABORTED || final_err == EIO));

    std::mt19937_64 rng(seed);
    Files before;
    for (uint32_t i = 0; i < done; ++i) ApplyCrashOp(&before, NextCrashOp(before, rng));
    const CrashOp pending = NextCrashOp(before, rng);
    Files after = before;
    ApplyCrashOp(&after, pending);
    INFO("in flight: " << pending.Describe());

    // The store as the dead daemon left it, then as mounting cleans it up.
    fs.Check();
    fs.Mount();
    Files got;
    std::vector<std::string> paths;
    for (int i = 0; i < kCrashFiles; ++i) {
      struct stat st;
      if (stat(fs.path(CrashName(i)).c_str(), &st) != 0) continue;
      got[i] = ReadFile(fs.path(CrashName(i)));
      paths.push_back(fs.path(CrashName(i)));
    }
    std::string diff;
    // A write(2) the kill cut short may have stored a prefix: the kernel
    // sends a partial first page as a request of its own.
    std::optional<int> cut;
    if (pending.kind == CrashOp::kWrite && got.count(pending.b) && before.count(pending.b) &&
        WrotePrefix(got[pending.b], before[pending.b], pending)) {
      cut = pending.b;
      got[pending.b] = before[pending.b];  // judged; the rest must match as a whole
    }
    INFO((cut ? "the write in flight stored a prefix" : ""));
    for (int i = 0; i < kCrashFiles; ++i) {
      bool in_b = before.count(i), in_a = after.count(i), in_g = got.count(i);
      if (in_g && (in_b && got[i] == before[i])) continue;
      if (in_g && (in_a && got[i] == after[i])) continue;
      if (!in_g && (!in_b || !in_a)) continue;
      diff += "f" + std::to_string(i) + ": " + (in_g ? std::to_string(got[i].size()) : "none") +
              " bytes, want " + (in_b ? std::to_string(before[i].size()) : "none") + " or " +
              (in_a ? std::to_string(after[i].size()) : "none") + "\n";
    }
    // All files at once must be one state or the other, not a mix.
    INFO(diff);
    REQUIRE(diff.empty());
    REQUIRE((got == before || got == after));
    const uint64_t used = PoolBlocks(paths).size();
    const uint64_t free_now = FreeBlocks(fs);
    CheckReport r = fs.Check();
    CHECK(r.orphans == 0);
    CHECK(r.owned_blocks == used);
    CHECK(r.free_blocks == free_now);
  }
}

TEST_CASE("the extent query pages through a thousand pieces and honours a range", "[fs][reflink]") {
  MountedFs fs;
  constexpr uint64_t kBlocks = 1000;
  WriteFile(fs.path("A"), NonZeroBytes(27, kBlocks * kBlock));
  Fd a(fs.path("A"), O_RDONLY);
  Fd b(fs.path("B"), O_RDWR | O_CREAT | O_TRUNC);
  REQUIRE(CloneRange(a.get(), 0, 0, b.get(), 0) == 0);
  const std::string x(kBlock, 'x');
  for (uint64_t fb = 0; fb < kBlocks; fb += 2) PwriteExact(b.get(), x, fb * kBlock);
  // B alternates: its own block, a shared one.
  auto ext = Extents(b.get());
  REQUIRE(ext.size() == kBlocks);
  for (uint64_t i = 0; i < kBlocks; ++i) {
    INFO("piece " << i);
    CHECK(ext[i].logical == i * kBlock);
    CHECK(ext[i].length == kBlock);
    CHECK(ext[i].refcount == (i % 2 ? 2u : 1u));
    CHECK(((ext[i].flags & DAXREF_EXTENT_LAST) != 0) == (i == kBlocks - 1));
  }
  // A range: the pieces it touches, none marked last.
  auto q = std::make_unique<daxref_extent_query>();
  memset(q.get(), 0, sizeof(*q));
  q->start = 100 * kBlock + 10;
  q->length = 3 * kBlock;
  REQUIRE(ioctl(b.get(), DAXREF_IOC_EXTENTS, q.get()) == 0);
  REQUIRE(q->count == 4);  // blocks 100..103
  CHECK(q->extents[0].logical == 100 * kBlock);
  CHECK(q->extents[3].logical == 103 * kBlock);
  CHECK(!(q->flags & DAXREF_QUERY_MORE));
  for (uint32_t i = 0; i < q->count; ++i) CHECK(!(q->extents[i].flags & DAXREF_EXTENT_LAST));
  a.Close();
  b.Close();
  fs.Check();
}

// ---------------------------------------------------------------------------
// 9. owners and paths

namespace {

struct OwnersPage {
  int err = 0;
  std::vector<daxref_owner> owners;
  bool more = false;
  daxref_owner cursor{};
};

OwnersPage QueryOwners(int root, uint64_t physical, uint64_t length, const daxref_owner* after) {
  auto q = std::make_unique<daxref_owner_query>();
  memset(q.get(), 0, sizeof(*q));
  q->physical = physical;
  q->length = length;
  if (after) {
    q->cursor = *after;
    q->flags = DAXREF_QUERY_MORE;
  }
  OwnersPage p;
  if (ioctl(root, DAXREF_IOC_OWNERS, q.get()) != 0) {
    p.err = errno;
    return p;
  }
  p.owners.assign(q->owners, q->owners + std::min<uint32_t>(q->count, DAXREF_OWNERS_PER_CALL));
  p.more = q->flags & DAXREF_QUERY_MORE;
  p.cursor = q->cursor;
  return p;
}

// Every owner of the range, following the cursor; REQUIRE on failure.
std::vector<daxref_owner> AllOwners(int root, uint64_t physical, uint64_t length, int* calls) {
  std::vector<daxref_owner> all;
  std::optional<daxref_owner> cursor;
  for (*calls = 1;; ++*calls) {
    REQUIRE(*calls < 1000);
    OwnersPage p = QueryOwners(root, physical, length, cursor ? &*cursor : nullptr);
    INFO(strerror(p.err));
    REQUIRE(p.err == 0);
    all.insert(all.end(), p.owners.begin(), p.owners.end());
    if (!p.more) break;
    REQUIRE(!p.owners.empty());
    cursor = p.cursor;
  }
  return all;
}

struct PathsPage {
  int err = 0;
  std::vector<std::string> paths;
  bool more = false;
};

PathsPage QueryPaths(int root, uint64_t ino, uint32_t skip) {
  auto q = std::make_unique<daxref_paths_query>();
  memset(q.get(), 0, sizeof(*q));
  q->ino = ino;
  q->skip = skip;
  PathsPage p;
  if (ioctl(root, DAXREF_IOC_PATHS, q.get()) != 0) {
    p.err = errno;
    return p;
  }
  size_t at = 0;
  for (uint32_t i = 0; i < q->count && at < q->bytes; ++i) {
    std::string s(q->buf + at);
    at += s.size() + 1;
    p.paths.push_back(s);
  }
  p.more = q->flags & DAXREF_QUERY_MORE;
  return p;
}

}  // namespace

TEST_CASE("the owners of a block shared by three files, and their paths", "[fs][reflink]") {
  MountedFs fs(AllowOther());
  REQUIRE(mkdir(fs.path("dir").c_str(), 0755) == 0);
  // A owns 8 blocks; B gets A's blocks 2..5 at 0, C (10 blocks of its own)
  // gets them at 4: the shared range starts inside A's record.
  WriteFile(fs.path("A"), NonZeroBytes(90, 8 * kBlock));
  WriteFile(fs.path("B"), "");
  WriteFile(fs.path("C"), NonZeroBytes(91, 10 * kBlock));
  {
    Fd a(fs.path("A"), O_RDONLY), b(fs.path("B"), O_RDWR), c(fs.path("C"), O_RDWR);
    REQUIRE(CloneRange(a.get(), 2 * kBlock, 3 * kBlock, b.get(), 0) == 0);
    REQUIRE(CloneRange(a.get(), 2 * kBlock, 3 * kBlock, c.get(), 4 * kBlock) == 0);
  }
  REQUIRE(link(fs.path("B").c_str(), fs.path("dir/B2").c_str()) == 0);
  const uint64_t ino_a = StatOf(fs.path("A")).st_ino, ino_b = StatOf(fs.path("B")).st_ino,
                 ino_c = StatOf(fs.path("C")).st_ino;
  const uint64_t p0 = BlockMap(fs.path("A"))[2].pool;  // the first shared pool block
  const std::map<uint64_t, uint64_t> want_logical = {
      {ino_a, 2 * kBlock}, {ino_b, 0}, {ino_c, 4 * kBlock}};  // where p0 sits in each

  Fd root(fs.mnt(), O_RDONLY | O_DIRECTORY);
  // The block in the middle of the shared range, and the whole range.
  for (uint64_t off : {uint64_t{1}, uint64_t{0}}) {
    const uint64_t len = off ? kBlock : 3 * kBlock;
    INFO("query pool block " << p0 + off << ", " << len << " bytes");
    int calls = 0;
    auto owners = AllOwners(root.get(), (p0 + off) * kBlock, len, &calls);
    CHECK(calls == 1);
    std::map<uint64_t, int> seen;
    for (const daxref_owner& o : owners) {
      INFO("owner ino " << o.ino << " physical " << o.physical << " length " << o.length
                        << " logical " << o.logical);
      seen[o.ino]++;
      REQUIRE(want_logical.count(o.ino) == 1);
      // A whole record that covers the queried block, mapping it where the
      // file has it.
      const uint64_t q = (p0 + off) * kBlock;
      CHECK(o.physical <= q);
      CHECK(q < o.physical + o.length);
      CHECK(o.logical + (p0 * kBlock - o.physical) == want_logical.at(o.ino));
    }
    CHECK(seen == std::map<uint64_t, int>{{ino_a, 1}, {ino_b, 1}, {ino_c, 1}});
  }
  // A block of C's own: C alone.
  {
    const uint64_t own = BlockMap(fs.path("C"))[1].pool;
    int calls = 0;
    auto owners = AllOwners(root.get(), own * kBlock, kBlock, &calls);
    REQUIRE(owners.size() == 1);
    CHECK(owners[0].ino == ino_c);
  }

  PathsPage pa = QueryPaths(root.get(), ino_a, 0);
  CHECK(pa.err == 0);
  CHECK(pa.paths == std::vector<std::string>{"/A"});
  PathsPage pb = QueryPaths(root.get(), ino_b, 0);
  CHECK(pb.err == 0);
  CHECK(std::set<std::string>(pb.paths.begin(), pb.paths.end()) ==
        std::set<std::string>{"/B", "/dir/B2"});
  CHECK(!pb.more);
  PathsPage pb1 = QueryPaths(root.get(), ino_b, 1);
  REQUIRE(pb1.paths.size() == 1);
  REQUIRE(pb.paths.size() == 2);
  CHECK(pb1.paths[0] == pb.paths[1]);
  CHECK(QueryPaths(root.get(), ino_c, 0).paths == std::vector<std::string>{"/C"});

  // Not for users: EPERM, even on a file they can read.
  REQUIRE(chmod(fs.path("A").c_str(), 0644) == 0);
  CHECK(RunAs(kAlice, kAliceGroup, [&] {
          int r = open(fs.mnt().c_str(), O_RDONLY | O_DIRECTORY);
          int f = open(fs.path("A").c_str(), O_RDONLY);
          if (r < 0 || f < 0) return 200;
          OwnersPage o1 = QueryOwners(r, p0 * kBlock, kBlock, nullptr);
          OwnersPage o2 = QueryOwners(f, p0 * kBlock, kBlock, nullptr);
          PathsPage pp = QueryPaths(r, ino_a, 0);
          if (o1.err != EPERM) return 201;
          if (o2.err != EPERM) return 202;
          if (pp.err != EPERM) return 203;
          // Its own file's extents are fine.
          auto q = std::make_unique<daxref_extent_query>();
          memset(q.get(), 0, sizeof(*q));
          if (ioctl(f, DAXREF_IOC_EXTENTS, q.get()) != 0) return 204;
          return q->count > 0 ? 0 : 205;
        }) == 0);
  root.Close();
  fs.Check();
}

TEST_CASE("owners of a block shared 501 times come over several calls, each once",
          "[fs][reflink]") {
  MountedFs fs;
  const int kClones = 500;
  const std::string data = NonZeroBytes(95, kBlock);
  WriteFile(fs.path("one"), data);
  REQUIRE(mkdir(fs.path("c").c_str(), 0755) == 0);
  std::set<uint64_t> want = {StatOf(fs.path("one")).st_ino};
  {
    Fd src(fs.path("one"), O_RDONLY);
    for (int i = 0; i < kClones; ++i) {
      Fd dst(fs.path("c/" + std::to_string(i)), O_WRONLY | O_CREAT | O_TRUNC);
      INFO("clone " << i);
      REQUIRE(CloneRange(src.get(), 0, 0, dst.get(), 0) == 0);
      want.insert(StatOf(dst.get()).st_ino);
    }
  }
  REQUIRE(want.size() == kClones + 1);
  auto m = BlockMap(fs.path("one"));
  REQUIRE(m.size() == 1);
  CHECK(m[0].refcount == kClones + 1);
  REQUIRE_SAME(ReadFile(fs.path("c/499")), data);

  Fd root(fs.mnt(), O_RDONLY | O_DIRECTORY);
  int calls = 0;
  auto owners = AllOwners(root.get(), m[0].pool * kBlock, kBlock, &calls);
  CHECK(calls == 2);
  std::map<uint64_t, int> seen;
  for (const daxref_owner& o : owners) {
    seen[o.ino]++;
    CHECK(o.physical == m[0].pool * kBlock);
    CHECK(o.length == kBlock);
    CHECK(o.logical == 0);
  }
  CHECK(owners.size() == want.size());
  std::set<uint64_t> got;
  for (const auto& [ino, n] : seen) {
    INFO("ino " << ino);
    CHECK(n == 1);
    got.insert(ino);
  }
  CHECK(got == want);
  root.Close();
  CheckReport r = fs.Check();
  CHECK(r.owned_blocks == 1);
  CHECK(r.shared_blocks == 1);
}
