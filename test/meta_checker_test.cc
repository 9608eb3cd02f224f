// The checker: silent on a clean store, and each kind of damage, injected
// straight into RocksDB, is reported.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "meta/checker.h"
#include "meta/volume.h"
#include "meta_helpers.h"

namespace daxref {
namespace {

using testing::CheckOutcome;
using testing::ExtentRecords;
using testing::FreeRecords;
using testing::Pattern;
using testing::RunChecker;
using testing::ScanPrefix;
using testing::TestStore;

constexpr uint64_t kB = kBlockSize;

// A store with a bit of everything: nested directories, files with several
// extents, a hard link, a symlink, xattrs and an orphan.
struct CleanStore {
  TestStore st;
  uint64_t d1 = 0, sub = 0, data = 0, small = 0, orphan = 0;

  CleanStore() {
    Volume& v = st.vol();
    d1 = st.MakeDir(kRootIno, "d1");
    sub = st.MakeDir(d1, "sub");
    data = st.MakeFile(kRootIno, "data");
    small = st.MakeFile(sub, "small");
    st.WriteFile(data, 0, Pattern(4 * kB, 1));
    st.WriteFile(small, 0, Pattern(100, 2));
    st.WriteFile(data, 10 * kB, Pattern(3 * kB, 3));  // a second extent
    InodeRecord r;
    DAXREF_REQUIRE_OK(v.Link(small, d1, "small-link", &r));
    DAXREF_REQUIRE_OK(v.MakeNode(d1, "sym", S_IFLNK | 0777, 0, testing::kRoot, "../data", &r));
    DAXREF_REQUIRE_OK(v.SetXattr(data, "user.k", "v", 0));
    orphan = st.MakeFile(kRootIno, "doomed");
    st.WriteFile(orphan, 0, Pattern(2 * kB, 4));
    DAXREF_REQUIRE_OK(v.Unlink(kRootIno, "doomed", nullptr, &r));
    REQUIRE(r.nlink == 0);
  }
  rocksdb::DB* db() { return st.db(); }
  void Put(const std::string& k, const std::string& v) {
    REQUIRE(db()->Put(rocksdb::WriteOptions(), k, v).ok());
  }
  void Delete(const std::string& k) {
    REQUIRE(testing::HasKey(db(), k));
    REQUIRE(db()->Delete(rocksdb::WriteOptions(), k).ok());
  }
  InodeRecord RawInode(uint64_t ino) {
    std::string v;
    REQUIRE(db()->Get(rocksdb::ReadOptions(), keys::Inode(ino), &v).ok());
    InodeRecord r;
    DAXREF_REQUIRE_OK(DecodeInode(ino, v, &r));
    return r;
  }
  DirentRecord RawDirent(uint64_t dir, const std::string& name) {
    std::string v;
    REQUIRE(db()->Get(rocksdb::ReadOptions(), keys::Dirent(dir, name), &v).ok());
    DirentRecord d;
    DAXREF_REQUIRE_OK(DecodeDirent(v, &d));
    return d;
  }
  CheckOutcome Check() { return RunChecker(db(), st.sb().block_count); }
  // Closes the store and checks it on disk with CheckStoreAt.
  CheckOutcome CheckClosed() {
    st.Close();
    CheckOutcome out;
    DAXREF_REQUIRE_OK(CheckStoreAt(
        st.meta_dir(), st.sb().block_count,
        [&](const std::string& p) { out.problems.push_back(p); }, &out.report));
    return out;
  }
};

TEST_CASE("The checker finds nothing wrong with a clean store", "[checker]") {
  CleanStore cs;
  CheckOutcome c = cs.Check();
  INFO(c.Text());
  REQUIRE(c.report.problems == 0);
  // The report counts what is there.
  REQUIRE(c.report.inodes == 7);  // root, d1, sub, data, small, sym, doomed
  REQUIRE(c.report.directories == 3);
  REQUIRE(c.report.orphans == 1);
  REQUIRE(c.report.extents == ExtentRecords(cs.db(), cs.data).size() +
                                  ExtentRecords(cs.db(), cs.small).size() +
                                  ExtentRecords(cs.db(), cs.orphan).size());
  REQUIRE(ExtentRecords(cs.db(), cs.data).size() == 2);
  REQUIRE(c.report.owned_blocks == 4 + 3 + 1 + 2);
  REQUIRE(c.report.free_blocks == cs.st.free_blocks());
  REQUIRE(c.report.owned_blocks + c.report.free_blocks == cs.st.sb().data_blocks());
  REQUIRE(c.report.bad_blocks == 0);

  SECTION("and still nothing after the orphan is reclaimed and the store reopened") {
    DAXREF_REQUIRE_OK(cs.st.vol().Reclaim(cs.orphan));
    cs.st.Reopen();
    CheckOutcome c2 = cs.Check();
    INFO(c2.Text());
    REQUIRE(c2.report.problems == 0);
    REQUIRE(c2.report.orphans == 0);
    REQUIRE(c2.report.inodes == 6);
  }
  SECTION("CheckStoreAt on the closed store agrees") {
    CheckOutcome c2 = cs.CheckClosed();
    REQUIRE(c2.problems.empty());
    REQUIRE(c2.report.problems == 0);
    REQUIRE(c2.report.inodes == 7);
  }
}

TEST_CASE("The checker reports each kind of damage", "[checker]") {
  CleanStore cs;
  {
    CheckOutcome clean = cs.Check();
    INFO(clean.Text());
    REQUIRE(clean.report.problems == 0);
  }
  const auto data_ext = ExtentRecords(cs.db(), cs.data);
  REQUIRE(data_ext.size() == 2);
  const Extent e = data_ext[0];
  // What the checker must say about the damage (a phrase of its message).
  std::vector<std::string> expect;

  SECTION("a reverse-map record deleted") {
    cs.Delete(keys::Rmap(e.pblock, e.len, cs.data, e.fblock));
    expect = {"no matching reverse-map record"};
  }
  SECTION("a reverse-map record naming an inode that does not map the block") {
    cs.Delete(keys::Rmap(e.pblock, e.len, cs.data, e.fblock));
    cs.Put(keys::Rmap(e.pblock, e.len, cs.small, e.fblock), EncodeLength(e.len));
    expect = {"no matching reverse-map record", "does not map it"};
  }
  SECTION("a stray free record over an owned extent") {
    cs.Put(keys::Free(e.pblock + 1), EncodeLength(1));
    expect = {"claimed twice"};
  }
  SECTION("a bad-block record over a free block") {
    auto free = FreeRecords(cs.db());
    REQUIRE_FALSE(free.empty());
    cs.Put(keys::Bad(free.begin()->first), EncodeLength(1));
    expect = {"claimed twice"};
  }
  SECTION("two bad-block records over one block") {
    cs.Put(keys::Bad(e.pblock), EncodeLength(2));
    cs.Put(keys::Bad(e.pblock + 1), EncodeLength(1));
    expect = {"overlapping bad-block records"};
  }
  SECTION("a file's nlink bumped") {
    InodeRecord r = cs.RawInode(cs.small);
    REQUIRE(r.nlink == 2);
    r.nlink = 3;
    cs.Put(keys::Inode(cs.small), EncodeInode(r));
    expect = {"nlink 3 but 2 entries"};
  }
  SECTION("a directory's nlink bumped") {
    InodeRecord r = cs.RawInode(cs.d1);
    r.nlink++;
    cs.Put(keys::Inode(cs.d1), EncodeInode(r));
    expect = {"directory " + std::to_string(cs.d1) + ": nlink"};
  }
  SECTION("a dirent's cookie record removed") {
    DirentRecord d = cs.RawDirent(kRootIno, "data");
    cs.Delete(keys::DirCookie(kRootIno, d.cookie));
    expect = {"cookie"};
  }
  SECTION("a free record deleted: its blocks are unaccounted for") {
    auto free = FreeRecords(cs.db());
    REQUIRE_FALSE(free.empty());
    cs.Delete(keys::Free(free.begin()->first));
    expect = {"unaccounted"};
    if (free.size() > 1) expect = {"neither free, owned nor bad"};
  }
  SECTION("an extent (and its reverse-map record) of a missing inode") {
    // Take the last free block for it, so that the only damage is the owner.
    auto free = FreeRecords(cs.db());
    auto [start, len] = *free.rbegin();
    REQUIRE(len > 1);
    uint64_t pb = start + len - 1;
    cs.Put(keys::Free(start), EncodeLength(len - 1));
    constexpr uint64_t kGhost = 999999;
    cs.Put(keys::Extent(kGhost, 0), EncodeExtent(Extent{0, pb, 1}));
    cs.Put(keys::Rmap(pb, 1, kGhost, 0), EncodeLength(1));
    expect = {"extent of missing inode " + std::to_string(kGhost)};
  }
  SECTION("an inode's block count wrong") {
    InodeRecord r = cs.RawInode(cs.data);
    r.blocks += 1;
    cs.Put(keys::Inode(cs.data), EncodeInode(r));
    expect = {"but extents hold"};
  }
  SECTION("an extent record that disagrees with its reverse-map record") {
    Extent longer = e;
    longer.len += 1;
    cs.Put(keys::Extent(cs.data, e.fblock), EncodeExtent(longer));
    expect = {"no matching reverse-map record"};
  }
  SECTION("a directory entry naming a missing inode") {
    InodeRecord root = cs.RawInode(kRootIno);
    DirentRecord d{888888, S_IFREG, root.next_cookie++};
    cs.Put(keys::Dirent(kRootIno, "ghost"), EncodeDirent(d));
    cs.Put(keys::DirCookie(kRootIno, d.cookie), EncodeCookie(d, "ghost"));
    cs.Put(keys::Inode(kRootIno), EncodeInode(root));
    expect = {"names missing inode 888888"};
  }
  SECTION("a directory cut off from the tree") {
    DirentRecord d = cs.RawDirent(cs.d1, "sub");
    cs.Delete(keys::Dirent(cs.d1, "sub"));
    cs.Delete(keys::DirCookie(cs.d1, d.cookie));
    InodeRecord r = cs.RawInode(cs.d1);
    r.nlink--;
    cs.Put(keys::Inode(cs.d1), EncodeInode(r));
    expect = {"inode " + std::to_string(cs.sub) + " is unreachable"};
  }
  SECTION("a linked inode on the orphan list") {
    cs.Put(keys::Orphan(cs.small), "");
    expect = {"still has links"};
  }
  SECTION("an unlinked inode missing from the orphan list") {
    cs.Delete(keys::Orphan(cs.orphan));
    expect = {"not on the orphan list"};
  }
  SECTION("free space reaching into the backup superblock") {
    auto free = FreeRecords(cs.db());
    auto [start, len] = *free.rbegin();
    REQUIRE(start + len == cs.st.sb().data_end());
    cs.Put(keys::Free(start), EncodeLength(len + 1));
    expect = {"reserved"};
  }
  SECTION("a refcount record on blocks only one file owns") {
    cs.Put(keys::Refcount(e.pblock), EncodeRefcount(RefcountRecord{e.pblock, e.len, 2}));
    expect = {"refcount 2 but 1 owner"};
  }
  SECTION("the inode count off by one") {
    cs.Put(keys::Misc(kMiscInodes), EncodeLength(cs.st.vol().Stats().inodes + 1));
    expect = {"inode count says"};
  }
  SECTION("an undecodable inode record") {
    cs.Put(keys::Inode(cs.small), "junk");
    expect = {"undecodable"};
  }

  CheckOutcome c = cs.Check();
  INFO("checker problems:\n" << c.Text());
  REQUIRE(c.report.problems >= 1);
  for (const std::string& phrase : expect) {
    CAPTURE(phrase);
    REQUIRE(c.Mentions(phrase));
  }
}

TEST_CASE("CheckStoreAt reports damage in a closed store, and a missing one", "[checker]") {
  CleanStore cs;
  auto ext = ExtentRecords(cs.db(), cs.small);
  REQUIRE(ext.size() == 1);
  cs.Delete(keys::Rmap(ext[0].pblock, ext[0].len, cs.small, 0));
  CheckOutcome c = cs.CheckClosed();
  REQUIRE(c.report.problems >= 1);
  REQUIRE(c.report.problems == c.problems.size());

  testing::TempDir empty;
  CheckReport rep;
  REQUIRE_FALSE(CheckStoreAt(
                    empty.path() + "/none", 64, [](const std::string&) {}, &rep)
                    .ok());
}

}  // namespace
}  // namespace daxref
