// Reflink in meta/: Clone, Dedupe, CopyRange, copy-on-write and unshare.
// The reverse-map query with shared blocks is in meta_owners_test.cc, the
// inode-to-path walks in meta_paths_test.cc. Every file's
// bytes are checked against a model (a std::string per file), sharing
// against what MapRange says every file maps, and the store against the
// checker, which cross-checks refcount = reverse-map owners = extent
// references for every block.
//
// Four bugs found while writing this file (fixed in 67844be) have a test
// each, marked "(regression)": a clone of the source's partial EOF block
// into the middle of a file, copy_file_range within a file into its own EOF
// block, copy_file_range storing bytes before an ENOSPC, and refcount
// lookups that stepped over every deleted refcount record. One that is not
// fixed yet has a test named "Known bug: ...", which fails until it is.

// Failed comparisons of maps print their pairs.
#define CATCH_CONFIG_ENABLE_PAIR_STRINGMAKER

#include <linux/fs.h>
#include <rocksdb/db.h>
#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "meta/volume.h"
#include "meta_helpers.h"

namespace daxref {
namespace {

using testing::BlockMap;
using testing::Clone;
using testing::Dump;
using testing::DumpStore;
using testing::ExtentRecords;
using testing::Fallocate;
using testing::kNothingHoldsIt;
using testing::kRoot;
using testing::kStillOpen;
using testing::kWholeFile;
using testing::Pattern;
using testing::RequireSameStore;
using testing::RmapRecords;
using testing::ScanPrefix;
using testing::TempDir;
using testing::TestStore;

constexpr uint64_t kB = kBlockSize;
uint64_t BlocksFor(uint64_t bytes) {
  return (bytes + kB - 1) / kB;
}

// ---------------------------------------------------------------------------
// Looking at the store and at sharing.

std::vector<RefcountRecord> RefcountRecords(rocksdb::DB* db) {
  std::vector<RefcountRecord> out;
  for (const auto& [k, v] : ScanPrefix(db, std::string(1, prefix::kRefcount))) {
    RefcountRecord r;
    Status s = DecodeRefcount(k, v, testing::kAnyGeometry, &r);
    INFO(s.message());
    REQUIRE(s.ok());
    out.push_back(r);
  }
  return out;
}

std::vector<SharedExtent> Sharing(Volume& v, uint64_t ino, uint64_t fb0 = 0,
                                  uint64_t fb1 = UINT64_MAX) {
  std::vector<SharedExtent> out;
  DAXREF_REQUIRE_OK(v.WalkSharing(ino, fb0, fb1, [&](const SharedExtent& e) {
    out.push_back(e);
    return true;
  }));
  return out;
}

// The refcount WalkSharing reports for each mapped file block of [fb0, fb1).
std::map<uint64_t, uint64_t> RefsByBlock(Volume& v, uint64_t ino, uint64_t fb0 = 0,
                                         uint64_t fb1 = UINT64_MAX) {
  std::map<uint64_t, uint64_t> out;
  for (const SharedExtent& e : Sharing(v, ino, fb0, fb1)) {
    REQUIRE(e.len > 0);
    for (uint64_t i = 0; i < e.len; ++i) {
      INFO("file block " << e.fblock + i << " reported twice");
      REQUIRE(out.emplace(e.fblock + i, e.refs).second);
    }
  }
  return out;
}

// The pool block behind each of file blocks [fb0, fb0+n), 0 for a hole (pool
// block 0 is the superblock: never mapped).
std::vector<uint64_t> PoolBlocks(Volume& v, uint64_t ino, uint64_t fb0, uint64_t n) {
  std::vector<uint64_t> out(n, 0);
  if (n == 0) return out;
  DAXREF_REQUIRE_OK(v.MapRange(ino, fb0 * kB, n * kB, [&](const MappedSegment& s) {
    REQUIRE(s.off % kB == 0);
    REQUIRE(s.len % kB == 0);
    if (!s.hole)
      for (uint64_t i = 0; i < s.len / kB; ++i) out[s.off / kB - fb0 + i] = s.pool_off / kB + i;
    return true;
  }));
  return out;
}

// What the volume says about sharing, against what the files map: for each
// file WalkSharing reports exactly its mapped blocks, each with the number
// of file blocks (of any file) that map its pool block; the refcount
// records cover exactly the blocks mapped twice or more, with that count;
// and free space is the data area less every block mapped at least once.
// `inos` must be every file of the volume.
void RequireSharingConsistent(TestStore& st, const std::vector<uint64_t>& inos) {
  Volume& v = st.vol();
  std::map<uint64_t, uint64_t> refs;  // pool block -> file blocks mapping it
  std::map<uint64_t, std::map<uint64_t, uint64_t>> maps;
  for (uint64_t ino : inos) {
    maps[ino] = BlockMap(v, ino);
    for (const auto& [fb, pb] : maps[ino]) refs[pb]++;
  }
  for (uint64_t ino : inos) {
    CAPTURE(ino);
    uint64_t seen = 0;
    for (const SharedExtent& e : Sharing(v, ino)) {
      for (uint64_t i = 0; i < e.len; ++i) {
        CAPTURE(e.fblock + i);
        auto m = maps[ino].find(e.fblock + i);
        REQUIRE(m != maps[ino].end());
        REQUIRE(m->second == e.pblock + i);
        REQUIRE(e.refs == refs[e.pblock + i]);
        ++seen;
      }
    }
    REQUIRE(seen == maps[ino].size());
  }
  uint64_t multi = 0;
  for (const auto& [pb, n] : refs) multi += n >= 2;
  uint64_t counted = 0;
  for (const RefcountRecord& n : RefcountRecords(st.db())) {
    for (uint64_t pb = n.pblock; pb < n.pend(); ++pb) {
      CAPTURE(pb);
      REQUIRE(refs.count(pb) == 1);
      REQUIRE(refs[pb] == n.refs);
    }
    counted += n.len;
  }
  REQUIRE(counted == multi);
  REQUIRE(st.free_blocks() == st.sb().data_blocks() - refs.size());
}

// ---------------------------------------------------------------------------
// The byte model.

void ModelWrite(std::string* m, uint64_t off, std::string_view bytes) {
  if (m->size() < off + bytes.size()) m->resize(off + bytes.size(), '\0');
  std::copy(bytes.begin(), bytes.end(), m->begin() + static_cast<ptrdiff_t>(off));
}

// Zeroes [off, off+len) of the model, clipped to its size.
void ModelZero(std::string* m, uint64_t off, uint64_t len) {
  if (off >= m->size()) return;
  uint64_t end = std::min<uint64_t>(m->size(), off + len);
  std::fill(m->begin() + static_cast<ptrdiff_t>(off), m->begin() + static_cast<ptrdiff_t>(end),
            '\0');
}

// The file holds exactly `want`, and the rest of its last block reads as
// zeros (what a truncate up or a write past EOF would expose).
void RequireFileIs(TestStore& st, uint64_t ino, const std::string& want) {
  CAPTURE(ino);
  REQUIRE(st.Inode(ino).size == want.size());
  DAXREF_REQUIRE_BYTES(st.ReadFile(ino, 0, want.size()), want);
  uint64_t tail = BlocksFor(want.size()) * kB - want.size();
  if (tail > 0) {
    INFO("bytes past EOF in the last block");
    DAXREF_REQUIRE_BYTES(st.ReadFile(ino, want.size(), tail), std::string(tail, '\0'));
  }
}

uint64_t CopyRange(Volume& v, uint64_t src, uint64_t src_off, uint64_t dst, uint64_t dst_off,
                   uint64_t len) {
  uint64_t copied = 0;
  InodeRecord r;
  DAXREF_REQUIRE_OK(v.CopyRange(src, src_off, dst, dst_off, len, kRoot, &copied, &r));
  return copied;
}

DedupeResult Dedupe(Volume& v, uint64_t src, uint64_t src_off, uint64_t dst, uint64_t dst_off,
                    uint64_t len) {
  DedupeResult r;
  DAXREF_REQUIRE_OK(v.Dedupe(src, src_off, dst, dst_off, len, &r));
  return r;
}

// ---------------------------------------------------------------------------
// 1. Random clones, copy-on-write and everything else against the model.

class Sim {
 public:
  Sim(TestStore& st, uint64_t seed) : st_(st), rng_(seed) {
    for (int i = 0; i < 4; ++i) AddFile();
  }

  void Run(int steps) {
    for (int step = 0; step < steps; ++step) {
      CAPTURE(step);
      if (step == steps / 2) ReopenWithOrphan();
      Step();
      for (size_t k = 0; k < inos_.size(); ++k) RequireFileIs(st_, inos_[k], bytes_[k]);
      if (step % 25 == 24) RequireClean();
    }
    RequireClean();
  }
  // How many of each kind of operation succeeded, to show the walk did
  // what it is meant to.
  std::map<std::string, int> done;

 private:
  static constexpr uint64_t kSpan = 48 * kB;     // offsets are picked below this
  static constexpr uint64_t kMaxSize = 96 * kB;  // and no file grows past this

