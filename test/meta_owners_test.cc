// Volume::QueryOwners (meta/volume_owners.cc) once blocks are shared: every
// sharer found among overlapping reverse-map records of any length class,
// checked against what MapRange says every file maps, before and after a
// reopen, and paged with the resume cursor.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "meta/volume.h"
#include "meta_helpers.h"

namespace daxref {
namespace {

using testing::BlockMap;
using testing::Clone;
using testing::ExtentRecords;
using testing::Fallocate;
using testing::Pattern;
using testing::RmapRecords;
using testing::TestStore;

constexpr uint64_t kB = kBlockSize;

// (pool block, inode, file block): one block's owner.
using Owner = std::tuple<uint64_t, uint64_t, uint64_t>;

std::vector<RmapRecord> Owners(Volume& v, uint64_t pb0, uint64_t pb1) {
  std::vector<RmapRecord> out;
  DAXREF_REQUIRE_OK(v.QueryOwners(pb0, pb1, [&](const RmapRecord& r) {
    out.push_back(r);
    return true;
  }));
  return out;
}

bool SameRecord(const RmapRecord& x, const RmapRecord& y) {
  return x.pblock == y.pblock && x.ino == y.ino && x.fblock == y.fblock && x.len == y.len;
}

TEST_CASE("QueryOwners finds every sharer among overlapping records of any length",
          "[reflink][owners]") {
  TestStore st;
  Volume& v = st.vol();
  std::vector<uint64_t> inos;
  auto file = [&](const char* name) {
    inos.push_back(st.MakeFile(kRootIno, name));
    return inos.back();
  };
  // A long extent (300 blocks: length class 8) and other files around it.
  uint64_t pre = file("pre");
  st.WriteFile(pre, 0, Pattern(3 * kB, 1));
  uint64_t a = file("a");
  st.WriteFile(a, 0, Pattern(300 * kB, 2));
  REQUIRE(ExtentRecords(st.db(), a).size() == 1);
  uint64_t post = file("post");
  st.WriteFile(post, 0, Pattern(5 * kB, 3));
  // Clones of parts of it, of parts of those, of itself; then copies-on-
  // write and punches in some.
  uint64_t b = file("b"), c = file("c"), d = file("d"), e = file("e"), f = file("f");
  Clone(v, a, 10 * kB, b, 0, 140 * kB);
  Clone(v, a, 100 * kB, c, 5 * kB, 190 * kB);
  Clone(v, a, 5 * kB, d, 0, kB);
  Clone(v, a, 0, e, 0, 0);
  Clone(v, a, 200 * kB, a, 400 * kB, 60 * kB);
  Clone(v, b, 20 * kB, f, 3 * kB, 40 * kB);
  Clone(v, a, 37 * kB, f, 60 * kB, 3 * kB);
  st.WriteFile(e, 50 * kB, Pattern(3 * kB, 4));
  Fallocate(v, c, kFallocPunchHole | kFallocKeepSize, 10 * kB, 11 * kB);
  st.WriteFile(b, 64 * kB + 5, "w");
  DAXREF_REQUIRE_VOLUME_CLEAN(st);

  // The truth, from MapRange of every file.
  std::map<uint64_t, std::set<Owner>> truth;
  for (uint64_t ino : inos)
    for (const auto& [fb, pb] : BlockMap(v, ino)) truth[pb].insert(Owner{pb, ino, fb});
  uint64_t most = 0;
  for (const auto& [pb, owners] : truth) most = std::max<uint64_t>(most, owners.size());
  REQUIRE(most >= 4);  // the test means what it says
  std::set<unsigned> classes;
  for (const RmapRecord& r : RmapRecords(st.db())) classes.insert(keys::RmapClass(r.len));
  REQUIRE(classes.size() >= 4);

  auto check = [&](uint64_t pb0, uint64_t pb1) {
    CAPTURE(pb0, pb1);
    std::set<Owner> got;
    std::set<std::tuple<uint64_t, uint64_t, uint64_t>> records;
    for (const RmapRecord& r : Owners(st.vol(), pb0, pb1)) {
      CAPTURE(r.pblock, r.ino, r.fblock, r.len);
      REQUIRE(r.pblock < pb1);
      REQUIRE(r.pend() > pb0);
      REQUIRE(records.insert({r.pblock, r.ino, r.fblock}).second);
      for (uint64_t pb = std::max(pb0, r.pblock); pb < std::min(pb1, r.pend()); ++pb)
        REQUIRE(got.insert(Owner{pb, r.ino, r.fblock + (pb - r.pblock)}).second);
    }
    std::set<Owner> want;
    for (auto it = truth.lower_bound(pb0); it != truth.end() && it->first < pb1; ++it)
      want.insert(it->second.begin(), it->second.end());
    REQUIRE(got == want);
  };
  const uint64_t pool = st.sb().block_count;
  check(0, pool);
  std::mt19937_64 rng(7);
  const uint64_t lo = truth.begin()->first, hi = truth.rbegin()->first + 2;
  for (int i = 0; i < 400; ++i) {
    uint64_t pb0 = lo + rng() % (hi - lo);
    uint64_t width = i % 3 == 0 ? 1 : 1 + rng() % (i % 3 == 1 ? 9 : 300);
    check(pb0, pb0 + width);
  }
  for (const RmapRecord& r : RmapRecords(st.db())) {
    check(r.pblock, r.pblock + 1);
    check(r.pend() - 1, r.pend());
    check(r.pend(), r.pend() + 1);
    if (r.pblock > 0) check(r.pblock - 1, r.pblock);
  }
  // The same after a reopen, which finds the length classes in use anew.
  st.Reopen();
  check(0, pool);
  for (const RmapRecord& r : RmapRecords(st.db())) {
    check(r.pblock, r.pblock + 1);
    check(r.pend() - 1, r.pend());
  }

  SECTION("paging with the cursor yields every record exactly once") {
    for (auto [pb0, pb1] :
         {std::pair<uint64_t, uint64_t>{0, pool}, {lo + 120, lo + 130}, {lo + 205, lo + 206}}) {
      CAPTURE(pb0, pb1);
      const std::vector<RmapRecord> all = Owners(st.vol(), pb0, pb1);
      REQUIRE(!all.empty());
      for (size_t page : {size_t{1}, size_t{7}}) {
        for (bool take_last : {false, true}) {
          CAPTURE(page, take_last);
          // Two ways to fill a page: stop at the record that does not fit
          // (as the daemon's owner query does), or take the record that
          // fills the page and then stop. Either way the cursor is the last
          // record taken.
          std::vector<RmapRecord> paged;
          std::optional<RmapRecord> cursor;
          for (int calls = 0; calls < 10000; ++calls) {
            size_t taken = 0;
            DAXREF_REQUIRE_OK(st.vol().QueryOwners(
                pb0, pb1,
                [&](const RmapRecord& r) {
                  if (!take_last && taken == page) return false;
                  paged.push_back(r);
                  ++taken;
                  return !(take_last && taken == page);
                },
                cursor ? &*cursor : nullptr));
            if (taken == 0) break;
            cursor = paged.back();
          }
          REQUIRE(paged.size() == all.size());
          for (size_t i = 0; i < all.size(); ++i) {
            CAPTURE(i);
            REQUIRE(SameRecord(paged[i], all[i]));
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace daxref
