// Layout leases in the store (meta/volume_lease.cc, meta/lease_record.h,
// docs/dax.md): the G records (record, walk, drop, across a reopen, ids
// that go on past the largest recorded), PrepareForStores (holes
// allocated and zeroed, shared blocks unshared, one owner after it; ENXIO
// past EOF, EIO on a bad block), LeaseExtents, a damaged G record
// (EUCLEAN), the checker's lease checks (a leased block that moved or got
// shared is reported, a store whose leases are intact is clean), and the
// upgrade of a format 4 store to format 5.

#include <rocksdb/db.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "meta/codec.h"
#include "meta/format.h"
#include "meta/lease_record.h"
#include "meta/volume.h"
#include "test/meta_helpers.h"

namespace daxref {
namespace {

constexpr uint64_t kB = kBlockSize;
using testing::kRoot;
using testing::Pattern;
using testing::TestStore;

LeaseRecord Lease(uint64_t id, uint64_t ino, uint64_t fblock, uint64_t blocks, LeaseMode mode,
                  std::vector<LeasedExtent> extents) {
  LeaseRecord r;
  r.id = id;
  r.ino = ino;
  r.fblock = fblock;
  r.blocks = blocks;
  r.mode = mode;
  r.uid = 1000;
  r.pid = 4242;
  r.start_time = 777;
  r.boot_id.fill(0x5a);
  r.extents = std::move(extents);
  return r;
}

std::vector<LeaseRecord> Leases(Volume& v) {
  std::vector<LeaseRecord> out;
  DAXREF_REQUIRE_OK(v.WalkLeases([&](const LeaseRecord& r) {
    out.push_back(r);
    return true;
  }));
  return out;
}

std::vector<LeasedExtent> Prepare(Volume& v, uint64_t ino, uint64_t fb, uint64_t n) {
  std::vector<LeasedExtent> out;
  DAXREF_REQUIRE_OK(
      v.PrepareForStores(ino, fb, n, [&](const LeasedExtent& e) { out.push_back(e); }));
  return out;
}

std::vector<LeasedExtent> Extents(Volume& v, uint64_t ino, uint64_t fb, uint64_t n) {
  std::vector<LeasedExtent> out;
  DAXREF_REQUIRE_OK(v.LeaseExtents(ino, fb, n, [&](const LeasedExtent& e) { out.push_back(e); }));
  return out;
}

// The refcount of each block of e, as WalkSharing sees it: all 1?
bool AllOwnedOnce(Volume& v, uint64_t ino, const LeasedExtent& e) {
  bool once = true;
  DAXREF_REQUIRE_OK(v.WalkSharing(ino, e.fblock, e.fend(), [&](const SharedExtent& s) {
    once = once && s.refs == 1;
    return true;
  }));
  return once;
}

uint64_t Covered(const std::vector<LeasedExtent>& ext) {
  uint64_t n = 0;
  for (const auto& e : ext) n += e.blocks;
  return n;
}

}  // namespace

TEST_CASE("leases: G records round trip, across a reopen, and ids go on", "[lease]") {
  TestStore st(256);
  uint64_t f = st.MakeFile(kRootIno, "f");
  st.WriteFile(f, 0, Pattern(4 * kB, 1));
  auto ext = Prepare(st.vol(), f, 0, 4);
  REQUIRE(Covered(ext) == 4);
  REQUIRE(Leases(st.vol()).empty());

  const uint64_t a = st.vol().NewLeaseId(), b = st.vol().NewLeaseId();
  REQUIRE(a >= 1);
  REQUIRE(b > a);
  DAXREF_REQUIRE_OK(st.vol().RecordLease(Lease(b, f, 0, 4, LeaseMode::kWrite, ext)));
  DAXREF_REQUIRE_OK(st.vol().RecordLease(Lease(a, f, 1, 2, LeaseMode::kRead, {})));
  auto got = Leases(st.vol());
  REQUIRE(got.size() == 2);
  REQUIRE(got[0].id == a);  // id order
  REQUIRE(got[1].id == b);
  REQUIRE(got[1].ino == f);
  REQUIRE(got[1].mode == LeaseMode::kWrite);
  REQUIRE(got[1].extents == ext);
  REQUIRE(got[1].pid == 4242);
  REQUIRE(got[1].start_time == 777);
  DAXREF_REQUIRE_VOLUME_CLEAN(st);

  // An invalid record is refused before it is written.
  DAXREF_REQUIRE_ERR(st.vol().RecordLease(Lease(99, f, 0, 0, LeaseMode::kRead, {})), EINVAL);
  DAXREF_REQUIRE_ERR(st.vol().RecordLease(Lease(0, f, 0, 1, LeaseMode::kRead, {})), EINVAL);
  DAXREF_REQUIRE_ERR(
      st.vol().RecordLease(Lease(99, f, 0, 4, LeaseMode::kWrite, {{0, ext[0].pblock, 1}})),
      EINVAL);  // a write lease with a hole

  // Across a reopen: the records stay, and new ids are past the largest.
  st.Reopen();
  got = Leases(st.vol());
  REQUIRE(got.size() == 2);
  REQUIRE(got[1].extents == ext);
  REQUIRE(st.vol().NewLeaseId() == b + 1);

  // Dropped in one batch; an id without a record is fine.
  const uint64_t drop[] = {a, 12345};
  DAXREF_REQUIRE_OK(st.vol().DropLeases(drop));
  got = Leases(st.vol());
  REQUIRE(got.size() == 1);
  REQUIRE(got[0].id == b);
  // Ids are never handed out twice, even after the largest record goes.
  const uint64_t c = st.vol().NewLeaseId();
  REQUIRE(c > b + 1);
  DAXREF_REQUIRE_OK(st.vol().RecordLease(Lease(50, f, 0, 1, LeaseMode::kRead, {})));
  st.Reopen();
  REQUIRE(st.vol().NewLeaseId() == 51);
  const uint64_t all[] = {b, 50};
  DAXREF_REQUIRE_OK(st.vol().DropLeases(all));
  REQUIRE(Leases(st.vol()).empty());
  DAXREF_REQUIRE_VOLUME_CLEAN(st);

  // The walk stops when told to.
  DAXREF_REQUIRE_OK(st.vol().RecordLease(Lease(60, f, 0, 1, LeaseMode::kRead, {})));
  DAXREF_REQUIRE_OK(st.vol().RecordLease(Lease(61, f, 0, 1, LeaseMode::kRead, {})));
  int seen = 0;
  DAXREF_REQUIRE_OK(st.vol().WalkLeases([&](const LeaseRecord&) {
    ++seen;
    return false;
  }));
  REQUIRE(seen == 1);
}

TEST_CASE("leases: PrepareForStores fills holes with zeros and unshares", "[lease]") {
  TestStore st(256);
  // A file of 8 blocks: blocks 0-1 written, 2-4 a hole, 5-7 written; its
  // size ends inside block 7.
  uint64_t f = st.MakeFile(kRootIno, "f");
  const std::string head = Pattern(2 * kB, 1), tail = Pattern(3 * kB - 100, 2);
  st.WriteFile(f, 0, head);
  st.WriteFile(f, 5 * kB, tail);
  const uint64_t size = st.Inode(f).size;
  REQUIRE(size == 8 * kB - 100);
  // A clone of blocks 5-7 into another file: those blocks are shared.
  uint64_t g = st.MakeFile(kRootIno, "g");
  InodeRecord out;
  DAXREF_REQUIRE_OK(st.vol().Clone(f, 5 * kB, g, 0, 3 * kB - 100, kRoot, &out));
  bool shared = false;
  DAXREF_REQUIRE_OK(st.vol().WalkSharing(f, 5, 8, [&](const SharedExtent& s) {
    shared = shared || s.refs > 1;
    return true;
  }));
  REQUIRE(shared);
  const uint64_t free_before = st.free_blocks();

  // The read side first: holes skipped, the shared blocks as they are.
  auto read = Extents(st.vol(), f, 0, 8);
  REQUIRE(Covered(read) == 5);
  REQUIRE(read.front().fblock == 0);
  REQUIRE(read.back().fend() == 8);
  REQUIRE(st.free_blocks() == free_before);  // changes nothing

  auto ext = Prepare(st.vol(), f, 0, 8);
  // The whole range, in file order, without a gap, each block owned once.
  uint64_t pos = 0;
  for (const LeasedExtent& e : ext) {
    REQUIRE(e.fblock == pos);
    pos = e.fend();
    REQUIRE(AllOwnedOnce(st.vol(), f, e));
  }
  REQUIRE(pos == 8);
  // Three blocks filled, three copied.
  REQUIRE(st.free_blocks() == free_before - 6);
  REQUIRE(st.Inode(f).size == size);  // the size unchanged
  REQUIRE(st.Inode(f).blocks == 8);
  // The bytes are what they were: the hole reads as zeros from its new
  // blocks, the unshared blocks hold the old bytes, and g still has its own.
  DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, 2 * kB), head);
  DAXREF_REQUIRE_BYTES(st.ReadFile(f, 2 * kB, 3 * kB), std::string(3 * kB, '\0'));
  DAXREF_REQUIRE_BYTES(st.ReadFile(f, 5 * kB, tail.size()), tail);
  DAXREF_REQUIRE_BYTES(st.ReadFile(g, 0, tail.size()), tail);
  for (const LeasedExtent& e : ext)
    for (uint64_t b = 0; b < e.blocks; ++b) {
      if (e.fblock + b < 2 || e.fblock + b > 4) continue;
      // Zeroed in the pool itself, where the holder will load from.
      DAXREF_REQUIRE_BYTES(st.data().Read((e.pblock + b) * kB, kB), std::string(kB, '\0'));
    }
  // None of f's leased blocks is g's.
  auto gext = Extents(st.vol(), g, 0, 3);
  for (const LeasedExtent& a : ext)
    for (const LeasedExtent& b : gext) REQUIRE((a.pend() <= b.pblock || b.pend() <= a.pblock));
  DAXREF_REQUIRE_VOLUME_CLEAN(st);

  // Ready already: nothing changes, the same extents again.
  REQUIRE(Prepare(st.vol(), f, 0, 8) == ext);
  REQUIRE(st.free_blocks() == free_before - 6);
  // Durable: the extents are the same after a reopen.
  st.Reopen();
  REQUIRE(Extents(st.vol(), f, 0, 8) == ext);
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