  uint64_t Rand(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  size_t AnyFile() { return Rand(inos_.size()); }
  // An offset, block-aligned half of the time.
  uint64_t AnyOffset() { return Rand(2) ? Rand(kSpan / kB) * kB : Rand(kSpan); }
  uint64_t AnyLength() {
    switch (Rand(4)) {
      case 0:
        return 1 + Rand(100);
      case 1:
        return (1 + Rand(8)) * kB;
      default:
        return 1 + Rand(3 * kB);
    }
  }

  void AddFile() {
    std::string name = "f" + std::to_string(names_++);
    names_of_.push_back(name);
    inos_.push_back(st_.MakeFile(kRootIno, name));
    bytes_.emplace_back();
  }

  void RequireClean() {
    DAXREF_REQUIRE_VOLUME_CLEAN(st_);
    RequireSharingConsistent(st_, inos_);
  }

  // Requires `s` to have failed with `err`, and the store to be untouched.
  void RequireRefused(const Status& s, const Dump& before, int err = EINVAL) {
    INFO("err " << s.err() << ": " << s.message());
    REQUIRE(s.err() == err);
    RequireSameStore(before, DumpStore(st_.db()));
    done["refused"]++;
  }

  void ReopenWithOrphan() {
    // One file is unlinked while "open" and left on the orphan list; Open
    // reclaims it, shared blocks and all.
    size_t k = AnyFile();
    InodeRecord victim;
    DAXREF_REQUIRE_OK(st_.vol().Unlink(kRootIno, names_of_[k], kStillOpen, &victim));
    REQUIRE(victim.nlink == 0);
    Forget(k);
    st_.Reopen();
    AddFile();
    RequireClean();
  }

  void Forget(size_t k) {
    names_of_.erase(names_of_.begin() + static_cast<ptrdiff_t>(k));
    inos_.erase(inos_.begin() + static_cast<ptrdiff_t>(k));
    bytes_.erase(bytes_.begin() + static_cast<ptrdiff_t>(k));
  }

  void Step() {
    Volume& v = st_.vol();
    switch (Rand(20)) {
      case 0:
      case 1:
      case 2:
        return DoWrite();
      case 3: {
        size_t k = AnyFile();
        uint64_t size = Rand(3) ? Rand(kSpan) : Rand(kSpan / kB) * kB;
        st_.Truncate(inos_[k], size);
        bytes_[k].resize(size, '\0');
        done["truncate"]++;
        return;
      }
      case 4: {
        size_t k = AnyFile();
        uint64_t off = AnyOffset(), len = AnyLength();
        Fallocate(v, inos_[k], kFallocPunchHole | kFallocKeepSize, off, len);
        ModelZero(&bytes_[k], off, len);
        done["punch"]++;
        return;
      }
      case 5: {
        size_t k = AnyFile();
        uint64_t off = AnyOffset(), len = AnyLength();
        bool keep = Rand(2);
        Fallocate(v, inos_[k], kFallocZeroRange | (keep ? kFallocKeepSize : 0), off, len);
        if (!keep && bytes_[k].size() < off + len) bytes_[k].resize(off + len, '\0');
        ModelZero(&bytes_[k], off, len);
        done["zero range"]++;
        return;
      }
      case 6:
        return DoUnshare();
      case 7:
      case 8:
      case 9:
      case 10:
        return DoClone();
      case 11:
      case 12:
      case 13:
        return DoCopyRange();
      case 14:
      case 15:
        return DoTwinWriteAndDedupe();
      case 16:
        return DoDedupe();
      case 17:
        return DoBadClone();
      case 18: {
        // A file goes away (deleted in the unlink's batch) and a new one
        // takes its place.
        if (Rand(3) != 0) return DoWrite();
        size_t k = AnyFile();
        InodeRecord victim;
        DAXREF_REQUIRE_OK(v.Unlink(kRootIno, names_of_[k], kNothingHoldsIt, &victim));
        Forget(k);
        AddFile();
        done["unlink"]++;
        return;
      }
      default:
        return DoWrite();
    }
  }

  void DoWrite() {
    size_t k = AnyFile();
    uint64_t off = AnyOffset(), len = AnyLength();
    std::string data = Pattern(len, salt_++);
    st_.WriteFile(inos_[k], off, data);
    ModelWrite(&bytes_[k], off, data);
    // Whatever was shared in the range was copied first: the written blocks
    // are this file's own.
    for (const auto& [fb, refs] : RefsByBlock(st_.vol(), inos_[k], off / kB, BlocksFor(off + len)))
      REQUIRE(refs == 1);
    done["write"]++;
  }

  void DoUnshare() {
    size_t k = AnyFile();
    uint64_t off = AnyOffset(), len = AnyLength();
    bool keep = Rand(2);
    Fallocate(st_.vol(), inos_[k], kFallocUnshareRange | (keep ? kFallocKeepSize : 0), off, len);
    if (!keep && bytes_[k].size() < off + len) bytes_[k].resize(off + len, '\0');
    for (const auto& [fb, refs] : RefsByBlock(st_.vol(), inos_[k], off / kB, BlocksFor(off + len)))
      REQUIRE(refs == 1);
    done["unshare"]++;
  }

  void DoClone() {
    size_t a = AnyFile(), b = Rand(4) == 0 ? a : AnyFile();
    uint64_t src_size = bytes_[a].size();
    if (src_size == 0) return DoWrite();
    uint64_t src_off = Rand(BlocksFor(src_size)) * kB;
    uint64_t dst_off = Rand(kSpan / kB + 4) * kB;
    uint64_t to_eof = src_size - src_off;
    // Length 0 (to EOF), exactly to EOF, or whole blocks short of it.
    uint64_t len = 0, count = to_eof;
    uint64_t kind = Rand(3);
    if (kind == 2 || dst_off + to_eof > kMaxSize) {
      uint64_t most = std::min(to_eof, kMaxSize - dst_off) / kB;
      if (most == 0) return DoWrite();
      len = count = (1 + Rand(most)) * kB;
    } else if (kind == 1) {
      len = to_eof;
    }
    bool at_eof = src_off + count == src_size;
    uint64_t bcount = at_eof ? BlocksFor(src_size) * kB - src_off : count;
    uint64_t dst_size = bytes_[b].size();
    CAPTURE(a, b, src_size, src_off, dst_size, dst_off, len, count);
    InodeRecord out;
    // Refused: ranges of one file that overlap (whole blocks counted), and
    // the source's partial EOF block inside the destination, where its
    // zeros past the source's EOF would replace the destination's bytes.
    bool overlap = a == b && dst_off + bcount > src_off && dst_off < src_off + bcount;
    bool eof_block_inside = count % kB != 0 && dst_off + count < dst_size;
    if (overlap || eof_block_inside) {
      Dump before = DumpStore(st_.db());
      return RequireRefused(st_.vol().Clone(inos_[a], src_off, inos_[b], dst_off, len, kRoot, &out),
                            before);
    }
    std::vector<uint64_t> src_blocks = PoolBlocks(st_.vol(), inos_[a], src_off / kB, bcount / kB);
    DAXREF_REQUIRE_OK(st_.vol().Clone(inos_[a], src_off, inos_[b], dst_off, len, kRoot, &out));
    REQUIRE(out.size == std::max(dst_size, dst_off + count));
    std::string piece = bytes_[a].substr(src_off, count);
    ModelWrite(&bytes_[b], dst_off, piece);
    // The destination maps the source's very blocks (holes stay holes).
    REQUIRE(PoolBlocks(st_.vol(), inos_[b], dst_off / kB, bcount / kB) == src_blocks);
    done[a == b ? "self clone" : "clone"]++;
  }

  void DoCopyRange() {
    size_t a = AnyFile(), b = Rand(4) == 0 ? a : AnyFile();
    uint64_t src_size = bytes_[a].size();
    uint64_t src_off = Rand(8) == 0 ? src_size + Rand(2 * kB) : AnyOffset();
    uint64_t dst_off = Rand(2) ? Rand(kSpan / kB) * kB + src_off % kB : AnyOffset();
    uint64_t len = Rand(3) ? AnyLength() : (1 + Rand(12)) * kB;
    if (Rand(6) == 0 && src_size > 0) {
      // A file appends a copy of its own tail, at the first congruent
      // offset past its EOF (often inside its EOF block).
      b = a;
      src_off = Rand(src_size);
      dst_off = (src_size - 1) / kB * kB + src_off % kB;
      if (dst_off < src_size) dst_off += kB;
      len = src_size - src_off + Rand(2) * kB;
    }
    bool congruent = src_off % kB == dst_off % kB;
    uint64_t n = src_off >= src_size ? 0 : std::min(len, src_size - src_off);
    if (dst_off + n > kMaxSize) return DoWrite();
    CAPTURE(a, b, src_size, src_off, dst_off, len, n, bytes_[b].size());
    uint64_t copied = 0;
    InodeRecord out;
    if (a == b && n > 0 && dst_off + n > src_off && dst_off < src_off + n) {
      Dump before = DumpStore(st_.db());
      return RequireRefused(
          st_.vol().CopyRange(inos_[a], src_off, inos_[b], dst_off, len, kRoot, &copied, &out),
          before);
    }
    if (n == 0) {
      Dump before = DumpStore(st_.db());
      REQUIRE(CopyRange(st_.vol(), inos_[a], src_off, inos_[b], dst_off, len) == 0);
      RequireSameStore(before, DumpStore(st_.db()));
      done["copy nothing"]++;
      return;
    }
    std::vector<uint64_t> src_blocks =
        PoolBlocks(st_.vol(), inos_[a], src_off / kB, BlocksFor(src_off + n) - src_off / kB);
    REQUIRE(CopyRange(st_.vol(), inos_[a], src_off, inos_[b], dst_off, len) == n);
    std::string piece = bytes_[a].substr(src_off, n);
    ModelWrite(&bytes_[b], dst_off, piece);
    // Whole blocks at congruent offsets are shared (their pool blocks are
    // the source's); every other block the copy touched was written, so it
    // is the destination's own.
    uint64_t body0 = BlocksFor(dst_off), body1 = (dst_off + n) / kB;
    std::map<uint64_t, uint64_t> refs =
        RefsByBlock(st_.vol(), inos_[b], dst_off / kB, BlocksFor(dst_off + n));
    std::vector<uint64_t> now =
        PoolBlocks(st_.vol(), inos_[b], dst_off / kB, BlocksFor(dst_off + n) - dst_off / kB);
    for (uint64_t fb = dst_off / kB; fb < BlocksFor(dst_off + n); ++fb) {
      CAPTURE(fb);
      bool body = congruent && fb >= body0 && fb < body1;
      if (body) {
        REQUIRE(now[fb - dst_off / kB] == src_blocks[fb - dst_off / kB]);
      } else if (!congruent || a == b || fb < body0 || dst_off + n < bytes_[b].size()) {
        // (A congruent copy between two files that ends at the source's
        // EOF and at or past the destination's may share the partial last
        // block too.)
        REQUIRE(refs.count(fb) == 1);
        REQUIRE(refs[fb] == 1);
      }
    }
    done[congruent ? "copy range congruent" : "copy range bytes"]++;
  }

  // The same bytes go to two places, which are then deduplicated.
  void DoTwinWriteAndDedupe() {
    size_t a = AnyFile(), b = AnyFile();
    uint64_t blocks = 1 + Rand(6);
    uint64_t oa = Rand(kSpan / kB) * kB, ob = Rand(kSpan / kB) * kB;
    if (a == b && oa < ob + blocks * kB && ob < oa + blocks * kB) return DoWrite();
    std::string data = Pattern(blocks * kB, salt_++);
    st_.WriteFile(inos_[a], oa, data);
    ModelWrite(&bytes_[a], oa, data);
    st_.WriteFile(inos_[b], ob, data);
    ModelWrite(&bytes_[b], ob, data);
    uint64_t free_before = st_.free_blocks();
    DedupeResult r = Dedupe(st_.vol(), inos_[a], oa, inos_[b], ob, blocks * kB);
    REQUIRE(r.same);
    REQUIRE(r.bytes == blocks * kB);
    REQUIRE(PoolBlocks(st_.vol(), inos_[b], ob / kB, blocks) ==
            PoolBlocks(st_.vol(), inos_[a], oa / kB, blocks));
    // Both copies were just written, so b's were its own: all released.
    REQUIRE(st_.free_blocks() == free_before + blocks);
    done["dedupe same"]++;
  }

  void DoDedupe() {
    size_t a = AnyFile(), b = AnyFile();
    uint64_t sa = bytes_[a].size(), sb = bytes_[b].size();
    if (sa == 0 || sb == 0) return DoWrite();
    uint64_t oa = Rand(BlocksFor(sa)) * kB, ob = Rand(BlocksFor(sb)) * kB;
    uint64_t room = std::min(sa - oa, sb - ob);
    uint64_t len = Rand(3) ? 1 + Rand(room) : room;
    bool past_eof = Rand(10) == 0;
    if (past_eof) len = room + 1 + Rand(kB);
    CAPTURE(a, b, sa, sb, oa, ob, len);
    Dump before = DumpStore(st_.db());
    DedupeResult r;
    Status s = st_.vol().Dedupe(inos_[a], oa, inos_[b], ob, len, &r);
    if (past_eof) return RequireRefused(s, before);
    bool both_eof = oa + len == sa && ob + len == sb;
    uint64_t count = both_eof ? len : len / kB * kB;
    uint64_t bcount = both_eof ? BlocksFor(sa) * kB - oa : count;
    if (a == b && ob + bcount > oa && ob < oa + bcount) return RequireRefused(s, before);
    DAXREF_REQUIRE_OK(s);
    bool same = bytes_[a].compare(oa, count, bytes_[b], ob, count) == 0;
    REQUIRE(r.same == same);
    REQUIRE(r.bytes == (same ? count : 0));
    if (!same || count == 0) {
      RequireSameStore(before, DumpStore(st_.db()));
      done[same ? "dedupe nothing" : "dedupe differs"]++;
    } else {
      REQUIRE(PoolBlocks(st_.vol(), inos_[b], ob / kB, bcount / kB) ==
              PoolBlocks(st_.vol(), inos_[a], oa / kB, bcount / kB));
      done["dedupe same"]++;
    }
  }

  // Clones the checks of FICLONERANGE refuse: nothing changes.
  void DoBadClone() {
    size_t a = AnyFile(), b = AnyFile();
    uint64_t size = bytes_[a].size();
    uint64_t src_off = 0, dst_off = 0, len = kB;
    switch (Rand(3)) {
      case 0:
        src_off = 1 + Rand(kB - 1);
        break;
      case 1:
        dst_off = Rand(kSpan / kB) * kB + 1 + Rand(kB - 1);
        break;
      default:
        src_off = BlocksFor(size) * kB + Rand(3) * kB;  // at or past EOF
        break;
    }
    Dump before = DumpStore(st_.db());
    InodeRecord out;
    RequireRefused(st_.vol().Clone(inos_[a], src_off, inos_[b], dst_off, len, kRoot, &out), before);
  }

  TestStore& st_;
  std::mt19937_64 rng_;
  std::vector<std::string> names_of_;
  std::vector<uint64_t> inos_;
  std::vector<std::string> bytes_;
  int names_ = 0;
  uint32_t salt_ = 1;
};

TEST_CASE("Random clones, copy-on-write, copy ranges and dedupes match a byte model", "[reflink]") {
  const uint64_t seed = GENERATE(1, 2, 3, 4);
  CAPTURE(seed);
  TestStore st;
  Sim sim(st, seed);
  sim.Run(300);
  // The walk did what it is for (the counts are for one seed, so only
  // loose bounds).
  for (const char* what :
       {"clone", "self clone", "copy range congruent", "copy range bytes", "dedupe same",
        "dedupe differs", "unshare", "punch", "zero range", "truncate", "write", "refused"}) {
    INFO(what);
    REQUIRE(sim.done[what] > 0);
  }
}

// ---------------------------------------------------------------------------
// 2. Cost grows with extents, not bytes.

// A data plane that stores nothing, for tests about metadata alone on a
// pool too big to keep in memory.
class NullData : public DataPlane {
 public:
  Status Write(uint64_t, const void*, size_t) override { return Status::Ok(); }
  Status Load(uint64_t, void* dst, size_t len) override {
    memset(dst, 0, len);
    return Status::Ok();
  }
  Status Copy(uint64_t, uint64_t, size_t) override { return Status::Ok(); }
  Status Zero(uint64_t, size_t) override { return Status::Ok(); }
  Status Persist(uint64_t, size_t) override { return Status::Ok(); }
};

// A Volume on a fresh store for a pool of `blocks` blocks, with no data.
class BigVolume {
 public:
  explicit BigVolume(uint64_t blocks) : sb_(testing::TestSuperblock(blocks)) {
    std::string meta = dir_.path() + "/meta";
    DAXREF_REQUIRE_OK(Volume::Create(meta, sb_, kRoot, 0755));
    auto r =
        Volume::Open(meta, sb_, &data_, Volume::Options{.block_cache_bytes = 8 << 20, .log = {}});
    DAXREF_REQUIRE_OK(r.status());
    vol_ = std::move(r.value());
  }
  Volume& vol() { return *vol_; }
  rocksdb::DB* db() { return vol_->db(); }
  const Superblock& sb() const { return sb_; }
  uint64_t MakeFile(std::string_view name) {
    InodeRecord r;
    DAXREF_REQUIRE_OK(vol_->MakeNode(kRootIno, name, S_IFREG | 0644, 0, kRoot, "", &r));
    return r.ino;
  }
  // Keys (puts and deletes) the operations since the last call committed:
  // each takes one sequence number.
  uint64_t KeysWritten() {
    uint64_t now = db()->GetLatestSequenceNumber(), n = now - seq_;
    seq_ = now;
    return n;
  }

