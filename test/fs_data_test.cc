// File data through a real mount: random I/O against a reference model,
// holes, sparse files, truncation, O_APPEND, where the bytes live (pool, not
// metadata store), real tools (cp, cmp, dd), fsync, mmap, ENOSPC, st_blocks.
//
// Reads that must reach the daemon (not the kernel's page cache) go through
// an O_DIRECT descriptor, or happen after a remount.
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "meta/superblock.h"
#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

constexpr uint64_t kTiB = kMiB * kMiB;

// Random bytes, zeros included (for data no test expects to read as zero).
std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    memcpy(&s[i], &v, 8);
  }
  for (; i < n; ++i) s[i] = static_cast<char>(rng());
  return s;
}

bool AllZero(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == 0; });
}

// The whole file, read to its end; a read error fails the test.
std::string SlurpFile(const std::string& path) {
  Fd fd(path, O_RDONLY);
  std::string s;
  char buf[1 << 16];
  ssize_t n;
  while ((n = read(fd.get(), buf, sizeof(buf))) > 0) s.append(buf, n);
  REQUIRE(n == 0);
  return s;
}

// Sizes spread over orders of magnitude: as many tiny writes as huge ones.
uint64_t LogUniform(std::mt19937_64& rng, uint64_t lo, uint64_t hi) {
  std::uniform_real_distribution<double> d(std::log2(double(lo)), std::log2(double(hi) + 1));
  uint64_t v = static_cast<uint64_t>(std::exp2(d(rng)));
  return std::clamp(v, lo, hi);
}

}  // namespace

TEST_CASE("random writes (and truncates) match a reference model, before and after remount",
          "[fs][data]") {
  MountedFs fs;
  DirtyFreeSpace(fs, 16 * kMiB);
  const uint64_t seed = 0xdaf0 + Catch::rngSeed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const std::string file = fs.path("random");
  std::string model;
  std::vector<bool> touched;  // file blocks ever written
  Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
  Fd direct(file, O_RDONLY | O_DIRECT);

  auto check_range = [&](uint64_t off, uint64_t len) {
    std::string want = off < model.size() ? model.substr(off, len) : std::string();
    std::string cached = PreadAll(fd.get(), off, len);
    std::string dio = PreadAll(direct.get(), off, len);
    INFO("range " << off << "+" << len << " size " << model.size());
    REQUIRE_SAME(cached, want);
    REQUIRE_SAME(dio, want);
  };

  const int kOps = 160;
  for (int op = 1; op <= kOps; ++op) {
    if (rng() % 12 == 0) {  // now and then a truncate, up or down
      uint64_t size = std::uniform_int_distribution<uint64_t>(0, 68 * kMiB)(rng);
      REQUIRE(ftruncate(fd.get(), size) == 0);
      model.resize(size, '\0');
      touched.resize(std::min<uint64_t>(touched.size(), (size + kBlock - 1) / kBlock));
      continue;
    }
    uint64_t len = LogUniform(rng, 1, 3 * kMiB);
    uint64_t off = std::uniform_int_distribution<uint64_t>(0, 64 * kMiB)(rng);
    std::string data = RandomBytes(rng, len);
    PwriteAll(fd.get(), data, off);
    if (model.size() < off + len) model.resize(off + len, '\0');
    model.replace(off, len, data);
    uint64_t b1 = (off + len + kBlock - 1) / kBlock;
    if (touched.size() < b1) touched.resize(b1, false);
    for (uint64_t b = off / kBlock; b < b1; ++b) touched[b] = true;

    if (op % 8 == 0) {
      REQUIRE(static_cast<uint64_t>(StatOf(fd.get()).st_size) == model.size());
      for (int i = 0; i < 6; ++i) {
        uint64_t roff = std::uniform_int_distribution<uint64_t>(0, model.size() + kBlock)(rng);
        check_range(roff, LogUniform(rng, 1, 4 * kMiB));
      }
    }
  }
  check_range(0, model.size() + kBlock);
  fd.Close();
  direct.Close();

  fs.Remount();
  struct stat st = StatOf(file);
  REQUIRE(static_cast<uint64_t>(st.st_size) == model.size());
  uint64_t blocks = std::count(touched.begin(), touched.end(), true);
  REQUIRE(static_cast<uint64_t>(st.st_blocks) == blocks * 8);
  std::string all = SlurpFile(file);
  REQUIRE_SAME(all, model);
  fs.Check();
}

