// Sharing blocks between files (reflink): refcounts, copy-on-write, clone,
// dedupe and copy_file_range. See docs/design.md, "Reflink".
//
// Refcount records (N) exist only for shared blocks, as in XFS: an owned
// block with no record is referenced once. Every operation that adds or
// drops a reference to a block goes through AdjustRefs or DropBlocks, in the
// same batch as the extent and reverse-map records that make the reference
// (those are written by extent_edit.cc: Repoint, ShareBlocks, MapExtent).
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "base/mutex.h"
#include "meta/volume.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::BlockCeil;
using internal::BlockOf;
using internal::FromRocks;
using internal::PoolOff;
using internal::PrefixScan;

namespace {

// A copy_file_range that cannot share moves at most this many bytes per
// call (the caller, the kernel or cp, asks again for the rest): they are
// read before the volume lock is taken, and stored under it, like a write.
constexpr uint64_t kMaxByteCopy = 1 << 20;
// Bytes compared at a time.
constexpr size_t kChunkBytes = 1 << 20;

bool Aligned(uint64_t v) {
  return (v & (kBlockSize - 1)) == 0;
}

}  // namespace

// Blocks can only stop being shared behind the caller's back, never start
// (that takes the caller's own I/O lock): an answer of "not shared" stays
// true after the lock is dropped.
bool Volume::SharedNow(uint64_t pb0, uint64_t pb1) {
  ReaderLock g(&refs_mu_);
  return committed_refs().AnyShared(pb0, pb1);
}

// refs_ is written only under mu_ with refs_mu_ held exclusive (Txn::
// LockRefcounts), so either lock is enough to read it; GUARDED_BY names one.
const RefcountMap& Volume::committed_refs() NO_THREAD_SAFETY_ANALYSIS {
  return refs_;
}

//   The records in the window (those overlapping [pb0, pb1) and the ones
//   that merely touch it, which may merge with the result) are rebuilt:
//
//      old:  |--3--|     |----2----|          (gaps: referenced once)
//      +1 on      [==================)
//      new:  |--3--|-2-|-----3-----|--2--)
//
//   Pieces keep their count outside the range, change by delta inside it;
//   adjacent pieces with equal counts merge; counts below 2 get no record,
//   and blocks whose count reaches 0 are released.
Status Volume::AdjustRefs(Txn& t, uint64_t pb0, uint64_t pb1, int delta) {
  if (pb1 <= pb0) return Status::Ok();
  std::vector<RefcountRecord> old;
  // The map reflects this batch's earlier edits (the caller holds mu_).
  refs_.ForEachOverlap(pb0 > 0 ? pb0 - 1 : 0, pb1 + 1, [&](const RefcountRecord& r) {
    old.push_back(r);
    return true;
  });
  struct Piece {
    uint64_t start, end, refs;
  };
  std::vector<Piece> pieces;
  uint64_t pos = old.empty() ? pb0 : std::min(pb0, old.front().pblock);
  auto add = [&](uint64_t s, uint64_t e, uint64_t refs) {
    if (e <= s) return;
    if (!pieces.empty() && pieces.back().end == s && pieces.back().refs == refs)
      pieces.back().end = e;
    else
      pieces.push_back({s, e, refs});
  };
  // Splits [s, e), counted `refs`, at the range edges and applies delta
  // to the part inside.
  auto emit = [&](uint64_t s, uint64_t e, uint64_t refs) {
    uint64_t in0 = std::clamp(pb0, s, e), in1 = std::clamp(pb1, in0, e);
    add(s, in0, refs);
    add(in0, in1, refs + delta);
    add(in1, e, refs);
  };
  for (const RefcountRecord& r : old) {
    emit(pos, r.pblock, 1);  // a gap: blocks referenced once
    emit(r.pblock, r.pend(), r.refs);
    pos = r.pend();
  }
  emit(pos, std::max(pos, pb1), 1);

  t.LockRefcounts();
  std::map<uint64_t, RefcountRecord> before;
  for (const RefcountRecord& r : old) before[r.pblock] = r;
  for (const Piece& p : pieces) {
    if (p.refs == 0) {
      ReleaseBlocks(p.start, p.end - p.start);
      continue;
    }
    if (p.refs < 2) continue;
    RefcountRecord n{p.start, p.end - p.start, p.refs};
    auto b = before.find(p.start);
    if (b != before.end()) {
      bool same = b->second.len == n.len && b->second.refs == n.refs;
      before.erase(b);
      if (same) continue;
    }
    refs_.Put(n);
  }
  for (const auto& [start, r] : before) refs_.Erase(start);
  return Status::Ok();
}

