// What an open of the metadata store trusts (meta/store.h): the generation
// shared with the pool, the store's last update against the pool's record
// of it, a damaged MANIFEST cut at every record boundary, records that
// point outside the pool, and the owner walk's single snapshot. Against a
// real RocksDB and a real pool file (superblock copies only; file bytes
// live in the memory data plane).
#include <fcntl.h>
#include <rocksdb/db.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "meta/codec.h"
#include "meta/store.h"
#include "meta/superblock.h"
#include "meta/volume.h"
#include "test/meta_helpers.h"

namespace daxref {
namespace {

using testing::DumpStore;
using testing::kRoot;
using testing::MemData;
using testing::Pattern;
using testing::TempDir;
namespace fsys = std::filesystem;

constexpr uint64_t kBlocks = 256;

// Every file under `dir`, by relative path, with its bytes.
std::map<std::string, std::string> TreeBytes(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fsys::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    out[fsys::relative(e.path(), dir).string()] = bytes;
  }
  return out;
}

// Every record of the store at `meta_dir` but the generation's own, read
// without changing anything.
testing::Dump ContentOf(const std::string& meta_dir) {
  auto db = OpenStoreReadOnly(meta_dir);
  REQUIRE(db.ok());
  testing::Dump d = DumpStore(db->get());
  std::erase_if(d, [](const auto& kv) {
    return kv.first == keys::Misc(kMiscGeneration) ||
           kv.first == keys::Misc(kMiscGenerationPending);
  });
  return d;
}

// A filesystem as mkfs leaves it, in a directory: SOURCE/pool (a sparse file
// with its two superblock copies) and SOURCE/meta. File bytes go to a memory
// data plane, which outlives reopens.
class PoolStore {
 public:
  PoolStore() : sb_(testing::TestSuperblock(kBlocks)), data_(kBlocks, 0) {
    int fd = open(pool().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, kBlocks * kBlockSize) == 0);
    close(fd);
    DAXREF_REQUIRE_OK(WritePoolSuperblocks(pool(), sb_));
    DAXREF_REQUIRE_OK(Volume::Create(meta(), sb_, kRoot, 0755));
  }
  std::string source() const { return dir_.path(); }
  std::string pool() const { return PoolPath(source()); }
  std::string meta() const { return MetaPath(source()); }

  Superblock ReadSuperblock() {
    Superblock sb;
    bool backup = false;
    DAXREF_REQUIRE_OK(ReadPoolSuperblock(pool(), &sb, &backup));
    REQUIRE_FALSE(backup);
    return sb;
  }
  // Opens as the daemon does: the superblock read from the pool file, the
  // generation advanced.
  Status Open() {
    vol_.reset();
    Superblock sb;
    bool backup = false;
    DAXREF_RETURN_IF_ERROR(ReadPoolSuperblock(pool(), &sb, &backup));
    Volume::Options o;
    o.block_cache_bytes = 8 << 20;
    o.pool_path = pool();
    auto r = Volume::Open(meta(), sb, &data_, o);
    if (!r.ok()) return r.status();
    vol_ = std::move(r.value());
    return Status::Ok();
  }
  void Close() { vol_.reset(); }
  Volume& vol() {
    REQUIRE(vol_ != nullptr);
    return *vol_;
  }
  uint64_t MakeFile(const std::string& name, const std::string& bytes) {
    InodeRecord r;
    DAXREF_REQUIRE_OK(vol().MakeNode(kRootIno, name, S_IFREG | 0644, 0, kRoot, "", &r));
    InodeRecord w;
    DAXREF_REQUIRE_OK(vol().Write(r.ino, 0, bytes.data(), bytes.size(), kRoot, &w));
    return r.ino;
  }

 private:
  TempDir dir_;
  Superblock sb_;
  MemData data_;
  std::unique_ptr<Volume> vol_;
};

// The stored generation records, read behind the Volume's back.
StoreIdentity IdentityAt(const std::string& meta_dir) {
  auto db = OpenStoreReadOnly(meta_dir);
  REQUIRE(db.ok());
  StoreIdentity id;
  DAXREF_REQUIRE_OK(ReadStoreIdentity(db->get(), rocksdb::ReadOptions(), &id));
  return id;
}

