// A read-only Volume (Volume::Options::read_only) changes nothing: not the
// store's directory, not the pool; every mutating operation is EROFS, and
// poison is kept in memory only. And the per-file bound on extended
// attributes (format.h, kMaxXattrBytesPerInode).
#include <sys/xattr.h>

#include <fstream>
#include <sstream>

#include "test/meta_helpers.h"

namespace daxref::testing {
namespace {

// Every file of a directory, name to bytes.
std::map<std::string, std::string> DirFiles(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    out[e.path().filename().string()] = ss.str();
  }
  return out;
}

}  // namespace

TEST_CASE("read-only volume: every change is EROFS, store and pool stay as they were",
          "[meta][readonly]") {
  TestStore s(1024);
  uint64_t f = s.MakeFile(kRootIno, "f");
  s.WriteFile(f, 0, std::string(3 * kBlockSize, 'a'));
  uint64_t g = s.MakeFile(kRootIno, "g");
  s.WriteFile(g, 0, "gg");
  DAXREF_REQUIRE_OK(s.vol().SetXattr(f, "user.k", "v", 0));
  InodeRecord victim;
  uint64_t orphan = s.MakeFile(kRootIno, "orphan");
  s.WriteFile(orphan, 0, std::string(kBlockSize, 'o'));
  DAXREF_REQUIRE_OK(s.vol().Unlink(kRootIno, "orphan", kStillOpen, &victim));
  const uint64_t free_rw = s.free_blocks();
  s.Close();
  const auto files = DirFiles(s.meta_dir());
  const std::string pool = s.data().Read(0, 1024 * kBlockSize);

  auto r = Volume::Open(s.meta_dir(), s.sb(), &s.data(),
                        Volume::Options{.block_cache_bytes = 8 << 20, .read_only = true});
  DAXREF_REQUIRE_OK(r.status());
  std::unique_ptr<Volume> v = std::move(*r);
  CHECK(v->read_only());
  // Reads work; the orphan was left alone.
  InodeRecord rec;
  DAXREF_REQUIRE_OK(v->Lookup(kRootIno, "f", &rec));
  CHECK(rec.size == 3 * kBlockSize);
  DAXREF_REQUIRE_OK(v->GetInode(orphan, &rec));
  CHECK(rec.nlink == 0);
  CHECK(v->Stats().free_blocks == free_rw);
  std::string val;
  DAXREF_REQUIRE_OK(v->GetXattr(f, "user.k", &val));

  // Every change, each refused before it changed anything.
  const std::string blk(kBlockSize, 'b');
  DAXREF_REQUIRE_ERR(v->MakeNode(kRootIno, "n", S_IFREG | 0644, 0, kRoot, "", &rec), EROFS);
  DAXREF_REQUIRE_ERR(v->Write(f, 0, blk.data(), blk.size(), kRoot, &rec), EROFS);  // in place
  DAXREF_REQUIRE_ERR(v->Write(f, 10 * kBlockSize, "x", 1, kRoot, &rec), EROFS);    // allocates
  DAXREF_REQUIRE_ERR(v->Write(g, 0, "partial", 7, kRoot, &rec), EROFS);
  SetAttrRequest shrink;
  shrink.size = 100;
  DAXREF_REQUIRE_ERR(v->SetAttr(f, shrink, kRoot, &rec), EROFS);
  SetAttrRequest chmod;
  chmod.mode = 0600;
  DAXREF_REQUIRE_ERR(v->SetAttr(f, chmod, kRoot, &rec), EROFS);
  DAXREF_REQUIRE_ERR(v->Fallocate(f, kFallocZeroRange | kFallocKeepSize, 10, 100, &rec), EROFS);
  DAXREF_REQUIRE_ERR(v->Fallocate(f, kFallocPunchHole | kFallocKeepSize, 0, kBlockSize, &rec),
                     EROFS);
  DAXREF_REQUIRE_ERR(v->SetXattr(f, "user.n", "x", 0), EROFS);
  DAXREF_REQUIRE_ERR(v->RemoveXattr(f, "user.k"), EROFS);
  DAXREF_REQUIRE_ERR(v->Unlink(kRootIno, "g", kNothingHoldsIt, &rec), EROFS);
  DAXREF_REQUIRE_ERR(v->Rename(kRootIno, "g", kRootIno, "h", 0, kNothingHoldsIt, &rec), EROFS);
  DAXREF_REQUIRE_ERR(v->Link(f, kRootIno, "f2", &rec), EROFS);
  DAXREF_REQUIRE_ERR(v->Clone(f, 0, g, 0, 0, kRoot, &rec), EROFS);
  uint64_t copied = 0;
  DAXREF_REQUIRE_ERR(v->CopyRange(f, 0, g, 1, 100, kRoot, &copied, &rec), EROFS);
  DAXREF_REQUIRE_ERR(v->Reclaim(orphan), EROFS);
  DAXREF_REQUIRE_OK(v->FlushTimes());
  DAXREF_REQUIRE_OK(v->Sync());

  // Poison: in memory, not in the store; clearing is refused.
  std::vector<uint64_t> pblocks;
  DAXREF_REQUIRE_OK(v->MapRange(f, 0, kBlockSize, [&](const MappedSegment& seg) {
    pblocks.push_back(seg.pool_off / kBlockSize);
    return true;
  }));
  REQUIRE(pblocks.size() == 1);
  PoisonOutcome out;
  DAXREF_REQUIRE_OK(v->MarkBad(pblocks[0], pblocks[0] + 1, true,
                               BadOrigin{BadOriginKind::kInjected, 0, 1}, &out));
  CHECK(out.owned == 1);
  CHECK(v->IsBad(pblocks[0], pblocks[0] + 1));
  CHECK(v->bad_blocks() == 1);
  CHECK(BadRecords(v->db()).empty());
  ClearOutcome cleared;
  DAXREF_REQUIRE_ERR(v->ClearBad(pblocks[0], pblocks[0] + 1, &cleared), EROFS);
  CHECK(v->IsBad(pblocks[0], pblocks[0] + 1));
  v.reset();

  CHECK(DirFiles(s.meta_dir()) == files);
  CHECK(s.data().Read(0, 1024 * kBlockSize) == pool);

  // A read-write open: the store as before, orphan reclaimed, no poison.
  s.Reopen();
  CHECK(s.vol().bad_blocks() == 0);
  CHECK(s.vol().GetInode(orphan, &rec).err() == ENOENT);
  CHECK(s.ReadFile(f, 0, 3 * kBlockSize) == std::string(3 * kBlockSize, 'a'));
  CHECK(s.ReadFile(g, 0, 2) == "gg");
  DAXREF_REQUIRE_STORE_CLEAN(s.db(), 1024);
}