 private:
  TempDir dir_;
  Superblock sb_;
  NullData data_;
  std::unique_ptr<Volume> vol_;
  uint64_t seq_ = 0;
};

TEST_CASE("Cloning a 1 GiB file writes a handful of keys and takes no space", "[reflink]") {
  constexpr uint64_t kGiBBlocks = 262144;
  BigVolume bv(kGiBBlocks + 2048);
  Volume& v = bv.vol();
  uint64_t big = bv.MakeFile("big"), big2 = bv.MakeFile("big2");
  uint64_t small = bv.MakeFile("small"), small2 = bv.MakeFile("small2");
  InodeRecord r;
  // A block between the two sources keeps their refcount records apart
  // (records of equal counts on adjacent blocks merge, whoever shares them).
  DAXREF_REQUIRE_OK(v.Fallocate(small, 0, 0, kB, &r));
  DAXREF_REQUIRE_OK(v.Fallocate(bv.MakeFile("spacer"), 0, 0, kB, &r));
  DAXREF_REQUIRE_OK(v.Fallocate(big, 0, 0, kGiBBlocks * kB, &r));
  auto src = ExtentRecords(bv.db(), big);
  REQUIRE(src.size() == 1);
  REQUIRE(src[0].len == kGiBBlocks);
  const uint64_t free0 = v.Stats().free_blocks;

  bv.KeysWritten();
  DAXREF_REQUIRE_OK(v.Clone(small, 0, small2, 0, 0, kRoot, &r));
  const uint64_t small_keys = bv.KeysWritten();
  DAXREF_REQUIRE_OK(v.Clone(big, 0, big2, 0, 0, kRoot, &r));
  const uint64_t big_keys = bv.KeysWritten();
  CAPTURE(small_keys, big_keys);
  // Both inodes, the destination's extent and reverse-map record, and one
  // refcount record: the same for 4 KiB as for 1 GiB.
  REQUIRE(big_keys <= 6);
  REQUIRE(big_keys == small_keys);
  REQUIRE(r.size == kGiBBlocks * kB);
  REQUIRE(v.Stats().free_blocks == free0);

  auto dst = ExtentRecords(bv.db(), big2);
  REQUIRE(dst.size() == 1);
  REQUIRE(dst[0].fblock == 0);
  REQUIRE(dst[0].pblock == src[0].pblock);
  REQUIRE(dst[0].len == kGiBBlocks);
  auto refcounts = RefcountRecords(bv.db());
  REQUIRE(refcounts.size() == 2);  // the big pair and the small pair
  const RefcountRecord n = refcounts[0].len == kGiBBlocks ? refcounts[0] : refcounts[1];
  REQUIRE(n.pblock == src[0].pblock);
  REQUIRE(n.len == kGiBBlocks);
  REQUIRE(n.refs == 2);
  std::vector<SharedExtent> sh = Sharing(v, big2);
  REQUIRE(sh.size() == 1);
  REQUIRE(sh[0].len == kGiBBlocks);
  REQUIRE(sh[0].refs == 2);
  REQUIRE(RmapRecords(bv.db()).size() == 5);

  SECTION("a one-byte write into the clone copies one block and splits the records") {
    bv.KeysWritten();
    DAXREF_REQUIRE_OK(v.Write(big2, 1000 * kB + 5, "x", 1, kRoot, &r));
    REQUIRE(bv.KeysWritten() <= 16);
    REQUIRE(v.Stats().free_blocks == free0 - 1);
    REQUIRE(ExtentRecords(bv.db(), big2).size() == 3);
    auto split = RefcountRecords(bv.db());
    REQUIRE(split.size() == 3);
    uint64_t shared = 0;
    for (const RefcountRecord& x : split) shared += x.refs == 2 ? x.len : 0;
    REQUIRE(shared == (kGiBBlocks - 1) + 1);  // and the small pair's block
    auto refs = Sharing(v, big, 999, 1002);
    REQUIRE(refs.size() == 3);
    REQUIRE(refs[1].fblock == 1000);
    REQUIRE(refs[1].refs == 1);
    REQUIRE(refs[0].refs == 2);
    REQUIRE(refs[2].refs == 2);
  }
  SECTION("deleting the clone gives nothing back, deleting both gives all back") {
    InodeRecord victim;
    bv.KeysWritten();
    DAXREF_REQUIRE_OK(v.Unlink(kRootIno, "big2", kNothingHoldsIt, &victim));
    REQUIRE(bv.KeysWritten() <= 12);
    REQUIRE(v.Stats().free_blocks == free0);
    REQUIRE(RefcountRecords(bv.db()).size() == 1);
    DAXREF_REQUIRE_OK(v.Unlink(kRootIno, "big", kNothingHoldsIt, &victim));
    REQUIRE(v.Stats().free_blocks == free0 + kGiBBlocks);
  }
  DAXREF_REQUIRE_STORE_CLEAN(bv.db(), bv.sb().block_count);
}

// ---------------------------------------------------------------------------
// 3. Chains.

TEST_CASE("A chain of clones A to B to C: each keeps its bytes when another changes", "[reflink]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a"), b = st.MakeFile(kRootIno, "b"),
           c = st.MakeFile(kRootIno, "c");
  std::string ma = Pattern(8 * kB + 123, 1);
  st.WriteFile(a, 0, ma);
  const uint64_t free0 = st.free_blocks();
  Clone(v, a, 0, b, 0, 0);
  Clone(v, b, 0, c, 0, 0);
  std::string mb = ma, mc = ma;
  REQUIRE(st.free_blocks() == free0);
  for (uint64_t f : {a, b, c}) {
    auto refs = RefsByBlock(v, f);
    REQUIRE(refs.size() == 9);
    for (const auto& [fb, n] : refs) REQUIRE(n == 3);
  }
  auto recs = RefcountRecords(st.db());
  REQUIRE(recs.size() == 1);
  REQUIRE(recs[0].len == 9);
  REQUIRE(recs[0].refs == 3);
  int calls = 0;
  DAXREF_REQUIRE_OK(v.WalkSharing(a, 0, UINT64_MAX, [&](const SharedExtent&) {
    ++calls;
    return false;
  }));
  REQUIRE(calls == 1);

