// The pieces the checker's scale rests on, against brute force: the pool
// sweep (a k-way merge of the reverse-map classes with the free, bad and
// refcount records) must report, for every block, exactly the records that
// cover it; set digests must not depend on order and must tell sets apart.
#include <rocksdb/db.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "meta/format.h"
#include "meta/pool_sweep.h"
#include "meta/set_digest.h"
#include "meta_helpers.h"

namespace daxref {
namespace {

using testing::TempDir;

struct Rec {
  SpaceKind kind;
  uint64_t pblock, len, ino, fblock, refs;
  auto Tie() const { return std::tie(kind, pblock, len, ino, fblock, refs); }
  bool operator<(const Rec& o) const { return Tie() < o.Tie(); }
  bool operator==(const Rec& o) const { return Tie() == o.Tie(); }
};

TEST_CASE("The pool sweep reports, for every block, exactly the records covering it",
          "[checker][sweep]") {
  TempDir dir;
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::Open(o, dir.path() + "/db", &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);

  std::mt19937_64 rng(GENERATE(1, 2, 3, 4, 5));
  constexpr uint64_t kBlocks = 300;
  std::vector<Rec> recs;
  std::set<std::string> keys_used;
  for (int i = 0; i < 150; ++i) {
    Rec r{};
    r.kind = static_cast<SpaceKind>(rng() % 4);
    // Lengths of many classes, records that overlap in every way, some past
    // the end of the "pool".
    const unsigned cls = rng() % 6;
    r.len = (uint64_t{1} << cls) + rng() % (uint64_t{1} << cls);
    r.pblock = rng() % kBlocks;
    std::string k, v;
    switch (r.kind) {
      case SpaceKind::kOwner:
        r.ino = 1 + rng() % 20;
        r.fblock = rng() % 1000;
        k = keys::Rmap(r.pblock, r.len, r.ino, r.fblock);
        v = EncodeLength(r.len);
        break;
      case SpaceKind::kFree:
        k = keys::Free(r.pblock);
        v = EncodeLength(r.len);
        break;
      case SpaceKind::kBad:
        k = keys::Bad(r.pblock);
        v = EncodeLength(r.len);
        break;
      case SpaceKind::kRefcount:
        r.refs = 2 + rng() % 3;
        k = keys::Refcount(r.pblock);
        v = EncodeRefcount(RefcountRecord{r.pblock, r.len, r.refs});
        break;
    }
    if (!keys_used.insert(k).second) continue;  // one record per key
    REQUIRE(db->Put(rocksdb::WriteOptions(), k, v).ok());
    recs.push_back(r);
  }
  // Records that must be left out and reported: undecodable ones.
  REQUIRE(db->Put(rocksdb::WriteOptions(), keys::Free(7) + "x", EncodeLength(1)).ok());
  REQUIRE(db->Put(rocksdb::WriteOptions(), keys::RmapClassPrefix(70) + "junk", "v").ok());

  PoolSweep sweep(db.get(), rocksdb::ReadOptions());
  std::map<uint64_t, std::multiset<Rec>> seen;  // block -> records covering it
  uint64_t pos = 0, started = 0;
  uint64_t bad_records = 0;
  Status s = sweep.Run(
      kBlocks,
      [&](const SpaceRecord& r) {
        // Records start in block order.
        REQUIRE(r.pblock >= pos);
        ++started;
        return true;
      },
      [&](uint64_t a, uint64_t b, const Coverage& c) {
        REQUIRE(a == pos);  // runs tile the block space from 0
        REQUIRE(b > a);
        pos = b;
        Coverage count;
        std::multiset<Rec> open;
        for (const SpaceRecord& r : sweep.open()) {
          REQUIRE(r.pblock <= a);
          REQUIRE(r.end() >= b);
          open.insert(Rec{r.kind, r.pblock, r.len, r.ino, r.fblock, r.refs});
          if (r.kind == SpaceKind::kOwner) count.owners++;
          if (r.kind == SpaceKind::kFree) count.free++;
          if (r.kind == SpaceKind::kBad) count.bad++;
          if (r.kind == SpaceKind::kRefcount) count.counted++, count.refs += r.refs;
        }
        REQUIRE(count.owners == c.owners);
        REQUIRE(count.free == c.free);
        REQUIRE(count.bad == c.bad);
        REQUIRE(count.counted == c.counted);
        REQUIRE(count.refs == c.refs);
        for (uint64_t blk = a; blk < b && blk < a + 4; ++blk) seen[blk] = open;
        seen[b - 1] = open;
        return true;
      },
      [&](std::string_view, std::string_view, const Status&) { ++bad_records; });
  REQUIRE(s.ok());
  CHECK(bad_records == 2);
  CHECK(started == recs.size());
  uint64_t end = kBlocks;
  for (const Rec& r : recs) end = std::max(end, r.pblock + r.len);
  CHECK(pos == end);
  // Brute force: the records covering each block the runs were sampled at.
  for (const auto& [blk, open] : seen) {
    std::multiset<Rec> want;
    for (const Rec& r : recs)
      if (r.pblock <= blk && blk < r.pblock + r.len) want.insert(r);
    INFO("block " << blk);
    REQUIRE(open == want);
  }
}

TEST_CASE("Set digests do not depend on order and tell sets apart", "[checker][digest]") {
  std::vector<std::string> members;
  for (uint64_t i = 0; i < 1000; ++i) members.push_back(SetDigest::Member({i, i * 7, i % 13}, "n"));
  SetDigest a, b;
  for (const auto& m : members) a.Add(m);
  std::mt19937_64 rng(7);
  std::shuffle(members.begin(), members.end(), rng);
  for (const auto& m : members) b.Add(m);
  CHECK(a == b);
  SECTION("one member changed") {
    SetDigest c;
    members[500] = SetDigest::Member({500, 3500, 6}, "m");
    for (const auto& m : members) c.Add(m);
    CHECK(a != c);
  }
  SECTION("one member missing") {
    SetDigest c;
    for (size_t i = 1; i < members.size(); ++i) c.Add(members[i]);
    CHECK(a != c);
  }
  SECTION("two members swapping a field") {
    SetDigest c, d;
    c.Add(SetDigest::Member({1, 2}));
    c.Add(SetDigest::Member({3, 4}));
    d.Add(SetDigest::Member({1, 4}));
    d.Add(SetDigest::Member({3, 2}));
    CHECK(c != d);
  }
}

}  // namespace
}  // namespace daxref
