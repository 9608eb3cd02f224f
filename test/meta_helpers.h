// Helpers shared by the meta/ unit tests (header-only): a temporary directory,
// a test superblock, a memory-backed DataPlane, a Volume on a fresh store,
// and direct inspection of the RocksDB store behind it.
//
// The memory pool starts out filled with a non-zero byte (kPoolFill), like a
// pool whose blocks were used before: anything a test reads as zero was
// zeroed by meta/, not by the allocator of the test.
#pragma once

#include <fcntl.h>
#include <rocksdb/db.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "meta/checker.h"
#include "meta/data_plane.h"
#include "meta/format.h"
#include "meta/superblock.h"
#include "meta/volume.h"

namespace daxref::testing {

// ---- assertions on Status ---------------------------------------------------

#define DAXREF_REQUIRE_OK(expr)          \
  do {                                   \
    ::daxref::Status s_ = (expr);        \
    INFO(#expr << ": " << s_.message()); \
    REQUIRE(s_.ok());                    \
  } while (0)

#define DAXREF_REQUIRE_ERR(expr, errnum)                        \
  do {                                                          \
    ::daxref::Status s_ = (expr);                               \
    INFO(#expr << ": err " << s_.err() << " " << s_.message()); \
    REQUIRE(s_.err() == (errnum));                              \
  } while (0)

// ---- temporary directory ----------------------------------------------------

// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/daxref-meta-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---- superblock and data plane ------------------------------------------------

inline Superblock TestSuperblock(uint64_t block_count) {
  static std::random_device rd;
  Superblock sb;
  sb.block_count = block_count;
  for (auto& b : sb.uuid) b = static_cast<uint8_t>(rd());
  sb.uuid[6] = static_cast<uint8_t>((sb.uuid[6] & 0x0f) | 0x40);  // version 4
  sb.uuid[8] = static_cast<uint8_t>((sb.uuid[8] & 0x3f) | 0x80);  // RFC 4122 variant
  sb.created = static_cast<uint64_t>(time(nullptr));
  return sb;
}

inline constexpr char kPoolFill = static_cast<char>(0xA5);

// The pool as a plain byte vector, modelled as page-granular memory: Write
// and Zero reach `bytes_` (what the process sees), and only Persist copies a
// range into `durable_` (what survives power loss). Writes outside the data
// area (the two superblock copies or past the pool) are counted, not done.
class MemData : public DataPlane {
 public:
  MemData(uint64_t block_count, char fill)
      : block_count_(block_count),
        bytes_(block_count * kBlockSize, fill),
        durable_(block_count * kBlockSize, fill) {}

  Status Write(uint64_t pool_off, const void* src, size_t len) override {
    if (Faults(pool_off, len)) return Status::IOError("memory fault");
    if (!InDataArea(pool_off, len)) return Status::Ok();
    memcpy(bytes_.data() + pool_off, src, len);
    writes_++;
    return Status::Ok();
  }
  Status Load(uint64_t pool_off, void* dst, size_t len) override {
    REQUIRE(pool_off + len <= bytes_.size());
    if (Faults(pool_off, len)) return Status::IOError("memory fault");
    memcpy(dst, bytes_.data() + pool_off, len);
    return Status::Ok();
  }
  Status Copy(uint64_t dst_pool_off, uint64_t src_pool_off, size_t len) override {
    if (Faults(dst_pool_off, len) || Faults(src_pool_off, len))
      return Status::IOError("memory fault");
    if (!InDataArea(dst_pool_off, len) || !InDataArea(src_pool_off, len)) return Status::Ok();
    memcpy(bytes_.data() + dst_pool_off, bytes_.data() + src_pool_off, len);
    writes_++;
    return Status::Ok();
  }
  Status Zero(uint64_t pool_off, size_t len) override {
    if (Faults(pool_off, len)) return Status::IOError("memory fault");
    if (!InDataArea(pool_off, len)) return Status::Ok();
    memset(bytes_.data() + pool_off, 0, len);
    zeroes_++;
    return Status::Ok();
  }
  // Makes every access to pool block pblock fail, as memory that raised a
  // machine check would (Volume must never touch a block it knows is bad).
  void FailBlock(uint64_t pblock) { failing_.push_back(pblock); }
  void HealBlocks() { failing_.clear(); }
  Status Persist(uint64_t pool_off, size_t len) override {
    if (fail_persist_) return Status::IOError("persist failed");
    if (!InDataArea(pool_off, len)) return Status::Ok();
    memcpy(durable_.data() + pool_off, bytes_.data() + pool_off, len);
    persists_++;
    return Status::Ok();
  }
  // Makes every Persist fail with EIO, as msync does when the pool's host
  // filesystem cannot write pages back.
  void FailPersist(bool fail) { fail_persist_ = fail; }

  std::string Read(uint64_t pool_off, size_t len) const {
    REQUIRE(pool_off + len <= bytes_.size());
    return std::string(bytes_.data() + pool_off, len);
  }
  // Overwrites pool bytes behind meta/'s back (to tell zeroed bytes from
  // bytes that were never touched).
  void Fill(uint64_t pool_off, size_t len, char c) {
    REQUIRE(pool_off + len <= bytes_.size());
    memset(bytes_.data() + pool_off, c, len);
  }
  // Everything not persisted is lost, as in a power failure.
  void LosePower() { bytes_ = durable_; }
  bool Faults(uint64_t pool_off, size_t len) const {
    for (uint64_t b : failing_)
      if (pool_off < (b + 1) * kBlockSize && pool_off + len > b * kBlockSize) return true;
    return false;
  }
  uint64_t stray_accesses() const { return stray_; }
  uint64_t writes() const { return writes_; }
  uint64_t zeroes() const { return zeroes_; }
  uint64_t persists() const { return persists_; }

 private:
  std::vector<uint64_t> failing_;  // blocks whose every access fails
  bool fail_persist_ = false;
  bool InDataArea(uint64_t off, size_t len) {
    uint64_t lo = uint64_t{kBlockSize}, hi = (block_count_ - 1) * kBlockSize;
    if (off < lo || off > hi || len > hi - off) {
      stray_++;
      return false;
    }
    return true;
  }
  uint64_t block_count_;
  std::vector<char> bytes_, durable_;
  uint64_t stray_ = 0, writes_ = 0, zeroes_ = 0, persists_ = 0;
};

// ---- store inspection ---------------------------------------------------------

// Every key/value pair whose key starts with `prefix`, in key order.
inline std::vector<std::pair<std::string, std::string>> ScanPrefix(rocksdb::DB* db,
                                                                   const std::string& prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    out.emplace_back(it->key().ToString(), it->value().ToString());
  REQUIRE(it->status().ok());
  return out;
}

inline bool HasKey(rocksdb::DB* db, const std::string& key) {
  std::string v;
  return db->Get(rocksdb::ReadOptions(), key, &v).ok();
}

// For decoding records in tests that read the store directly: a geometry
// that every block number fits (the tests' own checks of the pool come from
// the checker and the Volume, which use the real one).
inline constexpr PoolGeometry kAnyGeometry{UINT64_MAX};

// The E records of inode `ino`, decoded.
inline std::vector<Extent> ExtentRecords(rocksdb::DB* db, uint64_t ino) {
  std::vector<Extent> out;
  size_t undecodable = 0;
  for (const auto& [k, v] : ScanPrefix(db, keys::ExtentPrefix(ino))) {
    Extent e;
    if (DecodeExtent(k, v, kAnyGeometry, &e).ok())
      out.push_back(e);
    else
      undecodable++;
  }
  REQUIRE(undecodable == 0);
  return out;
}

// Every R record, decoded.
inline std::vector<RmapRecord> RmapRecords(rocksdb::DB* db) {
  std::vector<RmapRecord> out;
  size_t undecodable = 0;
  for (const auto& [k, v] : ScanPrefix(db, std::string(1, prefix::kRmap))) {
    RmapRecord r;
    if (DecodeRmap(k, v, kAnyGeometry, &r).ok())
      out.push_back(r);
    else
      undecodable++;
  }
  REQUIRE(undecodable == 0);
  return out;
}

// Every record of a pool-range prefix (F free, B bad) as start -> length.
inline std::map<uint64_t, uint64_t> RangeRecords(rocksdb::DB* db, char record_prefix) {
  std::map<uint64_t, uint64_t> out;
  size_t undecodable = 0;
  for (const auto& [k, v] : ScanPrefix(db, std::string(1, record_prefix))) {
    uint64_t len = 0;
    if (k.size() == 9 && DecodeLength(v, &len).ok())
      out[keys::U64At(k, 1)] = len;
    else
      undecodable++;
  }
  REQUIRE(undecodable == 0);
  return out;
}
inline std::map<uint64_t, uint64_t> FreeRecords(rocksdb::DB* db) {
  return RangeRecords(db, prefix::kFree);
}
inline std::map<uint64_t, uint64_t> BadRecords(rocksdb::DB* db) {
  return RangeRecords(db, prefix::kBad);
}

// Every key and value of the store: an operation changed nothing exactly
// when the dumps before and after it are equal.
using Dump = std::vector<std::pair<std::string, std::string>>;
inline Dump DumpStore(rocksdb::DB* db) {
  return ScanPrefix(db, "");
}

// Requires two dumps to be equal, naming the first key that differs.
inline void RequireSameStore(const Dump& before, const Dump& after) {
  size_t i = 0;
  while (i < before.size() && i < after.size() && before[i] == after[i]) ++i;
  if (i == before.size() && i == after.size()) return;
  std::string where = i < before.size()
                          ? "before has key prefix '" + before[i].first.substr(0, 1) + "' (" +
                                std::to_string(before[i].first.size()) + " bytes)"
                          : "after has an extra key";
  INFO("store changed at record " << i << ": " << where << "; " << before.size() << " vs "
                                  << after.size() << " records");
  REQUIRE(before == after);
}

// For Volume::Unlink and Rename: nothing holds the inode (delete it at
// once), or it is still open (orphan it).
inline const Volume::LastLinkFn kNothingHoldsIt = [](uint64_t) { return true; };
inline const Volume::LastLinkFn kStillOpen = [](uint64_t) { return false; };

struct CheckOutcome {
  std::vector<std::string> problems;
  CheckReport report;
  std::string Text() const {
    std::string s;
    for (const auto& p : problems) s += "  " + p + "\n";
    return s;
  }
  bool Mentions(std::string_view what) const {
    for (const auto& p : problems)
      if (p.find(what) != std::string::npos) return true;
    return false;
  }
};

inline CheckOutcome RunChecker(rocksdb::DB* db, uint64_t block_count) {
  CheckOutcome out;
  Status s = CheckStore(
      db, block_count, [&](const std::string& p) { out.problems.push_back(p); }, &out.report);
  INFO("CheckStore: " << s.message());
  REQUIRE(s.ok());
  REQUIRE(out.report.problems == out.problems.size());
  return out;
}

// Runs the checker over a store and requires it to find nothing.
#define DAXREF_REQUIRE_STORE_CLEAN(db, block_count)                                      \
  do {                                                                                   \
    ::daxref::testing::CheckOutcome c_ = ::daxref::testing::RunChecker(db, block_count); \
    INFO("checker problems:\n" << c_.Text());                                            \
    REQUIRE(c_.report.problems == 0);                                                    \
  } while (0)

// ---- a Volume on a fresh store --------------------------------------------------

inline constexpr Caller kRoot{0, 0};

// A fresh store in a temporary directory and the memory pool it describes,
// opened as a Volume.
class TestStore {
 public:
  explicit TestStore(uint64_t block_count = 4096, char fill = kPoolFill)
      : sb_(TestSuperblock(block_count)), data_(block_count, fill) {
    DAXREF_REQUIRE_OK(Volume::Create(meta_dir(), sb_, kRoot, 0755));
    DAXREF_REQUIRE_OK(Open());
  }
  ~TestStore() { vol_.reset(); }

  Status Open() {
    vol_.reset();
    auto r = Volume::Open(meta_dir(), sb_, &data_,
                          Volume::Options{.block_cache_bytes = 8 << 20, .log = {}});
    if (!r.ok()) return r.status();
    vol_ = std::move(r.value());
    return Status::Ok();
  }
  void Close() { vol_.reset(); }
  void Reopen() {
    Close();
    DAXREF_REQUIRE_OK(Open());
  }

  Volume& vol() {
    REQUIRE(vol_ != nullptr);
    return *vol_;
  }
  rocksdb::DB* db() { return vol().db(); }
  MemData& data() { return data_; }
  const Superblock& sb() const { return sb_; }
  std::string meta_dir() const { return dir_.path() + "/meta"; }
  uint64_t free_blocks() { return vol().Stats().free_blocks; }

  InodeRecord Make(uint64_t parent, std::string_view name, uint32_t mode,
                   const Caller& who = kRoot) {
    InodeRecord r;
    DAXREF_REQUIRE_OK(vol().MakeNode(parent, name, mode, 0, who, "", &r));
    return r;
  }
  uint64_t MakeFile(uint64_t parent, std::string_view name) {
    return Make(parent, name, S_IFREG | 0644).ino;
  }
  uint64_t MakeDir(uint64_t parent, std::string_view name) {
    return Make(parent, name, S_IFDIR | 0755).ino;
  }
  InodeRecord Inode(uint64_t ino) {
    InodeRecord r;
    DAXREF_REQUIRE_OK(vol().GetInode(ino, &r));
    return r;
  }

  InodeRecord WriteFile(uint64_t ino, uint64_t off, std::string_view bytes) {
    InodeRecord r;
    DAXREF_REQUIRE_OK(vol().Write(ino, off, bytes.data(), bytes.size(), kRoot, &r));
    return r;
  }
  // The file's bytes [off, off+len) as a reader sees them: holes read as
  // zeros, mapped blocks come from the memory pool.
  std::string ReadFile(uint64_t ino, uint64_t off, uint64_t len) {
    std::string out;
    DAXREF_REQUIRE_OK(vol().MapRange(ino, off, len, [&](const MappedSegment& s) {
      if (s.off != off + out.size()) return false;  // caught below
      if (s.hole)
        out.append(s.len, '\0');
      else
        out += data_.Read(s.pool_off, s.len);
      return true;
    }));
    REQUIRE(out.size() == len);
    return out;
  }
  // The file's segments over [off, off+len).
  std::vector<MappedSegment> Segments(uint64_t ino, uint64_t off, uint64_t len) {
    std::vector<MappedSegment> out;
    DAXREF_REQUIRE_OK(vol().MapRange(ino, off, len, [&](const MappedSegment& s) {
      out.push_back(s);
      return true;
    }));
    return out;
  }
  InodeRecord Truncate(uint64_t ino, uint64_t size) {
    SetAttrRequest req;
    req.size = size;
    InodeRecord r;
    DAXREF_REQUIRE_OK(vol().SetAttr(ino, req, kRoot, &r));
    return r;
  }

 private:
  TempDir dir_;
  Superblock sb_;
  MemData data_;
  std::unique_ptr<Volume> vol_;
};

#define DAXREF_REQUIRE_VOLUME_CLEAN(store)                              \
  do {                                                                  \
    DAXREF_REQUIRE_STORE_CLEAN((store).db(), (store).sb().block_count); \
    REQUIRE((store).data().stray_accesses() == 0);                      \
  } while (0)

// "" when equal, else where two byte strings first differ: short enough for
// a failed assertion to print a line rather than kilobytes of binary.
inline std::string BytesDiff(std::string_view got, std::string_view want) {
  size_t n = std::min(got.size(), want.size()), i = 0;
  while (i < n && got[i] == want[i]) ++i;
  if (i == n && got.size() == want.size()) return "";
  char buf[160];
  if (i == n) {
    snprintf(buf, sizeof(buf), "sizes differ: got %zu bytes, want %zu (equal up to there)",
             got.size(), want.size());
  } else {
    size_t differ = 0;
    for (size_t k = i; k < n; ++k) differ += got[k] != want[k];
    snprintf(buf, sizeof(buf),
             "first difference at byte %zu: got 0x%02x, want 0x%02x; %zu of %zu bytes differ", i,
             static_cast<unsigned char>(got[i]), static_cast<unsigned char>(want[i]), differ,
             want.size());
  }
  return buf;
}

#define DAXREF_REQUIRE_BYTES(got, want) \
  REQUIRE(::daxref::testing::BytesDiff((got), (want)) == std::string())

// Bytes that differ from position to position and from seed to seed.
inline std::string Pattern(size_t len, uint32_t seed) {
  std::string s(len, '\0');
  uint32_t x = seed * 2654435761u + 12345;
  for (size_t i = 0; i < len; ++i) {
    x = x * 1103515245u + 12345;
    s[i] = static_cast<char>((x >> 16) | 1);  // never zero: zeros mean holes
  }
  return s;
}

// ---- volume calls that must succeed -------------------------------------------

// A length that reaches past the end of any file in these tests.
inline constexpr uint64_t kWholeFile = uint64_t{1} << 50;

// file block -> pool block of every mapped block of ino (past EOF included).
inline std::map<uint64_t, uint64_t> BlockMap(Volume& v, uint64_t ino) {
  std::map<uint64_t, uint64_t> out;
  DAXREF_REQUIRE_OK(v.MapRange(ino, 0, kWholeFile, [&](const MappedSegment& s) {
    if (s.hole) return true;
    REQUIRE(s.off % kBlockSize == 0);
    REQUIRE(s.len % kBlockSize == 0);
    for (uint64_t i = 0; i < s.len / kBlockSize; ++i)
      out[s.off / kBlockSize + i] = s.pool_off / kBlockSize + i;
    return true;
  }));
  return out;
}

inline InodeRecord Fallocate(Volume& v, uint64_t ino, int mode, uint64_t off, uint64_t len) {
  InodeRecord r;
  DAXREF_REQUIRE_OK(v.Fallocate(ino, mode, off, len, &r));
  return r;
}

inline InodeRecord Clone(Volume& v, uint64_t src, uint64_t src_off, uint64_t dst, uint64_t dst_off,
                         uint64_t len) {
  InodeRecord r;
  DAXREF_REQUIRE_OK(v.Clone(src, src_off, dst, dst_off, len, kRoot, &r));
  return r;
}

}  // namespace daxref::testing
