// The extent cache must never disagree with the store: after every kind of
// extent edit, what MapRange (served from the cache) reports is exactly what
// the E records say.
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "meta/volume.h"
#include "meta_helpers.h"

namespace daxref {
namespace {

using testing::ExtentRecords;
using testing::kRoot;
using testing::Pattern;
using testing::TestStore;

constexpr uint64_t kB = kBlockSize;

// The mapped segments MapRange reports, as extents (holes left out).
std::vector<Extent> CachedView(TestStore& st, uint64_t ino, uint64_t blocks) {
  std::vector<Extent> out;
  for (const MappedSegment& s : st.Segments(ino, 0, blocks * kB)) {
    if (s.hole) continue;
    Extent e{s.off / kB, s.pool_off / kB, s.len / kB};
    // MapRange splits nothing inside an extent, but two extents may abut.
    out.push_back(e);
  }
  return out;
}

TEST_CASE("MapRange through the extent cache always matches the extent records",
          "[volume][extent_cache]") {
  TestStore st;
  uint64_t f = st.MakeFile(kRootIno, "f");
  std::mt19937_64 rng(7);
  const uint64_t kBlocks = 256;
  for (int step = 0; step < 400; ++step) {
    uint64_t a = rng() % kBlocks, n = 1 + rng() % 16;
    InodeRecord r;
    switch (rng() % 5) {
      case 0:
      case 1:  // write (appends and overwrites, which the cache must see)
        st.WriteFile(f, a * kB, Pattern(n * kB, step));
        break;
      case 2:
        DAXREF_REQUIRE_OK(
            st.vol().Fallocate(f, kFallocPunchHole | kFallocKeepSize, a * kB, n * kB, &r));
        break;
      case 3: {
        SetAttrRequest req;
        req.size = a * kB + rng() % kB;
        DAXREF_REQUIRE_OK(st.vol().SetAttr(f, req, kRoot, &r));
        break;
      }
      case 4:
        DAXREF_REQUIRE_OK(st.vol().Fallocate(f, 0, a * kB, n * kB, &r));
        break;
    }
    INFO("step " << step);
    std::vector<Extent> want = ExtentRecords(st.db(), f), got = CachedView(st, f, 2 * kBlocks);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      REQUIRE(got[i].fblock == want[i].fblock);
      REQUIRE(got[i].pblock == want[i].pblock);
      REQUIRE(got[i].len == want[i].len);
    }
  }
}

}  // namespace
}  // namespace daxref