TEST_CASE("appends that start each new block with a 1-byte write all land", "[fs][data]") {
  // Each block is begun by a 1-byte write (which allocates it and merges it
  // into the extent before) and finished by a second write; then a few odd
  // sizes. The file's inode number is among the block numbers covered: the
  // metadata keys of extents and of the reverse map share that field.
  MountedFs fs;
  DirtyFreeSpace(fs, 4 * kMiB);
  std::mt19937_64 rng(11);
  const std::string file = fs.path("appends");
  std::string want;
  {
    Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
    const uint64_t ino = StatOf(fd.get()).st_ino;
    INFO("inode " << ino);
    const uint64_t blocks = std::max<uint64_t>(16, ino + 2);
    for (uint64_t b = 0; b < blocks; ++b) {
      for (size_t len : {size_t{1}, size_t{kBlock - 1}}) {
        std::string piece = RandomBytes(rng, len);
        PwriteAll(fd.get(), piece, want.size());
        want += piece;
      }
    }
    for (size_t len : {1, 999, 1, 4095, 3, 5000, 1, 8193}) {
      std::string piece = RandomBytes(rng, len);
      PwriteAll(fd.get(), piece, want.size());
      want += piece;
    }
    Fd direct(file, O_RDONLY | O_DIRECT);
    CHECK_SAME(PreadAll(direct.get(), 0, 2 * want.size()), want);
  }
  fs.Remount();
  REQUIRE_SAME(SlurpFile(file), want);
  fs.Check();
}

TEST_CASE("holes read as zeros, also over reused blocks", "[fs][data]") {
  MountedFs fs;
  DirtyFreeSpace(fs, 8 * kMiB);
  std::mt19937_64 rng(1);
  std::string tail = RandomBytes(rng, 3000);
  {
    Fd fd(fs.path("holey"), O_RDWR | O_CREAT | O_TRUNC);
    PwriteAll(fd.get(), tail, 5 * kMiB + 123);
    struct stat st = StatOf(fd.get());
    REQUIRE(st.st_size == static_cast<off_t>(5 * kMiB + 123 + 3000));
    // 3000 bytes at offset 123 of a block reach into the next one: 1 block.
    REQUIRE(st.st_blocks == 8);
    REQUIRE(AllZero(PreadAll(fd.get(), 0, 5 * kMiB + 123)));
    Fd direct(fs.path("holey"), O_RDONLY | O_DIRECT);
    std::string got = PreadAll(direct.get(), 0, 6 * kMiB);
    REQUIRE(got.size() == 5 * kMiB + 123 + 3000);
    REQUIRE(AllZero(got.substr(0, 5 * kMiB + 123)));
    REQUIRE_SAME(got.substr(5 * kMiB + 123), tail);
  }
  fs.Remount();
  std::string got = SlurpFile(fs.path("holey"));
  REQUIRE(AllZero(got.substr(0, 5 * kMiB + 123)));
  REQUIRE_SAME(got.substr(5 * kMiB + 123), tail);
  fs.Check();
}

TEST_CASE("a 2 TiB sparse file costs one block", "[fs][data]") {
  MountedFs fs;
  std::mt19937_64 rng(2);
  std::string last = RandomBytes(rng, kBlock);
  const std::string file = fs.path("sparse");
  {
    Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
    PwriteAll(fd.get(), last, 2 * kTiB - kBlock);
    struct stat st = StatOf(fd.get());
    REQUIRE(static_cast<uint64_t>(st.st_size) == 2 * kTiB);
    REQUIRE(st.st_blocks == 8);
    REQUIRE_SAME(PreadAll(fd.get(), 1 * kTiB, kBlock), std::string(kBlock, '\0'));
    REQUIRE_SAME(PreadAll(fd.get(), 2 * kTiB - kBlock, 2 * kBlock), last);
  }
  fs.Remount();
  struct stat st = StatOf(file);
  REQUIRE(static_cast<uint64_t>(st.st_size) == 2 * kTiB);
  REQUIRE(st.st_blocks == 8);
  Fd fd(file, O_RDONLY);
  REQUIRE_SAME(PreadAll(fd.get(), 1 * kTiB, 64 * kKiB), std::string(64 * kKiB, '\0'));
  REQUIRE_SAME(PreadAll(fd.get(), 2 * kTiB - kBlock - 10, 10), std::string(10, '\0'));
  REQUIRE_SAME(PreadAll(fd.get(), 2 * kTiB - kBlock, kBlock), last);
  fd.Close();
  fs.Check();
}

