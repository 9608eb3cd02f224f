// The reverse map: Volume::QueryOwners against a brute-force answer built from
// MapRange of every file, after random writes, punches and truncates.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "meta/volume.h"
#include "meta_helpers.h"

namespace daxref {
namespace {

using testing::ExtentRecords;
using testing::kRoot;
using testing::Pattern;
using testing::RmapRecords;
using testing::TestStore;

constexpr uint64_t kB = kBlockSize;

// (pool block, inode, file block): one block's owner.
using Owner = std::tuple<uint64_t, uint64_t, uint64_t>;

// Every owned block of every file in `inos`, from MapRange alone.
std::map<uint64_t, Owner> OwnersFromMapRange(TestStore& st, const std::vector<uint64_t>& inos) {
  std::map<uint64_t, Owner> by_block;
  for (uint64_t ino : inos) {
    // Far past any size: blocks allocated beyond EOF (KEEP_SIZE) count too.
    DAXREF_REQUIRE_OK(st.vol().MapRange(ino, 0, uint64_t{1} << 40, [&](const MappedSegment& s) {
      if (s.hole) return true;
      REQUIRE(s.off % kB == 0);
      REQUIRE(s.len % kB == 0);
      REQUIRE(s.pool_off % kB == 0);
      for (uint64_t i = 0; i < s.len / kB; ++i) {
        uint64_t pb = s.pool_off / kB + i;
        bool fresh = by_block.emplace(pb, Owner{pb, ino, s.off / kB + i}).second;
        INFO("pool block " << pb << " mapped twice");
        REQUIRE(fresh);
      }
      return true;
    }));
  }
  return by_block;
}

std::vector<RmapRecord> Query(Volume& v, uint64_t pb0, uint64_t pb1) {
  std::vector<RmapRecord> out;
  DAXREF_REQUIRE_OK(v.QueryOwners(pb0, pb1, [&](const RmapRecord& r) {
    out.push_back(r);
    return true;
  }));
  return out;
}

// Checks one query against the brute-force owners.
void CheckQuery(Volume& v, const std::map<uint64_t, Owner>& truth, uint64_t pb0, uint64_t pb1) {
  CAPTURE(pb0, pb1);
  std::vector<RmapRecord> got = Query(v, pb0, pb1);
  std::set<Owner> from_query;
  std::set<std::tuple<uint64_t, uint64_t, uint64_t>> seen_records;
  for (const RmapRecord& r : got) {
    CAPTURE(r.pblock, r.ino, r.fblock, r.len);
    REQUIRE(r.len > 0);
    REQUIRE(r.pblock < pb1);                                           // overlaps the range ...
    REQUIRE(r.pblock + r.len > pb0);                                   // ... on both sides
    REQUIRE(seen_records.insert({r.pblock, r.ino, r.fblock}).second);  // once each
    for (uint64_t pb = std::max(pb0, r.pblock); pb < std::min(pb1, r.pblock + r.len); ++pb)
      REQUIRE(from_query.insert(Owner{pb, r.ino, r.fblock + (pb - r.pblock)}).second);
  }
  std::set<Owner> want;
  for (auto it = truth.lower_bound(pb0); it != truth.end() && it->first < pb1; ++it)
    want.insert(it->second);
  REQUIRE(from_query == want);
}

TEST_CASE("QueryOwners agrees with MapRange after random changes", "[rmap]") {
  const uint64_t seed = GENERATE(1, 2, 3);
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  TestStore st(4096);
  Volume& v = st.vol();
  // name -> inode of the live files.
  std::vector<std::pair<std::string, uint64_t>> files;
  int names = 0;
  auto add_file = [&] {
    std::string name = "f" + std::to_string(names++);
    files.emplace_back(name, st.MakeFile(kRootIno, name));
  };
  for (int i = 0; i < 5; ++i) add_file();
  constexpr uint64_t kSpan = 160 * kB;  // each file lives in its first 160 blocks

  for (int step = 0; step < 400; ++step) {
    CAPTURE(step);
    size_t k = rng() % files.size();
    uint64_t f = files[k].second;
    uint64_t off = rng() % kSpan, len = 1 + rng() % (12 * kB);
    InodeRecord r;
    switch (rng() % 10) {
      case 0:
      case 1:
      case 2:
      case 3: {
        std::string bytes = Pattern(len, step);
        DAXREF_REQUIRE_OK(v.Write(f, off, bytes.data(), bytes.size(), kRoot, &r));
        break;
      }
      case 4:
      case 5:
        DAXREF_REQUIRE_OK(v.Fallocate(f, kFallocPunchHole | kFallocKeepSize, off, len, &r));
        break;
      case 6:
        DAXREF_REQUIRE_OK(v.Fallocate(f, kFallocKeepSize, off, len, &r));
        break;
      case 7:
        DAXREF_REQUIRE_OK(v.Fallocate(f, kFallocZeroRange, off, len, &r));
        break;
      case 8:
        st.Truncate(f, rng() % kSpan);
        break;
      case 9: {
        // Now and then a file goes away and a new one takes its place.
        if (rng() % 4) break;
        InodeRecord victim;
        DAXREF_REQUIRE_OK(v.Unlink(kRootIno, files[k].first, nullptr, &victim));
        REQUIRE(victim.nlink == 0);
        DAXREF_REQUIRE_OK(v.Reclaim(f));
        files.erase(files.begin() + k);
        add_file();
        break;
      }
    }
  }
  std::vector<uint64_t> inos;
  for (const auto& [name, ino] : files) inos.push_back(ino);
  DAXREF_REQUIRE_VOLUME_CLEAN(st);

  const auto truth = OwnersFromMapRange(st, inos);
  REQUIRE(truth.size() > 100);  // the random steps left a well-filled pool
  REQUIRE(st.free_blocks() == st.sb().data_blocks() - truth.size());

  // The whole pool, and many random windows, narrow and wide.
  CheckQuery(v, truth, 0, st.sb().block_count);
  for (int i = 0; i < 300; ++i) {
    uint64_t pb0 = rng() % st.sb().block_count;
    uint64_t width = i % 3 == 0 ? 1 : 1 + rng() % (i % 3 == 1 ? 8 : 400);
    CheckQuery(v, truth, pb0, pb0 + width);
  }
  // Windows that start exactly at, one before and one after each owned
  // block's record start.
  for (const RmapRecord& r : RmapRecords(st.db())) {
    CheckQuery(v, truth, r.pblock, r.pblock + 1);
    CheckQuery(v, truth, r.pblock + r.len - 1, r.pblock + r.len);
    CheckQuery(v, truth, r.pblock + r.len, r.pblock + r.len + 2);
    if (r.pblock > 0) CheckQuery(v, truth, r.pblock - 1, r.pblock);
  }
}

TEST_CASE("QueryOwners finds an extent that starts before the range", "[rmap]") {
  TestStore st;
  Volume& v = st.vol();
  // Other owners before and after the long extent in the pool.
  uint64_t before = st.MakeFile(kRootIno, "before");
  st.WriteFile(before, 0, Pattern(5 * kB, 1));
  uint64_t f = st.MakeFile(kRootIno, "long");
  st.WriteFile(f, 0, Pattern(256 * kB, 2));
  uint64_t after = st.MakeFile(kRootIno, "after");
  st.WriteFile(after, 0, Pattern(3 * kB, 3));

  auto ext = ExtentRecords(st.db(), f);
  REQUIRE(ext.size() == 1);
  const Extent e = ext[0];
  REQUIRE(e.len == 256);

  for (uint64_t pb0 : {e.pblock + 1, e.pblock + 100, e.pblock + 255}) {
    CAPTURE(pb0);
    auto got = Query(v, pb0, pb0 + 1);
    REQUIRE(got.size() == 1);
    REQUIRE(got[0].ino == f);
    REQUIRE(got[0].pblock == e.pblock);
    REQUIRE(got[0].fblock == 0);
    REQUIRE(got[0].len == 256);
  }
  // A range reaching from inside the long extent into the next file's.
  auto got = Query(v, e.pblock + 250, e.pend() + 1);
  // (Records come grouped by length class, not in pool order.)
  REQUIRE(got.size() == 2);
  std::set<uint64_t> owners{got[0].ino, got[1].ino};
  REQUIRE(owners == std::set<uint64_t>{f, after});
  // A range that starts where the extent ends does not report it.
  for (const RmapRecord& r : Query(v, e.pend(), e.pend() + 1)) REQUIRE(r.ino != f);

  SECTION("after a punch in its middle, both pieces are found from inside") {
    InodeRecord r;
    DAXREF_REQUIRE_OK(v.Fallocate(f, kFallocPunchHole | kFallocKeepSize, 100 * kB, 10 * kB, &r));
    auto left = Query(v, e.pblock + 99, e.pblock + 100);
    REQUIRE(left.size() == 1);
    REQUIRE(left[0].pblock == e.pblock);
    REQUIRE(left[0].len == 100);
    REQUIRE(Query(v, e.pblock + 100, e.pblock + 110).empty());
    auto right = Query(v, e.pblock + 200, e.pblock + 201);
    REQUIRE(right.size() == 1);
    REQUIRE(right[0].pblock == e.pblock + 110);
    REQUIRE(right[0].fblock == 110);
    REQUIRE(right[0].len == 146);
  }
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

TEST_CASE("QueryOwners stops when the callback says so", "[rmap]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t f = st.MakeFile(kRootIno, "f");
  // Every other file block: one extent each.
  for (uint64_t i = 0; i < 20; ++i) st.WriteFile(f, 2 * i * kB, "x");
  REQUIRE(ExtentRecords(st.db(), f).size() == 20);

  for (int stop_after : {1, 3, 20}) {
    CAPTURE(stop_after);
    int calls = 0;
    DAXREF_REQUIRE_OK(v.QueryOwners(0, st.sb().block_count,
                                    [&](const RmapRecord&) { return ++calls < stop_after; }));
    REQUIRE(calls == stop_after);
  }
  // Empty and inverted ranges call nothing.
  int calls = 0;
  auto count = [&](const RmapRecord&) {
    ++calls;
    return true;
  };
  DAXREF_REQUIRE_OK(v.QueryOwners(5, 5, count));
  DAXREF_REQUIRE_OK(v.QueryOwners(9, 3, count));
  REQUIRE(calls == 0);
}

// The cost of a query is the owners it meets, not the size of the map: count
// the callbacks (each a record the walk had to decode and hand over).
TEST_CASE("QueryOwners visits only what overlaps the range", "[rmap]") {
  TestStore st;
  Volume& v = st.vol();
  std::vector<uint64_t> files;
  for (int i = 0; i < 4; ++i) files.push_back(st.MakeFile(kRootIno, "f" + std::to_string(i)));
  // 4 files x 150 one-block extents, interleaved in the pool.
  for (uint64_t b = 0; b < 150; ++b)
    for (uint64_t f : files) st.WriteFile(f, 3 * b * kB, "y");
  auto all = RmapRecords(st.db());
  REQUIRE(all.size() == 600);

  int calls = 0;
  auto count = [&](const RmapRecord&) {
    ++calls;
    return true;
  };
  const RmapRecord mid = all[300];
  DAXREF_REQUIRE_OK(v.QueryOwners(mid.pblock, mid.pblock + 1, count));
  REQUIRE(calls == 1);

  calls = 0;
  DAXREF_REQUIRE_OK(v.QueryOwners(mid.pblock, mid.pblock + 10, count));
  uint64_t want = 0;
  for (const RmapRecord& r : all)
    want += r.pblock < mid.pblock + 10 && r.pblock + r.len > mid.pblock;
  REQUIRE(calls == static_cast<int>(want));

  // Free space past every owner: nothing.
  calls = 0;
  DAXREF_REQUIRE_OK(v.QueryOwners(all.back().pblock + 1, st.sb().block_count, count));
  REQUIRE(calls == 0);

  // The whole pool: every record once.
  calls = 0;
  DAXREF_REQUIRE_OK(v.QueryOwners(0, st.sb().block_count, count));
  REQUIRE(calls == 600);

  // Once the files are gone the map is empty.
  for (size_t i = 0; i < files.size(); ++i) {
    InodeRecord victim;
    DAXREF_REQUIRE_OK(v.Unlink(kRootIno, "f" + std::to_string(i), nullptr, &victim));
    DAXREF_REQUIRE_OK(v.Reclaim(files[i]));
  }
  calls = 0;
  DAXREF_REQUIRE_OK(v.QueryOwners(0, st.sb().block_count, count));
  REQUIRE(calls == 0);
  REQUIRE(st.free_blocks() == st.sb().data_blocks());
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

}  // namespace
}  // namespace daxref
