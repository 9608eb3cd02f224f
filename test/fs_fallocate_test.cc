// fallocate(2) modes and SEEK_DATA / SEEK_HOLE through a real mount, with
// syscalls and with xfs_io as the tool people use to drive them.
//
// Contents are checked through O_DIRECT descriptors (served by the daemon,
// not the kernel's page cache) and again after a remount.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "test/fixture.h"
#include "test/fs_helpers.h"

using namespace daxref;
using namespace daxref::test;

namespace {

const char* const kXfsIo = "/usr/sbin/xfs_io";

// The whole file as the daemon has it.
std::string DirectContents(const std::string& path) {
  Fd fd(path, O_RDONLY | O_DIRECT);
  return PreadAll(fd.get(), 0, StatOf(fd.get()).st_size + kBlock);
}

off_t Seek(int fd, off_t off, int whence) {
  return lseek(fd, off, whence);
}

// lseek that must fail with ENXIO.
bool SeekIsEnxio(int fd, off_t off, int whence) {
  errno = 0;
  return lseek(fd, off, whence) == -1 && errno == ENXIO;
}

}  // namespace

TEST_CASE("fallocate default mode allocates zeroed blocks and grows the size", "[fs][fallocate]") {
  MountedFs fs;
  DirtyFreeSpace(fs, 8 * kMiB);
  const uint64_t free0 = FreeBlocks(fs);
  const std::string file = fs.path("f");
  {
    Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
    REQUIRE(fallocate(fd.get(), 0, 0, kMiB) == 0);
    struct stat st = StatOf(fd.get());
    REQUIRE(st.st_size == static_cast<off_t>(kMiB));
    REQUIRE(st.st_blocks == static_cast<blkcnt_t>(kMiB / 512));
    REQUIRE(FreeBlocks(fs) == free0 - kMiB / kBlock);
    REQUIRE_SAME(DirectContents(file), std::string(kMiB, '\0'));
    REQUIRE_SAME(PreadAll(fd.get(), 0, 2 * kMiB), std::string(kMiB, '\0'));

    // Over data: the data stays, only holes get blocks.
    std::mt19937_64 rng(1);
    std::string data = NonZeroBytes(rng, 3 * kBlock);
    PwriteExact(fd.get(), data, 0);
    REQUIRE(fallocate(fd.get(), 0, 0, kMiB + 2 * kBlock) == 0);
    st = StatOf(fd.get());
    REQUIRE(st.st_size == static_cast<off_t>(kMiB + 2 * kBlock));
    REQUIRE(st.st_blocks == static_cast<blkcnt_t>((kMiB + 2 * kBlock) / 512));
    REQUIRE_SAME(DirectContents(file), data + std::string(kMiB - kBlock, '\0'));

    // A range that is not block-aligned allocates every block it touches.
    Fd g(fs.path("g"), O_RDWR | O_CREAT | O_TRUNC);
    REQUIRE(fallocate(g.get(), 0, 100, 5000) == 0);
    REQUIRE(StatOf(g.get()).st_size == 5100);
    REQUIRE(StatOf(g.get()).st_blocks == 2 * 8);
    // A range inside the size does not change it.
    REQUIRE(fallocate(g.get(), 0, 0, 10) == 0);
    REQUIRE(StatOf(g.get()).st_size == 5100);
  }
  fs.Remount();
  struct stat st = StatOf(file);
  REQUIRE(st.st_blocks == static_cast<blkcnt_t>((kMiB + 2 * kBlock) / 512));
  REQUIRE_SAME(ReadFile(fs.path("g")), std::string(5100, '\0'));
  fs.Check();
}