TEST_CASE("the largest file ends at 2^62 bytes; beyond is EFBIG", "[fs][data]") {
  MountedFs fs;
  const uint64_t kMax = uint64_t{1} << 62;
  std::mt19937_64 rng(13);
  std::string last = RandomBytes(rng, kBlock);
  const std::string file = fs.path("huge");
  {
    Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
    PwriteAll(fd.get(), last, kMax - kBlock);
    REQUIRE(static_cast<uint64_t>(StatOf(fd.get()).st_size) == kMax);
    REQUIRE(StatOf(fd.get()).st_blocks == 8);
    errno = 0;
    REQUIRE(pwrite(fd.get(), "x", 1, kMax) == -1);
    REQUIRE(errno == EFBIG);
    errno = 0;
    REQUIRE(ftruncate(fd.get(), kMax + 1) == -1);
    REQUIRE(errno == EFBIG);
    errno = 0;
    REQUIRE(fallocate(fd.get(), 0, kMax, kBlock) == -1);
    REQUIRE(errno == EFBIG);
    REQUIRE(static_cast<uint64_t>(StatOf(fd.get()).st_size) == kMax);
  }
  fs.Remount();
  Fd fd(file, O_RDONLY);
  REQUIRE(static_cast<uint64_t>(StatOf(fd.get()).st_size) == kMax);
  REQUIRE_SAME(PreadAll(fd.get(), kMax - kBlock, 2 * kBlock), last);
  REQUIRE(lseek(fd.get(), 0, SEEK_DATA) == static_cast<off_t>(kMax - kBlock));
  fd.Close();
  CheckReport rep = fs.Check();
  REQUIRE(rep.owned_blocks == 1);
}

TEST_CASE("writes past EOF leave zeros in the gap", "[fs][data]") {
  MountedFs fs;
  DirtyFreeSpace(fs, 4 * kMiB);
  const std::string file = fs.path("gap");
  std::string want;
  {
    Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
    PwriteAll(fd.get(), "abc", 0);
    PwriteAll(fd.get(), "xyz", 3000);             // gap inside the first block
    PwriteAll(fd.get(), "end", 3 * kBlock + 17);  // gap over a whole block
    want = "abc" + std::string(2997, '\0') + "xyz";
    want.resize(3 * kBlock + 17, '\0');
    want += "end";
    REQUIRE_SAME(PreadAll(fd.get(), 0, 1 << 20), want);
    Fd direct(file, O_RDONLY | O_DIRECT);
    REQUIRE_SAME(PreadAll(direct.get(), 0, 1 << 20), want);
    // Block 2 was never written: a hole, not an allocation.
    REQUIRE(StatOf(fd.get()).st_blocks == 2 * 8);
  }
  fs.Remount();
  REQUIRE_SAME(SlurpFile(file), want);
  fs.Check();
}

TEST_CASE("truncate down to an unaligned size, then extend: the cut bytes read zero",
          "[fs][data]") {
  MountedFs fs;
  std::mt19937_64 rng(3);
  const std::string file = fs.path("trunc");
  std::string data = RandomBytes(rng, 5 * kBlock);
  std::string want;
  {
    Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
    PwriteAll(fd.get(), data, 0);
    REQUIRE(ftruncate(fd.get(), 5000) == 0);
    REQUIRE(StatOf(fd.get()).st_size == 5000);
    REQUIRE(StatOf(fd.get()).st_blocks == 2 * 8);
    // Extend by truncate: the old bytes past 5000 must not come back.
    REQUIRE(ftruncate(fd.get(), 5 * kBlock) == 0);
    want = ZeroedFrom(data, 5000, 5 * kBlock);
    REQUIRE_SAME(PreadAll(fd.get(), 0, 10 * kBlock), want);
    Fd direct(file, O_RDONLY | O_DIRECT);
    REQUIRE_SAME(PreadAll(direct.get(), 0, 10 * kBlock), want);
    REQUIRE(StatOf(fd.get()).st_blocks == 2 * 8);

    // Cut again and extend by writing past EOF instead.
    REQUIRE(ftruncate(fd.get(), 777) == 0);
    PwriteAll(fd.get(), "tail", 4 * kBlock);
    want = ZeroedFrom(data, 777, 4 * kBlock) + "tail";
    REQUIRE_SAME(PreadAll(direct.get(), 0, 10 * kBlock), want);
  }
  fs.Remount();
  REQUIRE_SAME(SlurpFile(file), want);
  REQUIRE(StatOf(file).st_blocks == 2 * 8);
  // Down to zero and up again through the path (truncate(2), not ftruncate).
  REQUIRE(truncate(file.c_str(), 0) == 0);
  REQUIRE(StatOf(file).st_blocks == 0);
  REQUIRE(truncate(file.c_str(), 3 * kBlock + 1) == 0);
  REQUIRE_SAME(SlurpFile(file), std::string(3 * kBlock + 1, '\0'));
  fs.Check();
}

