// Bad blocks (memory poison) in meta/: MarkBad and ClearBad, the B records
// and the rules every other operation follows around a bad block
// (meta/volume_poison.cc, docs/design.md "Poison"):
//
//   - a free block marked bad is retired: in its B record only, never
//     handed out again, across a reopen too;
//   - a block a file references stays the file's, but no operation copies,
//     shares or zeroes part of it (EIO); a write covering it whole maps a
//     fresh block, and dropping it (punch, truncate, unlink, clone over it)
//     retires it once the last reference goes;
//   - the superblock copies (blocks 0 and N-1) may be recorded bad;
//   - a format 2 store is upgraded to format 3 when opened.
//
// Every poisoned block is also made to fault in the memory pool
// (MemData::FailBlock): Volume must never touch a block it knows is bad, so
// a scenario that reads, copies or zeroes one fails here even where meta/
// forgot to refuse it. The refusals are then run again with the memory
// reading fine, so that they must come from meta/'s own checks. Every
// scenario ends with the checker, which also accounts for every data block
// as free, owned or retired.
//
// Each test case opens one store and runs its scenarios one after another
// (each with files of its own): a fresh RocksDB costs more than everything
// a scenario does, and the file has to stay fast.

#include <rocksdb/db.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "meta/codec.h"
#include "meta/format.h"
#include "meta/repair.h"
#include "meta/volume.h"
#include "meta_helpers.h"