  // Each file changes a block of its own: the other two keep sharing it.
  std::string x = Pattern(100, 2), y = Pattern(kB, 3), z = Pattern(10, 4);
  st.WriteFile(a, 0 * kB + 50, x);
  ModelWrite(&ma, 50, x);
  st.WriteFile(b, 1 * kB, y);
  ModelWrite(&mb, kB, y);
  st.WriteFile(c, 8 * kB + 100, z);  // in the partial EOF block
  ModelWrite(&mc, 8 * kB + 100, z);
  REQUIRE(st.free_blocks() == free0 - 3);
  RequireFileIs(st, a, ma);
  RequireFileIs(st, b, mb);
  RequireFileIs(st, c, mc);
  using Refs = std::map<uint64_t, uint64_t>;
  REQUIRE(RefsByBlock(v, a) ==
          Refs{{0, 1}, {1, 2}, {2, 3}, {3, 3}, {4, 3}, {5, 3}, {6, 3}, {7, 3}, {8, 2}});
  REQUIRE(RefsByBlock(v, b) ==
          Refs{{0, 2}, {1, 1}, {2, 3}, {3, 3}, {4, 3}, {5, 3}, {6, 3}, {7, 3}, {8, 2}});
  REQUIRE(RefsByBlock(v, c) ==
          Refs{{0, 2}, {1, 2}, {2, 3}, {3, 3}, {4, 3}, {5, 3}, {6, 3}, {7, 3}, {8, 1}});
  // Who shares block 0 with whom.
  REQUIRE(PoolBlocks(v, b, 0, 1) == PoolBlocks(v, c, 0, 1));
  REQUIRE(PoolBlocks(v, a, 0, 1) != PoolBlocks(v, b, 0, 1));
  REQUIRE(PoolBlocks(v, a, 1, 1) == PoolBlocks(v, c, 1, 1));
  REQUIRE(PoolBlocks(v, a, 8, 1) == PoolBlocks(v, b, 8, 1));

  // Now the middle of the chain is rewritten, then truncated: the ends keep
  // theirs.
  std::string big = Pattern(3 * kB, 5);
  st.WriteFile(b, 3 * kB, big);
  ModelWrite(&mb, 3 * kB, big);
  st.Truncate(b, 4 * kB + 7);
  mb.resize(4 * kB + 7);
  RequireFileIs(st, a, ma);
  RequireFileIs(st, b, mb);
  RequireFileIs(st, c, mc);
  REQUIRE(RefsByBlock(v, a) ==
          Refs{{0, 1}, {1, 2}, {2, 3}, {3, 2}, {4, 2}, {5, 2}, {6, 2}, {7, 2}, {8, 1}});
  REQUIRE(RefsByBlock(v, b) == Refs{{0, 2}, {1, 1}, {2, 3}, {3, 1}, {4, 1}});
  REQUIRE(RefsByBlock(v, c) ==
          Refs{{0, 2}, {1, 2}, {2, 3}, {3, 2}, {4, 2}, {5, 2}, {6, 2}, {7, 2}, {8, 1}});
  RequireSharingConsistent(st, {a, b, c});
  DAXREF_REQUIRE_VOLUME_CLEAN(st);