TEST_CASE("truncate to an unaligned size in each block of a file, then extend", "[fs][data]") {
  MountedFs fs;
  std::mt19937_64 rng(4);
  const std::string file = fs.path("cuts");
  const uint64_t kBlocks = 16;
  Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
  Fd direct(file, O_RDONLY | O_DIRECT);
  INFO("inode " << StatOf(fd.get()).st_ino);
  for (uint64_t k = 0; k < kBlocks; ++k) {
    std::string data = RandomBytes(rng, kBlocks * kBlock);
    PwriteAll(fd.get(), data, 0);
    const uint64_t cut = k * kBlock + 1 + 251 * k;
    INFO("cut at " << cut);
    REQUIRE(ftruncate(fd.get(), cut) == 0);
    REQUIRE(StatOf(fd.get()).st_blocks == static_cast<blkcnt_t>((k + 1) * 8));
    REQUIRE(ftruncate(fd.get(), kBlocks * kBlock) == 0);
    std::string want = ZeroedFrom(data, cut, kBlocks * kBlock);
    REQUIRE_SAME(PreadAll(direct.get(), 0, 2 * kBlocks * kBlock), want);
  }
}

TEST_CASE("open with O_TRUNC empties the file and frees its blocks", "[fs][data]") {
  MountedFs fs;
  std::mt19937_64 rng(12);
  const std::string file = fs.path("otrunc");
  const uint64_t free0 = FreeBlocks(fs);
  WriteFile(file, RandomBytes(rng, 8 * kBlock + 10));
  REQUIRE(FreeBlocks(fs) == free0 - 9);
  std::string shorter = RandomBytes(rng, 100);
  {
    Fd fd(file, O_WRONLY | O_TRUNC);
    struct stat st = StatOf(fd.get());
    REQUIRE(st.st_size == 0);
    REQUIRE(st.st_blocks == 0);
    REQUIRE(FreeBlocks(fs) == free0);
    PwriteAll(fd.get(), shorter, 0);
  }
  REQUIRE_SAME(ReadFile(file), shorter);
  fs.Remount();
  REQUIRE_SAME(ReadFile(file), shorter);
  REQUIRE(StatOf(file).st_blocks == 8);
  // O_TRUNC on an empty file, and through creat(2) on an existing one.
  int fd = creat(file.c_str(), 0644);
  REQUIRE(fd >= 0);
  close(fd);
  REQUIRE(StatOf(file).st_size == 0);
  fs.Remount();
  REQUIRE(StatOf(file).st_size == 0);
  REQUIRE(StatOf(file).st_blocks == 0);
  fs.Check();
}

TEST_CASE("truncate up grows the size without allocating", "[fs][data]") {
  MountedFs fs;
  DirtyFreeSpace(fs, 4 * kMiB);
  const std::string file = fs.path("grow");
  uint64_t free0 = FreeBlocks(fs);
  {
    Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
    PwriteAll(fd.get(), "hello", 0);
    REQUIRE(ftruncate(fd.get(), 3 * kMiB + 5) == 0);
    struct stat st = StatOf(fd.get());
    REQUIRE(st.st_size == static_cast<off_t>(3 * kMiB + 5));
    REQUIRE(st.st_blocks == 8);
    REQUIRE(FreeBlocks(fs) == free0 - 1);
    Fd direct(file, O_RDONLY | O_DIRECT);
    std::string got = PreadAll(direct.get(), 0, 4 * kMiB);
    REQUIRE(got.size() == 3 * kMiB + 5);
    REQUIRE(got.substr(0, 5) == "hello");
    REQUIRE(AllZero(got.substr(5)));
  }
  fs.Remount();
  REQUIRE(StatOf(file).st_size == static_cast<off_t>(3 * kMiB + 5));
  REQUIRE_SAME(SlurpFile(file), "hello" + std::string(3 * kMiB, '\0'));
  fs.Check();
}

TEST_CASE("O_APPEND writes go to the end of the file", "[fs][data]") {
  MountedFs fs;
  const std::string file = fs.path("log");
  WriteFile(file, "start\n");
  std::string want = "start\n";
  {
    Fd a(file, O_WRONLY | O_APPEND);
    Fd b(file, O_WRONLY | O_APPEND);
    for (int i = 0; i < 50; ++i) {
      std::string line = "line " + std::to_string(i) + (i % 2 ? " from b\n" : " from a\n");
      const Fd& w = i % 2 ? b : a;
      // lseek to 0 first: O_APPEND must ignore the file position.
      REQUIRE(lseek(w.get(), 0, SEEK_SET) == 0);
      REQUIRE(write(w.get(), line.data(), line.size()) == static_cast<ssize_t>(line.size()));
      want += line;
    }
    std::string big(3 * kBlock + 11, 'Q');
    REQUIRE(write(a.get(), big.data(), big.size()) == static_cast<ssize_t>(big.size()));
    want += big;
    REQUIRE(lseek(a.get(), 0, SEEK_CUR) == static_cast<off_t>(want.size()));
  }
  REQUIRE_SAME(ReadFile(file), want);
  fs.Remount();
  REQUIRE_SAME(ReadFile(file), want);
  {
    Fd a(file, O_WRONLY | O_APPEND);
    REQUIRE(write(a.get(), "!", 1) == 1);
  }
  fs.Remount();
  REQUIRE_SAME(ReadFile(file), want + "!");
  fs.Check();
}