namespace daxref {
namespace {

using testing::BadRecords;
using testing::BlockMap;
using testing::Clone;
using testing::Dump;
using testing::DumpStore;
using testing::ExtentRecords;
using testing::FreeRecords;
using testing::kNothingHoldsIt;
using testing::kRoot;
using testing::kStillOpen;
using testing::kWholeFile;
using testing::Pattern;
using testing::RequireSameStore;
using testing::RunChecker;
using testing::ScanPrefix;
using testing::TestStore;

constexpr uint64_t kB = kBlockSize;

// ---------------------------------------------------------------------------
// Looking at the store.

using Ranges = std::map<uint64_t, uint64_t>;  // start -> length

Ranges WalkBadAll(Volume& v) {
  Ranges out;
  v.WalkBad([&](uint64_t s, uint64_t n) {
    out[s] = n;
    return true;
  });
  return out;
}

std::string RangesText(const Ranges& r) {
  std::string s;
  for (const auto& [start, len] : r)
    s += "[" + std::to_string(start) + ", " + std::to_string(start + len) + ") ";
  return s.empty() ? "none" : s;
}

// The B records, WalkBad, bad_blocks and IsBad all say exactly `want`.
void RequireBad(TestStore& st, const Ranges& want) {
  Volume& v = st.vol();
  INFO("want bad " << RangesText(want) << "; B records " << RangesText(BadRecords(st.db())));
  REQUIRE(BadRecords(st.db()) == want);
  REQUIRE(WalkBadAll(v) == want);
  uint64_t total = 0;
  for (const auto& [s, n] : want) total += n;
  REQUIRE(v.bad_blocks() == total);
  uint64_t n = st.sb().block_count;
  for (uint64_t pb = 0; pb < n; ++pb) {
    bool in = false;
    for (const auto& [s, len] : want) in |= pb >= s && pb < s + len;
    CAPTURE(pb);
    REQUIRE(v.IsBad(pb, pb + 1) == in);
  }
  if (!want.empty()) {
    REQUIRE(v.IsBad(0, n));
    auto last = std::prev(want.end());
    REQUIRE_FALSE(v.IsBad(last->first + last->second, n));
  } else {
    REQUIRE_FALSE(v.IsBad(0, n));
  }
}

// Single blocks as the coalesced ranges B records hold.
Ranges RangesOf(const std::set<uint64_t>& blocks) {
  Ranges out;
  for (uint64_t pb : blocks) {
    if (!out.empty()) {
      auto last = std::prev(out.end());
      if (last->first + last->second == pb) {
        last->second++;
        continue;
      }
    }
    out[pb] = 1;
  }
  return out;
}

bool InFreeRecords(rocksdb::DB* db, uint64_t pb) {
  for (const auto& [s, n] : FreeRecords(db))
    if (pb >= s && pb < s + n) return true;
  return false;
}

// The inodes that own pool block pb, as QueryOwners meets them (once each).
std::multiset<uint64_t> Owners(Volume& v, uint64_t pb) {
  std::multiset<uint64_t> out;
  DAXREF_REQUIRE_OK(v.QueryOwners(pb, pb + 1, [&](const RmapRecord& r) {
    out.insert(r.ino);
    return true;
  }));
  return out;
}

// The refcount WalkSharing reports for file block fb of ino.
uint64_t RefsAt(Volume& v, uint64_t ino, uint64_t fb) {
  uint64_t refs = 0;
  DAXREF_REQUIRE_OK(v.WalkSharing(ino, fb, fb + 1, [&](const SharedExtent& e) {
    refs = e.refs;
    return true;
  }));
  return refs;
}

// A retired block: bad, owned by no file, in no F record.
void RequireRetired(TestStore& st, uint64_t pb) {
  CAPTURE(pb);
  REQUIRE(st.vol().IsBad(pb, pb + 1));
  REQUIRE(Owners(st.vol(), pb).empty());
  REQUIRE_FALSE(InFreeRecords(st.db(), pb));
}

// The checker finds nothing, and every data block is accounted for exactly
// once: free + owned + retired (bad data blocks nobody owns) = data blocks.
// `reserved_bad` is how many of blocks 0 and N-1 are recorded bad.
void RequireClean(TestStore& st, uint64_t reserved_bad = 0) {
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
  testing::CheckOutcome c = RunChecker(st.db(), st.sb().block_count);
  const CheckReport& r = c.report;
  CAPTURE(r.free_blocks, r.owned_blocks, r.bad_blocks, r.poisoned_blocks, reserved_bad);
  REQUIRE(r.bad_blocks == st.vol().bad_blocks());
  REQUIRE(r.free_blocks == st.free_blocks());
  uint64_t retired = r.bad_blocks - r.poisoned_blocks - reserved_bad;
  REQUIRE(r.free_blocks + r.owned_blocks + retired == st.sb().data_blocks());
}

// The origin the tests record poison with, unless they say.
const BadOrigin kTestOrigin{BadOriginKind::kInjected, 0, 1000};

PoisonOutcome MarkBad(Volume& v, uint64_t pb0, uint64_t pb1, bool strict = true,
                      const BadOrigin& origin = kTestOrigin) {
  PoisonOutcome o;
  DAXREF_REQUIRE_OK(v.MarkBad(pb0, pb1, strict, origin, &o));
  return o;
}

ClearOutcome ClearBad(Volume& v, uint64_t pb0, uint64_t pb1) {
  ClearOutcome o;
  DAXREF_REQUIRE_OK(v.ClearBad(pb0, pb1, &o));
  return o;
}

void RequireOutcome(const PoisonOutcome& o, uint64_t added, uint64_t retired, uint64_t owned,
                    uint64_t reserved) {
  CAPTURE(o.added, o.retired, o.owned, o.reserved);
  REQUIRE(o.added == added);
  REQUIRE(o.retired == retired);
  REQUIRE(o.owned == owned);
  REQUIRE(o.reserved == reserved);
}

// Records [pb0, pb1) bad and makes the memory behind it fault, as poisoned
// memory does.
PoisonOutcome Poison(TestStore& st, uint64_t pb0, uint64_t pb1) {
  PoisonOutcome o = MarkBad(st.vol(), pb0, pb1);
  for (uint64_t pb = pb0; pb < pb1; ++pb) st.data().FailBlock(pb);
  return o;
}

// Runs `body` twice: with the memory behind the bad blocks faulting (Volume
// must not touch it), then with it reading fine, so that a refusal has to
// come from meta/'s own bad-block checks, not from the fault. `faulting` is
// every block to make fault again afterwards.
template <typename Fn>
void WithAndWithoutFaults(TestStore& st, const std::set<uint64_t>& faulting, Fn&& body) {
  {
    INFO("the bad blocks' memory faults");
    body();
  }
  st.data().HealBlocks();
  {
    INFO("the bad blocks' memory reads fine");
    body();
  }
  for (uint64_t pb : faulting) st.data().FailBlock(pb);
}

void ModelWrite(std::string* m, uint64_t off, std::string_view bytes) {
  if (m->size() < off + bytes.size()) m->resize(off + bytes.size(), '\0');
  std::copy(bytes.begin(), bytes.end(), m->begin() + static_cast<ptrdiff_t>(off));
}

Status WriteStatus(Volume& v, uint64_t ino, uint64_t off, const std::string& bytes) {
  InodeRecord r;
  return v.Write(ino, off, bytes.data(), bytes.size(), kRoot, &r);
}

Status TruncateStatus(Volume& v, uint64_t ino, uint64_t size) {
  SetAttrRequest req;
  req.size = size;
  InodeRecord r;
  return v.SetAttr(ino, req, kRoot, &r);
}

// Requires `s` to be `err` and the store untouched since `before`.
void RequireRefused(TestStore& st, const Status& s, int err, const Dump& before) {
  INFO("err " << s.err() << ": " << s.message());
  REQUIRE(s.err() == err);
  RequireSameStore(before, DumpStore(st.db()));
}

// ---------------------------------------------------------------------------
// 1. Free blocks marked bad are retired for good.

TEST_CASE("MarkBad retires free blocks, which are never allocated again", "[poison]") {
  TestStore st(64);  // 62 data blocks
  Volume& v = st.vol();
  uint64_t free0 = st.free_blocks();
  REQUIRE(free0 == 62);
  RequireBad(st, {});

  // Blocks near the start, where a first allocation would look.
  RequireOutcome(Poison(st, 2, 5), 3, 3, 0, 0);
  RequireOutcome(Poison(st, 40, 41), 1, 1, 0, 0);
  REQUIRE(st.free_blocks() == free0 - 4);
  RequireBad(st, {{2, 3}, {40, 1}});
  for (uint64_t pb : {2, 3, 4, 40}) RequireRetired(st, pb);
  RequireClean(st);

  // Fill the pool: a few big writes, then single blocks until ENOSPC.
  std::vector<uint64_t> files;
  std::map<uint64_t, std::string> bytes;
  for (uint64_t chunk : {7, 1}) {
    for (;;) {
      std::string name = "f" + std::to_string(files.size());
      uint64_t ino = st.MakeFile(kRootIno, name);
      std::string data = Pattern(chunk * kB, static_cast<uint32_t>(files.size()));
      Status s = WriteStatus(v, ino, 0, data);
      if (s.err() == ENOSPC) {  // the name is used again, by the next file
        InodeRecord victim;
        DAXREF_REQUIRE_OK(v.Unlink(kRootIno, name, kNothingHoldsIt, &victim));
        break;
      }
      DAXREF_REQUIRE_OK(s);
      files.push_back(ino);
      bytes[ino] = data;
    }
  }
  REQUIRE(st.free_blocks() == 0);
  auto require_no_file_maps_bad = [&] {
    uint64_t mapped = 0;
    for (uint64_t ino : files) {
      for (const Extent& e : ExtentRecords(st.db(), ino)) {
        CAPTURE(ino, e.fblock, e.pblock, e.len);
        REQUIRE_FALSE(st.vol().IsBad(e.pblock, e.pend()));
        for (uint64_t pb = e.pblock; pb < e.pend(); ++pb)
          REQUIRE_FALSE(((pb >= 2 && pb < 5) || pb == 40));
        mapped += e.len;
      }
      DAXREF_REQUIRE_BYTES(st.ReadFile(ino, 0, bytes[ino].size()), bytes[ino]);
    }
    // Every good data block is some file's.
    REQUIRE(mapped == 62 - 4);
  };
  require_no_file_maps_bad();
  RequireClean(st);

  // The B records, and the retirement, survive a reopen.
  st.Reopen();
  Volume& v2 = st.vol();
  RequireBad(st, {{2, 3}, {40, 1}});
  REQUIRE(st.free_blocks() == 0);
  RequireClean(st);

  // Half the files go; refilling still never hands out a bad block.
  for (size_t i = 0; i < files.size(); i += 2) {
    InodeRecord victim;
    DAXREF_REQUIRE_OK(v2.Unlink(kRootIno, "f" + std::to_string(i), kNothingHoldsIt, &victim));
  }
  {
    std::vector<uint64_t> kept;
    for (size_t i = 1; i < files.size(); i += 2) kept.push_back(files[i]);
    files = kept;
  }
  RequireBad(st, {{2, 3}, {40, 1}});
  for (uint64_t pb : {2, 3, 4, 40}) RequireRetired(st, pb);
  RequireClean(st);
  // New names past every name used so far.
  size_t used = 100;
  for (;;) {
    uint64_t ino = st.MakeFile(kRootIno, "g" + std::to_string(used));
    std::string data = Pattern(kB, static_cast<uint32_t>(used));
    Status s = WriteStatus(v2, ino, 0, data);
    if (s.err() == ENOSPC) break;
    DAXREF_REQUIRE_OK(s);
    files.push_back(ino);
    bytes[ino] = data;
    ++used;
  }
  REQUIRE(st.free_blocks() == 0);
  require_no_file_maps_bad();
  RequireClean(st);
}

// ---------------------------------------------------------------------------
// 2. Strict and non-strict, merging, and the ranges refused.

TEST_CASE("MarkBad: strict refuses known bad blocks, ranges merge, bad ranges are refused",
          "[poison]") {
  TestStore st(64);
  Volume& v = st.vol();
  uint64_t free0 = st.free_blocks();
  RequireOutcome(MarkBad(v, 10, 13), 3, 3, 0, 0);
  RequireBad(st, {{10, 3}});
  REQUIRE(st.free_blocks() == free0 - 3);
  RequireClean(st);

  {
    INFO("strict over a range with a bad block: EEXIST, nothing changes");
    Dump before = DumpStore(st.db());
    PoisonOutcome o;
    RequireRefused(st, v.MarkBad(12, 15, true, kTestOrigin, &o), EEXIST, before);
    RequireOutcome(o, 0, 0, 0, 0);
    RequireRefused(st, v.MarkBad(10, 11, true, kTestOrigin, &o), EEXIST, before);
    RequireRefused(st, v.MarkBad(8, 11, true, kTestOrigin, &o), EEXIST, before);
    RequireRefused(st, v.MarkBad(0, 64, true, kTestOrigin, &o), EEXIST, before);
    RequireBad(st, {{10, 3}});
    REQUIRE(st.free_blocks() == free0 - 3);
  }
  {
    INFO("empty ranges and ranges past the pool: EINVAL, nothing changes");
    Dump before = DumpStore(st.db());
    PoisonOutcome o;
    RequireRefused(st, v.MarkBad(20, 20, false, kTestOrigin, &o), EINVAL, before);
    RequireRefused(st, v.MarkBad(21, 20, false, kTestOrigin, &o), EINVAL, before);
    RequireRefused(st, v.MarkBad(60, 65, false, kTestOrigin, &o), EINVAL, before);
    RequireRefused(st, v.MarkBad(64, 65, true, kTestOrigin, &o), EINVAL, before);
    RequireRefused(st, v.MarkBad(0, UINT64_MAX, false, kTestOrigin, &o), EINVAL, before);
    ClearOutcome c;
    RequireRefused(st, v.ClearBad(11, 11, &c), EINVAL, before);
    RequireRefused(st, v.ClearBad(10, 65, &c), EINVAL, before);
    RequireBad(st, {{10, 3}});
  }
  RequireClean(st);
  {
    INFO("non-strict adds only the new blocks, into one record");
    RequireOutcome(MarkBad(v, 8, 15, false), 4, 4, 0, 0);
    RequireBad(st, {{8, 7}});
    REQUIRE(st.free_blocks() == free0 - 7);
    // All of it bad already: nothing to add, nothing written.
    Dump before = DumpStore(st.db());
    RequireOutcome(MarkBad(v, 9, 14, false), 0, 0, 0, 0);
    RequireSameStore(before, DumpStore(st.db()));
  }
  RequireClean(st);
  {
    INFO("adjacent ranges merge into one B record");
    RequireOutcome(MarkBad(v, 15, 17), 2, 2, 0, 0);  // right after
    RequireBad(st, {{8, 9}});
    RequireOutcome(MarkBad(v, 6, 8), 2, 2, 0, 0);  // right before
    RequireBad(st, {{6, 11}});
    RequireOutcome(MarkBad(v, 30, 32), 2, 2, 0, 0);  // apart
    RequireOutcome(MarkBad(v, 20, 22), 2, 2, 0, 0);  // apart
    RequireBad(st, {{6, 11}, {20, 2}, {30, 2}});
    // Filling both gaps at once merges all three.
    RequireOutcome(MarkBad(v, 17, 31, false), 11, 11, 0, 0);
    RequireBad(st, {{6, 26}});
    REQUIRE(st.free_blocks() == free0 - 26);
    RequireClean(st);
    st.Reopen();
    RequireBad(st, {{6, 26}});
    REQUIRE(st.free_blocks() == free0 - 26);
  }
  RequireClean(st);
}

// ---------------------------------------------------------------------------
// 3. A bad block one file owns. Each scenario has a file of its own.

// A file of four blocks whose second block is poisoned.
struct Victim {
  std::string name;
  uint64_t ino = 0;
  std::string model;
  std::map<uint64_t, uint64_t> map0;  // its blocks when poisoned
  uint64_t bad = 0;                   // the pool block behind file block 1
};

Victim MakeVictim(TestStore& st, const std::string& name, uint32_t seed) {
  Victim vic;
  vic.name = name;
  vic.ino = st.MakeFile(kRootIno, name);
  vic.model = Pattern(4 * kB, seed);
  st.WriteFile(vic.ino, 0, vic.model);
  vic.map0 = BlockMap(st.vol(), vic.ino);
  REQUIRE(vic.map0.size() == 4);
  vic.bad = vic.map0[1];
  uint64_t free = st.free_blocks();
  RequireOutcome(Poison(st, vic.bad, vic.bad + 1), 1, 0, 1, 0);
  REQUIRE(Owners(st.vol(), vic.bad) == std::multiset<uint64_t>{vic.ino});
  REQUIRE(BlockMap(st.vol(), vic.ino) == vic.map0);  // the file keeps its extent
  REQUIRE(st.Inode(vic.ino).size == 4 * kB);
  REQUIRE(st.Inode(vic.ino).blocks == 4);
  REQUIRE(st.free_blocks() == free);
  return vic;
}

TEST_CASE("A poisoned block of one file: whole writes replace it, partial ones fail", "[poison]") {
  TestStore st(256);
  std::set<uint64_t> retired;  // bad blocks so far that no file owns
  auto require_bad = [&](const Victim* vic) {
    std::set<uint64_t> all = retired;
    if (vic) all.insert(vic->bad);
    RequireBad(st, RangesOf(all));
  };

  {
    INFO("the poisoned block is counted by the checker");
    Victim vic = MakeVictim(st, "poisoned", 1);
    testing::CheckOutcome c = RunChecker(st.db(), st.sb().block_count);
    REQUIRE(c.report.poisoned_blocks == 1);
    RequireClean(st);
    // Put away for good (for the scenarios below to start from no bad
    // block owned).
    st.Truncate(vic.ino, kB);
    RequireRetired(st, vic.bad);
    retired.insert(vic.bad);
    RequireClean(st);
  }
  {
    INFO("a write covering the whole block maps a fresh one");
    Victim vic = MakeVictim(st, "whole", 2);
    uint64_t free = st.free_blocks();
    std::string fresh = Pattern(kB, 100);
    st.WriteFile(vic.ino, kB, fresh);
    ModelWrite(&vic.model, kB, fresh);
    std::map<uint64_t, uint64_t> now = BlockMap(st.vol(), vic.ino);
    REQUIRE(now.size() == 4);
    REQUIRE(now[1] != vic.bad);
    REQUIRE_FALSE(st.vol().IsBad(now[1], now[1] + 1));
    for (uint64_t fb : {0, 2, 3}) REQUIRE(now[fb] == vic.map0[fb]);
    RequireRetired(st, vic.bad);
    require_bad(&vic);
    REQUIRE(st.free_blocks() == free - 1);
    DAXREF_REQUIRE_BYTES(st.ReadFile(vic.ino, 0, vic.model.size()), vic.model);
    REQUIRE(st.Inode(vic.ino).blocks == 4);
    // The new block is an ordinary one: a partial write into it works.
    std::string bit = Pattern(10, 101);
    st.WriteFile(vic.ino, kB + 100, bit);
    ModelWrite(&vic.model, kB + 100, bit);
    DAXREF_REQUIRE_BYTES(st.ReadFile(vic.ino, 0, vic.model.size()), vic.model);
    st.Reopen();
    RequireRetired(st, vic.bad);
    retired.insert(vic.bad);
    RequireClean(st);
  }
  {
    INFO("a write covering it and more replaces it, and grows the file");
    Victim vic = MakeVictim(st, "more", 3);
    std::string big = Pattern(5 * kB, 102);
    st.WriteFile(vic.ino, kB, big);
    ModelWrite(&vic.model, kB, big);
    std::map<uint64_t, uint64_t> now = BlockMap(st.vol(), vic.ino);
    REQUIRE(now.size() == 6);
    for (const auto& [fb, pb] : now) REQUIRE_FALSE(st.vol().IsBad(pb, pb + 1));
    REQUIRE(st.Inode(vic.ino).size == 6 * kB);
    DAXREF_REQUIRE_BYTES(st.ReadFile(vic.ino, 0, vic.model.size()), vic.model);
    RequireRetired(st, vic.bad);
    retired.insert(vic.bad);
    RequireClean(st);
  }
  {
    INFO("partial writes into it fail and change nothing; writes elsewhere work");
    Victim vic = MakeVictim(st, "partial", 4);
    Volume& v = st.vol();
    Dump before = DumpStore(st.db());
    std::set<uint64_t> faulting = retired;
    faulting.insert(vic.bad);
    WithAndWithoutFaults(st, faulting, [&] {
      RequireRefused(st, WriteStatus(v, vic.ino, kB + 10, Pattern(100, 103)), EIO, before);
      // Covering block 0 whole and block 1 in part.
      RequireRefused(st, WriteStatus(v, vic.ino, 0, Pattern(kB + 1, 104)), EIO, before);
      // The last byte of block 1 only.
      RequireRefused(st, WriteStatus(v, vic.ino, 2 * kB - 1, Pattern(1, 105)), EIO, before);
      // Part of it, and growing the file (the slow path).
      RequireRefused(st, WriteStatus(v, vic.ino, 2 * kB - 1, Pattern(3 * kB, 106)), EIO, before);
    });
    REQUIRE(BlockMap(v, vic.ino) == vic.map0);
    REQUIRE(st.Inode(vic.ino).size == 4 * kB);
    // The fast path: in-place overwrites of good mapped blocks.
    std::string a = Pattern(100, 107), b = Pattern(2 * kB, 108);
    st.WriteFile(vic.ino, 10, a);
    st.WriteFile(vic.ino, 2 * kB, b);
    ModelWrite(&vic.model, 10, a);
    ModelWrite(&vic.model, 2 * kB, b);
    RequireSameStore(before, DumpStore(st.db()));  // in place: no batch
    // An append (the slow path) too.
    std::string c = Pattern(kB + 5, 109);
    st.WriteFile(vic.ino, 4 * kB, c);
    ModelWrite(&vic.model, 4 * kB, c);
    REQUIRE(BlockMap(v, vic.ino)[1] == vic.bad);
    REQUIRE(Owners(v, vic.bad) == std::multiset<uint64_t>{vic.ino});
    DAXREF_REQUIRE_BYTES(st.ReadFile(vic.ino, 0, kB), vic.model.substr(0, kB));
    DAXREF_REQUIRE_BYTES(st.ReadFile(vic.ino, 2 * kB, vic.model.size() - 2 * kB),
                         vic.model.substr(2 * kB));
    REQUIRE(st.Inode(vic.ino).size == vic.model.size());
    require_bad(&vic);
    RequireClean(st);
    // Poison survives a reopen.
    st.Reopen();
    require_bad(&vic);
    REQUIRE(Owners(st.vol(), vic.bad) == std::multiset<uint64_t>{vic.ino});
    before = DumpStore(st.db());
    RequireRefused(st, WriteStatus(st.vol(), vic.ino, kB + 10, Pattern(100, 110)), EIO, before);
    RequireClean(st);
    // Unlinking the file retires it (five good blocks freed).
    uint64_t free = st.free_blocks();
    InodeRecord victim;
    DAXREF_REQUIRE_OK(st.vol().Unlink(kRootIno, vic.name, kNothingHoldsIt, &victim));
    RequireRetired(st, vic.bad);
    REQUIRE(st.free_blocks() == free + 5);
    retired.insert(vic.bad);
    RequireClean(st);
  }
  {
    INFO("truncating into it fails; truncating it away retires it");
    Victim vic = MakeVictim(st, "truncate", 5);
    Volume& v = st.vol();
    uint64_t free = st.free_blocks();
    Dump before = DumpStore(st.db());
    std::set<uint64_t> faulting = retired;
    faulting.insert(vic.bad);
    WithAndWithoutFaults(st, faulting, [&] {
      // Truncate must zero [size, end of block) of the bad block.
      RequireRefused(st, TruncateStatus(v, vic.ino, kB + 100), EIO, before);
      RequireRefused(st, TruncateStatus(v, vic.ino, 2 * kB - 1), EIO, before);
      // Zeroing part of it through fallocate fails alike.
      InodeRecord r;
      RequireRefused(st, v.Fallocate(vic.ino, kFallocPunchHole | kFallocKeepSize, kB + 1, 10, &r),
                     EIO, before);
      RequireRefused(st, v.Fallocate(vic.ino, kFallocZeroRange, kB + 1, 10, &r), EIO, before);
    });
    // Truncating to a block boundary past it keeps it.
    st.Truncate(vic.ino, 2 * kB);
    REQUIRE(BlockMap(v, vic.ino).count(1) == 1);
    REQUIRE(Owners(v, vic.bad) == std::multiset<uint64_t>{vic.ino});
    REQUIRE(st.free_blocks() == free + 2);
    // Dropping it: it is retired, not freed.
    st.Truncate(vic.ino, kB);
    REQUIRE(BlockMap(v, vic.ino).size() == 1);
    RequireRetired(st, vic.bad);
    REQUIRE(st.free_blocks() == free + 2);
    DAXREF_REQUIRE_BYTES(st.ReadFile(vic.ino, 0, kB), vic.model.substr(0, kB));
    // Growing again leaves a hole there, not the bad block.
    st.Truncate(vic.ino, 3 * kB);
    REQUIRE(BlockMap(v, vic.ino).size() == 1);
    retired.insert(vic.bad);
    RequireClean(st);
  }
  {
    INFO("punching it out retires it");
    Victim vic = MakeVictim(st, "punch", 6);
    Volume& v = st.vol();
    uint64_t free = st.free_blocks();
    InodeRecord r;
    DAXREF_REQUIRE_OK(v.Fallocate(vic.ino, kFallocPunchHole | kFallocKeepSize, kB, kB, &r));
    REQUIRE(BlockMap(v, vic.ino).count(1) == 0);
    REQUIRE(st.Inode(vic.ino).size == 4 * kB);
    RequireRetired(st, vic.bad);
    REQUIRE(st.free_blocks() == free);
    // A partial write into the hole gets a good block.
    st.WriteFile(vic.ino, kB + 5, Pattern(10, 111));
    uint64_t got = BlockMap(v, vic.ino)[1];
    REQUIRE(got != vic.bad);
    REQUIRE_FALSE(v.IsBad(got, got + 1));
    retired.insert(vic.bad);
    RequireClean(st);
  }
  {
    INFO("a clone over it releases it, and it is retired");
    Victim vic = MakeVictim(st, "cloned-over", 7);
    Volume& v = st.vol();
    uint64_t g = st.MakeFile(kRootIno, "source");
    std::string gbytes = Pattern(kB, 112);
    st.WriteFile(g, 0, gbytes);
    Clone(v, g, 0, vic.ino, kB, kB);
    ModelWrite(&vic.model, kB, gbytes);
    REQUIRE(BlockMap(v, vic.ino)[1] == BlockMap(v, g)[0]);
    RequireRetired(st, vic.bad);
    DAXREF_REQUIRE_BYTES(st.ReadFile(vic.ino, 0, vic.model.size()), vic.model);
    retired.insert(vic.bad);
    RequireClean(st);
  }
  {
    INFO("an orphan reclaimed at mount gives it up, retired");
    Victim vic = MakeVictim(st, "orphan", 8);
    uint64_t free = st.free_blocks();
    InodeRecord victim;
    DAXREF_REQUIRE_OK(st.vol().Unlink(kRootIno, vic.name, kStillOpen, &victim));
    REQUIRE(victim.nlink == 0);
    REQUIRE(Owners(st.vol(), vic.bad) == std::multiset<uint64_t>{vic.ino});
    st.Reopen();  // reclaims the orphan
    RequireRetired(st, vic.bad);
    REQUIRE(st.free_blocks() == free + 3);
    retired.insert(vic.bad);
    require_bad(nullptr);
    RequireClean(st);
  }
}

// ---------------------------------------------------------------------------
// 4. A bad block three files share. Each scenario has its own three files.

struct Sharers {
  uint64_t a = 0, b = 0, c = 0;
  std::string bytes;                  // what all three hold
  std::map<uint64_t, uint64_t> amap;  // the blocks all three map
  uint64_t bad = 0;                   // behind file block 1
};

// a written, cloned whole to b and c; the block behind file block 1 poisoned.
Sharers MakeSharers(TestStore& st, const std::string& tag, uint32_t seed) {
  Volume& v = st.vol();
  Sharers s;
  s.a = st.MakeFile(kRootIno, tag + "a");
  s.b = st.MakeFile(kRootIno, tag + "b");
  s.c = st.MakeFile(kRootIno, tag + "c");
  s.bytes = Pattern(4 * kB, seed);
  st.WriteFile(s.a, 0, s.bytes);
  Clone(v, s.a, 0, s.b, 0, 0);
  Clone(v, s.a, 0, s.c, 0, 0);
  s.amap = BlockMap(v, s.a);
  REQUIRE(s.amap.size() == 4);
  REQUIRE(BlockMap(v, s.b) == s.amap);
  REQUIRE(BlockMap(v, s.c) == s.amap);
  s.bad = s.amap[1];
  uint64_t free = st.free_blocks();
  // Owned counts a block once, however many files share it.
  RequireOutcome(Poison(st, s.bad, s.bad + 1), 1, 0, 1, 0);
  REQUIRE(Owners(v, s.bad) == std::multiset<uint64_t>{s.a, s.b, s.c});
  for (uint64_t ino : {s.a, s.b, s.c}) {
    REQUIRE(BlockMap(v, ino) == s.amap);
    REQUIRE(RefsAt(v, ino, 1) == 3);
  }
  REQUIRE(st.free_blocks() == free);
  RequireClean(st);
  return s;
}

TEST_CASE("A poisoned shared block: each sharer heals alone, copies and shares fail", "[poison]") {
  TestStore st(256);
  uint64_t d = st.MakeFile(kRootIno, "d");  // a bystander
  std::set<uint64_t> faulting;              // every block poisoned so far

  {
    INFO("two shared blocks marked at once: owned counts each once");
    Sharers s = MakeSharers(st, "two", 1);
    faulting.insert(s.bad);
    REQUIRE(s.amap[2] == s.bad + 1);
    REQUIRE(s.amap[3] == s.bad + 2);
    RequireOutcome(MarkBad(st.vol(), s.amap[2], s.amap[3] + 1, false), 2, 0, 2, 0);
    RequireBad(st, {{s.bad, 3}});
    {
      testing::CheckOutcome c = RunChecker(st.db(), st.sb().block_count);
      REQUIRE(c.report.poisoned_blocks == 3);
    }
    RequireClean(st);
    // Tidy up for the scenarios below: the three blocks are retired.
    for (const char* n : {"twoa", "twob", "twoc"}) {
      InodeRecord victim;
      DAXREF_REQUIRE_OK(st.vol().Unlink(kRootIno, n, kNothingHoldsIt, &victim));
    }
    for (uint64_t pb = s.bad; pb < s.bad + 3; ++pb) RequireRetired(st, pb);
    RequireClean(st);
  }
  {
    INFO("overwriting the whole block in b heals b only");
    Sharers s = MakeSharers(st, "heal", 2);
    faulting.insert(s.bad);
    Volume& v = st.vol();
    uint64_t free = st.free_blocks();
    std::string fresh = Pattern(kB, 100);
    st.WriteFile(s.b, kB, fresh);
    std::map<uint64_t, uint64_t> bmap = BlockMap(v, s.b);
    REQUIRE(bmap[1] != s.bad);
    REQUIRE_FALSE(v.IsBad(bmap[1], bmap[1] + 1));
    REQUIRE(RefsAt(v, s.b, 1) == 1);
    for (uint64_t fb : {0, 2, 3}) {
      REQUIRE(bmap[fb] == s.amap[fb]);
      REQUIRE(RefsAt(v, s.b, fb) == 3);  // the rest of b is still shared
    }
    REQUIRE(BlockMap(v, s.a) == s.amap);
    REQUIRE(BlockMap(v, s.c) == s.amap);
    REQUIRE(RefsAt(v, s.a, 1) == 2);
    REQUIRE(RefsAt(v, s.c, 1) == 2);
    REQUIRE(Owners(v, s.bad) == std::multiset<uint64_t>{s.a, s.c});
    std::string bmodel = s.bytes;
    ModelWrite(&bmodel, kB, fresh);
    DAXREF_REQUIRE_BYTES(st.ReadFile(s.b, 0, bmodel.size()), bmodel);
    REQUIRE(st.free_blocks() == free - 1);
    RequireClean(st);
    // A partial write into the bad block is still refused in a and c.
    Dump before = DumpStore(st.db());
    WithAndWithoutFaults(st, faulting, [&] {
      RequireRefused(st, WriteStatus(v, s.c, kB + 1, Pattern(5, 101)), EIO, before);
      RequireRefused(st, WriteStatus(v, s.a, 2 * kB - 3, Pattern(5, 102)), EIO, before);
    });

    INFO("then a punch in a, and a truncate of c: retired");
    InodeRecord r;
    DAXREF_REQUIRE_OK(v.Fallocate(s.a, kFallocPunchHole | kFallocKeepSize, kB, kB, &r));
    REQUIRE(BlockMap(v, s.a).count(1) == 0);
    REQUIRE(Owners(v, s.bad) == std::multiset<uint64_t>{s.c});
    REQUIRE(RefsAt(v, s.c, 1) == 1);
    REQUIRE(v.IsBad(s.bad, s.bad + 1));
    REQUIRE(st.free_blocks() == free - 1);
    RequireClean(st);
    st.Truncate(s.c, kB);
    RequireRetired(st, s.bad);
    REQUIRE(st.free_blocks() == free - 1);  // c's last two blocks are a's and b's still
    RequireClean(st);
    st.Reopen();
    RequireRetired(st, s.bad);
    RequireClean(st);
  }
  {
    INFO("clone, copy, dedupe and unshare of it fail and change nothing");
    Sharers s = MakeSharers(st, "copy", 3);
    Volume& v = st.vol();
    faulting.insert(s.bad);
    Dump before = DumpStore(st.db());
    InodeRecord r;
    uint64_t copied = 0;
    WithAndWithoutFaults(st, faulting, [&] {
      // Clone: the bad block alone, to EOF, the whole file, within a file.
      RequireRefused(st, v.Clone(s.a, kB, d, 0, kB, kRoot, &r), EIO, before);
      RequireRefused(st, v.Clone(s.a, kB, d, 0, 0, kRoot, &r), EIO, before);
      RequireRefused(st, v.Clone(s.b, 0, d, 0, 0, kRoot, &r), EIO, before);
      RequireRefused(st, v.Clone(s.c, 0, s.c, 8 * kB, 4 * kB, kRoot, &r), EIO, before);
      // copy_file_range: sharing whole blocks, and copying bytes.
      RequireRefused(st, v.CopyRange(s.a, kB, d, 0, kB, kRoot, &copied, &r), EIO, before);
      RequireRefused(st, v.CopyRange(s.a, 0, d, 0, 4 * kB, kRoot, &copied, &r), EIO, before);
      RequireRefused(st, v.CopyRange(s.a, kB + 10, d, 5, 100, kRoot, &copied, &r), EIO, before);
      RequireRefused(st, v.CopyRange(s.b, kB - 10, d, 0, 20, kRoot, &copied, &r), EIO, before);
      REQUIRE(copied == 0);
    });
    // Dedupe: the bad block on either side.
    st.WriteFile(d, 0, s.bytes);  // d holds the same bytes, in its own blocks
    before = DumpStore(st.db());
    DedupeResult dr;
    WithAndWithoutFaults(st, faulting, [&] {
      RequireRefused(st, v.Dedupe(s.a, kB, d, kB, kB, &dr), EIO, before);
      RequireRefused(st, v.Dedupe(d, 0, s.b, 0, 4 * kB, &dr), EIO, before);
      REQUIRE_FALSE(dr.same);
      // fallocate UNSHARE over it.
      RequireRefused(st, v.Fallocate(s.a, kFallocUnshareRange, kB, kB, &r), EIO, before);
      RequireRefused(st, v.Fallocate(s.c, kFallocUnshareRange, 0, 4 * kB, &r), EIO, before);
    });
    for (uint64_t ino : {s.a, s.b, s.c}) REQUIRE(BlockMap(v, ino) == s.amap);
    RequireClean(st);
    // The good blocks around it still clone, dedupe, copy and unshare.
    Clone(v, s.a, 0, d, 0, kB);
    REQUIRE(BlockMap(v, d)[0] == s.amap[0]);
    DAXREF_REQUIRE_OK(v.Dedupe(d, 2 * kB, s.a, 2 * kB, kB, &dr));
    REQUIRE(dr.same);
    REQUIRE(dr.bytes == kB);
    DAXREF_REQUIRE_OK(v.CopyRange(s.a, 3 * kB, d, 5 * kB, kB, kRoot, &copied, &r));
    REQUIRE(copied == kB);
    DAXREF_REQUIRE_OK(v.Fallocate(s.c, kFallocUnshareRange, 2 * kB, kB, &r));
    REQUIRE(RefsAt(v, s.c, 2) == 1);
    REQUIRE(Owners(v, s.bad) == std::multiset<uint64_t>{s.a, s.b, s.c});
    RequireClean(st);

    INFO("deleting every sharer retires it");
    uint64_t free = st.free_blocks();
    for (const char* n : {"copya", "copyb", "copyc"}) {
      InodeRecord victim;
      DAXREF_REQUIRE_OK(v.Unlink(kRootIno, n, kNothingHoldsIt, &victim));
    }
    RequireRetired(st, s.bad);
    // Freed: the blocks of the three that d does not map (d shares a's
    // blocks 0 and 3, and a's block 2 is d's since the dedupe), and c's
    // private copy of block 2.
    std::set<uint64_t> still;
    for (const auto& [fb, pb] : BlockMap(st.vol(), d)) still.insert(pb);
    uint64_t freed = 0;
    for (const auto& [fb, pb] : s.amap) freed += pb != s.bad && !still.count(pb);
    CAPTURE(freed);
    REQUIRE(freed == 1);  // b's block 2
    REQUIRE(st.free_blocks() == free + freed + 1);
    RequireClean(st);
    st.Reopen();
    RequireRetired(st, s.bad);
  }
  RequireClean(st);
}

// ---------------------------------------------------------------------------
// 5. ClearBad.

TEST_CASE("ClearBad returns retired blocks to free space and serves owned ones again", "[poison]") {
  TestStore st(128);
  Volume& v = st.vol();
  uint64_t f = st.MakeFile(kRootIno, "f");
  std::string model = Pattern(3 * kB, 1);
  st.WriteFile(f, 0, model);
  std::map<uint64_t, uint64_t> map0 = BlockMap(v, f);
  uint64_t owned = map0[1];
  uint64_t free0 = st.free_blocks();
  // A free range away from the file.
  const uint64_t lo = 40;
  for (uint64_t pb = lo; pb < lo + 20; ++pb) REQUIRE(InFreeRecords(st.db(), pb));

  {
    INFO("nothing bad in the range: ENOENT, nothing changes");
    Dump before = DumpStore(st.db());
    ClearOutcome c;
    RequireRefused(st, v.ClearBad(1, 127, &c), ENOENT, before);
    RequireRefused(st, v.ClearBad(0, 128, &c), ENOENT, before);
    RequireOutcome(MarkBad(v, lo, lo + 2), 2, 2, 0, 0);
    before = DumpStore(st.db());
    RequireRefused(st, v.ClearBad(lo + 2, lo + 5, &c), ENOENT, before);
    RequireRefused(st, v.ClearBad(1, lo, &c), ENOENT, before);
    REQUIRE(c.cleared == 0);
    RequireBad(st, {{lo, 2}});
    RequireClean(st);
  }
  {
    INFO("a retired range goes back to free space");
    RequireOutcome(MarkBad(v, lo + 2, lo + 3), 1, 1, 0, 0);
    RequireBad(st, {{lo, 3}});
    REQUIRE(st.free_blocks() == free0 - 3);
    ClearOutcome c = ClearBad(v, lo, lo + 3);
    REQUIRE(c.cleared == 3);
    REQUIRE(c.returned == 3);
    REQUIRE(st.free_blocks() == free0);
    RequireBad(st, {});
    for (uint64_t pb = lo; pb < lo + 3; ++pb) REQUIRE(InFreeRecords(st.db(), pb));
    RequireClean(st);
    st.Reopen();
    REQUIRE(st.free_blocks() == free0);
    RequireBad(st, {});
  }
  Volume& v2 = st.vol();
  {
    INFO("a partial clear splits the record");
    RequireOutcome(MarkBad(v2, lo, lo + 10), 10, 10, 0, 0);
    ClearOutcome c = ClearBad(v2, lo + 3, lo + 5);
    REQUIRE(c.cleared == 2);
    REQUIRE(c.returned == 2);
    RequireBad(st, {{lo, 3}, {lo + 5, 5}});
    REQUIRE(st.free_blocks() == free0 - 8);
    RequireClean(st);
    // Over both pieces and the gap between: only bad blocks count.
    c = ClearBad(v2, lo + 2, lo + 6);
    REQUIRE(c.cleared == 2);
    REQUIRE(c.returned == 2);
    RequireBad(st, {{lo, 2}, {lo + 6, 4}});
    REQUIRE(st.free_blocks() == free0 - 6);
    RequireClean(st);
    c = ClearBad(v2, lo, lo + 10);
    REQUIRE(c.cleared == 6);
    REQUIRE(c.returned == 6);
    RequireBad(st, {});
    REQUIRE(st.free_blocks() == free0);
    RequireClean(st);
  }
  {
    INFO("an owned block stays owned, and is served again");
    RequireOutcome(Poison(st, owned, owned + 1), 1, 0, 1, 0);
    Dump before = DumpStore(st.db());
    RequireRefused(st, WriteStatus(v2, f, kB + 10, Pattern(10, 2)), EIO, before);
    st.data().HealBlocks();  // the memory was repaired
    // Still recorded bad: still refused.
    RequireRefused(st, WriteStatus(v2, f, kB + 10, Pattern(10, 2)), EIO, before);
    ClearOutcome c = ClearBad(v2, owned, owned + 1);
    REQUIRE(c.cleared == 1);
    REQUIRE(c.returned == 0);
    REQUIRE(st.free_blocks() == free0);
    REQUIRE_FALSE(InFreeRecords(st.db(), owned));
    REQUIRE(Owners(v2, owned) == std::multiset<uint64_t>{f});
    RequireBad(st, {});
    REQUIRE(BlockMap(v2, f) == map0);
    RequireClean(st);
    // Partial writes into it work again, in place.
    DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, model.size()), model);
    std::string bit = Pattern(10, 3);
    st.WriteFile(f, kB + 10, bit);
    ModelWrite(&model, kB + 10, bit);
    REQUIRE(BlockMap(v2, f) == map0);
    DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, model.size()), model);
    RequireClean(st);
  }
  {
    INFO("one clear over owned and retired blocks");
    // The file's three blocks and the free ones on either side of them.
    uint64_t p0 = map0.begin()->second, p1 = map0.rbegin()->second + 1;
    REQUIRE(p1 - p0 == 3);  // one extent
    uint64_t s = p0 > 1 ? p0 - 1 : p0, e = p1 + 2;
    uint64_t owned_in = 3, free_in = (e - s) - owned_in;
    for (uint64_t pb = s; pb < e; ++pb)
      REQUIRE(InFreeRecords(st.db(), pb) == (pb < p0 || pb >= p1));
    RequireOutcome(MarkBad(v2, s, e), e - s, free_in, owned_in, 0);
    REQUIRE(st.free_blocks() == free0 - free_in);
    RequireBad(st, {{s, e - s}});
    RequireClean(st);
    ClearOutcome c = ClearBad(v2, 1, 127);
    REQUIRE(c.cleared == e - s);
    REQUIRE(c.returned == free_in);
    REQUIRE(st.free_blocks() == free0);
    REQUIRE(BlockMap(v2, f) == map0);
    RequireBad(st, {});
    // Truncating into a block that was bad works: it is an ordinary block.
    st.Truncate(f, kB + 100);
    REQUIRE(BlockMap(v2, f).size() == 2);
    DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, kB + 100), model.substr(0, kB + 100));
  }
  RequireClean(st);
}