  // Survives a reopen.
  st.Reopen();
  RequireFileIs(st, a, ma);
  RequireFileIs(st, b, mb);
  RequireFileIs(st, c, mc);
  RequireSharingConsistent(st, {a, b, c});
}

TEST_CASE("Clone, unshare and delete of files with more extents than one scan takes", "[reflink]") {
  // Two files written a block at a time in turn: each block is an extent of
  // its own (600 of them, past the 512 that ShareBlocks, UnmapRange and
  // Unshare take per scan). How long unsharing many extents takes is
  // measured by bench/reflink.sh, not here.
  constexpr uint64_t kBlocks = 600;
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a"), other = st.MakeFile(kRootIno, "other");
  std::string ma(kBlocks * kB, '\0');
  for (uint64_t i = 0; i < kBlocks; ++i) {
    std::string block = Pattern(kB, static_cast<uint32_t>(i));
    st.WriteFile(a, i * kB, block);
    ModelWrite(&ma, i * kB, block);
    st.WriteFile(other, i * kB, "o");
  }
  REQUIRE(ExtentRecords(st.db(), a).size() == kBlocks);
  const uint64_t free0 = st.free_blocks();

  uint64_t b = st.MakeFile(kRootIno, "b");
  Clone(v, a, 0, b, 0, 0);
  REQUIRE(st.free_blocks() == free0);
  REQUIRE(PoolBlocks(v, b, 0, kBlocks) == PoolBlocks(v, a, 0, kBlocks));
  for (const auto& [fb, n] : RefsByBlock(v, b)) REQUIRE(n == 2);
  // Within a itself, the second half of it after its end.
  Clone(v, a, 0, a, (kBlocks + 100) * kB, (kBlocks / 2 + 7) * kB);
  ModelWrite(&ma, (kBlocks + 100) * kB, ma.substr(0, (kBlocks / 2 + 7) * kB));
  REQUIRE(PoolBlocks(v, a, kBlocks + 100, kBlocks / 2 + 7) == PoolBlocks(v, a, 0, kBlocks / 2 + 7));
  RequireFileIs(st, a, ma);
  RequireFileIs(st, b, ma.substr(0, kBlocks * kB));
  RequireSharingConsistent(st, {a, b, other});
  DAXREF_REQUIRE_VOLUME_CLEAN(st);

  // b takes its own copy of all of it.
  Fallocate(v, b, kFallocUnshareRange | kFallocKeepSize, 0, kBlocks * kB);
  REQUIRE(st.free_blocks() == free0 - kBlocks);
  for (const auto& [fb, n] : RefsByBlock(v, b)) REQUIRE(n == 1);
  RequireFileIs(st, b, ma.substr(0, kBlocks * kB));
  RequireSharingConsistent(st, {a, b, other});

  // a goes: only what b and other hold stays.
  InodeRecord victim;
  DAXREF_REQUIRE_OK(v.Unlink(kRootIno, "a", kNothingHoldsIt, &victim));
  REQUIRE(st.free_blocks() == free0);
  REQUIRE(RefcountRecords(st.db()).empty());
  RequireFileIs(st, b, ma.substr(0, kBlocks * kB));
  RequireSharingConsistent(st, {b, other});
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

// Regression (cost): refcount records used to be found with a backward
// seek in the store (SeekForPrev), which steps over every deleted key before
// its target until it meets a live one. Unsharing and deleting delete
// refcount records, so after a file's n shared extents were unshared, every
// lookup behind them cost O(n): a one-byte overwrite of any other reflinked
// file stepped over n deleted records, the unlink of the once-shared file
// over n^2, and the unshare itself was O(n^2) against its own batch (2048
// extents: 28 s under the mutation lock). The counts here are RocksDB's own
// (perf context: deleted keys a read stepped over), so nothing depends on
// timing; the unshare's cost, which these counters cannot see, is bounded
// by the test's running time.
TEST_CASE("Refcount lookups do not step over deleted refcount records (regression)", "[reflink]") {
  constexpr uint64_t kExtents = 512;
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a"), other = st.MakeFile(kRootIno, "other");
  for (uint64_t i = 0; i < kExtents; ++i) {
    st.WriteFile(a, i * kB, "a");
    st.WriteFile(other, i * kB, "o");  // keeps a's blocks apart: one extent each
  }
  // A reflinked file whose block lies after all of a's in the pool.
  uint64_t late = st.MakeFile(kRootIno, "late"), late2 = st.MakeFile(kRootIno, "late2");
  st.WriteFile(late, 0, Pattern(kB, 1));
  Clone(v, late, 0, late2, 0, 0);
  Fallocate(v, late2, kFallocUnshareRange | kFallocKeepSize, 0, kB);
  // a's extents shared, then unshared: kExtents refcount records deleted.
  uint64_t b = st.MakeFile(kRootIno, "b");
  Clone(v, a, 0, b, 0, 0);
  Fallocate(v, b, kFallocUnshareRange | kFallocKeepSize, 0, kExtents * kB);
  REQUIRE(RefcountRecords(st.db()).empty());

  struct PerfCounting {
    PerfCounting() {
      rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
      rocksdb::get_perf_context()->Reset();
    }
    ~PerfCounting() { rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable); }
    uint64_t deleted_skipped() const {
      return rocksdb::get_perf_context()->internal_delete_skipped_count;
    }
  };
  uint64_t write_skipped = 0, unlink_skipped = 0;
  {
    PerfCounting perf;
    st.WriteFile(late2, 10, "x");  // in place: asks only whether its block is shared
    write_skipped = perf.deleted_skipped();
  }
  {
    PerfCounting perf;
    InodeRecord victim;
    DAXREF_REQUIRE_OK(v.Unlink(kRootIno, "a", kNothingHoldsIt, &victim));
    unlink_skipped = perf.deleted_skipped();
  }
  CAPTURE(write_skipped, unlink_skipped);
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
  // Before the fix: 513 for the write, 513 per extent for the unlink.
  CHECK(write_skipped <= 8);
  CHECK(unlink_skipped <= 8 * kExtents);
}

// ---------------------------------------------------------------------------
// 4. Deleting sharers in every order.

TEST_CASE("Deleting sharers in every order gives back exactly the space they held", "[reflink]") {
  // Four files: the original, a whole clone, a clone of part of it at
  // another offset and a clone of the clone that was then partly rewritten.
  std::vector<int> order{0, 1, 2, 3};
  int orders = 0;
  TestStore st;
  Volume& v = st.vol();
  const uint64_t free_empty = st.free_blocks();
  do {
    CAPTURE(order[0], order[1], order[2], order[3]);
    const std::vector<std::string> names{"orig", "whole", "part", "grand"};
    std::vector<uint64_t> inos;
    for (const auto& n : names) inos.push_back(st.MakeFile(kRootIno, n));
    st.WriteFile(inos[0], 0, Pattern(16 * kB + 99, orders + 1));
    const uint64_t pre_clone = st.free_blocks();
    REQUIRE(pre_clone == free_empty - 17);
    Clone(v, inos[0], 0, inos[1], 0, 0);
    Clone(v, inos[0], 4 * kB, inos[2], 10 * kB, 6 * kB);
    Clone(v, inos[1], 0, inos[3], 0, 0);
    st.WriteFile(inos[3], 2 * kB, Pattern(3 * kB, 77));
    REQUIRE(st.free_blocks() == pre_clone - 3);
    REQUIRE_FALSE(RefcountRecords(st.db()).empty());

    std::vector<uint64_t> live = inos;
    std::vector<std::string> bytes;
    for (uint64_t f : inos) bytes.push_back(st.ReadFile(f, 0, st.Inode(f).size));
    for (int k : order) {
      InodeRecord victim;
      DAXREF_REQUIRE_OK(v.Unlink(kRootIno, names[k], kNothingHoldsIt, &victim));
      REQUIRE(victim.nlink == 0);
      live.erase(std::find(live.begin(), live.end(), inos[k]));
      // The survivors keep their bytes, and free space is exactly the data
      // area less what they still map.
      for (int j = 0; j < 4; ++j)
        if (std::find(live.begin(), live.end(), inos[j]) != live.end())
          RequireFileIs(st, inos[j], bytes[j]);
      RequireSharingConsistent(st, live);
      // With only the original left, exactly what it held before the clones.
      if (live == std::vector<uint64_t>{inos[0]}) REQUIRE(st.free_blocks() == pre_clone);
    }
    REQUIRE(st.free_blocks() == free_empty);
    REQUIRE(RefcountRecords(st.db()).empty());
    REQUIRE(RmapRecords(st.db()).empty());
    REQUIRE(ScanPrefix(st.db(), std::string(1, prefix::kExtent)).empty());
    DAXREF_REQUIRE_VOLUME_CLEAN(st);
    ++orders;
  } while (std::next_permutation(order.begin(), order.end()));
  REQUIRE(orders == 24);
}

TEST_CASE("Orphaned sharers are reclaimed, by Reclaim or at the next Open", "[reflink]") {
  TestStore st;
  Volume& v = st.vol();
  const uint64_t free_empty = st.free_blocks();
  uint64_t a = st.MakeFile(kRootIno, "a"), b = st.MakeFile(kRootIno, "b"),
           c = st.MakeFile(kRootIno, "c");
  std::string ma = Pattern(10 * kB, 1);
  st.WriteFile(a, 0, ma);
  Clone(v, a, 0, b, 0, 0);
  Clone(v, a, 2 * kB, c, 0, 4 * kB);
  InodeRecord victim;
  DAXREF_REQUIRE_OK(v.Unlink(kRootIno, "a", kStillOpen, &victim));
  DAXREF_REQUIRE_OK(v.Unlink(kRootIno, "b", kStillOpen, &victim));
  REQUIRE(st.free_blocks() == free_empty - 10);
  DAXREF_REQUIRE_OK(v.Reclaim(a));
  REQUIRE(st.free_blocks() == free_empty - 10);  // b still holds them all
  RequireSharingConsistent(st, {b, c});
  st.Reopen();  // b is reclaimed here
  REQUIRE(st.free_blocks() == free_empty - 4);
  RequireFileIs(st, c, ma.substr(2 * kB, 4 * kB));
  REQUIRE(RefcountRecords(st.db()).empty());
  RequireSharingConsistent(st, {c});
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

// ---------------------------------------------------------------------------
// 5. Clone: onto data, across EOF, and its errors.

TEST_CASE("Clone onto existing data releases exactly the blocks it replaces", "[reflink]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a"), b = st.MakeFile(kRootIno, "b");
  std::string ma = Pattern(8 * kB, 1), mb = Pattern(12 * kB, 2);
  st.WriteFile(a, 0, ma);
  st.WriteFile(b, 0, mb);
  std::vector<uint64_t> old = PoolBlocks(v, b, 4, 4);

  SECTION("blocks the destination owned alone are freed") {
    const uint64_t free0 = st.free_blocks();
    InodeRecord out = Clone(v, a, 2 * kB, b, 4 * kB, 4 * kB);
    REQUIRE(out.size == 12 * kB);
    REQUIRE(out.blocks == 12);
    REQUIRE(st.free_blocks() == free0 + 4);
    for (uint64_t pb : old) {
      CAPTURE(pb);
      int owners = 0;
      DAXREF_REQUIRE_OK(v.QueryOwners(pb, pb + 1, [&](const RmapRecord&) {
        ++owners;
        return true;
      }));
      REQUIRE(owners == 0);
    }
    REQUIRE(PoolBlocks(v, b, 4, 4) == PoolBlocks(v, a, 2, 4));
    ModelWrite(&mb, 4 * kB, ma.substr(2 * kB, 4 * kB));
  }
  SECTION("blocks the destination shared with a third file stay with it") {
    uint64_t c = st.MakeFile(kRootIno, "c");
    Clone(v, b, 0, c, 0, 0);
    const uint64_t free0 = st.free_blocks();
    Clone(v, a, 2 * kB, b, 4 * kB, 4 * kB);
    REQUIRE(st.free_blocks() == free0);
    REQUIRE(PoolBlocks(v, c, 4, 4) == old);
    auto refs = RefsByBlock(v, c);
    for (uint64_t fb = 0; fb < 12; ++fb) REQUIRE(refs[fb] == (fb >= 4 && fb < 8 ? 1 : 2));
    RequireFileIs(st, c, mb);
    ModelWrite(&mb, 4 * kB, ma.substr(2 * kB, 4 * kB));
    RequireSharingConsistent(st, {a, b, c});
  }
  SECTION("over a hole and over preallocated blocks past EOF") {
    Fallocate(v, b, kFallocPunchHole | kFallocKeepSize, 5 * kB, 2 * kB);
    Fallocate(v, b, kFallocKeepSize, 12 * kB, 8 * kB);  // blocks 12..19 past EOF
    const uint64_t free0 = st.free_blocks();
    Clone(v, a, 0, b, 4 * kB, 8 * kB);  // over blocks 4..11, of which 5 and 6 are holes
    REQUIRE(st.free_blocks() == free0 + 6);
    Clone(v, a, 0, b, 16 * kB, 2 * kB);  // over preallocated 16 and 17, past EOF
    REQUIRE(st.free_blocks() == free0 + 8);
    REQUIRE(st.Inode(b).size == 18 * kB);
    ModelZero(&mb, 5 * kB, 2 * kB);
    ModelWrite(&mb, 4 * kB, ma);
    ModelWrite(&mb, 16 * kB, ma.substr(0, 2 * kB));
  }
  RequireFileIs(st, a, ma);
  RequireFileIs(st, b, mb);
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

TEST_CASE("Clone into a file drops what a write drops: set-user-ID and file capabilities",
          "[reflink]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a");
  st.WriteFile(a, 0, Pattern(2 * kB, 1));
  InodeRecord b = st.Make(kRootIno, "b", S_IFREG | S_ISUID | S_ISGID | 0775);
  DAXREF_REQUIRE_OK(v.SetXattr(b.ino, "security.capability", "cap", 0));
  DAXREF_REQUIRE_OK(v.SetXattr(b.ino, "user.keep", "k", 0));
  InodeRecord out;
  DAXREF_REQUIRE_OK(v.Clone(a, 0, b.ino, 0, 0, Caller{1000, 1000}, &out));
  REQUIRE((out.mode & 07777) == 0775);
  REQUIRE((st.Inode(b.ino).mode & 07777) == 0775);
  std::string value;
  DAXREF_REQUIRE_ERR(v.GetXattr(b.ino, "security.capability", &value), ENODATA);
  DAXREF_REQUIRE_OK(v.GetXattr(b.ino, "user.keep", &value));
  REQUIRE(value == "k");
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

TEST_CASE("Clone across the destination's EOF grows it; past the source's EOF reads zero",
          "[reflink]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a"), b = st.MakeFile(kRootIno, "b");
  std::string ma = Pattern(5 * kB + 300, 1), mb = Pattern(3 * kB + 100, 2);
  st.WriteFile(a, 0, ma);
  st.WriteFile(b, 0, mb);

  // Length 0: to the source's EOF, its partial last block included.
  InodeRecord out = Clone(v, a, 0, b, 6 * kB, 0);
  REQUIRE(out.size == 6 * kB + ma.size());
  ModelWrite(&mb, 6 * kB, ma);
  RequireFileIs(st, b, mb);
  REQUIRE(st.ReadFile(b, 3 * kB + 100, 3 * kB - 100) == std::string(3 * kB - 100, '\0'));
  REQUIRE(PoolBlocks(v, b, 6, 6) == PoolBlocks(v, a, 0, 6));
  for (const auto& [fb, n] : RefsByBlock(v, b, 6, 12)) REQUIRE(n == 2);

  // a writes past its EOF into the shared block: a gets its own copy, and
  // b still reads zeros past its EOF.
  std::string w = Pattern(50, 3);
  st.WriteFile(a, 5 * kB + 1000, w);
  ModelWrite(&ma, 5 * kB + 1000, w);
  RequireFileIs(st, a, ma);
  RequireFileIs(st, b, mb);
  REQUIRE(RefsByBlock(v, a, 5, 6) == std::map<uint64_t, uint64_t>{{5, 1}});
  REQUIRE(RefsByBlock(v, b, 11, 12) == std::map<uint64_t, uint64_t>{{11, 1}});
  // Growing b exposes zeros past its old EOF.
  st.Truncate(b, 13 * kB);
  mb.resize(13 * kB, '\0');
  RequireFileIs(st, b, mb);

  // An explicit length that ends exactly at the source's EOF, from its
  // middle, into a file that is empty.
  uint64_t c = st.MakeFile(kRootIno, "c");
  out = Clone(v, a, 2 * kB, c, 0, ma.size() - 2 * kB);
  REQUIRE(out.size == ma.size() - 2 * kB);
  RequireFileIs(st, c, ma.substr(2 * kB));
  // And an aligned length past the destination's EOF.
  out = Clone(v, a, 0, c, 20 * kB, 2 * kB);
  REQUIRE(out.size == 22 * kB);
  std::string mc = ma.substr(2 * kB);
  ModelWrite(&mc, 20 * kB, ma.substr(0, 2 * kB));
  RequireFileIs(st, c, mc);
  RequireSharingConsistent(st, {a, b, c});
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

TEST_CASE("Clone refuses what FICLONERANGE refuses and then changes nothing", "[reflink]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a"), b = st.MakeFile(kRootIno, "b");
  uint64_t d = st.MakeDir(kRootIno, "d");
  InodeRecord l;
  DAXREF_REQUIRE_OK(v.MakeNode(kRootIno, "l", S_IFLNK | 0777, 0, kRoot, "a", &l));
  std::string ma = Pattern(10 * kB + 5, 1), mb = Pattern(4 * kB, 2);
  st.WriteFile(a, 0, ma);
  st.WriteFile(b, 0, mb);
  Clone(v, a, 0, b, 6 * kB, 2 * kB);  // some sharing already
  ModelWrite(&mb, 6 * kB, ma.substr(0, 2 * kB));

  struct Case {
    const char* what;
    uint64_t src, src_off, dst, dst_off, len;
    int err;
  };
  const std::vector<Case> cases{
      {"misaligned source offset", a, 100, b, 0, kB, EINVAL},
      {"misaligned destination offset", a, 0, b, 100, kB, EINVAL},
      {"both misaligned", a, 1, b, 1, kB, EINVAL},
      {"misaligned length short of EOF", a, 0, b, 0, kB + 1, EINVAL},
      {"misaligned length to EOF from a misaligned offset", a, 5, b, 0, ma.size() - 5, EINVAL},
      {"length past the source's EOF", a, 0, b, 0, 11 * kB, EINVAL},
      {"length one byte past EOF", a, 0, b, 0, ma.size() + 1, EINVAL},
      {"source offset past EOF", a, 11 * kB, b, 0, kB, EINVAL},
      {"source offset far past EOF", a, 12 * kB, b, 0, kB, EINVAL},
      {"source offset past EOF, length 0", a, 12 * kB, b, 0, 0, EINVAL},
      {"overlap within one file", a, 0, a, 2 * kB, 4 * kB, EINVAL},
      {"overlap within one file, backwards", a, 4 * kB, a, 2 * kB, 4 * kB, EINVAL},
      {"the same range of one file", a, 0, a, 0, kB, EINVAL},
      {"overlap in the EOF block", a, 8 * kB, a, 10 * kB, 0, EINVAL},
      {"range that wraps", a, 0, b, 8 * kB, UINT64_MAX - kB, EINVAL},
      {"past the largest file", a, 0, b, (uint64_t{1} << 62) - kB, 2 * kB, EFBIG},
      {"source is a directory", d, 0, b, 0, kB, EISDIR},
      {"destination is a directory", a, 0, d, 0, kB, EISDIR},
      {"directory, length 0", d, 0, b, 0, 0, EISDIR},
      {"source is a symlink", l.ino, 0, b, 0, kB, EINVAL},
      {"source is missing", 9999, 0, b, 0, kB, ENOENT},
      {"destination is missing", a, 0, 9999, 0, kB, ENOENT},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    Dump before = DumpStore(st.db());
    uint64_t free0 = st.free_blocks();
    InodeRecord out;
    DAXREF_REQUIRE_ERR(v.Clone(c.src, c.src_off, c.dst, c.dst_off, c.len, kRoot, &out), c.err);
    RequireSameStore(before, DumpStore(st.db()));
    REQUIRE(st.free_blocks() == free0);
  }
  RequireFileIs(st, a, ma);
  RequireFileIs(st, b, mb);

  SECTION("length 0 at EOF clones nothing and changes nothing") {
    st.Truncate(a, 10 * kB);
    ma.resize(10 * kB);
    Dump before = DumpStore(st.db());
    InodeRecord out = Clone(v, a, 10 * kB, b, 0, 0);
    REQUIRE(out.size == mb.size());
    RequireSameStore(before, DumpStore(st.db()));
  }
  SECTION("length 0 means to EOF") {
    InodeRecord out = Clone(v, a, 3 * kB, b, mb.size(), 0);
    REQUIRE(out.size == mb.size() + ma.size() - 3 * kB);
    ModelWrite(&mb, mb.size(), ma.substr(3 * kB));
  }
  RequireFileIs(st, a, ma);
  RequireFileIs(st, b, mb);
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

// Regression: ioctl_ficlone(2) clones whole blocks, and the source's
// partial EOF block may land only at or past the destination's EOF; the
// kernel refuses it inside the destination (EINVAL, generic_remap_check_len).
// Clone used to map the whole block there, and the destination's bytes after
// the range, to the end of that block, became zeros.
TEST_CASE("Clone refuses the source's partial EOF block inside the destination (regression)",
          "[reflink]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a"), b = st.MakeFile(kRootIno, "b");
  std::string ma = Pattern(kB + 100, 1), mb = Pattern(4 * kB, 2);
  st.WriteFile(a, 0, ma);
  st.WriteFile(b, 0, mb);
  struct Case {
    const char* what;
    uint64_t src, src_off, dst, dst_off, len;
  };
  const std::vector<Case> cases{
      {"length 0, into b's first blocks", a, 0, b, 0, 0},
      {"explicit length to EOF", a, 0, b, kB, kB + 100},
      {"the EOF block alone", a, kB, b, 2 * kB, 0},
      {"into b's last block", a, kB, b, 3 * kB, 100},
      {"within one file", a, kB, a, 0, 0},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    Dump before = DumpStore(st.db());
    InodeRecord out;
    DAXREF_REQUIRE_ERR(v.Clone(c.src, c.src_off, c.dst, c.dst_off, c.len, kRoot, &out), EINVAL);
    RequireSameStore(before, DumpStore(st.db()));
  }
  RequireFileIs(st, a, ma);
  RequireFileIs(st, b, mb);
  // Ending exactly at the destination's EOF, or past it, is allowed.
  st.Truncate(b, 3 * kB + 100);
  mb.resize(3 * kB + 100);
  Clone(v, a, kB, b, 3 * kB, 0);
  ModelWrite(&mb, 3 * kB, ma.substr(kB));
  Clone(v, a, 0, b, 5 * kB, 0);
  ModelWrite(&mb, 5 * kB, ma);
  RequireFileIs(st, b, mb);
  REQUIRE(PoolBlocks(v, b, 3, 1) == PoolBlocks(v, a, 1, 1));
  REQUIRE(PoolBlocks(v, b, 5, 2) == PoolBlocks(v, a, 0, 2));
  RequireSharingConsistent(st, {a, b});
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

// ---------------------------------------------------------------------------
// 6. Dedupe.

TEST_CASE("Dedupe shares equal ranges and leaves different ones alone", "[reflink]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a"), b = st.MakeFile(kRootIno, "b");
  std::string ma = Pattern(8 * kB, 1), mb = ma;
  st.WriteFile(a, 0, ma);
  st.WriteFile(b, 0, mb);
  const Timespec mtime = st.Inode(b).mtime;
  using Refs = std::map<uint64_t, uint64_t>;

  SECTION("equal ranges: same, blocks shared, space given back, bytes and times kept") {
    const uint64_t free0 = st.free_blocks();
    DedupeResult r = Dedupe(v, a, 0, b, 0, 8 * kB);
    REQUIRE(r.same);
    REQUIRE(r.bytes == 8 * kB);
    REQUIRE(st.free_blocks() == free0 + 8);
    REQUIRE(PoolBlocks(v, b, 0, 8) == PoolBlocks(v, a, 0, 8));
    for (uint64_t f : {a, b})
      for (const auto& [fb, n] : RefsByBlock(v, f)) REQUIRE(n == 2);
    InodeRecord rb = st.Inode(b);
    REQUIRE(rb.mtime.sec == mtime.sec);
    REQUIRE(rb.mtime.nsec == mtime.nsec);
    // Deduping what is already shared keeps it shared, at no cost.
    r = Dedupe(v, a, 0, b, 0, 8 * kB);
    REQUIRE(r.same);
    REQUIRE(r.bytes == 8 * kB);
    REQUIRE(st.free_blocks() == free0 + 8);
    REQUIRE(PoolBlocks(v, b, 0, 8) == PoolBlocks(v, a, 0, 8));
    // Then a write to either copies.
    st.WriteFile(a, 3 * kB, "zz");
    ModelWrite(&ma, 3 * kB, "zz");
    REQUIRE(st.free_blocks() == free0 + 7);
  }
  SECTION("a range in the middle") {
    const uint64_t free0 = st.free_blocks();
    DedupeResult r = Dedupe(v, a, 2 * kB, b, 2 * kB, 3 * kB);
    REQUIRE(r.same);
    REQUIRE(r.bytes == 3 * kB);
    REQUIRE(st.free_blocks() == free0 + 3);
    REQUIRE(RefsByBlock(v, b) ==
            Refs{{0, 1}, {1, 1}, {2, 2}, {3, 2}, {4, 2}, {5, 1}, {6, 1}, {7, 1}});
    // Different offsets hold different bytes: no.
    Dump before = DumpStore(st.db());
    r = Dedupe(v, a, 0, b, kB, kB);
    REQUIRE_FALSE(r.same);
    REQUIRE(r.bytes == 0);
    RequireSameStore(before, DumpStore(st.db()));
  }
  SECTION("equal ranges at different offsets, and within one file") {
    std::string twice = ma.substr(0, 2 * kB);
    st.WriteFile(b, 10 * kB, twice);
    ModelWrite(&mb, 10 * kB, twice);
    st.WriteFile(a, 12 * kB, twice);
    ModelWrite(&ma, 12 * kB, twice);
    const uint64_t free0 = st.free_blocks();
    REQUIRE(Dedupe(v, a, 0, b, 10 * kB, 2 * kB).bytes == 2 * kB);
    REQUIRE(Dedupe(v, a, 0, a, 12 * kB, 2 * kB).bytes == 2 * kB);
    REQUIRE(st.free_blocks() == free0 + 4);
    REQUIRE(PoolBlocks(v, b, 10, 2) == PoolBlocks(v, a, 0, 2));
    REQUIRE(PoolBlocks(v, a, 12, 2) == PoolBlocks(v, a, 0, 2));
    REQUIRE(RefsByBlock(v, a, 0, 2) == Refs{{0, 3}, {1, 3}});
  }
  SECTION("one differing byte: differs, and nothing changes") {
    st.WriteFile(b, 5 * kB + 17, "!");
    ModelWrite(&mb, 5 * kB + 17, "!");
    Dump before = DumpStore(st.db());
    const uint64_t free0 = st.free_blocks();
    DedupeResult r = Dedupe(v, a, 0, b, 0, 8 * kB);
    REQUIRE_FALSE(r.same);
    REQUIRE(r.bytes == 0);
    RequireSameStore(before, DumpStore(st.db()));
    REQUIRE(st.free_blocks() == free0);
    // The blocks before the difference still dedupe.
    r = Dedupe(v, a, 0, b, 0, 5 * kB);
    REQUIRE(r.same);
    REQUIRE(r.bytes == 5 * kB);
    REQUIRE(st.free_blocks() == free0 + 5);
  }
  SECTION("ranges past EOF, misaligned or overlapping are EINVAL; directories EISDIR") {
    struct Case {
      uint64_t src, src_off, dst, dst_off, len;
      int err;
    };
    uint64_t d = st.MakeDir(kRootIno, "d");
    const std::vector<Case> cases{
        {a, 0, b, 0, 8 * kB + 1, EINVAL},  {a, 0, b, 8 * kB, kB, EINVAL},
        {a, 8 * kB, b, 0, kB, EINVAL},     {a, 7 * kB, b, 0, 2 * kB, EINVAL},
        {a, 0, b, 7 * kB, 2 * kB, EINVAL}, {a, 12 * kB, b, 0, kB, EINVAL},
        {a, 100, b, 0, kB, EINVAL},        {a, 0, b, 100, kB, EINVAL},
        {a, 0, a, kB, 2 * kB, EINVAL},     {a, 0, a, 0, kB, EINVAL},
        {a, 0, d, 0, kB, EISDIR},          {d, 0, a, 0, kB, EISDIR},
    };
    for (const Case& c : cases) {
      CAPTURE(c.src, c.src_off, c.dst, c.dst_off, c.len);
      Dump before = DumpStore(st.db());
      DedupeResult r;
      DAXREF_REQUIRE_ERR(v.Dedupe(c.src, c.src_off, c.dst, c.dst_off, c.len, &r), c.err);
      REQUIRE(r.bytes == 0);
      RequireSameStore(before, DumpStore(st.db()));
    }
    Dump before = DumpStore(st.db());
    DedupeResult r = Dedupe(v, a, 0, b, 0, 0);  // length 0: nothing to do
    REQUIRE(r.bytes == 0);
    RequireSameStore(before, DumpStore(st.db()));
  }
  RequireFileIs(st, a, ma);
  RequireFileIs(st, b, mb);
  RequireSharingConsistent(st, {a, b});
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

TEST_CASE("Dedupe rounds the length down to blocks unless both ranges end at EOF", "[reflink]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a"), b = st.MakeFile(kRootIno, "b");
  const std::string data = Pattern(20000, 1);  // 4 blocks and 3616 bytes
  st.WriteFile(a, 0, data);
  st.WriteFile(b, 0, data);

  SECTION("an unaligned length short of EOF is rounded down") {
    DedupeResult r = Dedupe(v, a, 0, b, 0, 5000);
    REQUIRE(r.same);
    REQUIRE(r.bytes == kB);
    REQUIRE(RefsByBlock(v, b) ==
            std::map<uint64_t, uint64_t>{{0, 2}, {1, 1}, {2, 1}, {3, 1}, {4, 1}});
    // Shorter than a block: nothing to share, and "same" with 0 bytes.
    Dump before = DumpStore(st.db());
    r = Dedupe(v, a, kB, b, kB, 100);
    REQUIRE(r.same);
    REQUIRE(r.bytes == 0);
    RequireSameStore(before, DumpStore(st.db()));
  }
  SECTION("both ranges to EOF: the partial last block is shared too") {
    DedupeResult r = Dedupe(v, a, kB, b, kB, 20000 - kB);
    REQUIRE(r.same);
    REQUIRE(r.bytes == 20000 - kB);
    REQUIRE(RefsByBlock(v, b) ==
            std::map<uint64_t, uint64_t>{{0, 1}, {1, 2}, {2, 2}, {3, 2}, {4, 2}});
  }
  SECTION("only the source's range ends at its EOF: rounded down") {
    std::string more = Pattern(3000, 2);
    st.WriteFile(b, 20000, more);
    DedupeResult r = Dedupe(v, a, 0, b, 0, 20000);
    REQUIRE(r.same);
    REQUIRE(r.bytes == 4 * kB);
    REQUIRE(RefsByBlock(v, b) ==
            std::map<uint64_t, uint64_t>{{0, 2}, {1, 2}, {2, 2}, {3, 2}, {4, 1}, {5, 1}});
    RequireFileIs(st, b, data + more);
  }
  RequireFileIs(st, a, data);
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

// ---------------------------------------------------------------------------
// 7. copy_file_range.

TEST_CASE("CopyRange shares whole blocks at congruent offsets and copies the rest", "[reflink]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a"), b = st.MakeFile(kRootIno, "b"),
           c = st.MakeFile(kRootIno, "c");
  std::string ma = Pattern(10 * kB + 500, 1), mb, mc = Pattern(3 * kB, 9);
  st.WriteFile(a, 0, ma);
  st.WriteFile(c, 0, mc);
  using Refs = std::map<uint64_t, uint64_t>;

  SECTION("congruent: head and tail copied, body shared") {
    // a [1000, 1000 + 7 blocks) to b at 4 blocks + 1000: head 3096 bytes in
    // b's block 4, body b's blocks 5..10 (a's 1..6), tail 1000 bytes in 11.
    REQUIRE(CopyRange(v, a, 1000, b, 4 * kB + 1000, 7 * kB) == 7 * kB);
    ModelWrite(&mb, 4 * kB + 1000, ma.substr(1000, 7 * kB));
    REQUIRE(RefsByBlock(v, b) ==
            Refs{{4, 1}, {5, 2}, {6, 2}, {7, 2}, {8, 2}, {9, 2}, {10, 2}, {11, 1}});
    REQUIRE(PoolBlocks(v, b, 5, 6) == PoolBlocks(v, a, 1, 6));
    std::vector<uint64_t> a_blocks = PoolBlocks(v, a, 0, 11);
    for (uint64_t fb : {4, 11}) {
      uint64_t pb = PoolBlocks(v, b, fb, 1)[0];
      REQUIRE(std::find(a_blocks.begin(), a_blocks.end(), pb) == a_blocks.end());
    }
  }
  SECTION("congruent, aligned, ending at the source's EOF: the EOF block is shared too") {
    REQUIRE(CopyRange(v, a, 2 * kB, b, 0, 1 << 30) == ma.size() - 2 * kB);
    mb = ma.substr(2 * kB);
    REQUIRE(PoolBlocks(v, b, 0, 9) == PoolBlocks(v, a, 2, 9));
  }
  SECTION("not congruent: bytes only, nothing shared") {
    REQUIRE(CopyRange(v, a, 100, b, 0, 5 * kB) == 5 * kB);
    mb = ma.substr(100, 5 * kB);
    for (const auto& [fb, n] : RefsByBlock(v, b)) REQUIRE(n == 1);
    for (const auto& [fb, n] : RefsByBlock(v, a)) REQUIRE(n == 1);
    REQUIRE(RefcountRecords(st.db()).empty());
  }
  SECTION("a copy over a shared destination copies-on-write") {
    Clone(v, a, 0, b, 0, 0);
    mb = ma;
    REQUIRE(CopyRange(v, c, 10, b, 2 * kB + 20, 2 * kB) == 2 * kB);
    ModelWrite(&mb, 2 * kB + 20, mc.substr(10, 2 * kB));
    RequireFileIs(st, a, ma);
    RequireFileIs(st, c, mc);
    REQUIRE(RefsByBlock(v, b, 2, 5) == Refs{{2, 1}, {3, 1}, {4, 1}});
  }
  SECTION("a source offset at or past EOF copies nothing and changes nothing") {
    Dump before = DumpStore(st.db());
    REQUIRE(CopyRange(v, a, ma.size(), b, 0, kB) == 0);
    REQUIRE(CopyRange(v, a, ma.size() + 5 * kB, b, 0, kB) == 0);
    REQUIRE(CopyRange(v, a, 0, b, 0, 0) == 0);
    RequireSameStore(before, DumpStore(st.db()));
  }
  SECTION("the length is clipped at the source's EOF") {
    REQUIRE(CopyRange(v, a, 10 * kB, b, 3, kB) == 500);
    mb = std::string(3, '\0') + ma.substr(10 * kB);
  }
  SECTION("within one file: overlap is EINVAL, disjoint ranges copy") {
    uint64_t copied = 0;
    InodeRecord out;
    for (auto [s, d, n] : {std::tuple<uint64_t, uint64_t, uint64_t>{0, 100, 200},
                           {kB, 0, kB + 1},
                           {0, 0, 1},
                           {5 * kB + 7, 5 * kB, 4 * kB}}) {
      CAPTURE(s, d, n);
      Dump before = DumpStore(st.db());
      DAXREF_REQUIRE_ERR(v.CopyRange(a, s, a, d, n, kRoot, &copied, &out), EINVAL);
      RequireSameStore(before, DumpStore(st.db()));
    }
    REQUIRE(CopyRange(v, a, kB + 10, a, 20 * kB + 10, 3 * kB) == 3 * kB);  // congruent
    ModelWrite(&ma, 20 * kB + 10, ma.substr(kB + 10, 3 * kB));
    REQUIRE(PoolBlocks(v, a, 21, 2) == PoolBlocks(v, a, 2, 2));
    REQUIRE(CopyRange(v, a, 7, a, 30 * kB, 2 * kB) == 2 * kB);  // bytes
    ModelWrite(&ma, 30 * kB, ma.substr(7, 2 * kB));
  }
  SECTION("directories are EISDIR") {
    uint64_t d = st.MakeDir(kRootIno, "d");
    uint64_t copied = 0;
    InodeRecord out;
    DAXREF_REQUIRE_ERR(v.CopyRange(a, 0, d, 0, kB, kRoot, &copied, &out), EISDIR);
    DAXREF_REQUIRE_ERR(v.CopyRange(d, 0, a, 0, kB, kRoot, &copied, &out), EISDIR);
  }
  RequireFileIs(st, a, ma);
  RequireFileIs(st, b, mb);
  RequireFileIs(st, c, mc);
  RequireSharingConsistent(st, {a, b, c});
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

// Regression: copy_file_range within one file, congruent offsets, to the
// unaligned EOF, with the destination starting inside the source's EOF
// block. The head copy writes into that block past the old EOF; the block
// used to be shared as the destination's new EOF block, so the bytes past
// the new EOF were the head's, not zeros, and a truncate up exposed them.
TEST_CASE("CopyRange within a file into its own EOF block keeps zeros past EOF (regression)",
          "[reflink]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t f = st.MakeFile(kRootIno, "f");
  std::string m = Pattern(kB + 100, 1);  // EOF inside block 1
  st.WriteFile(f, 0, m);
  // [100, 4196) to 4196: head [4196, 8192) lands in block 1, the rest
  // (4096..4196 of the source) in block 2, which is block 1 shared.
  REQUIRE(CopyRange(v, f, 100, f, kB + 100, kB) == kB);
  ModelWrite(&m, kB + 100, m.substr(100, kB));
  REQUIRE(st.Inode(f).size == 2 * kB + 100);
  DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, m.size()), m);
  st.Truncate(f, 3 * kB);
  m.resize(3 * kB, '\0');
  DAXREF_REQUIRE_BYTES(st.ReadFile(f, 0, m.size()), m);  // [8292, 12288) were not zero
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

// ---------------------------------------------------------------------------
// 8. Unshare, and ENOSPC.

TEST_CASE("Unshare gives a range its own blocks and leaves the other sharer alone", "[reflink]") {
  TestStore st;
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a"), b = st.MakeFile(kRootIno, "b");
  std::string m = Pattern(6 * kB + 10, 1);
  st.WriteFile(a, 0, m);
  Clone(v, a, 0, b, 0, 0);
  const uint64_t free0 = st.free_blocks();
  std::vector<uint64_t> a_before = PoolBlocks(v, a, 0, 7);
  using Refs = std::map<uint64_t, uint64_t>;

  InodeRecord out = Fallocate(v, b, kFallocUnshareRange | kFallocKeepSize, kB, 3 * kB);
  REQUIRE(out.size == m.size());
  REQUIRE(st.free_blocks() == free0 - 3);
  REQUIRE(RefsByBlock(v, b) == Refs{{0, 2}, {1, 1}, {2, 1}, {3, 1}, {4, 2}, {5, 2}, {6, 2}});
  REQUIRE(RefsByBlock(v, a) == Refs{{0, 2}, {1, 1}, {2, 1}, {3, 1}, {4, 2}, {5, 2}, {6, 2}});
  REQUIRE(PoolBlocks(v, a, 0, 7) == a_before);  // the file unsharing moved, not the other
  RequireFileIs(st, a, m);
  RequireFileIs(st, b, m);

  // An unaligned range unshares every block it touches.
  Fallocate(v, a, kFallocUnshareRange | kFallocKeepSize, 5 * kB - 1, 2);
  REQUIRE(RefsByBlock(v, a) == Refs{{0, 2}, {1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}, {6, 2}});
  REQUIRE(st.free_blocks() == free0 - 5);
  // Unsharing what is not shared costs nothing.
  Fallocate(v, a, kFallocUnshareRange | kFallocKeepSize, kB, 3 * kB);
  REQUIRE(st.free_blocks() == free0 - 5);
  // Without KEEP_SIZE, past EOF: the size grows, new blocks read zero.
  out = Fallocate(v, b, kFallocUnshareRange, 0, 9 * kB);
  REQUIRE(out.size == 9 * kB);
  std::string mb = m;
  mb.resize(9 * kB, '\0');
  for (const auto& [fb, n] : RefsByBlock(v, b)) REQUIRE(n == 1);
  REQUIRE(RefcountRecords(st.db()).empty());
  RequireFileIs(st, a, m);
  RequireFileIs(st, b, mb);
  RequireSharingConsistent(st, {a, b});
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

TEST_CASE("ENOSPC in copy-on-write or unshare changes nothing", "[reflink]") {
  // 62 data blocks: a 20, its clone b, filler c takes the other 42.
  TestStore st(64);
  Volume& v = st.vol();
  uint64_t a = st.MakeFile(kRootIno, "a"), b = st.MakeFile(kRootIno, "b"),
           c = st.MakeFile(kRootIno, "c");
  const std::string ma = Pattern(20 * kB - 100, 1);
  st.WriteFile(a, 0, ma);
  Clone(v, a, 0, b, 0, 0);
  const std::string mc = Pattern(42 * kB, 2);
  st.WriteFile(c, 0, mc);
  REQUIRE(st.free_blocks() == 0);

  uint64_t copied = 0;
  InodeRecord out;
  SetAttrRequest cut;
  cut.size = 10 * kB + 5;
  struct Case {
    const char* what;
    std::function<Status()> op;
  };
  const std::vector<Case> cases{
      {"unshare range",
       [&] { return v.Fallocate(b, kFallocUnshareRange | kFallocKeepSize, 0, 20 * kB, &out); }},
      {"unshare one block", [&] { return v.Fallocate(a, kFallocUnshareRange, 0, 1, &out); }},
      {"write into a shared block", [&] { return v.Write(b, 5 * kB + 7, "xyz", 3, kRoot, &out); }},
      {"write a whole shared block",
       [&] {
         std::string w(kB, 'w');
         return v.Write(a, 0, w.data(), w.size(), kRoot, &out);
       }},
      {"write past EOF in the shared EOF block",
       [&] { return v.Write(b, 20 * kB - 50, "e", 1, kRoot, &out); }},
      {"truncate into a shared block", [&] { return v.SetAttr(b, cut, kRoot, &out); }},
      {"punch with a shared edge",
       [&] { return v.Fallocate(b, kFallocPunchHole | kFallocKeepSize, 100, 3 * kB, &out); }},
      {"zero range in a shared block",
       [&] { return v.Fallocate(a, kFallocZeroRange, 100, 100, &out); }},
      {"copy range into a shared block",
       [&] { return v.CopyRange(c, 0, b, 100, 50, kRoot, &copied, &out); }},
  };
  for (const Case& k : cases) {
    CAPTURE(k.what);
    Dump before = DumpStore(st.db());
    Status s = k.op();
    INFO(s.message());
    REQUIRE(s.err() == ENOSPC);
    RequireSameStore(before, DumpStore(st.db()));
    REQUIRE(st.free_blocks() == 0);
    RequireFileIs(st, a, ma);
    RequireFileIs(st, b, ma);
    RequireFileIs(st, c, mc);
    // The refcounts the failed operation had already changed (an unmap
    // comes before the copy-on-write that fails) are back as they were:
    // what WalkSharing says, and what an overwrite in place asks.
    RequireSharingConsistent(st, {a, b, c});
    for (uint64_t fb = 0; fb < 20; ++fb) {
      CAPTURE(fb);
      DAXREF_REQUIRE_ERR(v.Write(b, fb * kB + 9, "q", 1, kRoot, &out), ENOSPC);
    }
    RequireFileIs(st, a, ma);
  }
  DAXREF_REQUIRE_VOLUME_CLEAN(st);

  // With 3 blocks free, a 20-block unshare still fails whole, a 3-block one
  // succeeds.
  Fallocate(v, c, kFallocPunchHole | kFallocKeepSize, 39 * kB, 3 * kB);
  std::string mc2 = mc;
  ModelZero(&mc2, 39 * kB, 3 * kB);
  REQUIRE(st.free_blocks() == 3);
  Dump before = DumpStore(st.db());
  DAXREF_REQUIRE_ERR(v.Fallocate(b, kFallocUnshareRange | kFallocKeepSize, 0, 20 * kB, &out),
                     ENOSPC);
  RequireSameStore(before, DumpStore(st.db()));
  REQUIRE(st.free_blocks() == 3);
  Fallocate(v, b, kFallocUnshareRange | kFallocKeepSize, 4 * kB, 3 * kB);
  REQUIRE(st.free_blocks() == 0);
  RequireFileIs(st, a, ma);
  RequireFileIs(st, b, ma);
  RequireFileIs(st, c, mc2);
  RequireSharingConsistent(st, {a, b, c});
  DAXREF_REQUIRE_VOLUME_CLEAN(st);
}

// Regression: CopyRange used to copy the head (and, without congruence,
// 1 MiB chunks) with separate WriteIn calls, each storing bytes in place as
// soon as its own blocks were in hand. When a later piece then hit ENOSPC
// the batch was dropped, but the bytes already stored into blocks the
// destination owned stayed: the call failed and the destination had
// changed anyway.
TEST_CASE("CopyRange that fails with ENOSPC leaves the destination as it was (regression)",
          "[reflink]") {
  SECTION("congruent: head in place, body shared, the tail needs a block") {
    TestStore st(64);
    Volume& v = st.vol();
    uint64_t s = st.MakeFile(kRootIno, "s"), d = st.MakeFile(kRootIno, "d"),
             fill = st.MakeFile(kRootIno, "fill");
    const std::string ms = Pattern(8 * kB, 1), md = Pattern(2 * kB, 2);
    st.WriteFile(s, 0, ms);
    st.WriteFile(d, 0, md);
    st.WriteFile(fill, 0, Pattern(st.free_blocks() * kB, 3));
    REQUIRE(st.free_blocks() == 0);
    // The head [100, 4096) would go into d's own block 0, the body (blocks
    // 1 and 2) be shared, the tail [3 blocks, +100) needs a new block.
    Dump before = DumpStore(st.db());
    uint64_t copied = 0;
    InodeRecord out;
    DAXREF_REQUIRE_ERR(v.CopyRange(s, 100, d, 100, 3 * kB, kRoot, &copied, &out), ENOSPC);
    REQUIRE(copied == 0);
    RequireSameStore(before, DumpStore(st.db()));
    RequireFileIs(st, d, md);  // d's [100, 4096) used to hold s's bytes here
    RequireFileIs(st, s, ms);
    DAXREF_REQUIRE_VOLUME_CLEAN(st);
  }
  SECTION("bytes only, the copied megabyte runs past the destination's blocks") {
    TestStore st(1024);
    Volume& v = st.vol();
    uint64_t s = st.MakeFile(kRootIno, "s"), d = st.MakeFile(kRootIno, "d"),
             fill = st.MakeFile(kRootIno, "fill");
    // d: 512 KiB; a call copies at most 1 MiB of bytes, and the second
    // half of it needs blocks.
    const std::string ms = Pattern(400 * kB, 1), md = Pattern(128 * kB, 2);
    st.WriteFile(s, 0, ms);
    st.WriteFile(d, 0, md);
    st.WriteFile(fill, 0, Pattern(st.free_blocks() * kB, 3));
    REQUIRE(st.free_blocks() == 0);
    Dump before = DumpStore(st.db());
    uint64_t copied = 0;
    InodeRecord out;
    DAXREF_REQUIRE_ERR(v.CopyRange(s, 1, d, 0, 300 * kB, kRoot, &copied, &out), ENOSPC);
    REQUIRE(copied == 0);
    RequireSameStore(before, DumpStore(st.db()));
    RequireFileIs(st, d, md);
    RequireFileIs(st, s, ms);
    DAXREF_REQUIRE_VOLUME_CLEAN(st);
  }
}

}  // namespace
}  // namespace daxref