TEST_CASE("fallocate KEEP_SIZE allocates without changing the size", "[fs][fallocate]") {
  MountedFs fs;
  DirtyFreeSpace(fs, 8 * kMiB);
  const uint64_t free0 = FreeBlocks(fs);
  const std::string file = fs.path("k");
  {
    Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
    PwriteExact(fd.get(), std::string(100, 'a'), 0);
    REQUIRE(fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 0, kMiB) == 0);
    struct stat st = StatOf(fd.get());
    REQUIRE(st.st_size == 100);
    REQUIRE(st.st_blocks == static_cast<blkcnt_t>(kMiB / 512));
    REQUIRE(FreeBlocks(fs) == free0 - kMiB / kBlock);
    REQUIRE_SAME(DirectContents(file), std::string(100, 'a'));
    // Entirely past EOF.
    REQUIRE(fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 2 * kMiB, kMiB) == 0);
    st = StatOf(fd.get());
    REQUIRE(st.st_size == 100);
    REQUIRE(st.st_blocks == static_cast<blkcnt_t>(2 * kMiB / 512));
  }
  fs.Remount();
  {
    Fd fd(file, O_RDWR);
    struct stat st = StatOf(fd.get());
    REQUIRE(st.st_size == 100);
    REQUIRE(st.st_blocks == static_cast<blkcnt_t>(2 * kMiB / 512));
    // Growing into the preallocated space exposes zeros, not old pool bytes.
    REQUIRE(ftruncate(fd.get(), 3 * kMiB) == 0);
    REQUIRE(StatOf(fd.get()).st_blocks == static_cast<blkcnt_t>(2 * kMiB / 512));
  }
  REQUIRE_SAME(DirectContents(file), std::string(100, 'a') + std::string(3 * kMiB - 100, '\0'));
  {
    // Preallocated blocks past a new, lower EOF go back to free space.
    Fd fd(file, O_RDWR);
    REQUIRE(fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 3 * kMiB, kMiB) == 0);
    REQUIRE(StatOf(fd.get()).st_blocks == static_cast<blkcnt_t>(3 * kMiB / 512));
    REQUIRE(ftruncate(fd.get(), 1000) == 0);
    REQUIRE(StatOf(fd.get()).st_blocks == 8);
    REQUIRE(FreeBlocks(fs) == free0 - 1);
  }
  fs.Check();
}

TEST_CASE("fallocate PUNCH_HOLE frees whole blocks and zeroes the edges", "[fs][fallocate]") {
  MountedFs fs;
  std::mt19937_64 rng(2);
  const std::string file = fs.path("p");
  const uint64_t size = 16 * kBlock;
  std::string want = NonZeroBytes(rng, size);
  Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
  PwriteExact(fd.get(), want, 0);
  REQUIRE(StatOf(fd.get()).st_blocks == 16 * 8);
  uint64_t free0 = FreeBlocks(fs);

  auto punch = [&](uint64_t off, uint64_t len) {
    INFO("punch " << off << "+" << len);
    REQUIRE(fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0);
    uint64_t end = std::min(off + len, size);
    if (off < end) std::fill(want.begin() + off, want.begin() + end, '\0');
    REQUIRE(StatOf(fd.get()).st_size == static_cast<off_t>(size));
    REQUIRE_SAME(PreadAll(fd.get(), 0, 2 * size), want);
    REQUIRE_SAME(DirectContents(file), want);
  };

  SECTION("aligned") {
    punch(4 * kBlock, 4 * kBlock);
    REQUIRE(StatOf(fd.get()).st_blocks == 12 * 8);
    REQUIRE(FreeBlocks(fs) == free0 + 4);
    REQUIRE(Seek(fd.get(), 0, SEEK_HOLE) == static_cast<off_t>(4 * kBlock));
    REQUIRE(Seek(fd.get(), 4 * kBlock, SEEK_DATA) == static_cast<off_t>(8 * kBlock));
  }
  SECTION("unaligned: only whole blocks are freed") {
    punch(5000, 10000);  // [5000, 15000): block 2 whole, blocks 1 and 3 partly
    REQUIRE(StatOf(fd.get()).st_blocks == 15 * 8);
    REQUIRE(FreeBlocks(fs) == free0 + 1);
  }
  SECTION("inside one block") {
    punch(100, 200);
    punch(kBlock - 1, 2);  // across a block boundary, no whole block
    REQUIRE(StatOf(fd.get()).st_blocks == 16 * 8);
    REQUIRE(FreeBlocks(fs) == free0);
  }
  SECTION("across EOF") {
    punch(14 * kBlock + 10, kMiB);
    REQUIRE(StatOf(fd.get()).st_blocks == 15 * 8);
    REQUIRE(FreeBlocks(fs) == free0 + 1);
  }
  SECTION("entirely past EOF") {
    punch(size + kBlock, kMiB);
    REQUIRE(StatOf(fd.get()).st_blocks == 16 * 8);
  }
  SECTION("the whole file") {
    punch(0, size);
    REQUIRE(StatOf(fd.get()).st_blocks == 0);
    REQUIRE(FreeBlocks(fs) == free0 + 16);
    REQUIRE(SeekIsEnxio(fd.get(), 0, SEEK_DATA));
  }
  fd.Close();
  fs.Remount();
  REQUIRE_SAME(ReadFile(file), want);
  fs.Check();
}