// ---------------------------------------------------------------------------
// 6. The superblock copies.

TEST_CASE("The superblock blocks may be recorded bad", "[poison]") {
  const uint64_t n = 64;
  TestStore st(n);
  uint64_t free0 = st.free_blocks();

  {
    INFO("one at a time");
    RequireOutcome(MarkBad(st.vol(), 0, 1), 1, 0, 0, 1);
    RequireOutcome(MarkBad(st.vol(), n - 1, n), 1, 0, 0, 1);
    RequireBad(st, {{0, 1}, {n - 1, 1}});
    REQUIRE(st.free_blocks() == free0);
    RequireClean(st, 2);
    st.Reopen();
    RequireBad(st, {{0, 1}, {n - 1, 1}});
    RequireClean(st, 2);
    ClearOutcome c = ClearBad(st.vol(), 0, 1);
    REQUIRE(c.cleared == 1);
    REQUIRE(c.returned == 0);
    RequireBad(st, {{n - 1, 1}});
    RequireClean(st, 1);
    c = ClearBad(st.vol(), n - 1, n);
    REQUIRE(c.cleared == 1);
    REQUIRE(c.returned == 0);
    RequireBad(st, {});
    REQUIRE(st.free_blocks() == free0);
    RequireClean(st);
  }
  Volume& v = st.vol();
  {
    INFO("with the data blocks next to them");
    RequireOutcome(MarkBad(v, 0, 3), 3, 2, 0, 1);
    RequireOutcome(MarkBad(v, n - 3, n), 3, 2, 0, 1);
    RequireBad(st, {{0, 3}, {n - 3, 3}});
    REQUIRE(st.free_blocks() == free0 - 4);
    RequireClean(st, 2);
    ClearOutcome c = ClearBad(v, 0, n);
    REQUIRE(c.cleared == 6);
    REQUIRE(c.returned == 4);
    REQUIRE(st.free_blocks() == free0);
    RequireBad(st, {});
    RequireClean(st);
  }
  {
    INFO("the whole pool, with a file in it");
    uint64_t f = st.MakeFile(kRootIno, "f");
    st.WriteFile(f, 0, Pattern(5 * kB, 1));
    uint64_t free1 = st.free_blocks();
    RequireOutcome(MarkBad(v, 0, n, false), n, free1, 5, 2);
    RequireBad(st, {{0, n}});
    REQUIRE(st.free_blocks() == 0);
    RequireClean(st, 2);
    Dump before = DumpStore(st.db());
    InodeRecord r;
    RequireRefused(st, v.Fallocate(f, 0, 8 * kB, kB, &r), ENOSPC, before);
    ClearOutcome c = ClearBad(v, 0, n);
    REQUIRE(c.cleared == n);
    REQUIRE(c.returned == free1);
    REQUIRE(st.free_blocks() == free1);
    RequireBad(st, {});
  }
  RequireClean(st);
}