Status Volume::DropBlocks(Txn& t, const InodeRecord& r, uint64_t pb0, uint64_t len) {
  // An inode that never took part in a clone has no shared block: no
  // refcount record to look for.
  if (!(r.flags & kInodeReflinked)) {
    ReleaseBlocks(pb0, len);
    return Status::Ok();
  }
  return AdjustRefs(t, pb0, pb0 + len, -1);
}

Status Volume::Unshare(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1, uint64_t keep_off,
                       uint64_t keep_end) {
  if (!(r->flags & kInodeReflinked) || fb1 <= fb0) return Status::Ok();
  // First the shared pieces (file block, pool block, length), then the
  // edits: the batch is not changed under a live iterator.
  std::vector<Extent> shared;
  DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, fb0, fb1, [&](const Extent& e) REQUIRES(mu_) {
    uint64_t f0 = std::max(e.fblock, fb0), f1 = std::min(e.fend(), fb1);
    uint64_t p0 = e.pblock + (f0 - e.fblock), p1 = p0 + (f1 - f0);
    refs_.ForEachOverlap(p0, p1, [&](const RefcountRecord& n) {
      uint64_t s = std::max(n.pblock, p0), x = std::min(n.pend(), p1);
      shared.push_back(Extent{f0 + (s - p0), s, x - s});
      return true;
    });
    return true;
  }));
  return MoveBlocks(t, r, shared, keep_off, keep_end);
}

//   Copy-on-write places blocks by windows of kCowWindow file blocks, each
//   backed by a window of kCowWindow pool blocks aligned to kCowWindow, file
//   block f at window offset f % kCowWindow. The first block of a window to
//   move picks a window all free (after the neighbouring file window's, if
//   that one is placed), later ones take their slot in it, so blocks moved
//   in any order end up in one extent per window, and neighbouring windows
//   merge. This stands in for XFS's CoW extent size hint (32 blocks by
//   default), which reserves the whole window at the first write into it.
//
//     file   | w0: 0 1 2 .. 31 | w1: 32 .. 63 |      (writes in any order)
//     pool   |  W: 0 1 2 .. 31 |  W+32: 32 .. |      W % 32 == 0
//
//   A slot taken meanwhile by someone else sends the piece to a new window;
//   no room for a window anywhere sends it to the first free blocks after
//   the old ones (the policy before windows).
constexpr uint64_t kCowWindow = 32;

uint64_t Volume::CowGoal(Txn& t, const InodeRecord& r, const Extent& piece,
                         const std::vector<Extent>& fresh) {
  const uint64_t f = piece.fblock, win = f / kCowWindow * kCowWindow, slot = f - win;
  // The pool block that file block w0 lines up with, judged by a block of
  // r in file blocks [w0, w1) that no one else references; nullopt if none.
  auto placed = [&](uint64_t w0, uint64_t w1) REQUIRES(mu_) -> std::optional<uint64_t> {
    std::optional<uint64_t> base;
    auto consider = [&](const Extent& e) REQUIRES(mu_) {
      uint64_t a = std::max(e.fblock, w0), b = std::min(e.fend(), w1);
      if (a >= b) return;
      uint64_t pa = e.pblock + (a - e.fblock);
      if (pa < a - w0) return;  // would be below pool block 0
      if (refs_.AnyShared(pa, pa + (b - a))) return;
      base = pa - (a - w0);
    };
    // Pieces come in file order: only the last few taken can be near.
    for (size_t i = fresh.size(), n = 0; i-- > 0 && n < 8; ++n) {
      consider(fresh[i]);
      if (base) return base;
    }
    Status s = WalkExtents(t, r.ino, w0, w1, [&](const Extent& e) REQUIRES(mu_) {
      consider(e);
      return !base;
    });
    if (!s.ok()) return std::nullopt;  // only a hint: the caller's walk reports errors
    return base;
  };
  // This window already has blocks of r's own: the slot in it.
  if (std::optional<uint64_t> b = placed(win, win + kCowWindow); b && free_.IsFree(*b + slot, 1))
    return *b + slot;
  // A neighbouring window is placed: the window next to it in the pool.
  if (win >= kCowWindow) {
    if (std::optional<uint64_t> b = placed(win - kCowWindow, win);
        b && free_.IsFree(*b + kCowWindow, kCowWindow))
      return *b + kCowWindow + slot;
  }
  if (std::optional<uint64_t> b = placed(win + kCowWindow, win + 2 * kCowWindow);
      b && *b >= kCowWindow && free_.IsFree(*b - kCowWindow, kCowWindow))
    return *b - kCowWindow + slot;
  // A free aligned window near the old blocks.
  if (std::optional<uint64_t> at = free_.FindRoom(piece.pblock, kCowWindow, kCowWindow))
    return *at + slot;
  return piece.pblock;
}

