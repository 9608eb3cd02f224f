// FreeSpace: the in-memory free extents and the F records that mirror them,
// loaded from and written back to a real RocksDB in a temporary directory.
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <random>
#include <vector>

#include "meta/free_space.h"
#include "meta_helpers.h"

namespace daxref {
namespace {

using testing::FreeRecords;
using testing::TempDir;

using Map = std::map<uint64_t, uint64_t>;
// A pool of 2^20 blocks: data blocks [1, 2^20 - 1).
constexpr PoolGeometry kGeo{uint64_t{1} << 20};

// A bare RocksDB holding nothing but the F records a test puts there.
class FreeStore {
 public:
  // Starts with an F record for each start -> length in `extents`.
  explicit FreeStore(const Map& extents = {}) {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(o, dir_.path() + "/db", &raw);
    INFO(s.ToString());
    REQUIRE(s.ok());
    db_.reset(raw);
    for (const auto& [start, len] : extents) PutFree(start, len);
  }
  rocksdb::DB* db() { return db_.get(); }
  void PutFree(uint64_t start, uint64_t len) {
    REQUIRE(db_->Put(rocksdb::WriteOptions(), keys::Free(start), EncodeLength(len)).ok());
  }
  void Apply(rocksdb::WriteBatch* b) { REQUIRE(db_->Write(rocksdb::WriteOptions(), b).ok()); }
  // Loads a FreeSpace from the F records in the store.
  FreeSpace Loaded() {
    FreeSpace fs;
    DAXREF_REQUIRE_OK(fs.Load(db(), kGeo));
    return fs;
  }