// ---------------------------------------------------------------------------
// 7. Format versions.

std::string FormatValue(uint32_t version) {
  std::string v;
  codec::PutU32(&v, version);
  return v;
}

uint32_t StoredFormat(rocksdb::DB* db) {
  std::string v;
  REQUIRE(db->Get(rocksdb::ReadOptions(), keys::Misc(kMiscFormat), &v).ok());
  REQUIRE(v.size() == 4);
  return codec::LoadU32(v.data());
}

TEST_CASE("Format 2, 3 and 4 stores are upgraded to format 5; other formats are refused",
          "[poison]") {
  static_assert(kMetaFormatVersion == 5);
  static_assert(kMetaFormatPreviousVersion == 4);
  static_assert(kMetaFormatOldestVersion == 2);
  TestStore st(64);
  uint64_t f = st.MakeFile(kRootIno, "f");
  std::string bytes = Pattern(2 * kB + 3, 1);
  st.WriteFile(f, 0, bytes);
  REQUIRE(StoredFormat(st.db()) == kMetaFormatVersion);

  for (uint32_t old : {kMetaFormatOldestVersion, 3u, kMetaFormatPreviousVersion}) {
    INFO("format " << old << " opens, and is format 5 from then on");
    ClearOutcome c;
    if (old != kMetaFormatOldestVersion) DAXREF_REQUIRE_OK(st.vol().ClearBad(10, 12, &c));
    REQUIRE(st.db()->Put(rocksdb::WriteOptions(), keys::Misc(kMiscFormat), FormatValue(old)).ok());
    st.Reopen();
    REQUIRE(StoredFormat(st.db()) == kMetaFormatVersion);
    DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, bytes.size()), bytes);
    RequireBad(st, {});
    RequireOutcome(MarkBad(st.vol(), 10, 12), 2, 2, 0, 0);
    st.Reopen();
    RequireBad(st, {{10, 2}});
    RequireClean(st);
  }
  // Format 1, the next format, and a malformed record: refused, and left
  // as they were.
  for (const std::string& value : {FormatValue(1), FormatValue(kMetaFormatVersion + 1),
                                   FormatValue(kMetaFormatPreviousVersion).substr(0, 1)}) {
    CAPTURE(value.size(), value[0]);
    REQUIRE(st.db()->Put(rocksdb::WriteOptions(), keys::Misc(kMiscFormat), value).ok());
    st.Close();
    Status s = st.Open();
    INFO(s.message());
    // An unknown version is not ours to read; a record that is not a
    // version at all is damage.
    REQUIRE(s.err() == (value.size() == 4 ? EINVAL : EUCLEAN));
    // Put the right version back behind the Volume's back, and look at
    // what the refused open left.
    {
      rocksdb::DB* raw = nullptr;
      REQUIRE(rocksdb::DB::Open(rocksdb::Options(), st.meta_dir(), &raw).ok());
      std::unique_ptr<rocksdb::DB> db(raw);
      std::string got;
      REQUIRE(db->Get(rocksdb::ReadOptions(), keys::Misc(kMiscFormat), &got).ok());
      REQUIRE(got == value);
      REQUIRE(
          db->Put(rocksdb::WriteOptions(), keys::Misc(kMiscFormat), FormatValue(kMetaFormatVersion))
              .ok());
      REQUIRE(db->Close().ok());
    }
    DAXREF_REQUIRE_OK(st.Open());
  }
  DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, bytes.size()), bytes);
  RequireBad(st, {{10, 2}});
  RequireClean(st);
}