Status Volume::MoveBlocks(Txn& t, InodeRecord* r, const std::vector<Extent>& pieces,
                          uint64_t keep_off, uint64_t keep_end) {
  if (pieces.empty()) return Status::Ok();
  // Take every new block before writing any, so ENOSPC changes nothing.
  struct Move {
    Extent from, to;  // to.fblock == from.fblock
  };
  std::vector<Move> moves;
  std::vector<Extent> got, taken;
  for (const Extent& s : pieces) {
    got.clear();
    DAXREF_RETURN_IF_ERROR(AllocateFor(s.fblock, s.len, CowGoal(t, *r, s, taken), &got));
    for (const Extent& to : got) {
      moves.push_back(Move{Extent{to.fblock, s.pblock + (to.fblock - s.fblock), to.len}, to});
      taken.push_back(to);
    }
  }
  std::vector<Extent> fresh;
  for (const Move& m : moves) {
    // Copy the old bytes but those the caller is about to overwrite.
    uint64_t b0 = m.from.fblock << kBlockShift, b1 = m.from.fend() << kBlockShift;
    uint64_t k0 = std::clamp(keep_off, b0, b1), k1 = std::clamp(keep_end, k0, b1);
    // Old bytes of a bad block cannot be copied (PrepareWrite has already
    // replaced the bad blocks a write covers whole).
    if (k0 > b0 || b1 > k1)
      DAXREF_RETURN_IF_ERROR(RefuseBad(m.from.pblock, m.from.pend(), "unsharing"));
    data_->WillWrite(PoolOff(m.to.pblock), m.to.len << kBlockShift);
    if (k0 > b0)
      DAXREF_RETURN_IF_ERROR(data_->Copy(PoolOff(m.to.pblock), PoolOff(m.from.pblock), k0 - b0));
    if (b1 > k1)
      DAXREF_RETURN_IF_ERROR(data_->Copy(PoolOff(m.to.pblock) + (k1 - b0),
                                         PoolOff(m.from.pblock) + (k1 - b0), b1 - k1));
    fresh.push_back(m.to);
  }
  // Every byte is copied before the first refcount edit (in Repoint), so
  // that readers of refcounts outside mu_ (the overwrite fast path of every
  // reflinked file) do not wait behind the copies.
  for (const Move& m : moves) DAXREF_RETURN_IF_ERROR(Repoint(t, r, m.to));
  t.NoteFresh(fresh);
  return Status::Ok();
}

