// The extent maps in memory are the truth for the files in use
// (meta/extent_maps.h): after every kind of extent edit, committed or rolled
// back, in any order, and across a remount, they say exactly what the E
// records say, and MapRange (served from them) reports the same.
#include <rocksdb/db.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <random>
#include <thread>
#include <vector>

#include "meta/extent_maps.h"
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
std::vector<Extent> MappedView(TestStore& st, uint64_t ino, uint64_t blocks) {
  std::vector<Extent> out;
  for (const MappedSegment& s : st.Segments(ino, 0, blocks * kB)) {
    if (s.hole) continue;
    out.push_back(Extent{s.off / kB, s.pool_off / kB, s.len / kB});
  }
  return out;
}

void RequireMapsMatchStore(TestStore& st, const std::vector<uint64_t>& files, uint64_t blocks) {
  DAXREF_REQUIRE_OK(st.vol().CheckExtentMaps());
  for (uint64_t f : files) {
    std::vector<Extent> want = ExtentRecords(st.db(), f), got = MappedView(st, f, blocks);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      REQUIRE(got[i].fblock == want[i].fblock);
      REQUIRE(got[i].pblock == want[i].pblock);
      REQUIRE(got[i].len == want[i].len);
    }
  }
}

// One random extent edit of f (sometimes with g as the other file).
void RandomEdit(TestStore& st, std::mt19937_64& rng, uint64_t f, uint64_t g, uint64_t blocks,
                int step) {
  uint64_t a = rng() % blocks, n = 1 + rng() % 16;
  InodeRecord r;
  uint64_t copied = 0;
  switch (rng() % 11) {
    case 0:
    case 1:  // write: appends, overwrites, holes filled
      st.WriteFile(f, a * kB + rng() % 100, Pattern(n * kB - rng() % 100, step));
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
    case 5:
      DAXREF_REQUIRE_OK(st.vol().Fallocate(f, kFallocZeroRange, a * kB + 7, n * kB, &r));
      break;
    case 6: {  // clone a piece of g into f (f's old blocks in the range go)
      uint64_t gsize = st.Inode(g).size / kB;
      if (gsize == 0) break;
      uint64_t s = rng() % gsize, m = std::min<uint64_t>(n, gsize - s);
      DAXREF_REQUIRE_OK(st.vol().Clone(g, s * kB, f, a * kB, m * kB, kRoot, &r));
      break;
    }
    case 7: {  // copy_file_range: shares whole blocks, copies the rest
      uint64_t gsize = st.Inode(g).size;
      if (gsize == 0) break;
      uint64_t s = rng() % gsize;
      DAXREF_REQUIRE_OK(
          st.vol().CopyRange(g, s, f, a * kB + rng() % 2 * 512, n * kB, kRoot, &copied, &r));
      break;
    }
    case 8:
      DAXREF_REQUIRE_OK(st.vol().Fallocate(f, kFallocUnshareRange, a * kB, n * kB, &r));
      break;
    case 9: {  // collapse, when the range ends before EOF
      uint64_t size = st.Inode(f).size;
      if ((a + n) * kB < size)
        DAXREF_REQUIRE_OK(st.vol().Fallocate(f, kFallocCollapseRange, a * kB, n * kB, &r));
      break;
    }
    case 10: {  // insert, when the offset is inside the file
      uint64_t size = st.Inode(f).size;
      if (a * kB < size && size < blocks * kB)
        DAXREF_REQUIRE_OK(st.vol().Fallocate(f, kFallocInsertRange, a * kB, n * kB, &r));
      break;
    }
  }
}

TEST_CASE("Extent maps in memory match the store after random edits and a remount",
          "[volume][extent_maps]") {
  TestStore st;
  uint64_t f = st.MakeFile(kRootIno, "f");
  uint64_t g = st.MakeFile(kRootIno, "g");
  st.WriteFile(g, 0, Pattern(64 * kB, 1));
  std::mt19937_64 rng(7);
  const uint64_t kBlocks = 256;
  for (int step = 0; step < 600; ++step) {
    INFO("step " << step);
    RandomEdit(st, rng, step % 3 == 2 ? g : f, step % 3 == 2 ? f : g, kBlocks, step);
    RequireMapsMatchStore(st, {f, g}, 2 * kBlocks);
  }
  REQUIRE(st.vol().extent_map_files() >= 2);
  std::string before = st.ReadFile(f, 0, 2 * kBlocks * kB);
  st.Reopen();
  // A fresh mount loads the maps again from the records the edits left.
  REQUIRE(st.ReadFile(f, 0, 2 * kBlocks * kB) == before);
  RequireMapsMatchStore(st, {f, g}, 2 * kBlocks);
  testing::CheckOutcome check = testing::RunChecker(st.db(), st.sb().block_count);
  INFO(check.Text());
  REQUIRE(check.problems.empty());
}