// ---------------------------------------------------------------------------
// 8. Memory that faults without being recorded bad.

TEST_CASE("A memory fault during a write fails it with EIO and changes no metadata", "[poison]") {
  TestStore st(128);
  Volume& v = st.vol();

  {
    INFO("unsharing a shared block whose memory faults");
    uint64_t f = st.MakeFile(kRootIno, "f1"), g = st.MakeFile(kRootIno, "g1");
    std::string model = Pattern(2 * kB, 1);
    st.WriteFile(f, 0, model);
    Clone(v, f, 0, g, 0, 0);
    std::map<uint64_t, uint64_t> map0 = BlockMap(v, f);
    REQUIRE(RefsAt(v, g, 0) == 2);
    st.data().FailBlock(map0[0]);
    Dump before = DumpStore(st.db());
    uint64_t free = st.free_blocks();
    // A partial write must copy the rest of the block first.
    RequireRefused(st, WriteStatus(v, g, 10, Pattern(100, 2)), EIO, before);
    InodeRecord r;
    RequireRefused(st, v.Fallocate(g, kFallocUnshareRange, 0, kB, &r), EIO, before);
    REQUIRE(st.free_blocks() == free);
    REQUIRE(BlockMap(v, g) == map0);
    REQUIRE(RefsAt(v, f, 0) == 2);
    REQUIRE(RefsAt(v, g, 0) == 2);
    REQUIRE(st.Inode(g).size == 2 * kB);
    REQUIRE(v.bad_blocks() == 0);  // a fault is not a record
    RequireClean(st);
    // Repaired, the same write unshares the block.
    st.data().HealBlocks();
    std::string bit = Pattern(100, 2);
    st.WriteFile(g, 10, bit);
    std::string gm = model;
    ModelWrite(&gm, 10, bit);
    REQUIRE(BlockMap(v, g)[0] != map0[0]);
    REQUIRE(RefsAt(v, f, 0) == 1);
    DAXREF_REQUIRE_BYTES(st.ReadFile(g, 0, gm.size()), gm);
    DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, model.size()), model);
    RequireClean(st);
  }
  {
    INFO("an in-place overwrite of a block that faults");
    uint64_t f = st.MakeFile(kRootIno, "f2");
    std::string model = Pattern(2 * kB, 3);
    st.WriteFile(f, 0, model);
    std::map<uint64_t, uint64_t> map0 = BlockMap(v, f);
    uint64_t free = st.free_blocks();
    st.data().FailBlock(map0[1]);
    Dump before = DumpStore(st.db());
    RequireRefused(st, WriteStatus(v, f, kB + 10, Pattern(100, 4)), EIO, before);
    RequireRefused(st, WriteStatus(v, f, kB, Pattern(kB, 5)), EIO, before);
    // A write that also grows the file: the slow path, one batch.
    RequireRefused(st, WriteStatus(v, f, kB + 10, Pattern(2 * kB, 6)), EIO, before);
    REQUIRE(st.Inode(f).size == 2 * kB);
    REQUIRE(st.free_blocks() == free);
    REQUIRE(BlockMap(v, f) == map0);
    DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, model.size()), model);
    st.data().HealBlocks();
    RequireClean(st);
  }
  {
    INFO("a write past EOF into new blocks that fault");
    uint64_t f = st.MakeFile(kRootIno, "f3");
    std::string model = Pattern(2 * kB, 7);
    st.WriteFile(f, 0, model);
    std::map<uint64_t, uint64_t> map0 = BlockMap(v, f);
    uint64_t free = st.free_blocks();
    // Every block the allocator could hand out faults.
    for (const auto& [s, n] : FreeRecords(st.db()))
      for (uint64_t pb = s; pb < s + n; ++pb) st.data().FailBlock(pb);
    Dump before = DumpStore(st.db());
    // Partial: the new block's other bytes are zeroed first.
    RequireRefused(st, WriteStatus(v, f, 2 * kB + 100, Pattern(100, 8)), EIO, before);
    // Whole blocks: the bytes themselves are stored.
    RequireRefused(st, WriteStatus(v, f, 2 * kB, Pattern(2 * kB, 9)), EIO, before);
    RequireRefused(st, WriteStatus(v, f, 10 * kB, Pattern(kB, 10)), EIO, before);
    // Preallocation zeroes its new blocks.
    InodeRecord r;
    RequireRefused(st, v.Fallocate(f, 0, 2 * kB, 2 * kB, &r), EIO, before);
    REQUIRE(st.Inode(f).size == 2 * kB);
    REQUIRE(st.free_blocks() == free);
    REQUIRE(BlockMap(v, f) == map0);
    DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, model.size()), model);
    RequireClean(st);
    st.data().HealBlocks();
    std::string more = Pattern(kB + 100, 11);
    st.WriteFile(f, 2 * kB, more);
    ModelWrite(&model, 2 * kB, more);
    DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, model.size()), model);
    REQUIRE(st.free_blocks() == free - 2);
  }
  RequireClean(st);
}