TEST_CASE("file bytes live in the pool, never in the metadata store", "[fs][data]") {
  MountedFs fs;
  std::mt19937_64 rng(std::random_device{}());
  std::string pattern = RandomBytes(rng, kBlock);
  {
    Fd fd(fs.path("secret"), O_RDWR | O_CREAT | O_TRUNC);
    PwriteAll(fd.get(), std::string(3 * kBlock, 'x'), 0);
    PwriteAll(fd.get(), pattern, 3 * kBlock);
    REQUIRE(fsync(fd.get()) == 0);
  }
  // Read as root while mounted: the daemon maps the pool shared, so its
  // stores are in the file's pages.
  std::string pool = SlurpFile(PoolPath(fs.source()));
  size_t at = pool.find(pattern);
  REQUIRE(at != std::string::npos);
  CHECK(at % kBlock == 0);
  CHECK(pool.find(pattern, at + 1) == std::string::npos);

  // Not in any file of the metadata store (WAL, SST, MANIFEST...), neither
  // whole nor any 64-byte piece of it.
  int files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(MetaPath(fs.source()))) {
    if (!e.is_regular_file()) continue;
    ++files;
    std::string content = SlurpFile(e.path());
    INFO(e.path().string());
    REQUIRE(content.find(pattern) == std::string::npos);
    for (size_t piece = 0; piece < pattern.size(); piece += 64)
      REQUIRE(content.find(pattern.substr(piece, 64)) == std::string::npos);
  }
  REQUIRE(files > 0);
}

TEST_CASE("cp of a 50 MiB file and cmp", "[fs][data]") {
  MountedFs fs;
  TempDir outside("/dev/shm");
  std::mt19937_64 rng(5);
  const std::string src = outside.path() + "/src";
  WriteFile(src, RandomBytes(rng, 50 * kMiB + 1234));
  RunResult r = Run({"/usr/bin/cp", src, fs.path("a")});
  INFO(r.err);
  REQUIRE(r.status == 0);
  r = Run({"/usr/bin/cmp", src, fs.path("a")});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  // Inside the filesystem (copy_file_range or a read/write fallback).
  r = Run({"/usr/bin/cp", fs.path("a"), fs.path("b")});
  INFO(r.err);
  REQUIRE(r.status == 0);
  fs.Remount();
  for (const char* name : {"a", "b"}) {
    r = Run({"/usr/bin/cmp", src, fs.path(name)});
    INFO(name << ": " << r.out << r.err);
    REQUIRE(r.status == 0);
  }
  // And back out of it.
  r = Run({"/usr/bin/cp", fs.path("b"), outside.path() + "/back"});
  REQUIRE(r.status == 0);
  r = Run({"/usr/bin/cmp", src, outside.path() + "/back"});
  REQUIRE(r.status == 0);
  REQUIRE(StatOf(fs.path("b")).st_size == static_cast<off_t>(50 * kMiB + 1234));
  fs.Check();
}

TEST_CASE("dd with various block sizes", "[fs][data]") {
  MountedFs fs;
  TempDir outside("/dev/shm");
  std::mt19937_64 rng(6);
  const std::string src = outside.path() + "/src";
  std::string data = RandomBytes(rng, 3 * kMiB + 777);
  WriteFile(src, data);
  const std::string small = outside.path() + "/small";
  WriteFile(small, data.substr(0, 10000));

  struct Case {
    std::string bs;
    std::string from;
    std::vector<std::string> extra;
  };
  std::vector<Case> cases = {
      {"1", small, {}},
      {"512", src, {}},
      {"4096", src, {}},
      {"5000", src, {}},
      {"65537", src, {}},
      {"1M", src, {}},
      {"4M", src, {}},
      {"64K", src, {"oflag=direct"}},
      {"1M", src, {"conv=fsync"}},
  };
  int i = 0;
  for (const Case& c : cases) {
    std::string dst = fs.path("dd" + std::to_string(i++));
    std::vector<std::string> argv = {"/usr/bin/dd", "if=" + c.from, "of=" + dst, "bs=" + c.bs,
                                     "status=none"};
    argv.insert(argv.end(), c.extra.begin(), c.extra.end());
    RunResult r = Run(argv);
    INFO("bs=" << c.bs << ": " << r.err);
    REQUIRE(r.status == 0);
    r = Run({"/usr/bin/cmp", c.from, dst});
    REQUIRE(r.status == 0);
    // Read back with dd too, with an odd block size and direct I/O.
    std::string back = outside.path() + "/back";
    r = Run({"/usr/bin/dd", "if=" + dst, "of=" + back, "bs=7777", "iflag=direct", "status=none"});
    REQUIRE(r.status == 0);
    r = Run({"/usr/bin/cmp", c.from, back});
    REQUIRE(r.status == 0);
  }
  // dd into the middle of an existing file (seek, notrunc) and past its end.
  std::string dst = fs.path("dd1");
  RunResult r = Run({"/usr/bin/dd", "if=" + small, "of=" + dst, "bs=1000", "seek=7", "conv=notrunc",
                     "status=none"});
  REQUIRE(r.status == 0);
  std::string want = data;
  want.replace(7000, 10000, data.substr(0, 10000));
  r = Run({"/usr/bin/dd", "if=" + small, "of=" + dst, "bs=4096", "seek=1000", "conv=notrunc",
           "status=none"});
  REQUIRE(r.status == 0);
  want.resize(1000 * 4096, '\0');
  want += data.substr(0, 10000);
  fs.Remount();
  std::string got = SlurpFile(dst);
  REQUIRE_SAME(got, want);
  fs.Check();
}