namespace {

// The checks FICLONERANGE and FIDEDUPERANGE share (after the kernel's
// generic_remap_checks). On success *len is the byte count to report and
// *blocks the whole blocks to remap (the source's partial EOF block counts
// as a whole one: the bytes past EOF in it are zero).
Status CheckRemap(const InodeRecord& src, uint64_t src_off, const InodeRecord& dst,
                  uint64_t dst_off, bool dedupe, uint64_t* len, uint64_t* blocks) {
  if (S_ISDIR(src.mode) || S_ISDIR(dst.mode)) return Status::Error(EISDIR, "is a directory");
  if (!S_ISREG(src.mode) || !S_ISREG(dst.mode)) return Status::Invalid("not a regular file");
  if (!Aligned(src_off) || !Aligned(dst_off))
    return Status::Invalid("offsets must be multiples of the block size (4096)");
  if (src_off + *len < src_off || dst_off + *len < dst_off)
    return Status::Invalid("range wraps around");
  if (dedupe && (src_off >= src.size || src_off + *len > src.size || dst_off >= dst.size ||
                 dst_off + *len > dst.size))
    return Status::Invalid("dedupe ranges must lie within both files");
  if (src_off >= src.size) return Status::Invalid("source offset at or past end of file");
  uint64_t count = std::min(*len, src.size - src_off);
  if (dst_off >= kMaxFileSize || count > kMaxFileSize - dst_off)
    return Status::Error(EFBIG, "file too large");
  uint64_t bcount;
  if (src_off + count == src.size && (!dedupe || dst_off + count == dst.size)) {
    bcount = (BlockCeil(src.size) << kBlockShift) - src_off;
  } else {
    count &= ~uint64_t{kBlockSize - 1};
    bcount = count;
  }
  if (src.ino == dst.ino && dst_off + bcount > src_off && dst_off < src_off + bcount)
    return Status::Invalid("source and destination ranges overlap");
  // The source's partial EOF block may land only at or past the
  // destination's EOF: in the middle of the file it would replace the
  // destination's bytes after the range with zeros (the kernel's
  // generic_remap_check_len).
  if (!Aligned(count) && dst_off + count < dst.size)
    return Status::Invalid("the source's partial last block cannot go inside the destination");
  if (count != *len && !dedupe)
    return Status::Invalid("length must be a multiple of the block size unless it ends at EOF");
  *len = count;
  *blocks = bcount >> kBlockShift;
  return Status::Ok();
}

}  // namespace

// The destination's contents changed: it grows to `end` if shorter, loses
// what a write takes away, gets new times; both inodes are stored (the
// source for its reflinked flag) and the batch commits.
Status Volume::FinishRemap(Txn& t, InodeRecord* src, InodeRecord* to, uint64_t end,
                           const Caller& who) {
  to->size = std::max(to->size, end);
  DropWritePrivileges(t, to, who);
  to->mtime = to->ctime = Now();
  if (src->ino != to->ino) StoreInode(t, *src);
  StoreInode(t, *to);
  return Commit(t);
}

Status Volume::Clone(uint64_t src_ino, uint64_t src_off, uint64_t dst_ino, uint64_t dst_off,
                     uint64_t len, const Caller& who, InodeRecord* dst_out) {
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord src, dst;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, src_ino, &src));
  DAXREF_RETURN_IF_ERROR(LoadInode(t, dst_ino, &dst));
  if (len == 0) {
    if (S_ISDIR(src.mode) || S_ISDIR(dst.mode)) return Status::Error(EISDIR, "is a directory");
    if (src_off > src.size) return Status::Invalid("source offset past end of file");
    len = src.size - src_off;
    if (len == 0) {
      *dst_out = dst;
      return Status::Ok();
    }
  }
  uint64_t blocks = 0;
  DAXREF_RETURN_IF_ERROR(CheckRemap(src, src_off, dst, dst_off, false, &len, &blocks));
  InodeRecord& to = src_ino == dst_ino ? src : dst;
  uint64_t dfb = BlockOf(dst_off);
  DAXREF_RETURN_IF_ERROR(UnmapRange(t, &to, dfb, dfb + blocks));
  DAXREF_RETURN_IF_ERROR(ShareBlocks(t, &src, BlockOf(src_off), &to, dfb, blocks));
  DAXREF_RETURN_IF_ERROR(FinishRemap(t, &src, &to, dst_off + len, who));
  *dst_out = to;
  return Status::Ok();
}

Status Volume::ReadCommitted(uint64_t ino, uint64_t off, uint64_t len, char* dst) {
  if (len == 0) return Status::Ok();  // dst may be null (an empty piece)
  memset(dst, 0, len);
  Status st;
  DAXREF_RETURN_IF_ERROR(MapRange(ino, off, len, [&](const MappedSegment& seg) {
    if (seg.hole) return true;
    if (IsBad(BlockOf(seg.pool_off), BlockCeil(seg.pool_off + seg.len)))
      st = Status::IOError("reading a poisoned pool block");
    else
      st = data_->Load(seg.pool_off, dst + (seg.off - off), seg.len);
    return st.ok();
  }));
  return st;
}