// The pieces WalkBadPieces reports, as (pblock, len, origin kind, uid, time).
using Piece = std::tuple<uint64_t, uint64_t, BadOriginKind, uint32_t, uint64_t>;
std::vector<Piece> Pieces(Volume& v) {
  std::vector<Piece> out;
  v.WalkBadPieces([&](const BadOriginRecord& p) {
    out.emplace_back(p.pblock, p.len, p.origin.kind, p.origin.uid, p.origin.time);
    return true;
  });
  return out;
}

TEST_CASE("Where poison came from: each origin is kept across merges, clears and reopens",
          "[poison]") {
  TestStore st(64);
  Volume& v = st.vol();
  const BadOrigin injected{BadOriginKind::kInjected, 1001, 100};
  const BadOrigin device{BadOriginKind::kDevice, kNoUid, 200};
  const BadOrigin mce{BadOriginKind::kMachineCheck, kNoUid, 300};
  RequireOutcome(MarkBad(v, 10, 12, true, injected), 2, 2, 0, 0);
  // Adjacent, another origin: one B record, two origins.
  RequireOutcome(MarkBad(v, 12, 14, true, device), 2, 2, 0, 0);
  // Over both and beyond, not strict: only the new blocks take this origin.
  RequireOutcome(MarkBad(v, 8, 16, false, mce), 4, 4, 0, 0);
  RequireBad(st, {{8, 8}});
  const std::vector<Piece> want = {
      {8, 2, BadOriginKind::kMachineCheck, kNoUid, 300},
      {10, 2, BadOriginKind::kInjected, 1001, 100},
      {12, 2, BadOriginKind::kDevice, kNoUid, 200},
      {14, 2, BadOriginKind::kMachineCheck, kNoUid, 300},
  };
  REQUIRE(Pieces(v) == want);
  REQUIRE(ScanPrefix(st.db(), std::string(1, prefix::kBadOrigin)).size() == 4);
  st.Reopen();
  REQUIRE(Pieces(st.vol()) == want);
  RequireClean(st);

  // A clear cuts the origins at its edges, as it cuts the ranges.
  ClearBad(st.vol(), 11, 13);
  RequireBad(st, {{8, 3}, {13, 3}});
  const std::vector<Piece> cut = {
      {8, 2, BadOriginKind::kMachineCheck, kNoUid, 300},
      {10, 1, BadOriginKind::kInjected, 1001, 100},
      {13, 1, BadOriginKind::kDevice, kNoUid, 200},
      {14, 2, BadOriginKind::kMachineCheck, kNoUid, 300},
  };
  REQUIRE(Pieces(st.vol()) == cut);
  st.Reopen();
  REQUIRE(Pieces(st.vol()) == cut);
  RequireClean(st);
  ClearBad(st.vol(), 0, 64);
  REQUIRE(ScanPrefix(st.db(), std::string(1, prefix::kBadOrigin)).empty());

  // Blocks recorded before format 4 (a B record, no Q record) are "unknown",
  // beside a known piece of the same range.
  st.Close();
  {
    // The B record and free space around it, as the daemon would have left it.
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(rocksdb::Options(), st.meta_dir(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    REQUIRE(db->Put(rocksdb::WriteOptions(), keys::Bad(20), EncodeLength(2)).ok());
    REQUIRE(db->Put(rocksdb::WriteOptions(), keys::Free(1), EncodeLength(19)).ok());
    REQUIRE(db->Put(rocksdb::WriteOptions(), keys::Free(22), EncodeLength(64 - 2 - 22 + 1)).ok());
    REQUIRE(db->Close().ok());
  }
  DAXREF_REQUIRE_OK(st.Open());
  RequireOutcome(MarkBad(st.vol(), 22, 23, true, injected), 1, 1, 0, 0);
  REQUIRE(Pieces(st.vol()) == std::vector<Piece>{{20, 2, BadOriginKind::kUnknown, kNoUid, 0},
                                                 {22, 1, BadOriginKind::kInjected, 1001, 100}});
  RequireClean(st);
}

TEST_CASE("A Q record over good blocks is refused at open, found and repaired", "[poison]") {
  TestStore st(64);
  RequireOutcome(MarkBad(st.vol(), 10, 12), 2, 2, 0, 0);
  st.Close();
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::Open(rocksdb::Options(), st.meta_dir(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  // Reaching one block past the B record.
  REQUIRE(db->Put(rocksdb::WriteOptions(), keys::BadOrigin(10),
                  EncodeBadOrigin({10, 3, {BadOriginKind::kDevice, kNoUid, 5}}))
              .ok());
  // And one over nothing bad at all.
  REQUIRE(db->Put(rocksdb::WriteOptions(), keys::BadOrigin(30),
                  EncodeBadOrigin({30, 1, {BadOriginKind::kDevice, kNoUid, 5}}))
              .ok());
  testing::CheckOutcome c = RunChecker(db.get(), 64);
  INFO(c.Text());
  REQUIRE(c.report.problems == 2);
  REQUIRE(c.Mentions("bad-block origin record at pool block 10 covers blocks that are not bad"));
  REQUIRE(c.Mentions("bad-block origin record at pool block 30 covers blocks that are not bad"));
  REQUIRE(db->Close().ok());
  db.reset();
  REQUIRE(st.Open().err() == EUCLEAN);

  Result<std::unique_ptr<rocksdb::DB>> fix = OpenStoreForRepair(st.meta_dir());
  DAXREF_REQUIRE_OK(fix.status());
  RepairOptions ro;
  ro.pool = st.sb();
  std::vector<std::string> did;
  DAXREF_REQUIRE_OK(
      RepairStore(fix->get(), ro, [&](const RepairAction& a) { did.push_back(a.text); }));
  REQUIRE(did.size() == 2);
  REQUIRE((*fix)->Close().ok());
  fix->reset();
  DAXREF_REQUIRE_OK(st.Open());
  RequireBad(st, {{10, 2}});
  REQUIRE(Pieces(st.vol()) == std::vector<Piece>{{10, 2, BadOriginKind::kUnknown, kNoUid, 0}});
  RequireClean(st);
}

}  // namespace
}  // namespace daxref