TEST_CASE("fio: concurrent random writers verify their data, also after remount", "[fs][data]") {
  MountedFs fs;
  // Four jobs, each its own file, block sizes from 1 KiB to 96 KiB.
  RunResult r =
      Run({"/usr/bin/fio", "--name=own", "--directory=" + fs.mnt(), "--rw=randwrite",
           "--bsrange=1k-96k", "--size=8m", "--numjobs=4", "--ioengine=psync", "--fallocate=none",
           "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0"});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  // Four jobs in disjoint quarters of one file; verified right away, and
  // again from a fresh mount.
  // (No verify state files: they would land in the working directory.)
  const std::vector<std::string> shared = {
      "/usr/bin/fio",      "--name=shared",         "--directory=" + fs.mnt(),
      "--filename=shared", "--rw=randwrite",        "--bs=4k",
      "--size=8m",         "--offset_increment=8m", "--numjobs=4",
      "--ioengine=psync",  "--fallocate=none",      "--verify=crc32c",
      "--verify_fatal=1",  "--randseed=4242",       "--verify_state_save=0"};
  std::vector<std::string> argv = shared;
  argv.push_back("--do_verify=1");
  r = Run(argv);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  fs.Remount();
  argv = shared;
  argv.push_back("--verify_only");
  r = Run(argv);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  REQUIRE(StatOf(fs.path("shared")).st_size == static_cast<off_t>(32 * kMiB));
  REQUIRE(StatOf(fs.path("shared")).st_blocks == static_cast<blkcnt_t>(32 * kMiB / 512));
  fs.Check();
}

TEST_CASE("fsync and fdatasync succeed on files and directories", "[fs][data]") {
  MountedFs fs;
  REQUIRE(mkdir(fs.path("d").c_str(), 0755) == 0);
  Fd fd(fs.path("d/f"), O_RDWR | O_CREAT | O_TRUNC);
  PwriteAll(fd.get(), std::string(10000, 's'), 0);
  REQUIRE(fsync(fd.get()) == 0);
  PwriteAll(fd.get(), std::string(10, 't'), 20000);
  REQUIRE(fdatasync(fd.get()) == 0);
  REQUIRE(sync_file_range(fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) == 0);
  Fd dir(fs.path("d"), O_RDONLY | O_DIRECTORY);
  REQUIRE(fsync(dir.get()) == 0);
  REQUIRE(fdatasync(dir.get()) == 0);
  Fd ro(fs.path("d/f"), O_RDONLY);
  REQUIRE(fsync(ro.get()) == 0);
  REQUIRE(StatOf(fd.get()).st_size == 20010);
}