TEST_CASE("Collapse and insert range move the bytes after them, sharing and all",
          "[volume][extent_maps][fallocate]") {
  TestStore st;
  uint64_t f = st.MakeFile(kRootIno, "f"), g = st.MakeFile(kRootIno, "g");
  std::string model = Pattern(40 * kB + 123, 1);
  st.WriteFile(f, 0, model);
  // Blocks 8..15 shared with g, a hole at 20..23.
  st.WriteFile(g, 0, Pattern(8 * kB, 2));
  InodeRecord r;
  DAXREF_REQUIRE_OK(st.vol().Clone(g, 0, f, 8 * kB, 8 * kB, kRoot, &r));
  model.replace(8 * kB, 8 * kB, Pattern(8 * kB, 2));
  DAXREF_REQUIRE_OK(st.vol().Fallocate(f, kFallocPunchHole | kFallocKeepSize, 20 * kB, 4 * kB, &r));
  std::fill(model.begin() + 20 * kB, model.begin() + 24 * kB, '\0');
  const uint64_t free_before = st.free_blocks();

  // Collapse blocks 4..9: half of the shared run goes, what follows moves down.
  DAXREF_REQUIRE_OK(st.vol().Fallocate(f, kFallocCollapseRange, 4 * kB, 6 * kB, &r));
  model.erase(4 * kB, 6 * kB);
  REQUIRE(r.size == model.size());
  REQUIRE(st.ReadFile(f, 0, model.size()) == model);
  // Blocks 4..7 were f's own: freed; 8..9 shared: still g's.
  REQUIRE(st.free_blocks() == free_before + 4);
  // Insert 3 blocks at block 2 (inside an extent): a hole appears.
  DAXREF_REQUIRE_OK(st.vol().Fallocate(f, kFallocInsertRange, 2 * kB, 3 * kB, &r));
  model.insert(2 * kB, std::string(3 * kB, '\0'));
  REQUIRE(r.size == model.size());
  REQUIRE(st.ReadFile(f, 0, model.size()) == model);
  REQUIRE(st.free_blocks() == free_before + 4);  // nothing allocated for the hole
  REQUIRE(st.ReadFile(g, 0, 8 * kB) == Pattern(8 * kB, 2));
  RequireMapsMatchStore(st, {f, g}, 64);

  // Linux's checks: whole blocks, alone, before EOF, within the size limit.
  DAXREF_REQUIRE_ERR(st.vol().Fallocate(f, kFallocCollapseRange, 100, kB, &r), EINVAL);
  DAXREF_REQUIRE_ERR(st.vol().Fallocate(f, kFallocInsertRange, kB, 100, &r), EINVAL);
  DAXREF_REQUIRE_ERR(st.vol().Fallocate(f, kFallocCollapseRange | kFallocKeepSize, 0, kB, &r),
                     EINVAL);
  DAXREF_REQUIRE_ERR(
      st.vol().Fallocate(f, kFallocCollapseRange, 0, model.size() / kB * kB + kB, &r), EINVAL);
  DAXREF_REQUIRE_ERR(
      st.vol().Fallocate(f, kFallocInsertRange, (model.size() + kB) / kB * kB, kB, &r), EINVAL);
  DAXREF_REQUIRE_ERR(st.vol().Fallocate(f, kFallocInsertRange, 0, kMaxFileSize / kB * kB, &r),
                     EFBIG);
  REQUIRE(st.ReadFile(f, 0, model.size()) == model);
  st.Reopen();
  REQUIRE(st.ReadFile(f, 0, model.size()) == model);
  testing::CheckOutcome check = testing::RunChecker(st.db(), st.sb().block_count);
  INFO(check.Text());
  REQUIRE(check.problems.empty());
}