TEST_CASE("fallocate PUNCH_HOLE from an unaligned offset in each block to EOF", "[fs][fallocate]") {
  MountedFs fs;
  std::mt19937_64 rng(3);
  const std::string file = fs.path("pe");
  const uint64_t kBlocks = 16;
  Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
  INFO("inode " << StatOf(fd.get()).st_ino);
  for (uint64_t k = 0; k < kBlocks; ++k) {
    std::string data = NonZeroBytes(rng, kBlocks * kBlock);
    PwriteExact(fd.get(), data, 0);
    const uint64_t off = k * kBlock + 100;
    INFO("punch from " << off);
    REQUIRE(fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
                      kBlocks * kBlock - off) == 0);
    REQUIRE(StatOf(fd.get()).st_blocks == static_cast<blkcnt_t>((k + 1) * 8));
    REQUIRE_SAME(DirectContents(file), ZeroedFrom(data, off, kBlocks * kBlock));
  }
}

TEST_CASE("fallocate ZERO_RANGE zeroes bytes and grows the size unless KEEP_SIZE",
          "[fs][fallocate]") {
  MountedFs fs;
  DirtyFreeSpace(fs, 8 * kMiB);
  std::mt19937_64 rng(4);
  const std::string file = fs.path("z");
  std::string want = NonZeroBytes(rng, 16 * kBlock);
  {
    Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
    PwriteExact(fd.get(), want, 0);
    uint64_t free0 = FreeBlocks(fs);

    REQUIRE(fallocate(fd.get(), FALLOC_FL_ZERO_RANGE, 1000, 8000) == 0);
    std::fill(want.begin() + 1000, want.begin() + 9000, '\0');
    REQUIRE(StatOf(fd.get()).st_size == static_cast<off_t>(16 * kBlock));
    REQUIRE(StatOf(fd.get()).st_blocks == 16 * 8);
    REQUIRE(FreeBlocks(fs) == free0);
    REQUIRE_SAME(PreadAll(fd.get(), 0, kMiB), want);
    REQUIRE_SAME(DirectContents(file), want);

    // Across EOF, without KEEP_SIZE: the size follows the range.
    REQUIRE(fallocate(fd.get(), FALLOC_FL_ZERO_RANGE, 15 * kBlock + 5, 10 * kBlock) == 0);
    std::fill(want.begin() + 15 * kBlock + 5, want.end(), '\0');
    want.resize(25 * kBlock + 5, '\0');
    REQUIRE(StatOf(fd.get()).st_size == static_cast<off_t>(25 * kBlock + 5));
    REQUIRE(StatOf(fd.get()).st_blocks == 26 * 8);
    REQUIRE_SAME(DirectContents(file), want);

    // With KEEP_SIZE past EOF: allocated, size unchanged.
    REQUIRE(fallocate(fd.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 40 * kBlock,
                      10 * kBlock) == 0);
    REQUIRE(StatOf(fd.get()).st_size == static_cast<off_t>(25 * kBlock + 5));
    REQUIRE(StatOf(fd.get()).st_blocks == 36 * 8);
    REQUIRE_SAME(DirectContents(file), want);
  }
  fs.Remount();
  REQUIRE_SAME(ReadFile(file), want);
  {
    // The preallocated blocks past EOF read zero once the file grows over them.
    Fd fd(file, O_RDWR);
    REQUIRE(ftruncate(fd.get(), 50 * kBlock) == 0);
    want.resize(50 * kBlock, '\0');
  }
  REQUIRE_SAME(DirectContents(file), want);
  fs.Check();
}