TEST_CASE("mmap: shared read mapping sees the data, shared writes reach the pool", "[fs][data]") {
  MountedFs fs;
  std::mt19937_64 rng(7);
  SECTION("read") {
    std::string data = RandomBytes(rng, 5 * kBlock + 321);
    WriteFile(fs.path("m"), data);
    fs.Remount();  // nothing cached: the faults must read from the daemon
    Fd fd(fs.path("m"), O_RDONLY);
    void* p = mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, fd.get(), 0);
    REQUIRE(p != MAP_FAILED);
    bool same = memcmp(p, data.data(), data.size()) == 0;
    // The tail of the last page, past EOF, reads zero.
    const char* c = static_cast<const char*>(p);
    bool tail_zero = true;
    for (size_t i = data.size(); i < 6 * kBlock; ++i) tail_zero &= c[i] == 0;
    munmap(p, data.size());
    REQUIRE(same);
    REQUIRE(tail_zero);
  }
  SECTION("write into a hole, msync, remount") {
    const size_t size = 64 * kBlock;
    {
      Fd fd(fs.path("m"), O_RDWR | O_CREAT | O_TRUNC);
      REQUIRE(ftruncate(fd.get(), size) == 0);  // all hole
      void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
      REQUIRE(p != MAP_FAILED);
      char* c = static_cast<char*>(p);
      memcpy(c + 10 * kBlock + 5, "into the hole", 13);
      c[40 * kBlock] = 'H';
      int rc = msync(p, size, MS_SYNC);
      munmap(p, size);
      REQUIRE(rc == 0);
    }
    std::string want(size, '\0');
    want.replace(10 * kBlock + 5, 13, "into the hole");
    want[40 * kBlock] = 'H';
    fs.Remount();
    REQUIRE_SAME(SlurpFile(fs.path("m")), want);
    // Only the two pages written became blocks.
    REQUIRE(StatOf(fs.path("m")).st_blocks == 2 * 8);
  }
  SECTION("write, msync, remount, pread") {
    const size_t size = 16 * kBlock + 100;
    std::string before = RandomBytes(rng, size);
    std::string patch = RandomBytes(rng, 3 * kBlock + 5);
    WriteFile(fs.path("m"), before);
    std::string want = before;
    want.replace(kBlock + 7, patch.size(), patch);
    {
      Fd fd(fs.path("m"), O_RDWR);
      void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
      REQUIRE(p != MAP_FAILED);
      char* c = static_cast<char*>(p);
      memcpy(c + kBlock + 7, patch.data(), patch.size());
      c[size - 1] = 'Z';  // the last, partial page
      want[size - 1] = 'Z';
      int rc = msync(p, size, MS_SYNC);
      munmap(p, size);
      REQUIRE(rc == 0);
      Fd direct(fs.path("m"), O_RDONLY | O_DIRECT);
      std::string got = PreadAll(direct.get(), 0, 2 * size);
      REQUIRE_SAME(got, want);
    }
    fs.Remount();
    Fd fd(fs.path("m"), O_RDONLY);
    std::string got = PreadAll(fd.get(), 0, 2 * size);
    REQUIRE_SAME(got, want);
    REQUIRE(StatOf(fd.get()).st_blocks == 17 * 8);
  }
  fs.Check();
}

TEST_CASE(
    "ENOSPC: a write that does not fit is short, failed writes change nothing, deleting "
    "gives all space back",
    "[fs][data]") {
  MountedFs fs(MountedFs::Options{.size = 8 << 20, .mount_options = {}});
  const uint64_t free0 = FreeBlocks(fs);
  REQUIRE(free0 > 0);
  REQUIRE(free0 < 2048);
  const std::string file = fs.path("fill");
  uint64_t written = 0;
  int err = 0;
  const size_t chunk = 64 * kKiB;
  {
    Fd fd(file, O_WRONLY | O_CREAT | O_TRUNC);
    for (int i = 0; i < 1000; ++i) {
      std::string buf(chunk, static_cast<char>('a' + i % 26));
      ssize_t n = pwrite(fd.get(), buf.data(), buf.size(), written);
      if (n < 0) {
        err = errno;
        break;
      }
      written += n;
    }
    INFO("written " << written << " of " << free0 * kBlock << " free");
    REQUIRE(err == ENOSPC);
    REQUIRE(written > 0);
    REQUIRE(written <= free0 * kBlock);
    // The write that did not fit stored what did and said so (a short
    // write, as POSIX asks); only the next one failed. Every free block
    // was written.
    REQUIRE(written == free0 * kBlock);
    REQUIRE(static_cast<uint64_t>(StatOf(fd.get()).st_size) == written);
    // The failed write allocated nothing.
    uint64_t left = FreeBlocks(fs);
    REQUIRE(left == free0 - (written + kBlock - 1) / kBlock);
  }
  fs.Remount();
  struct stat st = StatOf(file);
  REQUIRE(static_cast<uint64_t>(st.st_size) == written);
  REQUIRE(static_cast<uint64_t>(st.st_blocks) == (written + kBlock - 1) / kBlock * 8);
  std::string got = SlurpFile(file);
  REQUIRE(got.size() == written);
  bool pattern_ok = true;
  for (uint64_t i = 0; i < written; i += kBlock)
    pattern_ok &= got[i] == static_cast<char>('a' + (i / chunk) % 26);
  REQUIRE(pattern_ok);

  REQUIRE(unlink(file.c_str()) == 0);
  REQUIRE(FreeBlocksSettled(fs, free0) == free0);
  {
    // One 1 MiB write with fewer blocks free: the blocks that are free are
    // written, the count says how many bytes.
    const std::string filler = fs.path("filler"), big = fs.path("big");
    WriteFile(filler, std::string((free0 - 100) * kBlock, 'f'));
    REQUIRE(FreeBlocksSettled(fs, 100) == 100);
    {
      Fd fd(big, O_WRONLY | O_CREAT | O_TRUNC);
      std::string mib(kMiB, 'm');
      REQUIRE(pwrite(fd.get(), mib.data(), mib.size(), 0) == static_cast<ssize_t>(100 * kBlock));
      REQUIRE(pwrite(fd.get(), mib.data(), mib.size(), 100 * kBlock) == -1);
      REQUIRE(errno == ENOSPC);
    }
    REQUIRE(SlurpFile(big) == std::string(100 * kBlock, 'm'));
    REQUIRE(unlink(filler.c_str()) == 0);
    REQUIRE(unlink(big.c_str()) == 0);
    REQUIRE(FreeBlocksSettled(fs, free0) == free0);
  }
  fs.Remount();
  REQUIRE(FreeBlocks(fs) == free0);
  CheckReport rep = fs.Check();
  REQUIRE(rep.owned_blocks == 0);
  REQUIRE(rep.free_blocks == free0);
}

