// A filesystem of the previous format, opened by this one: test/data/
// pool-format-1.tar.gz holds a small filesystem that mkfs.daxref and the
// daemon of commit 3188243 made (pool format 1, metadata format 3; how, in
// test/data/README.md). Opening it read-write must upgrade the pool to
// format 2 and keep every file's bytes, names, links, xattrs and sharing;
// the checker must find nothing wrong before or after.
//
// fs_upgrade_test.cc does the same through a real mount and fsck.daxref.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "meta/format.h"
#include "meta/superblock.h"
#include "meta/volume.h"
#include "test/meta_helpers.h"
#include "test/upgrade_fixture.h"

namespace daxref {
namespace {

using testing::kRoot;
using testing::TempDir;

// A Volume on the unpacked filesystem, with file bytes read from its pool
// file (the memory DataPlane only stands in for writes, of which there are
// none here).
class OldFilesystem {
 public:
  OldFilesystem() : source_(dir_.path() + "/fs") {
    std::string err = upgrade::Unpack(DAXREF_TEST_DATA, dir_.path());
    INFO(err);
    REQUIRE(err.empty());
  }
  ~OldFilesystem() { Close(); }
  const std::string& source() const { return source_; }

  Superblock PoolSuperblock() {
    Superblock sb;
    bool backup = true;
    DAXREF_REQUIRE_OK(ReadPoolSuperblock(PoolPath(source_), &sb, &backup));
    REQUIRE_FALSE(backup);
    return sb;
  }
  // The backup copy in the pool's last block, decoded on its own.
  Superblock BackupSuperblock(uint64_t block_count) {
    std::string block(kBlockSize, '\0');
    int fd = open(PoolPath(source_).c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    ssize_t n = pread(fd, block.data(), kBlockSize, (block_count - 1) * kBlockSize);
    close(fd);
    REQUIRE(n == static_cast<ssize_t>(kBlockSize));
    Superblock sb;
    DAXREF_REQUIRE_OK(DecodeSuperblock(block.data(), &sb));
    return sb;
  }

  void Open() {
    Superblock sb = PoolSuperblock();
    data_ = std::make_unique<testing::MemData>(sb.block_count, testing::kPoolFill);
    auto r = Volume::Open(
        MetaPath(source_), sb, data_.get(),
        Volume::Options{.block_cache_bytes = 8 << 20, .pool_path = PoolPath(source_), .log = {}});
    DAXREF_REQUIRE_OK(r.status());
    vol_ = std::move(r.value());
    block_count_ = sb.block_count;
  }
  void Close() { vol_.reset(); }
  Volume& vol() {
    REQUIRE(vol_ != nullptr);
    return *vol_;
  }

  InodeRecord Path(std::string_view path) {
    InodeRecord r;
    DAXREF_REQUIRE_OK(vol().GetInode(kRootIno, &r));
    size_t at = 0;
    while (at < path.size()) {
      size_t slash = path.find('/', at);
      std::string_view part =
          path.substr(at, slash == std::string_view::npos ? path.npos : slash - at);
      INFO(path);
      DAXREF_REQUIRE_OK(vol().Lookup(r.ino, part, &r));
      if (slash == std::string_view::npos) break;
      at = slash + 1;
    }
    return r;
  }
  // A file's bytes as a reader sees them: holes as zeros, the rest from the
  // pool file.
  std::string Read(const InodeRecord& r) {
    std::string out;
    int fd = open(PoolPath(source_).c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    DAXREF_REQUIRE_OK(vol().MapRange(r.ino, 0, r.size, [&](const MappedSegment& s) {
      std::string piece(s.len, '\0');
      if (!s.hole && pread(fd, piece.data(), s.len, static_cast<off_t>(s.pool_off)) !=
                         static_cast<ssize_t>(s.len))
        return false;
      out += piece;
      return true;
    }));
    close(fd);
    return out;
  }
  // The pool offset of each block of a file, 0 for a hole.
  std::vector<uint64_t> Blocks(const InodeRecord& r) {
    std::vector<uint64_t> out;
    DAXREF_REQUIRE_OK(vol().MapRange(r.ino, 0, r.size, [&](const MappedSegment& s) {
      for (uint64_t b = 0; b < (s.len + kBlockSize - 1) / kBlockSize; ++b)
        out.push_back(s.hole ? 0 : s.pool_off + b * kBlockSize);
      return true;
    }));
    return out;
  }
  void RequireClean() { DAXREF_REQUIRE_STORE_CLEAN(vol().db(), block_count_); }

 private:
  TempDir dir_;
  std::string source_;
  std::unique_ptr<testing::MemData> data_;
  std::unique_ptr<Volume> vol_;
  uint64_t block_count_ = 0;
};

void RequireContents(OldFilesystem& fs) {
  InodeRecord hello = fs.Path("hello.txt");
  REQUIRE(fs.Read(hello) == upgrade::kHello);
  REQUIRE(hello.nlink == 2);
  REQUIRE(fs.Path("dir/hello-link").ino == hello.ino);
  std::string note;
  DAXREF_REQUIRE_OK(fs.vol().GetXattr(hello.ino, "user.note", &note));
  REQUIRE(note == upgrade::kNote);

  InodeRecord dir = fs.Path("dir");
  REQUIRE(S_ISDIR(dir.mode));
  REQUIRE(dir.nlink == 3);
  InodeRecord empty = fs.Path("dir/sub/empty");
  REQUIRE(S_ISREG(empty.mode));
  REQUIRE(empty.size == 0);

  InodeRecord pattern = fs.Path("dir/pattern.bin");
  InodeRecord clone = fs.Path("dir/pattern-clone.bin");
  REQUIRE(fs.Read(pattern) == upgrade::Pattern());
  REQUIRE(fs.Read(clone) == upgrade::Clone());
  // The pair shares every block but the first, which the write gave the
  // copy of its own.
  std::vector<uint64_t> pb = fs.Blocks(pattern), cb = fs.Blocks(clone);
  REQUIRE(pb.size() == 6);
  REQUIRE(cb.size() == 6);
  REQUIRE(pb[0] != cb[0]);
  for (size_t i = 1; i < 5; ++i) REQUIRE(pb[i] == cb[i]);
  REQUIRE((pattern.flags & kInodeReflinked) != 0);
  REQUIRE((clone.flags & kInodeReflinked) != 0);

  InodeRecord link = fs.Path("link");
  REQUIRE(S_ISLNK(link.mode));
  std::string target;
  DAXREF_REQUIRE_OK(fs.vol().ReadLink(link.ino, &target));
  REQUIRE(target == upgrade::kLinkTarget);

  InodeRecord sparse = fs.Path("sparse.bin");
  REQUIRE(fs.Read(sparse) == upgrade::Sparse());
  REQUIRE(sparse.blocks == 1);
}

}  // namespace

TEST_CASE("upgrade: a pool format 1 filesystem opens as format 2 with every byte kept",
          "[format][upgrade]") {
  OldFilesystem fs;
  Superblock before = fs.PoolSuperblock();
  REQUIRE(before.version == 1);
  REQUIRE(before.generation == 0);
  REQUIRE(before.store_sequence == 0);
  REQUIRE(before.block_count == 256);

  fs.Open();
  // The open rewrote both superblock copies as format 2, at generation 1,
  // with the same identity.
  Superblock after = fs.PoolSuperblock();
  REQUIRE(after.version == 2);
  REQUIRE(after.generation == 1);
  REQUIRE(after.uuid == before.uuid);
  REQUIRE(after.block_count == before.block_count);
  REQUIRE(after.created == before.created);
  Superblock backup = fs.BackupSuperblock(after.block_count);
  REQUIRE(backup.version == 2);
  REQUIRE(backup.generation == 1);
  REQUIRE(backup.uuid == before.uuid);
  // The store was metadata format 3 and is format 5 now (a format 3 store
  // is one without Q and G records); its generation now matches the pool's.
  std::string v;
  REQUIRE(fs.vol().db()->Get(rocksdb::ReadOptions(), keys::Misc(kMiscFormat), &v).ok());
  REQUIRE(v == std::string("\0\0\0\5", 4));
  REQUIRE(fs.vol().db()->Get(rocksdb::ReadOptions(), keys::Misc(kMiscGeneration), &v).ok());
  REQUIRE(v == EncodeLength(1));
  REQUIRE_FALSE(testing::HasKey(fs.vol().db(), keys::Misc(kMiscGenerationPending)));

  RequireContents(fs);
  fs.RequireClean();

  // Reopened: the upgrade is done once; the next open only advances the
  // generation.
  fs.Close();
  fs.Open();
  REQUIRE(fs.PoolSuperblock().version == 2);
  REQUIRE(fs.PoolSuperblock().generation == 2);
  RequireContents(fs);
  fs.RequireClean();
}

TEST_CASE("upgrade: the pool format 1 filesystem is clean before it is upgraded",
          "[format][upgrade]") {
  // The checker reads the store as the old code left it (no Volume, so no
  // upgrade): a problem found later is the upgrade's, not the artifact's.
  OldFilesystem fs;
  rocksdb::DB* raw = nullptr;
  rocksdb::Options o;
  REQUIRE(rocksdb::DB::OpenForReadOnly(o, MetaPath(fs.source()), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  DAXREF_REQUIRE_STORE_CLEAN(db.get(), 256);
  REQUIRE(fs.PoolSuperblock().version == 1);
}

}  // namespace daxref