TEST_CASE("fallocate ZERO_RANGE over data and holes, from each block", "[fs][fallocate]") {
  // Data in blocks [0, k], holes after; zero from inside block k to the end.
  // The new blocks join the extent of the old ones.
  MountedFs fs;
  std::mt19937_64 rng(5);
  const std::string file = fs.path("zh");
  const uint64_t kBlocks = 16;
  Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
  INFO("inode " << StatOf(fd.get()).st_ino);
  for (uint64_t k = 0; k < kBlocks; ++k) {
    REQUIRE(ftruncate(fd.get(), 0) == 0);
    std::string data = NonZeroBytes(rng, (k + 1) * kBlock);
    PwriteExact(fd.get(), data, 0);
    REQUIRE(ftruncate(fd.get(), kBlocks * kBlock) == 0);
    const uint64_t off = k * kBlock + 100;
    INFO("zero from " << off);
    REQUIRE(fallocate(fd.get(), FALLOC_FL_ZERO_RANGE, off, kBlocks * kBlock - off) == 0);
    REQUIRE(StatOf(fd.get()).st_blocks == static_cast<blkcnt_t>(kBlocks * 8));
    REQUIRE_SAME(DirectContents(file), ZeroedFrom(data, off, kBlocks * kBlock));
  }
}

TEST_CASE("unsupported fallocate modes fail with EOPNOTSUPP and change nothing",
          "[fs][fallocate]") {
  MountedFs fs;
  std::mt19937_64 rng(6);
  const std::string file = fs.path("u");
  std::string data = NonZeroBytes(rng, 16 * kBlock);
  Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
  PwriteExact(fd.get(), data, 0);
  const uint64_t free0 = FreeBlocks(fs);
  struct Mode {
    const char* name;
    int mode;
  };
  for (Mode m : {Mode{"COLLAPSE_RANGE", FALLOC_FL_COLLAPSE_RANGE},
                 Mode{"INSERT_RANGE", FALLOC_FL_INSERT_RANGE},
                 Mode{"PUNCH_HOLE without KEEP_SIZE", FALLOC_FL_PUNCH_HOLE}}) {
    INFO(m.name);
    errno = 0;
    REQUIRE(fallocate(fd.get(), m.mode, 4 * kBlock, 4 * kBlock) == -1);
    REQUIRE(errno == EOPNOTSUPP);
    REQUIRE(StatOf(fd.get()).st_size == static_cast<off_t>(16 * kBlock));
    REQUIRE(StatOf(fd.get()).st_blocks == 16 * 8);
    REQUIRE(FreeBlocks(fs) == free0);
    REQUIRE_SAME(DirectContents(file), data);
  }
  fd.Close();
  // xfs_io reports the same refusal.
  RunResult r = Run({kXfsIo, "-c", "fcollapse 0 4k", "-c", "finsert 0 4k", file});
  INFO(r.out << r.err);
  REQUIRE(r.err.find("Operation not supported") != std::string::npos);
  fs.Remount();
  REQUIRE_SAME(ReadFile(file), data);
  fs.Check();
}

