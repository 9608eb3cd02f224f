// Where new blocks go, through a real mount (issue 11 item 8; docs/design.md,
// "Where new blocks go"). Copy-on-write: neighbouring file blocks moved by
// separate writes, in any order, land next to each other in the pool, so a
// clone rewritten block by block keeps few extents (xfstests generic/301
// calls a file "badly fragmented" at 2/3 of an extent per block); before,
// each block went to the next free block in time order, and a clone
// rewritten in random order had one extent per block. A new file starts
// where it has room to grow, not in the first small gap.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "test/fs_helpers.h"

namespace daxref::test {
namespace {

struct Layout {
  size_t extents = 0;  // pieces of the map (split where sharing changes)
  size_t unshared = 0;
  size_t shared = 0;
};

Layout LayoutOf(const std::string& path) {
  Layout l;
  for (const daxref_extent& e : Extents(path)) {
    ++l.extents;
    (e.refcount > 1 ? l.shared : l.unshared)++;
  }
  return l;
}

// A clone of a file of `blocks` blocks: the original's bytes and the clone's path.
std::string MakeClone(const MountedFs& fs, uint64_t blocks) {
  std::string bytes = NonZeroBytes(42, blocks * kBlock);
  WriteFile(fs.path("orig"), bytes);
  Fd src(fs.path("orig"), O_RDONLY);
  Fd dst(fs.path("clone"), O_RDWR | O_CREAT);
  REQUIRE(CloneRange(src.get(), 0, 0, dst.get(), 0) == 0);
  REQUIRE(LayoutOf(fs.path("clone")).shared >= 1);
  return bytes;
}

TEST_CASE("a clone rewritten one block at a time in random order keeps few extents",
          "[fs][reflink][layout]") {
  MountedFs fs;
  // generic/301's file: 8 MiB, every block written once in random order.
  constexpr uint64_t kBlocks = 2048;
  std::string want = MakeClone(fs, kBlocks);
  std::vector<uint64_t> order(kBlocks);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(301));
  Fd f(fs.path("clone"), O_RDWR);
  for (uint64_t b : order) {
    std::string block = NonZeroBytes(b + 1000, kBlock);
    PwriteExact(f.get(), block, b * kBlock);
    want.replace(b * kBlock, kBlock, block);
  }
  Layout l = LayoutOf(fs.path("clone"));
  INFO("extents " << l.extents);
  REQUIRE(l.shared == 0);
  // One extent per 32-block window at worst (64 here), fewer where
  // neighbouring windows landed side by side; before: 2,048.
  REQUIRE(l.extents <= kBlocks / 32);
  REQUIRE_SAME(PreadAll(f.get(), 0, kBlocks * kBlock), want);
  REQUIRE_SAME(ReadFile(fs.path("orig")), NonZeroBytes(42, kBlocks * kBlock));
  f.Close();
  fs.Check();
}

TEST_CASE("a clone rewritten one block at a time in ascending order stays one extent",
          "[fs][reflink][layout]") {
  MountedFs fs;
  constexpr uint64_t kBlocks = 4096;  // 16 MiB; its first quarter is rewritten
  std::string want = MakeClone(fs, kBlocks);
  Fd f(fs.path("clone"), O_RDWR);
  for (uint64_t b = 0; b < kBlocks / 4; ++b)
    PwriteExact(f.get(), std::string(kBlock, 'w'), b * kBlock);
  want.replace(0, kBlocks / 4 * kBlock, std::string(kBlocks / 4 * kBlock, 'w'));
  Layout l = LayoutOf(fs.path("clone"));
  INFO("extents " << l.extents);
  REQUIRE(l.unshared == 1);
  REQUIRE(l.shared == 1);
  REQUIRE_SAME(PreadAll(f.get(), 0, kBlocks * kBlock), want);
}

TEST_CASE("blocks rewritten in scattered groups merge within their windows",
          "[fs][reflink][layout]") {
  MountedFs fs;
  // Every block of the first 512 written in descending order, two blocks
  // at a time with the odd ones first, then the even ones: worst case for
  // placement in time order.
  constexpr uint64_t kBlocks = 1024;
  std::string want = MakeClone(fs, kBlocks);
  Fd f(fs.path("clone"), O_RDWR);
  for (int parity : {1, 0})
    for (uint64_t b = 512; b-- > 0;)
      if (b % 2 == static_cast<uint64_t>(parity)) {
        std::string block = NonZeroBytes(b + 7, kBlock);
        PwriteExact(f.get(), block, b * kBlock);
        want.replace(b * kBlock, kBlock, block);
      }
  Layout l = LayoutOf(fs.path("clone"));
  INFO("extents " << l.extents);
  REQUIRE(l.shared == 1);
  REQUIRE(l.unshared <= 512 / 32);
  REQUIRE_SAME(PreadAll(f.get(), 0, kBlocks * kBlock), want);
  f.Close();
  fs.Check();
}

TEST_CASE("a new file starts in room to grow, not in the small gaps deleted files left",
          "[fs][layout]") {
  MountedFs fs;
  // 200 one-block files at the bottom of the pool, every other one deleted:
  // 100 gaps of one block each.
  for (int i = 0; i < 200; ++i) WriteFile(fs.path("small" + std::to_string(i)), "s");
  for (int i = 0; i < 200; i += 2)
    REQUIRE(unlink(fs.path("small" + std::to_string(i)).c_str()) == 0);
  // A file written front to back, 4 KiB at a time; before, it took the gaps
  // one by one (one extent per gap, then the rest).
  std::string want;
  {
    Fd f(fs.path("new"), O_RDWR | O_CREAT);
    for (int b = 0; b < 256; ++b) {
      std::string block = NonZeroBytes(b, kBlock);
      PwriteExact(f.get(), block, b * kBlock);
      want += block;
    }
  }
  Layout l = LayoutOf(fs.path("new"));
  INFO("extents " << l.extents);
  REQUIRE(l.extents == 1);
  REQUIRE_SAME(ReadFile(fs.path("new")), want);
  fs.Check();
}

}  // namespace
}  // namespace daxref::test