void PutRaw(const std::string& meta_dir, const std::string& key, const std::string* value) {
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::Open(rocksdb::Options(), meta_dir, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (value)
    REQUIRE(db->Put(wo, key, *value).ok());
  else
    REQUIRE(db->Delete(wo, key).ok());
}

// Requires an open of `st` to fail with `err` and a message containing
// `words`, leaving every byte of SOURCE as it was.
void RequireRefused(PoolStore& st, int err, const std::string& words) {
  auto before = TreeBytes(st.source());
  Status s = st.Open();
  INFO(s.message());
  REQUIRE(s.err() == err);
  REQUIRE(s.message().find(words) != std::string::npos);
  REQUIRE(s.message().find('\n') == std::string::npos);
  REQUIRE(TreeBytes(st.source()) == before);
}

TEST_CASE("Every read-write open advances the generation of pool and store", "[store]") {
  PoolStore st;
  REQUIRE(st.ReadSuperblock().generation == 0);
  REQUIRE(IdentityAt(st.meta()).generation == 0);
  for (uint64_t g = 1; g <= 3; ++g) {
    DAXREF_REQUIRE_OK(st.Open());
    st.Close();
    Superblock sb = st.ReadSuperblock();
    REQUIRE(sb.generation == g);
    REQUIRE(sb.version == kPoolFormatVersion);
    StoreIdentity id = IdentityAt(st.meta());
    REQUIRE(id.generation == g);
    REQUIRE_FALSE(id.generation_pending);
    // The clean close recorded how far the store got.
    REQUIRE(sb.store_sequence > 0);
  }
  // The backup copy says the same.
  std::string pool_bytes = TreeBytes(st.source()).at("pool");
  Superblock backup;
  DAXREF_REQUIRE_OK(DecodeSuperblock(pool_bytes.data() + (kBlocks - 1) * kBlockSize, &backup));
  REQUIRE(backup.generation == 3);
}

TEST_CASE("A version 1 pool superblock is read and upgraded by the first open", "[store]") {
  PoolStore st;
  Superblock sb = st.ReadSuperblock();
  // Version 1's layout: the checksum at byte 48, no generation.
  std::string b(kBlockSize, '\0');
  std::string h(kPoolMagic, sizeof(kPoolMagic));
  codec::PutU32(&h, 1);
  codec::PutU32(&h, kBlockSize);
  codec::PutU64(&h, sb.block_count);
  h.append(reinterpret_cast<const char*>(sb.uuid.data()), 16);
  codec::PutU64(&h, sb.created);
  codec::PutU32(&h, Crc32c(h.data(), 48));
  b.replace(0, h.size(), h);
  Superblock v1;
  DAXREF_REQUIRE_OK(DecodeSuperblock(b.data(), &v1));
  REQUIRE(v1.version == 1);
  REQUIRE(v1.generation == 0);
  REQUIRE(v1.uuid == sb.uuid);
  int fd = open(st.pool().c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(pwrite(fd, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()));
  REQUIRE(pwrite(fd, b.data(), b.size(), (kBlocks - 1) * kBlockSize) ==
          static_cast<ssize_t>(b.size()));
  close(fd);

  DAXREF_REQUIRE_OK(st.Open());
  st.Close();
  Superblock now = st.ReadSuperblock();
  REQUIRE(now.version == kPoolFormatVersion);
  REQUIRE(now.generation == 1);
  REQUIRE(now.uuid == sb.uuid);
}

TEST_CASE("A stale copy of either half is refused, and nothing is changed", "[store]") {
  PoolStore st;
  TempDir saved;
  DAXREF_REQUIRE_OK(st.Open());
  std::string a = Pattern(3 * kBlockSize, 1);
  st.MakeFile("a", a);
  st.Close();  // generation 1
  fsys::copy(st.source(), saved.path() + "/src", fsys::copy_options::recursive);
  DAXREF_REQUIRE_OK(st.Open());
  st.MakeFile("b", Pattern(2 * kBlockSize, 2));
  st.Close();  // generation 2

  SECTION("older metadata") {
    fsys::remove_all(st.meta());
    fsys::copy(saved.path() + "/src/meta", st.meta(), fsys::copy_options::recursive);
    RequireRefused(st, ESTALE, "metadata is older than the pool: generation 1 < 2");
  }
  SECTION("an older pool") {
    fsys::remove(st.pool());
    fsys::copy(saved.path() + "/src/pool", st.pool());
    RequireRefused(st, ESTALE, "pool is older than the metadata: generation 1 < 2");
  }
}

TEST_CASE("A crash in the middle of an advance leaves a pair that opens", "[store]") {
  PoolStore st;
  DAXREF_REQUIRE_OK(st.Open());
  st.Close();  // generation 1 in both
  std::string two = EncodeLength(2);

  SECTION("after the store recorded the target, before the pool took it") {
    PutRaw(st.meta(), keys::Misc(kMiscGenerationPending), &two);
    DAXREF_REQUIRE_OK(st.Open());
    st.Close();
    REQUIRE(st.ReadSuperblock().generation == 3);
    REQUIRE(IdentityAt(st.meta()).generation == 3);
  }
  SECTION("after the pool took it, before the store did") {
    PutRaw(st.meta(), keys::Misc(kMiscGenerationPending), &two);
    Superblock sb = st.ReadSuperblock();
    sb.generation = 2;
    DAXREF_REQUIRE_OK(WritePoolSuperblocks(st.pool(), sb));
    DAXREF_REQUIRE_OK(st.Open());
    st.Close();
    REQUIRE(st.ReadSuperblock().generation == 3);
    REQUIRE(IdentityAt(st.meta()).generation == 3);
  }
  SECTION("a pool past the pending target is not part of that crash") {
    PutRaw(st.meta(), keys::Misc(kMiscGenerationPending), &two);
    Superblock sb = st.ReadSuperblock();
    sb.generation = 3;
    DAXREF_REQUIRE_OK(WritePoolSuperblocks(st.pool(), sb));
    RequireRefused(st, ESTALE, "metadata is older than the pool: generation 1 < 3");
  }
}

TEST_CASE("The store proves it holds the filesystem it claims", "[store]") {
  PoolStore st;
  DAXREF_REQUIRE_OK(st.Open());
  uint64_t f = st.MakeFile("f", Pattern(kBlockSize, 3));
  st.Close();

  SECTION("no root directory") {
    PutRaw(st.meta(), keys::Inode(kRootIno), nullptr);
    RequireRefused(st, EUCLEAN, "no root directory");
  }
  SECTION("an inode counter behind the inodes") {
    std::string v = EncodeLength(f);
    PutRaw(st.meta(), keys::Misc(kMiscNextIno), &v);
    RequireRefused(st, EUCLEAN, "lies past the inode counter");
  }
  SECTION("no uuid") {
    PutRaw(st.meta(), keys::Misc(kMiscUuid), nullptr);
    RequireRefused(st, EUCLEAN, "no pool uuid");
  }
  SECTION("a malformed generation") {
    std::string v = "xx";
    PutRaw(st.meta(), keys::Misc(kMiscGeneration), &v);
    RequireRefused(st, EUCLEAN, "generation record is malformed");
  }
  SECTION("a store that lost updates the pool saw") {
    // The pool recorded the store's last update at close; a store whose
    // history ends before it lost something (here: the pool says so).
    Superblock sb = st.ReadSuperblock();
    sb.store_sequence += 1000;
    DAXREF_REQUIRE_OK(WritePoolSuperblocks(st.pool(), sb));
    RequireRefused(st, ESTALE, "metadata is older than the pool: it ends at update");
  }
}

// Physical record boundaries of a RocksDB log file (the MANIFEST is one):
// 32 KiB blocks of records with a 7-byte header (checksum, length, type);
// a block's last bytes are padding when no header fits.
std::vector<size_t> LogRecordEnds(const std::string& bytes) {
  constexpr size_t kLogBlock = 32768, kHeader = 7;
  std::vector<size_t> ends;
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t left = kLogBlock - pos % kLogBlock;
    if (left < kHeader) {
      pos += left;
      continue;
    }
    if (pos + kHeader > bytes.size()) break;
    size_t len = static_cast<uint8_t>(bytes[pos + 4]) | static_cast<uint8_t>(bytes[pos + 5]) << 8;
    pos += kHeader + len;
    ends.push_back(pos);
  }
  return ends;
}

TEST_CASE("A MANIFEST cut short never opens with data missing", "[store]") {
  PoolStore st;
  // Several sessions, each flushed at close, plus a flush in the middle of
  // one: several table files and MANIFEST edits.
  for (int session = 0; session < 3; ++session) {
    DAXREF_REQUIRE_OK(st.Open());
    for (int i = 0; i < 5; ++i)
      st.MakeFile("f" + std::to_string(session) + "_" + std::to_string(i),
                  Pattern(kBlockSize + 17 * i, session * 10 + i));
    REQUIRE(st.vol().db()->Flush(rocksdb::FlushOptions()).ok());
    st.MakeFile("late" + std::to_string(session), Pattern(100, session));
    st.Close();
  }
  const testing::Dump full = ContentOf(st.meta());
  std::string manifest_name;
  for (const auto& e : fsys::directory_iterator(st.meta()))
    if (e.path().filename().string().rfind("MANIFEST-", 0) == 0)
      manifest_name = e.path().filename().string();
  REQUIRE(!manifest_name.empty());
  const auto original = TreeBytes(st.source());
  const std::string manifest = original.at("meta/" + manifest_name);
  std::vector<size_t> cuts = LogRecordEnds(manifest);
  REQUIRE(cuts.size() >= 4);
  REQUIRE(cuts.back() == manifest.size());
  cuts.pop_back();  // the whole file is not damage
  // Cuts inside records too, as `truncate -s 168` makes.
  for (size_t at :
       {size_t{0}, size_t{1}, size_t{100}, size_t{168}, manifest.size() / 2, manifest.size() - 1})
    if (at < manifest.size()) cuts.push_back(at);

  size_t refused = 0;
  for (size_t cut : cuts) {
    CAPTURE(cut, manifest.size());
    // Put the original back, then cut.
    for (const auto& [rel, bytes] : original) {
      std::ofstream out(st.source() + "/" + rel, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    for (const auto& e : fsys::directory_iterator(st.meta()))
      if (!original.count("meta/" + e.path().filename().string())) fsys::remove_all(e.path());
    REQUIRE(truncate((st.meta() + "/" + manifest_name).c_str(), static_cast<off_t>(cut)) == 0);
    auto damaged = TreeBytes(st.source());
    Status s = st.Open();
    if (!s.ok()) {
      INFO(s.message());
      REQUIRE(s.message().find('\n') == std::string::npos);
      REQUIRE(TreeBytes(st.source()) == damaged);
      refused++;
      continue;
    }
    // It opened: then nothing was lost.
    st.Close();
    REQUIRE(ContentOf(st.meta()) == full);
  }
  // Most cuts lose table files: those must all have been refused.
  REQUIRE(refused >= cuts.size() / 2);
}

TEST_CASE("Records pointing outside the pool are Corruption, and nothing is written", "[store]") {
  PoolStore st;
  DAXREF_REQUIRE_OK(st.Open());
  uint64_t f = st.MakeFile("f", Pattern(4 * kBlockSize, 5));
  st.Close();
  // Point f's one extent past the end of the pool, or make it overflow.
  std::string key = keys::Extent(f, 0);
  for (auto [pblock, len] : {std::pair<uint64_t, uint64_t>{kBlocks - 2, 4},
                             {UINT64_MAX - 1, 4},
                             {0, 4},
                             {kBlocks + 100, 1}}) {
    CAPTURE(pblock, len);
    std::string v = EncodeExtent(Extent{0, pblock, len});
    PutRaw(st.meta(), key, &v);
    DAXREF_REQUIRE_OK(st.Open());  // extents are checked as they are read
    testing::Dump before = DumpStore(st.vol().db());
    Status s = st.vol().MapRange(f, 0, 4 * kBlockSize, [](const MappedSegment&) { return true; });
    INFO(s.message());
    REQUIRE(s.err() == EUCLEAN);
    REQUIRE(s.message().find("inode " + std::to_string(f)) != std::string::npos);
    InodeRecord r;
    std::string bytes = Pattern(100, 9);
    REQUIRE(st.vol().Write(f, 10, bytes.data(), bytes.size(), kRoot, &r).err() == EUCLEAN);
    REQUIRE(st.vol().Fallocate(f, kFallocPunchHole | kFallocKeepSize, 0, kBlockSize, &r).err() ==
            EUCLEAN);
    testing::RequireSameStore(before, DumpStore(st.vol().db()));
    st.Close();
  }
}

TEST_CASE("An owner walk sees one snapshot while a batch moves records between classes",
          "[store][rmap]") {
  testing::TestStore st(kBlocks);
  // a: 4 blocks (class 2); b: 8 blocks (class 3), right after it.
  uint64_t a = st.MakeFile(kRootIno, "a");
  st.WriteFile(a, 0, Pattern(4 * kBlockSize, 1));
  uint64_t b = st.MakeFile(kRootIno, "b");
  st.WriteFile(b, 0, Pattern(8 * kBlockSize, 2));
  std::map<uint64_t, uint64_t> seen;  // ino -> len of the record met
  bool punched = false;
  DAXREF_REQUIRE_OK(st.vol().QueryOwners(0, kBlocks, [&](const RmapRecord& r) {
    seen[r.ino] = r.len;
    if (r.ino == a && !punched) {
      // Class 2 is being walked; b's record leaves class 3 for class 1
      // before the walk reaches class 3.
      InodeRecord out;
      DAXREF_REQUIRE_OK(st.vol().Fallocate(b, kFallocPunchHole | kFallocKeepSize, 2 * kBlockSize,
                                           6 * kBlockSize, &out));
      punched = true;
    }
    return true;
  }));
  REQUIRE(punched);
  REQUIRE(seen.count(a) == 1);
  // b is met as the walk's snapshot had it.
  REQUIRE(seen.count(b) == 1);
  REQUIRE(seen[b] == 8);
  // And a walk after the batch sees the new record.
  seen.clear();
  DAXREF_REQUIRE_OK(st.vol().QueryOwners(0, kBlocks, [&](const RmapRecord& r) {
    seen[r.ino] = r.len;
    return true;
  }));
  REQUIRE(seen[b] == 2);
}

}  // namespace
}  // namespace daxref