TEST_CASE("leases: ranges past EOF, bad blocks, wrong files", "[lease]") {
  TestStore st(256);
  uint64_t f = st.MakeFile(kRootIno, "f");
  st.WriteFile(f, 0, Pattern(3 * kB + 1, 3));  // 4 blocks, the last in part
  auto noop = [](const LeasedExtent&) {};
  const uint64_t free_before = st.free_blocks();
  // The size rounded up to a block is the limit.
  DAXREF_REQUIRE_OK(st.vol().LeaseExtents(f, 0, 4, noop));
  DAXREF_REQUIRE_ERR(st.vol().PrepareForStores(f, 0, 5, noop), ENXIO);
  DAXREF_REQUIRE_ERR(st.vol().PrepareForStores(f, 4, 1, noop), ENXIO);
  DAXREF_REQUIRE_ERR(st.vol().LeaseExtents(f, 3, 2, noop), ENXIO);
  DAXREF_REQUIRE_ERR(st.vol().PrepareForStores(f, 0, 0, noop), EINVAL);
  DAXREF_REQUIRE_ERR(st.vol().PrepareForStores(kRootIno, 0, 1, noop), EINVAL);
  DAXREF_REQUIRE_ERR(st.vol().PrepareForStores(999, 0, 1, noop), ENOENT);
  REQUIRE(st.free_blocks() == free_before);

  // A bad block in the range: EIO, nothing changed; outside it: fine.
  auto ext = Extents(st.vol(), f, 0, 4);
  REQUIRE(ext.size() == 1);
  PoisonOutcome po;
  const uint64_t bad = ext[0].pblock + 2;
  DAXREF_REQUIRE_OK(
      st.vol().MarkBad(bad, bad + 1, true, BadOrigin{BadOriginKind::kInjected, 0, 1}, &po));
  const auto before = testing::DumpStore(st.db());
  DAXREF_REQUIRE_ERR(st.vol().PrepareForStores(f, 0, 4, noop), EIO);
  DAXREF_REQUIRE_ERR(st.vol().LeaseExtents(f, 2, 1, noop), EIO);
  testing::RequireSameStore(before, testing::DumpStore(st.db()));
  DAXREF_REQUIRE_OK(st.vol().LeaseExtents(f, 0, 2, noop));
  DAXREF_REQUIRE_OK(st.vol().PrepareForStores(f, 3, 1, noop));
}