TEST_CASE("A batch that fails after editing a map leaves the map as committed",
          "[volume][extent_maps]") {
  TestStore st;
  uint64_t f = st.MakeFile(kRootIno, "f");
  // Extents with holes between them, so that the write below maps new
  // blocks and merges them with their neighbours in memory before it fails.
  for (uint64_t b = 0; b < 32; b += 2) st.WriteFile(f, b * kB, Pattern(kB, b));
  std::vector<Extent> committed = ExtentRecords(st.db(), f);
  st.data().FailPersist(true);
  InodeRecord r;
  Status s = st.vol().Write(f, 0, Pattern(32 * kB, 9).data(), 32 * kB, kRoot, &r);
  REQUIRE(s.err() == EIO);
  st.data().FailPersist(false);
  std::vector<Extent> now = ExtentRecords(st.db(), f);
  REQUIRE(now.size() == committed.size());
  RequireMapsMatchStore(st, {f}, 64);
  // and the file works on from there
  st.WriteFile(f, 0, Pattern(32 * kB, 10));
  RequireMapsMatchStore(st, {f}, 64);
  REQUIRE(st.ReadFile(f, 0, 32 * kB) == Pattern(32 * kB, 10));
}

TEST_CASE("A damaged extent record is an error, never a guess", "[volume][extent_maps]") {
  TestStore st;
  uint64_t f = st.MakeFile(kRootIno, "f");
  st.WriteFile(f, 0, Pattern(8 * kB, 1));
  st.WriteFile(f, 20 * kB, Pattern(8 * kB, 2));
  st.Close();
  {
    // Open the store behind the Volume's back and make the second extent
    // overlap the first.
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(rocksdb::Options(), st.meta_dir(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    auto recs = testing::ScanPrefix(db.get(), keys::ExtentPrefix(f));
    REQUIRE(recs.size() == 2);
    Extent second;
    DAXREF_REQUIRE_OK(DecodeExtent(recs[1].first, recs[1].second, testing::kAnyGeometry, &second));
    REQUIRE(db->Delete(rocksdb::WriteOptions(), recs[1].first).ok());
    second.fblock = 4;
    REQUIRE(db->Put(rocksdb::WriteOptions(), keys::Extent(f, 4), EncodeExtent(second)).ok());
  }
  DAXREF_REQUIRE_OK(st.Open());
  Status s = st.vol().MapRange(f, 0, 64 * kB, [](const MappedSegment&) { return true; });
  REQUIRE(s.err() == EUCLEAN);
  REQUIRE(s.message().find("overlaps") != std::string::npos);
}

TEST_CASE("Readers outside the batch see committed maps while another thread edits",
          "[volume][extent_maps]") {
  TestStore st(8192);
  uint64_t f = st.MakeFile(kRootIno, "f");
  uint64_t g = st.MakeFile(kRootIno, "g");
  st.WriteFile(g, 0, Pattern(64 * kB, 1));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::thread reader([&] {
    while (!stop.load()) {
      // Every segment MapRange reports is a hole or lies inside the pool,
      // and segments come in order without overlapping.
      uint64_t pos = 0;
      Status s = st.vol().MapRange(f, 0, 512 * kB, [&](const MappedSegment& m) {
        if (m.off != pos) return false;
        pos = m.off + m.len;
        return true;
      });
      if (!s.ok() || pos != 512 * kB) break;
      reads++;
    }
  });
  std::mt19937_64 rng(11);
  for (int step = 0; step < 400; ++step) RandomEdit(st, rng, f, g, 128, step);
  stop = true;
  reader.join();
  REQUIRE(reads.load() > 0);
  RequireMapsMatchStore(st, {f, g}, 256);
}

TEST_CASE("The registry of maps evicts only maps nobody holds, and reloads them", "[extent_maps]") {
  ExtentMaps maps(/*budget=*/40);
  int loads = 0;
  auto loader = [&](uint64_t ino, FileExtents::Map* out) {
    loads++;
    for (uint64_t i = 0; i < 10; ++i) (*out)[i * 2] = Extent{i * 2, 100 * ino + i * 2, 1};
    return Status::Ok();
  };
  Result<ExtentMaps::Handle> held = maps.Get(1, loader);
  DAXREF_REQUIRE_OK(held.status());
  for (uint64_t ino = 2; ino <= 8; ++ino) DAXREF_REQUIRE_OK(maps.Get(ino, loader).status());
  REQUIRE(loads == 8);
  // Over budget: idle maps went, the held one stayed.
  REQUIRE(maps.extents() + static_cast<int64_t>(maps.files()) <= 40);
  Result<ExtentMaps::Handle> again = maps.Get(1, loader);
  DAXREF_REQUIRE_OK(again.status());
  REQUIRE(again->get() == held->get());
  REQUIRE(loads == 8);
  DAXREF_REQUIRE_OK(maps.Get(2, loader).status());  // evicted earlier: loaded again
  REQUIRE(loads == 9);
  maps.Forget(1);
  DAXREF_REQUIRE_OK(maps.Get(1, loader).status());
  REQUIRE(loads == 10);
}

}  // namespace
}  // namespace daxref