 private:
  TempDir dir_;
  std::unique_ptr<rocksdb::DB> db_;
};

std::map<uint64_t, uint64_t> Extents(const FreeSpace& fs) {
  std::map<uint64_t, uint64_t> m;
  fs.ForEach([&](uint64_t start, uint64_t len) {
    m[start] = len;
    return true;
  });
  return m;
}

// Runs `changes` as one edit of `fs` (BeginEdit to Finish) and returns the
// F-record writes the edit emitted.
rocksdb::WriteBatch Edit(FreeSpace& fs, const std::function<void()>& changes) {
  fs.BeginEdit();
  changes();
  rocksdb::WriteBatch b;
  fs.EmitEdit(&b);
  fs.Finish();
  return b;
}

TEST_CASE("FreeSpace::Load reads every F record", "[free_space]") {
  FreeStore st(Map{{1, 100}, {200, 50}, {300, 1}});
  FreeSpace fs = st.Loaded();
  REQUIRE(fs.free_blocks() == 151);
  REQUIRE(fs.extent_count() == 3);
  REQUIRE(Extents(fs) == Map{{1, 100}, {200, 50}, {300, 1}});
  REQUIRE(fs.IsFree(1, 100));
  REQUIRE(fs.IsFree(50, 51));
  REQUIRE_FALSE(fs.IsFree(50, 52));  // runs past the extent
  REQUIRE_FALSE(fs.IsFree(0, 1));
  REQUIRE_FALSE(fs.IsFree(101, 1));
  REQUIRE(fs.IsFree(300, 1));
  REQUIRE_FALSE(fs.IsFree(301, 1));

  SECTION("loading again replaces, not adds") {
    DAXREF_REQUIRE_OK(fs.Load(st.db(), kGeo));
    REQUIRE(fs.free_blocks() == 151);
    REQUIRE(fs.extent_count() == 3);
  }
  SECTION("ForEach stops when told") {
    int calls = 0;
    fs.ForEach([&](uint64_t, uint64_t) { return ++calls < 2; });
    REQUIRE(calls == 2);
  }
}

TEST_CASE("FreeSpace::Load rejects damaged F records", "[free_space]") {
  FreeStore st;
  SECTION("overlapping extents") {
    st.PutFree(10, 10);
    st.PutFree(15, 10);
    FreeSpace fs;
    DAXREF_REQUIRE_ERR(fs.Load(st.db(), kGeo), EUCLEAN);
  }
  SECTION("zero length") {
    st.PutFree(10, 0);
    FreeSpace fs;
    DAXREF_REQUIRE_ERR(fs.Load(st.db(), kGeo), EUCLEAN);
  }
  SECTION("truncated value") {
    REQUIRE(st.db()->Put(rocksdb::WriteOptions(), keys::Free(10), "abc").ok());
    FreeSpace fs;
    DAXREF_REQUIRE_ERR(fs.Load(st.db(), kGeo), EUCLEAN);
  }
  SECTION("a run outside the data area, or one that overflows") {
    uint64_t start = GENERATE(uint64_t{0}, kGeo.data_end() - 1, kGeo.data_end(), UINT64_MAX - 3);
    uint64_t len = GENERATE(uint64_t{1}, uint64_t{2}, uint64_t{8});
    if (start == kGeo.data_end() - 1 && len == 1) return;  // the last data block: valid
    st.PutFree(start, len);
    FreeSpace fs;
    DAXREF_REQUIRE_ERR(fs.Load(st.db(), kGeo), EUCLEAN);
  }
}

TEST_CASE("FreeSpace::Allocate honours the goal", "[free_space]") {
  FreeStore st(Map{{10, 10}, {30, 10}, {100, 50}});  // [10, 20), [30, 40), [100, 150)
  FreeSpace fs = st.Loaded();

  SECTION("goal inside a free extent: taken from the goal, the extent split") {
    auto e = fs.Allocate(105, 10);
    REQUIRE(e);
    REQUIRE(e->pblock == 105);
    REQUIRE(e->len == 10);
    REQUIRE(fs.free_blocks() == 60);
    REQUIRE(Extents(fs) == Map{{10, 10}, {30, 10}, {100, 5}, {115, 35}});
    REQUIRE_FALSE(fs.IsFree(105, 1));
    REQUIRE_FALSE(fs.IsFree(114, 1));
    REQUIRE(fs.IsFree(115, 1));
  }
  SECTION("goal at the start of a free extent") {
    auto e = fs.Allocate(30, 4);
    REQUIRE(e);
    REQUIRE(e->pblock == 30);
    REQUIRE(e->len == 4);
    REQUIRE(Extents(fs) == Map{{10, 10}, {34, 6}, {100, 50}});
  }
  SECTION("goal in used space: the next free extent after it") {
    auto e = fs.Allocate(25, 3);
    REQUIRE(e);
    REQUIRE(e->pblock == 30);
    REQUIRE(e->len == 3);
    e = fs.Allocate(45, 3);
    REQUIRE(e);
    REQUIRE(e->pblock == 100);
  }
  SECTION("goal past every free extent: the lowest one") {
    auto e = fs.Allocate(1000, 2);
    REQUIRE(e);
    REQUIRE(e->pblock == 10);
    REQUIRE(e->len == 2);
    REQUIRE(fs.free_blocks() == 68);
  }
  SECTION("an extent taken whole disappears") {
    auto e = fs.Allocate(30, 10);
    REQUIRE(e);
    REQUIRE(e->pblock == 30);
    REQUIRE(e->len == 10);
    REQUIRE(fs.extent_count() == 2);
    REQUIRE(Extents(fs) == Map{{10, 10}, {100, 50}});
  }
  SECTION("want 0 gives nothing and changes nothing") {
    REQUIRE_FALSE(fs.Allocate(10, 0));
    REQUIRE(fs.free_blocks() == 70);
  }
}

TEST_CASE("FreeSpace::FindRoom finds an aligned free run and changes nothing", "[free_space]") {
  FreeStore st(Map{{10, 10}, {30, 40}, {100, 50}});  // [10, 20), [30, 70), [100, 150)
  FreeSpace fs = st.Loaded();
  SECTION("the first extent from `from` with the room, aligned") {
    REQUIRE(fs.FindRoom(0, 8, 1) == 10);
    REQUIRE(fs.FindRoom(0, 11, 1) == 30);
    REQUIRE(fs.FindRoom(0, 32, 32) == 32);            // [32, 64) inside [30, 70)
    REQUIRE(fs.FindRoom(0, 40, 32) == std::nullopt);  // no aligned 40 anywhere
    REQUIRE(fs.FindRoom(70, 16, 32) == 128);
    REQUIRE(fs.FindRoom(15, 5, 1) == 15);  // inside the extent holding `from`
    REQUIRE(fs.FindRoom(16, 5, 1) == 30);
    REQUIRE(fs.FindRoom(40, 16, 16) == 48);
    REQUIRE(fs.FindRoom(0, 51, 1) == std::nullopt);
  }
  SECTION("wraps to the lowest extents once") {
    REQUIRE(fs.FindRoom(140, 20, 1) == 30);
    REQUIRE(fs.FindRoom(1000, 5, 1) == 10);
  }
  SECTION("changes nothing") {
    (void)fs.FindRoom(0, 32, 32);
    REQUIRE(Extents(fs) == Map{{10, 10}, {30, 40}, {100, 50}});
    REQUIRE(fs.free_blocks() == 100);
  }
}

// With no free extent at or after the goal, allocation is next-fit: it
// resumes where the last one ended, here at what remains of the extent it
// split. (Regression test: upper_bound(cursor_) used to skip that remainder
// and jump to the next extent; fixed in 128602c.)
TEST_CASE("FreeSpace::Allocate next-fit resumes where the last allocation ended", "[free_space]") {
  FreeStore st(Map{{10, 10}, {30, 10}});  // [10, 20), [30, 40)
  FreeSpace fs = st.Loaded();
  auto a = fs.Allocate(1000, 4);
  REQUIRE(a);
  REQUIRE(a->pblock == 10);
  auto b = fs.Allocate(1000, 4);
  REQUIRE(b);
  REQUIRE(b->pblock == 14);
}

TEST_CASE("FreeSpace::Allocate from fragmented space is partial", "[free_space]") {
  FreeStore st(Map{{10, 2}, {20, 3}, {40, 10}});  // [10, 12), [20, 23), [40, 50)
  FreeSpace fs = st.Loaded();

  // One call gives at most one contiguous piece, from the goal's extent.
  auto first = fs.Allocate(10, 10);
  REQUIRE(first);
  REQUIRE(first->pblock == 10);
  REQUIRE(first->len == 2);

  // Continuing from the end of each piece, as Volume does, collects the rest.
  std::vector<Extent> got{*first};
  uint64_t have = first->len;
  while (have < 10) {
    auto e = fs.Allocate(got.back().pend(), 10 - have);
    REQUIRE(e);
    got.push_back(*e);
    have += e->len;
  }
  REQUIRE(got.size() == 3);
  REQUIRE(got[1].pblock == 20);
  REQUIRE(got[1].len == 3);
  REQUIRE(got[2].pblock == 40);
  REQUIRE(got[2].len == 5);
  REQUIRE(fs.free_blocks() == 5);
  REQUIRE(Extents(fs) == Map{{45, 5}});

  SECTION("a full pool gives nothing") {
    auto last = fs.Allocate(0, 100);
    REQUIRE(last);
    REQUIRE(last->pblock == 45);
    REQUIRE(last->len == 5);
    REQUIRE(fs.free_blocks() == 0);
    REQUIRE_FALSE(fs.Allocate(0, 1));
    REQUIRE_FALSE(fs.Allocate(45, 1));
  }
}

TEST_CASE("FreeSpace::Release merges with its neighbours", "[free_space]") {
  FreeStore st(Map{{10, 10}, {30, 10}});  // [10, 20), [30, 40)
  FreeSpace fs = st.Loaded();

  SECTION("touching neither") {
    fs.Release(25, 2);
    REQUIRE(Extents(fs) == Map{{10, 10}, {25, 2}, {30, 10}});
    REQUIRE(fs.free_blocks() == 22);
  }
  SECTION("touching the one before") {
    fs.Release(20, 5);
    REQUIRE(Extents(fs) == Map{{10, 15}, {30, 10}});
    REQUIRE(fs.free_blocks() == 25);
  }
  SECTION("touching the one after") {
    fs.Release(25, 5);
    REQUIRE(Extents(fs) == Map{{10, 10}, {25, 15}});
    REQUIRE(fs.free_blocks() == 25);
  }
  SECTION("filling the gap between both") {
    fs.Release(20, 10);
    REQUIRE(Extents(fs) == Map{{10, 30}});
    REQUIRE(fs.extent_count() == 1);
    REQUIRE(fs.free_blocks() == 30);
  }
  SECTION("allocate then release restores the original extents") {
    auto e = fs.Allocate(13, 4);
    REQUIRE(e);
    REQUIRE(fs.extent_count() == 3);
    fs.Release(e->pblock, e->len);
    REQUIRE(Extents(fs) == Map{{10, 10}, {30, 10}});
    REQUIRE(fs.free_blocks() == 20);
  }
}

TEST_CASE("FreeSpace::Claim removes a specific free range", "[free_space]") {
  FreeStore st(Map{{10, 10}});  // [10, 20)
  FreeSpace fs = st.Loaded();

  SECTION("from the middle: splits") {
    DAXREF_REQUIRE_OK(fs.Claim(13, 2));
    REQUIRE(Extents(fs) == Map{{10, 3}, {15, 5}});
    REQUIRE(fs.free_blocks() == 8);
  }
  SECTION("at the start") {
    DAXREF_REQUIRE_OK(fs.Claim(10, 3));
    REQUIRE(Extents(fs) == Map{{13, 7}});
  }
  SECTION("at the end") {
    DAXREF_REQUIRE_OK(fs.Claim(17, 3));
    REQUIRE(Extents(fs) == Map{{10, 7}});
  }
  SECTION("the whole extent") {
    DAXREF_REQUIRE_OK(fs.Claim(10, 10));
    REQUIRE(fs.extent_count() == 0);
    REQUIRE(fs.free_blocks() == 0);
  }
  SECTION("a range that is not free, or only partly free, is refused untouched") {
    DAXREF_REQUIRE_ERR(fs.Claim(5, 2), EINVAL);
    DAXREF_REQUIRE_ERR(fs.Claim(8, 4), EINVAL);
    DAXREF_REQUIRE_ERR(fs.Claim(18, 4), EINVAL);
    DAXREF_REQUIRE_ERR(fs.Claim(20, 1), EINVAL);
    DAXREF_REQUIRE_OK(fs.Claim(12, 1));
    DAXREF_REQUIRE_ERR(fs.Claim(12, 1), EINVAL);  // twice
    REQUIRE(Extents(fs) == Map{{10, 2}, {13, 7}});
    REQUIRE(fs.free_blocks() == 9);
  }
}

TEST_CASE("FreeSpace edits emit exactly the F records they changed", "[free_space]") {
  FreeStore st(Map{{10, 10}, {30, 10}, {100, 50}});  // [10, 20), [30, 40), [100, 150)
  FreeSpace fs = st.Loaded();

  SECTION("allocation from the middle: the shortened extent and the new remainder") {
    rocksdb::WriteBatch b = Edit(fs, [&] { REQUIRE(fs.Allocate(110, 5)); });
    REQUIRE(b.Count() == 2);  // F(100) shortened, F(115) created
    st.Apply(&b);
    REQUIRE(FreeRecords(st.db()) == Map{{10, 10}, {30, 10}, {100, 10}, {115, 35}});
    REQUIRE(Extents(st.Loaded()) == Extents(fs));
    REQUIRE(st.Loaded().free_blocks() == fs.free_blocks());
  }
  SECTION("a whole extent taken: one delete") {
    rocksdb::WriteBatch b = Edit(fs, [&] { REQUIRE(fs.Allocate(30, 10)); });
    REQUIRE(b.Count() == 1);
    st.Apply(&b);
    REQUIRE(FreeRecords(st.db()) == Map{{10, 10}, {100, 50}});
  }
  SECTION("a release that joins two extents: one grown, one deleted") {
    rocksdb::WriteBatch b = Edit(fs, [&] { fs.Release(20, 10); });
    REQUIRE(b.Count() == 2);
    st.Apply(&b);
    REQUIRE(FreeRecords(st.db()) == Map{{10, 30}, {100, 50}});
    REQUIRE(st.Loaded().free_blocks() == 80);
  }
  SECTION("allocate and give back in one edit: nothing to write") {
    rocksdb::WriteBatch b = Edit(fs, [&] {
      auto e = fs.Allocate(105, 7);
      REQUIRE(e);
      fs.Release(e->pblock, e->len);
    });
    st.Apply(&b);
    REQUIRE(b.Count() == 0);
    REQUIRE(FreeRecords(st.db()) == Map{{10, 10}, {30, 10}, {100, 50}});
    REQUIRE(fs.free_blocks() == 70);
  }
  SECTION("a claim") {
    rocksdb::WriteBatch b = Edit(fs, [&] { DAXREF_REQUIRE_OK(fs.Claim(12, 3)); });
    st.Apply(&b);
    REQUIRE(FreeRecords(st.db()) == Map{{10, 2}, {15, 5}, {30, 10}, {100, 50}});
  }
  SECTION("changes made outside an edit are not remembered") {
    auto e = fs.Allocate(30, 2);
    REQUIRE(e);
    fs.BeginEdit();
    rocksdb::WriteBatch b;
    fs.EmitEdit(&b);
    REQUIRE(b.Count() == 0);
    fs.Finish();
  }
  SECTION("after Finish the next edit starts empty") {
    fs.BeginEdit();
    REQUIRE(fs.Allocate(30, 2));
    fs.Finish();
    fs.BeginEdit();
    rocksdb::WriteBatch b;
    fs.EmitEdit(&b);
    REQUIRE(b.Count() == 0);
    fs.Finish();
  }
}

TEST_CASE("FreeSpace::Rollback undoes an edit", "[free_space]") {
  FreeStore st(Map{{10, 10}, {30, 10}, {100, 50}});  // [10, 20), [30, 40), [100, 150)
  FreeSpace fs = st.Loaded();
  const Map before = Extents(fs);

  fs.BeginEdit();
  REQUIRE(fs.Allocate(12, 3));
  REQUIRE(fs.Allocate(30, 10));
  fs.Release(20, 5);
  DAXREF_REQUIRE_OK(fs.Claim(140, 10));
  REQUIRE(fs.free_blocks() != 70);
  fs.Rollback();

  REQUIRE(Extents(fs) == before);
  REQUIRE(fs.free_blocks() == 70);
  // Rollback ends the edit: nothing is left to emit, and the store still
  // agrees with memory.
  rocksdb::WriteBatch b;
  fs.EmitEdit(&b);
  REQUIRE(b.Count() == 0);
  REQUIRE(Extents(st.Loaded()) == before);

  SECTION("an edit after a rollback is recorded normally") {
    rocksdb::WriteBatch b2 = Edit(fs, [&] { REQUIRE(fs.Allocate(30, 1)); });
    st.Apply(&b2);
    REQUIRE(FreeRecords(st.db()) == Map{{10, 10}, {31, 9}, {100, 50}});
  }
}

// A bitmap model: random allocations, releases and claims, each its own
// edit, some rolled back. Blocks released inside an edit are busy: never
// handed out again in that edit, free once it is emitted. After every step
// memory agrees with the model and, when committed, the store agrees with
// memory.
TEST_CASE("FreeSpace against a bitmap model", "[free_space]") {
  constexpr uint64_t kBlocks = 512;
  FreeStore st;
  std::vector<bool> free(kBlocks, false), busy(kBlocks, false);
  // Start from a fragmented pool: every third run of 7 blocks is used.
  for (uint64_t b = 1; b < kBlocks - 1; ++b) free[b] = (b / 7) % 3 != 0;
  {
    rocksdb::WriteBatch b;
    for (uint64_t s = 0; s < kBlocks;) {
      if (!free[s]) {
        ++s;
        continue;
      }
      uint64_t e = s;
      while (e < kBlocks && free[e]) ++e;
      b.Put(keys::Free(s), EncodeLength(e - s));
      s = e;
    }
    st.Apply(&b);
  }
  FreeSpace fs = st.Loaded();
  std::vector<Extent> owned;  // what has been allocated or claimed
  std::mt19937_64 rng(20240601);
  INFO("seed 20240601");

  auto model_free = [&] {
    uint64_t n = 0;
    for (bool f : free) n += f;
    return n;
  };
  // Memory agrees with the model: the free count, and block by block.
  auto check_memory = [&] {
    REQUIRE(fs.free_blocks() == model_free());
    std::vector<bool> in_extents(kBlocks, false);
    uint64_t prev_end = 0, bad_shape = 0;
    bool first = true;
    fs.ForEach([&](uint64_t s, uint64_t len) {
      // Never empty, overlapping or adjacent; never past the pool.
      if (len == 0 || (!first && s <= prev_end) || s + len > kBlocks) bad_shape++;
      first = false;
      for (uint64_t b = s; b < s + len && b < kBlocks; ++b) in_extents[b] = true;
      prev_end = s + len;
      return true;
    });
    REQUIRE(bad_shape == 0);
    REQUIRE(in_extents == free);
    uint64_t is_free_wrong = 0;
    for (uint64_t b = 0; b < kBlocks; ++b) is_free_wrong += fs.IsFree(b, 1) != free[b];
    REQUIRE(is_free_wrong == 0);
  };

  for (int step = 0; step < 400; ++step) {
    CAPTURE(step);
    fs.BeginEdit();
    std::vector<bool> saved = free;
    std::vector<Extent> saved_owned = owned;
    int ops = 1 + rng() % 3;
    for (int i = 0; i < ops; ++i) {
      int kind = rng() % 3;
      if (kind == 0 || owned.empty()) {
        uint64_t goal = rng() % kBlocks, want = 1 + rng() % 20;
        auto e = fs.Allocate(goal, want);
        if (model_free() == 0) {
          REQUIRE_FALSE(e);
          continue;
        }
        REQUIRE(e);
        REQUIRE(e->len >= 1);
        REQUIRE(e->len <= want);
        // The goal is honoured whenever the goal block is free.
        if (free[goal]) REQUIRE(e->pblock == goal);
        for (uint64_t b = e->pblock; b < e->pend(); ++b) {
          REQUIRE(free[b]);
          free[b] = false;
        }
        owned.push_back(*e);
      } else if (kind == 1) {
        size_t k = rng() % owned.size();
        Extent e = owned[k];
        owned.erase(owned.begin() + k);
        fs.Release(e.pblock, e.len);
        for (uint64_t b = e.pblock; b < e.pend(); ++b) busy[b] = true;
      } else {
        uint64_t p = rng() % kBlocks, len = 1 + rng() % 4;
        bool all_free = p + len <= kBlocks;
        for (uint64_t b = p; all_free && b < p + len; ++b) all_free = free[b];
        Status s = fs.Claim(p, len);
        REQUIRE(s.ok() == all_free);
        if (s.ok()) {
          for (uint64_t b = p; b < p + len; ++b) free[b] = false;
          owned.push_back(Extent{0, p, len});
        }
      }
    }
    check_memory();
    if (rng() % 4 == 0) {
      fs.Rollback();
      free = saved;
      owned = saved_owned;
      busy.assign(kBlocks, false);
      check_memory();
    } else {
      rocksdb::WriteBatch b;
      fs.EmitEdit(&b);
      fs.Finish();
      st.Apply(&b);
      for (uint64_t blk = 0; blk < kBlocks; ++blk) {
        if (busy[blk]) free[blk] = true;
      }
      busy.assign(kBlocks, false);
      check_memory();
    }
    if (step % 50 == 0 || step == 399) {
      FreeSpace reloaded = st.Loaded();
      REQUIRE(Extents(reloaded) == Extents(fs));
      REQUIRE(reloaded.free_blocks() == fs.free_blocks());
    }
  }
}

}  // namespace
}  // namespace daxref