// Dedupe and CopyRange read bytes before they take mu_ (the caller holds
// the two files' I/O locks, so neither the bytes nor the maps read can
// change until the batch commits), and check under it that the inodes are
// those they read: a change means the caller broke that rule.
Status Volume::ReloadUnchanged(Txn& t, uint64_t src_ino, uint64_t dst_ino, InodeRecord* src,
                               InodeRecord* dst) {
  for (auto [ino, r] : {std::pair{src_ino, src}, std::pair{dst_ino, dst}}) {
    InodeRecord now;
    DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &now));
    if (now.size != r->size || now.blocks != r->blocks)
      return Status::Error(EBUSY, "file changed while its bytes were read");
    *r = now;
  }
  return Status::Ok();
}

Status Volume::Dedupe(uint64_t src_ino, uint64_t src_off, uint64_t dst_ino, uint64_t dst_off,
                      uint64_t len, DedupeResult* result) {
  *result = DedupeResult{};
  InodeRecord src, dst;
  DAXREF_RETURN_IF_ERROR(GetInode(src_ino, &src));
  DAXREF_RETURN_IF_ERROR(GetInode(dst_ino, &dst));
  if (S_ISDIR(src.mode) || S_ISDIR(dst.mode)) return Status::Error(EISDIR, "is a directory");
  if (len == 0) {
    result->same = true;
    return Status::Ok();
  }
  uint64_t blocks = 0;
  DAXREF_RETURN_IF_ERROR(CheckRemap(src, src_off, dst, dst_off, true, &len, &blocks));
  if (blocks == 0) {
    result->same = true;
    return Status::Ok();
  }
  // Compare what both files hold now, without the volume lock.
  std::vector<char> a(kChunkBytes), b(kChunkBytes);
  for (uint64_t done = 0; done < len; done += kChunkBytes) {
    uint64_t n = std::min<uint64_t>(kChunkBytes, len - done);
    DAXREF_RETURN_IF_ERROR(ReadCommitted(src_ino, src_off + done, n, a.data()));
    DAXREF_RETURN_IF_ERROR(ReadCommitted(dst_ino, dst_off + done, n, b.data()));
    if (memcmp(a.data(), b.data(), n) != 0) return Status::Ok();  // differs: nothing changes
  }
  MutexLock g(&mu_);
  Txn t(this);
  DAXREF_RETURN_IF_ERROR(ReloadUnchanged(t, src_ino, dst_ino, &src, &dst));
  InodeRecord& to = src_ino == dst_ino ? src : dst;
  uint64_t dfb = BlockOf(dst_off);
  DAXREF_RETURN_IF_ERROR(UnmapRange(t, &to, dfb, dfb + blocks));
  DAXREF_RETURN_IF_ERROR(ShareBlocks(t, &src, BlockOf(src_off), &to, dfb, blocks));
  // The bytes are the same: no time changes (as on XFS), only the map.
  if (src_ino != dst_ino) StoreInode(t, src);
  StoreInode(t, to);
  DAXREF_RETURN_IF_ERROR(Commit(t));
  result->same = true;
  result->bytes = len;
  return Status::Ok();
}