TEST_CASE("leases: a damaged G record is corruption", "[lease]") {
  TestStore st(256);
  uint64_t f = st.MakeFile(kRootIno, "f");
  st.WriteFile(f, 0, Pattern(kB, 4));
  DAXREF_REQUIRE_OK(st.vol().RecordLease(Lease(3, f, 0, 1, LeaseMode::kRead, {})));
  std::string v = EncodeLease(Lease(4, f, 0, 1, LeaseMode::kRead, {}));
  v[24] = 7;  // the mode byte
  REQUIRE(st.db()->Put(rocksdb::WriteOptions(), keys::Lease(4), v).ok());
  DAXREF_REQUIRE_ERR(st.vol().WalkLeases([](const LeaseRecord&) { return true; }), EUCLEAN);
  auto c = testing::RunChecker(st.db(), st.sb().block_count);
  INFO(c.Text());
  REQUIRE(c.report.problems == 1);
  REQUIRE(c.Mentions("lease record 4: unknown mode 7"));
  // A pool block past the pool: the geometry is checked where decoded.
  REQUIRE(st.db()
              ->Put(rocksdb::WriteOptions(), keys::Lease(4),
                    EncodeLease(Lease(4, f, 0, 1, LeaseMode::kWrite, {{0, 256, 1}})))
              .ok());
  DAXREF_REQUIRE_ERR(st.vol().WalkLeases([](const LeaseRecord&) { return true; }), EUCLEAN);
  REQUIRE(testing::RunChecker(st.db(), st.sb().block_count).Mentions("outside the data area"));
}