TEST_CASE("xattrs: one file's names and values are bounded; past it ENOSPC, nothing changed",
          "[meta][xattr]") {
  TestStore s;
  uint64_t f = s.MakeFile(kRootIno, "f");
  const std::string max(kMaxXattrValueLen, 'm');
  DAXREF_REQUIRE_OK(s.vol().SetXattr(f, "user.a", max, 0));
  // "user.a" + NUL + value: 65543 bytes; the rest of the 128 KiB is free.
  const uint64_t room = kMaxXattrBytesPerInode - (7 + max.size()) - 7;
  const InodeRecord before = s.Inode(f);
  DAXREF_REQUIRE_ERR(s.vol().SetXattr(f, "user.b", std::string(room + 1, 'b'), 0), ENOSPC);
  std::string names;
  DAXREF_REQUIRE_OK(s.vol().ListXattr(f, &names));
  CHECK(names == std::string("user.a\0", 7));
  CHECK(s.Inode(f).ctime.sec == before.ctime.sec);
  CHECK(s.Inode(f).ctime.nsec == before.ctime.nsec);
  DAXREF_REQUIRE_OK(s.vol().SetXattr(f, "user.b", std::string(room, 'b'), 0));
  // Replacing counts the new value only.
  DAXREF_REQUIRE_OK(s.vol().SetXattr(f, "user.a", std::string(10, 'm'), XATTR_REPLACE));
  DAXREF_REQUIRE_OK(s.vol().SetXattr(f, "user.a", max, XATTR_REPLACE));
  DAXREF_REQUIRE_ERR(s.vol().SetXattr(f, "user.c", "", 0), ENOSPC);
  DAXREF_REQUIRE_OK(s.vol().RemoveXattr(f, "user.b"));
  DAXREF_REQUIRE_OK(s.vol().SetXattr(f, "user.c", "", 0));
  // Another file has its own budget.
  uint64_t g = s.MakeFile(kRootIno, "g");
  DAXREF_REQUIRE_OK(s.vol().SetXattr(g, "user.a", max, 0));
}

}  // namespace daxref::testing