Status Volume::CopyRange(uint64_t src_ino, uint64_t src_off, uint64_t dst_ino, uint64_t dst_off,
                         uint64_t len, const Caller& who, uint64_t* copied, InodeRecord* dst_out) {
  *copied = 0;
  InodeRecord src, dst;
  DAXREF_RETURN_IF_ERROR(GetInode(src_ino, &src));
  DAXREF_RETURN_IF_ERROR(GetInode(dst_ino, &dst));
  if (S_ISDIR(src.mode) || S_ISDIR(dst.mode)) return Status::Error(EISDIR, "is a directory");
  if (!S_ISREG(src.mode) || !S_ISREG(dst.mode)) return Status::Invalid("not a regular file");
  if (src_off >= src.size || len == 0) {
    *dst_out = dst;
    return Status::Ok();
  }
  len = std::min(len, src.size - src_off);
  if (dst_off >= kMaxFileSize || len > kMaxFileSize - dst_off)
    return Status::Error(EFBIG, "file too large");
  if (src_ino == dst_ino && dst_off + len > src_off && dst_off < src_off + len)
    return Status::Invalid("source and destination ranges overlap");
  const uint64_t dst_size = src_ino == dst_ino ? src.size : dst.size;

  // Which bytes are copied and which blocks shared. Every block the copy
  // needs is allocated (and unshared) before any byte is stored in place,
  // so an ENOSPC leaves the destination as it was.
  struct Piece {
    uint64_t src, dst, len;
  };
  Piece head{0, 0, 0}, tail{0, 0, 0};
  uint64_t body = 0;  // bytes shared, after the head
  if ((src_off & (kBlockSize - 1)) == (dst_off & (kBlockSize - 1))) {
    uint64_t h = std::min(len, (kBlockSize - (src_off & (kBlockSize - 1))) & (kBlockSize - 1));
    body = (len - h) & ~uint64_t{kBlockSize - 1};
    uint64_t tl = len - h - body;
    // The source's partial EOF block can be shared too when the copy ends
    // at or past the destination's EOF: its bytes past EOF are zero. Not
    // within one file, where the head may just have written past EOF in
    // that very block.
    if (tl > 0 && src_ino != dst_ino && src_off + len == src.size && dst_off + len >= dst_size) {
      body += kBlockSize;
      tl = 0;
    }
    head = Piece{src_off, dst_off, h};
    tail = Piece{src_off + h + body, dst_off + h + body, tl};
  } else {
    len = std::min(len, kMaxByteCopy);
    head = Piece{src_off, dst_off, len};
  }
  // The bytes to copy are read before the volume lock is taken. The ranges
  // do not overlap, and a shared body lies wholly inside the destination's
  // range, so nothing this call stores changes a byte it reads.
  std::vector<char> head_bytes(head.len), tail_bytes(tail.len);
  DAXREF_RETURN_IF_ERROR(ReadCommitted(src_ino, head.src, head.len, head_bytes.data()));
  DAXREF_RETURN_IF_ERROR(ReadCommitted(src_ino, tail.src, tail.len, tail_bytes.data()));

  MutexLock g(&mu_);
  Txn t(this);
  DAXREF_RETURN_IF_ERROR(ReloadUnchanged(t, src_ino, dst_ino, &src, &dst));
  InodeRecord& to = src_ino == dst_ino ? src : dst;
  for (const Piece& p : {head, tail}) DAXREF_RETURN_IF_ERROR(PrepareWrite(t, &to, p.dst, p.len));
  if (body > 0) {
    uint64_t dfb = BlockOf(dst_off + head.len), n = body >> kBlockShift;
    DAXREF_RETURN_IF_ERROR(UnmapRange(t, &to, dfb, dfb + n));
    DAXREF_RETURN_IF_ERROR(ShareBlocks(t, &src, BlockOf(src_off + head.len), &to, dfb, n));
  }
  DAXREF_RETURN_IF_ERROR(StoreBytes(t, &to, head.dst, head_bytes.data(), head.len));
  DAXREF_RETURN_IF_ERROR(StoreBytes(t, &to, tail.dst, tail_bytes.data(), tail.len));
  DAXREF_RETURN_IF_ERROR(FinishRemap(t, &src, &to, dst_off + len, who));
  *copied = len;
  *dst_out = to;
  return Status::Ok();
}

Status Volume::WalkSharing(uint64_t ino, uint64_t fb0, uint64_t fb1, const SharedExtentFn& fn) {
  // A read-only walk of the committed store, through an empty batch.
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &r));
  bool stop = false;
  return WalkExtents(t, ino, fb0, fb1, [&](const Extent& e) REQUIRES(mu_) {
    uint64_t f0 = std::max(e.fblock, fb0), f1 = std::min(e.fend(), fb1);
    uint64_t p0 = e.pblock + (f0 - e.fblock), p1 = p0 + (f1 - f0), pos = p0;
    auto out = [&](uint64_t s, uint64_t x, uint64_t refs) {
      if (x > s && !stop) stop = !fn(SharedExtent{f0 + (s - p0), s, x - s, refs});
    };
    if (r.flags & kInodeReflinked) {
      refs_.ForEachOverlap(p0, p1, [&](const RefcountRecord& n) {
        uint64_t s = std::max(n.pblock, p0), x = std::min(n.pend(), p1);
        out(pos, s, 1);
        out(s, x, n.refs);
        pos = x;
        return !stop;
      });
    }
    out(pos, p1, 1);
    return !stop;
  });
}

}  // namespace daxref