TEST_CASE("fallocate past the free space fails with ENOSPC and changes nothing",
          "[fs][fallocate]") {
  MountedFs fs(MountedFs::Options{.size = 8 << 20, .mount_options = {}});
  const uint64_t free0 = FreeBlocks(fs);
  const std::string file = fs.path("big");
  Fd fd(file, O_RDWR | O_CREAT | O_TRUNC);
  PwriteExact(fd.get(), "x", 0);
  errno = 0;
  REQUIRE(fallocate(fd.get(), 0, 0, (free0 + 10) * kBlock) == -1);
  REQUIRE(errno == ENOSPC);
  REQUIRE(StatOf(fd.get()).st_size == 1);
  REQUIRE(StatOf(fd.get()).st_blocks == 8);
  REQUIRE(FreeBlocks(fs) == free0 - 1);
  // Exactly what is left still fits.
  REQUIRE(fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, kBlock, (free0 - 1) * kBlock) == 0);
  REQUIRE(FreeBlocks(fs) == 0);
  REQUIRE(StatOf(fd.get()).st_size == 1);
  fd.Close();
  REQUIRE(unlink(file.c_str()) == 0);
  REQUIRE(FreeBlocksSettled(fs, free0) == free0);
  fs.Check();
}

TEST_CASE("SEEK_DATA and SEEK_HOLE report exact 4 KiB boundaries", "[fs][fallocate]") {
  MountedFs fs;
  std::mt19937_64 rng(7);
  const std::string a = fs.path("a");
  const std::string b = fs.path("b");
  {
    // a: data [0, 8K) hole [8K, 20K) data [20K, 24K) hole [24K, 40K)
    Fd fd(a, O_RDWR | O_CREAT | O_TRUNC);
    PwriteExact(fd.get(), NonZeroBytes(rng, 8 * kKiB), 0);
    PwriteExact(fd.get(), NonZeroBytes(rng, 4 * kKiB), 20 * kKiB);
    REQUIRE(ftruncate(fd.get(), 40 * kKiB) == 0);
    // b: hole [0, 12K) data [12K, 16K) hole [16K, 32K) data [32K, 34000 = EOF)
    Fd fb(b, O_RDWR | O_CREAT | O_TRUNC);
    PwriteExact(fb.get(), NonZeroBytes(rng, 4 * kKiB), 12 * kKiB);
    PwriteExact(fb.get(), NonZeroBytes(rng, 34000 - 32 * kKiB), 32 * kKiB);
  }
  fs.Remount();  // answers come from the daemon's extent map, not from memory

  constexpr off_t K = 1024;
  auto check_a = [&] {
    Fd fd(a, O_RDONLY);
    int f = fd.get();
    CHECK(Seek(f, 0, SEEK_DATA) == 0);
    CHECK(Seek(f, 5000, SEEK_DATA) == 5000);
    CHECK(Seek(f, 0, SEEK_HOLE) == 8 * K);
    CHECK(Seek(f, 8 * K - 1, SEEK_HOLE) == 8 * K);
    CHECK(Seek(f, 8 * K, SEEK_HOLE) == 8 * K);
    CHECK(Seek(f, 8 * K, SEEK_DATA) == 20 * K);
    CHECK(Seek(f, 9000, SEEK_DATA) == 20 * K);
    CHECK(Seek(f, 20 * K - 1, SEEK_DATA) == 20 * K);
    CHECK(Seek(f, 20 * K, SEEK_HOLE) == 24 * K);
    CHECK(Seek(f, 21000, SEEK_HOLE) == 24 * K);
    CHECK(Seek(f, 24 * K, SEEK_HOLE) == 24 * K);
    CHECK(Seek(f, 39 * K, SEEK_HOLE) == 39 * K);
    CHECK(SeekIsEnxio(f, 24 * K, SEEK_DATA));  // no data after the last extent
    CHECK(SeekIsEnxio(f, 30 * K, SEEK_DATA));
    CHECK(SeekIsEnxio(f, 40 * K, SEEK_DATA));  // at EOF
    CHECK(SeekIsEnxio(f, 40 * K, SEEK_HOLE));
    CHECK(SeekIsEnxio(f, 1 << 30, SEEK_HOLE));
  };
  auto check_b = [&] {
    Fd fd(b, O_RDONLY);
    int f = fd.get();
    CHECK(Seek(f, 0, SEEK_HOLE) == 0);
    CHECK(Seek(f, 0, SEEK_DATA) == 12 * K);
    CHECK(Seek(f, 12 * K, SEEK_HOLE) == 16 * K);
    CHECK(Seek(f, 16 * K, SEEK_DATA) == 32 * K);
    CHECK(Seek(f, 32 * K, SEEK_HOLE) == 34000);  // in the last data: EOF
    CHECK(Seek(f, 33000, SEEK_HOLE) == 34000);
    CHECK(Seek(f, 33999, SEEK_DATA) == 33999);
    CHECK(SeekIsEnxio(f, 34000, SEEK_DATA));
  };
  check_a();
  check_b();

  RunResult r = Run({kXfsIo, "-r", "-c", "seek -a -r 0", a});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out == "Whence\tResult\nDATA\t0\nHOLE\t8192\nDATA\t20480\nHOLE\t24576\n");
  r = Run({kXfsIo, "-r", "-c", "seek -a -r 0", b});
  REQUIRE(r.status == 0);
  CHECK(r.out == "Whence\tResult\nHOLE\t0\nDATA\t12288\nHOLE\t16384\nDATA\t32768\nHOLE\t34000\n");
  r = Run({kXfsIo, "-r", "-c", "seek -d 9000", "-c", "seek -h 21000", a});
  REQUIRE(r.status == 0);
  CHECK(r.out == "Whence\tResult\nDATA\t20480\nWhence\tResult\nHOLE\t24576\n");
  fs.Check();
}