TEST_CASE("st_blocks counts allocated 4 KiB blocks in 512-byte units", "[fs][data]") {
  MountedFs fs;
  const std::string file = fs.path("b");
  Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
  REQUIRE(StatOf(fd.get()).st_blocks == 0);
  PwriteAll(fd.get(), "x", 0);
  REQUIRE(StatOf(fd.get()).st_blocks == 8);
  PwriteAll(fd.get(), std::string(kBlock, 'y'), 1);  // spills into block 1
  REQUIRE(StatOf(fd.get()).st_blocks == 16);
  PwriteAll(fd.get(), "z", 10 * kBlock + 4095);  // one block far away
  REQUIRE(StatOf(fd.get()).st_blocks == 24);
  PwriteAll(fd.get(), std::string(2 * kBlock, 'w'), 3 * kBlock - 1);  // blocks 2, 3, 4
  REQUIRE(StatOf(fd.get()).st_blocks == 48);
  REQUIRE(StatOf(fd.get()).st_blksize == static_cast<blksize_t>(kBlock));
  REQUIRE(ftruncate(fd.get(), 2 * kBlock + 1) == 0);  // keeps blocks 0, 1, 2
  REQUIRE(StatOf(fd.get()).st_blocks == 24);
  fd.Close();
  fs.Remount();
  REQUIRE(StatOf(file).st_blocks == 24);
  CheckReport rep = fs.Check();
  REQUIRE(rep.owned_blocks == 3);
}

// Overwrites inside EOF of mapped blocks take the daemon's fast path, which
// keeps what it needs of the inode in memory. The kernel leaves clearing
// privileges to the daemon (FUSE_HANDLE_KILLPRIV_V2, docs/design.md), so a
// stale view there would keep a capability or a set-id bit a write must
// take away. Each change here comes after the file has been overwritten
// once (known to the fast path), and is checked again after a remount.
TEST_CASE("in-place overwrites drop a capability and set-id bits set while the file was in use",
          "[fs][data]") {
  MountedFs::Options o;
  o.mount_options = {"allow_other"};
  MountedFs fs(o);
  const std::string path = fs.path("f");
  std::string data = NonZeroBytes(7, 4 * kBlock);
  WriteFile(path, data);
  // From a fresh mount, so that what the fast path knows of f comes from its
  // first read and every change below reaches it only through commits.
  fs.Remount();
  {
    Fd f(path, O_RDWR);
    PwriteExact(f.get(), "x", 10);  // in place: the fast path knows f now
    data[10] = 'x';
  }
  REQUIRE(chmod(path.c_str(), 0666) == 0);

  // A file capability (VFS_CAP_REVISION_2, CAP_NET_BIND_SERVICE permitted).
  vfs_cap_data cap{};
  cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  cap.data[0].permitted = 1u << CAP_NET_BIND_SERVICE;
  REQUIRE(setxattr(path.c_str(), "security.capability", &cap, XATTR_CAPS_SZ_2, 0) == 0);
  REQUIRE(getxattr(path.c_str(), "security.capability", nullptr, 0) == XATTR_CAPS_SZ_2);
  {
    Fd f(path, O_RDWR);
    PwriteExact(f.get(), "c", 100);
    data[100] = 'c';
  }
  CHECK(ErrnoOf(getxattr(path.c_str(), "security.capability", nullptr, 0)) == ENODATA);

  // Set-id bits, then a write by a user who may write but is not the owner.
  REQUIRE(chmod(path.c_str(), 06777) == 0);
  const int err = RunAs(1001, 1001, [&] {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int e = pwrite(fd, "u", 1, 200) == 1 ? 0 : errno;
    close(fd);
    return e;
  });
  REQUIRE(err == 0);
  data[200] = 'u';
  CHECK((StatOf(path).st_mode & 07777) == 0777);

  fs.Remount();  // stored, not only remembered
  CHECK(ErrnoOf(getxattr(path.c_str(), "security.capability", nullptr, 0)) == ENODATA);
  CHECK((StatOf(path).st_mode & 07777) == 0777);
  CHECK_SAME(ReadFile(path), data);
  fs.Check();
}