TEST_CASE("leases: the checker knows leased blocks", "[lease]") {
  TestStore st(256);
  uint64_t f = st.MakeFile(kRootIno, "f");
  st.WriteFile(f, 0, Pattern(8 * kB, 5));
  auto ext = Prepare(st.vol(), f, 2, 4);
  DAXREF_REQUIRE_OK(st.vol().RecordLease(Lease(1, f, 2, 4, LeaseMode::kWrite, ext)));
  DAXREF_REQUIRE_OK(
      st.vol().RecordLease(Lease(2, f, 0, 8, LeaseMode::kRead, Extents(st.vol(), f, 0, 8))));
  {
    auto c = testing::RunChecker(st.db(), st.sb().block_count);
    INFO(c.Text());
    REQUIRE(c.report.problems == 0);
    REQUIRE(c.report.leases == 2);
  }

  SECTION("a block punched out from under a lease") {
    InodeRecord out;
    DAXREF_REQUIRE_OK(st.vol().Fallocate(f, kFallocPunchHole | kFallocKeepSize, 3 * kB, kB, &out));
    auto c = testing::RunChecker(st.db(), st.sb().block_count);
    INFO(c.Text());
    REQUIRE(c.report.problems == 2);  // both leases cover file block 3
    REQUIRE(c.Mentions("write lease 1 of inode " + std::to_string(f) +
                       ": file block 3 is no longer at leased pool block"));
    REQUIRE(c.Mentions("read lease 2 of inode " + std::to_string(f) + ": file block 3"));
  }
  SECTION("a block moved under a lease (copy-on-write after a clone)") {
    uint64_t g = st.MakeFile(kRootIno, "g");
    InodeRecord out;
    DAXREF_REQUIRE_OK(st.vol().Clone(f, 0, g, 0, 8 * kB, kRoot, &out));
    // Shared now: the write lease's blocks have two owners.
    {
      auto c = testing::RunChecker(st.db(), st.sb().block_count);
      INFO(c.Text());
      REQUIRE(c.report.problems >= 1);
      REQUIRE(c.Mentions("write lease 1 of inode " + std::to_string(f) + ": pool block"));
      REQUIRE(c.Mentions("is shared (2 references)"));
      REQUIRE_FALSE(c.Mentions("read lease 2"));  // a read lease may share
    }
    st.WriteFile(f, 4 * kB, Pattern(kB, 6));  // copy-on-write moves file block 4
    auto c = testing::RunChecker(st.db(), st.sb().block_count);
    INFO(c.Text());
    REQUIRE(c.Mentions("file block 4 is no longer at leased pool block"));
  }
  SECTION("a file truncated below a lease") {
    st.Truncate(f, 3 * kB);
    auto c = testing::RunChecker(st.db(), st.sb().block_count);
    INFO(c.Text());
    REQUIRE(c.Mentions("reach past the file's 3 blocks"));
  }
  SECTION("a lease of a file that is gone, or not a file") {
    DAXREF_REQUIRE_OK(st.vol().RecordLease(Lease(3, 777, 0, 1, LeaseMode::kRead, {})));
    DAXREF_REQUIRE_OK(st.vol().RecordLease(Lease(4, kRootIno, 0, 1, LeaseMode::kRead, {})));
    auto c = testing::RunChecker(st.db(), st.sb().block_count);
    INFO(c.Text());
    REQUIRE(c.report.problems == 2);
    REQUIRE(c.Mentions("read lease 3 of inode 777: no such inode"));
    REQUIRE(c.Mentions("read lease 4 of inode 1: not a regular file"));
  }
  SECTION("dropped, the store is clean") {
    const uint64_t ids[] = {1, 2};
    DAXREF_REQUIRE_OK(st.vol().DropLeases(ids));
    InodeRecord out;
    DAXREF_REQUIRE_OK(st.vol().Fallocate(f, kFallocPunchHole | kFallocKeepSize, 3 * kB, kB, &out));
    DAXREF_REQUIRE_VOLUME_CLEAN(st);
  }
}

TEST_CASE("leases: a format 4 store is upgraded to format 5", "[lease]") {
  static_assert(kMetaFormatVersion == 5 && kMetaFormatPreviousVersion == 4);
  TestStore st(256);
  uint64_t f = st.MakeFile(kRootIno, "f");
  const std::string bytes = Pattern(2 * kB, 7);
  st.WriteFile(f, 0, bytes);
  std::string four;
  codec::PutU32(&four, 4);
  REQUIRE(st.db()->Put(rocksdb::WriteOptions(), keys::Misc(kMiscFormat), four).ok());
  st.Reopen();
  std::string v;
  REQUIRE(st.db()->Get(rocksdb::ReadOptions(), keys::Misc(kMiscFormat), &v).ok());
  REQUIRE(v == std::string("\0\0\0\5", 4));
  // A format 4 store has no G records: none to walk, ids start at 1.
  REQUIRE(Leases(st.vol()).empty());
  REQUIRE(st.vol().NewLeaseId() == 1);
  DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, bytes.size()), bytes);
  DAXREF_REQUIRE_OK(
      st.vol().RecordLease(Lease(1, f, 0, 2, LeaseMode::kWrite, Prepare(st.vol(), f, 0, 2))));
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

}  // namespace daxref