TEST_CASE("xfs_io falloc, fpunch and fzero", "[fs][fallocate]") {
  MountedFs fs;
  DirtyFreeSpace(fs, 8 * kMiB);
  const std::string file = fs.path("x");
  RunResult r = Run({kXfsIo, "-f", "-c", "pwrite -q -S 0xab 0 1m", "-c", "falloc 0 1m", "-c",
                     "fpunch 4k 8k", "-c", "fzero 64k 4k", "-c", "fzero 100001 3", "-c",
                     "falloc -k 1m 1m", "-c", "fpunch 200k 6k", file});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  REQUIRE(r.err.empty());
  std::string want(kMiB, '\xab');
  std::fill(want.begin() + 4 * kKiB, want.begin() + 12 * kKiB, '\0');
  std::fill(want.begin() + 64 * kKiB, want.begin() + 68 * kKiB, '\0');
  std::fill(want.begin() + 100001, want.begin() + 100004, '\0');
  std::fill(want.begin() + 200 * kKiB, want.begin() + 206 * kKiB, '\0');
  // 256 blocks written, 2 + 1 punched whole (the 6k punch frees one block),
  // 256 preallocated past EOF.
  const blkcnt_t blocks = (256 - 3 + 256) * 8;
  struct stat st = StatOf(file);
  REQUIRE(st.st_size == static_cast<off_t>(kMiB));
  REQUIRE(st.st_blocks == blocks);
  REQUIRE_SAME(DirectContents(file), want);

  r = Run({kXfsIo, "-r", "-c", "seek -a -r 0", file});
  REQUIRE(r.status == 0);
  CHECK(r.out ==
        "Whence\tResult\nDATA\t0\nHOLE\t4096\nDATA\t12288\nHOLE\t204800\nDATA\t208896\n"
        "HOLE\t1048576\n");
  fs.Remount();
  st = StatOf(file);
  REQUIRE(st.st_blocks == blocks);
  REQUIRE_SAME(ReadFile(file), want);
  fs.Check();
}
