// Extent-map and reverse-map editing: the one unit that writes E (extent)
// and R (reverse-map) records. Every other part of Volume changes a file's
// mapping through the calls declared under "Extent-map and reverse-map
// editing" in meta/volume.h, all inside one operation's Txn.
//
// Invariants kept here, each in the same batch as the edit that needs it:
//   - A file's extents never overlap; E(ino, fblock) keys sort by file
//     block, and an extent is merged with its neighbours when both its file
//     and pool blocks continue theirs (MapExtent), so a file written front
//     to back stays one extent.
//   - Every extent has exactly one R record with the same pool block,
//     length, inode and file block; its length class bit is set in
//     rmap_classes_ before the batch commits (PutRmap).
//   - Blocks leave a file only through DropBlocks (volume_share.cc), which
//     drops one reference and frees or retires the blocks no one references.
//   - Blocks join a file only from AllocateFor (free space, rolled back with
//     the Txn) or as a shared reference taken by ShareBlocks.
//   - An operation that edits ino's extents calls Txn::TouchExtents first:
//     its reads then bypass the extent cache, and the cache entry is dropped
//     at commit.
#include <rocksdb/db.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "meta/volume.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::BlockCeil;
using internal::BlockOf;
using internal::FirstEndingAfter;
using internal::FromRocks;
using internal::PoolOff;
using internal::PrefixScan;

// ---------------------------------------------------------------------------
// Reading the map. Keys E(ino, fblock) sort by file block, so the extents
// that overlap [fb0, fb1) are the one at or before fb0 (if it reaches past
// fb0) and those starting inside the range.

ExtentCache::Map Volume::CommittedExtents(uint64_t ino, bool load) {
  if (ExtentCache::Map m = extent_cache_.Get(ino)) return m;
  if (!load || extent_cache_.TooBig(ino)) return nullptr;
  uint64_t gen = extent_cache_.generation();
  auto v = std::make_shared<std::vector<Extent>>();
  PrefixScan scan(keys::ExtentPrefix(ino));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan.Options()));
  for (it->Seek(scan.prefix()); it->Valid(); it->Next()) {
    if (v->size() == ExtentCache::kMaxPerFile) {
      extent_cache_.MarkTooBig(ino, gen);
      return nullptr;
    }
    Extent e;
    if (!DecodeExtent(it->key().ToStringView(), it->value().ToStringView(), sb_.geometry(), &e)
             .ok())
      return nullptr;
    v->push_back(e);
  }
  if (!it->status().ok()) return nullptr;
  ExtentCache::Map m = std::move(v);
  extent_cache_.Put(ino, m, gen);
  return m;
}

Status Volume::WalkExtents(Txn& t, uint64_t ino, uint64_t fb0, uint64_t fb1, const ExtentFn& fn) {
  if (!t.ExtentsTouched(ino)) {
    if (ExtentCache::Map m = CommittedExtents(ino, false)) {
      for (auto it = FirstEndingAfter(*m, fb0); it != m->end() && it->fblock < fb1; ++it)
        if (!fn(*it)) break;
      return Status::Ok();
    }
  }
  PrefixScan scan(keys::ExtentPrefix(ino));
  const std::string& lo = scan.prefix();
  auto it = t.Iter(scan);
  // An extent starting before fb0 may reach into the range.
  it->SeekForPrev(keys::Extent(ino, fb0));
  if (it->Valid() && it->key().starts_with(lo)) {
    Extent e;
    DAXREF_RETURN_IF_ERROR(
        DecodeExtent(it->key().ToStringView(), it->value().ToStringView(), sb_.geometry(), &e));
    if (e.fblock < fb0 && e.fend() > fb0 && !fn(e)) return Status::Ok();
  }
  for (it->Seek(keys::Extent(ino, fb0)); it->Valid() && it->key().starts_with(lo); it->Next()) {
    Extent e;
    DAXREF_RETURN_IF_ERROR(
        DecodeExtent(it->key().ToStringView(), it->value().ToStringView(), sb_.geometry(), &e));
    if (e.fblock >= fb1) break;
    if (!fn(e)) break;
  }
  return FromRocks(it->status(), "scan extents");
}

//   Unmapping [fb0, fb1) from an extent keeps what lies outside:
//
//      e:   |----left----|=====unmapped=====|----right----|
//           e.fblock     fb0                fb1           e.fend
//
//   left keeps e's key with a shorter length, right gets a new key at fb1
//   with its pool block shifted by the same amount; the reverse map follows.
Status Volume::UnmapRange(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1) {
  // Extents are collected a chunk at a time: the batch is edited between
  // scans, never under a live iterator.
  constexpr size_t kChunk = 512;
  uint64_t from = fb0;
  for (;;) {
    std::vector<Extent> chunk;
    DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, from, fb1, [&](const Extent& e) {
      chunk.push_back(e);
      return chunk.size() < kChunk;
    }));
    if (chunk.empty()) return Status::Ok();
    t.TouchExtents(r->ino);
    for (const Extent& e : chunk) {
      uint64_t cut0 = std::max(e.fblock, fb0), cut1 = std::min(e.fend(), fb1);
      t.Delete(keys::Rmap(e.pblock, e.len, r->ino, e.fblock));
      if (e.fblock < cut0) {
        Extent left{e.fblock, e.pblock, cut0 - e.fblock};
        t.Put(keys::Extent(r->ino, left.fblock), EncodeExtent(left));
        PutRmap(t, left.pblock, left.len, r->ino, left.fblock);
      } else {
        t.Delete(keys::Extent(r->ino, e.fblock));
      }
      if (cut1 < e.fend()) {
        Extent right{cut1, e.pblock + (cut1 - e.fblock), e.fend() - cut1};
        t.Put(keys::Extent(r->ino, right.fblock), EncodeExtent(right));
        PutRmap(t, right.pblock, right.len, r->ino, right.fblock);
      }
      uint64_t n = cut1 - cut0;
      DAXREF_RETURN_IF_ERROR(DropBlocks(t, *r, e.pblock + (cut0 - e.fblock), n));
      r->blocks -= std::min(r->blocks, n);
    }
    if (chunk.size() < kChunk) return Status::Ok();
    from = std::min(chunk.back().fend(), fb1);
    if (from >= fb1) return Status::Ok();
  }
}

// Maps a hole [e.fblock, e.fend()) to pool blocks, merging with the extent
// before and after when both file and pool blocks are contiguous, so that a
// file written front to back stays one extent.
Status Volume::MapExtent(Txn& t, InodeRecord* r, const Extent& e, Extent* merged_out) {
  Extent merged = e;
  std::optional<Extent> left, right;
  if (e.fblock > 0) {
    DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, e.fblock - 1, e.fblock, [&](const Extent& x) {
      if (x.fend() == e.fblock && x.pend() == e.pblock) left = x;
      return false;
    }));
  }
  std::string v;
  Status s = t.Get(keys::Extent(r->ino, e.fend()), &v);
  if (s.ok()) {
    Extent x;
    DAXREF_RETURN_IF_ERROR(DecodeExtent(keys::Extent(r->ino, e.fend()), v, sb_.geometry(), &x));
    if (x.pblock == e.pend()) right = x;
  } else if (s.err() != ENOENT) {
    return s;
  }
  t.TouchExtents(r->ino);
  if (left) {
    merged.fblock = left->fblock;
    merged.pblock = left->pblock;
    merged.len += left->len;
  }
  if (right) {
    merged.len += right->len;
    t.Delete(keys::Extent(r->ino, right->fblock));
    t.Delete(keys::Rmap(right->pblock, right->len, r->ino, right->fblock));
  }
  if (left) t.Delete(keys::Rmap(left->pblock, left->len, r->ino, left->fblock));
  t.Put(keys::Extent(r->ino, merged.fblock), EncodeExtent(merged));
  PutRmap(t, merged.pblock, merged.len, r->ino, merged.fblock);
  r->blocks += e.len;
  if (merged_out) *merged_out = merged;
  return Status::Ok();
}

Status Volume::FillHoles(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1, uint64_t keep_off,
                         uint64_t keep_end) {
  // First find the holes, then allocate them all; only when every block is
  // in hand is anything written, so ENOSPC leaves the pool untouched.
  struct Hole {
    uint64_t fb, len, goal;
  };
  std::vector<Hole> holes;
  // Each hole is placed in line with the extent before it (for the first
  // hole, the file's last extent before the range), as if the gap between
  // them were filled too, so that filling the gap later can merge it all
  // into one extent. `anchor` is a file block and `goal` its pool block.
  uint64_t anchor = fb0, goal = 0;
  bool have_goal = false;
  std::optional<Extent> before;
  ExtentCache::Map m = t.ExtentsTouched(r->ino) ? nullptr : CommittedExtents(r->ino, false);
  if (m) {
    auto it = std::upper_bound(m->begin(), m->end(), fb0,
                               [](uint64_t b, const Extent& e) { return b < e.fblock; });
    if (it != m->begin()) before = *std::prev(it);
  } else {
    PrefixScan scan(keys::ExtentPrefix(r->ino));
    auto it = t.Iter(scan);
    it->SeekForPrev(keys::Extent(r->ino, fb0));
    if (it->Valid() && it->key().starts_with(scan.prefix())) {
      Extent e;
      DAXREF_RETURN_IF_ERROR(
          DecodeExtent(it->key().ToStringView(), it->value().ToStringView(), sb_.geometry(), &e));
      before = e;
    }
  }
  if (before && before->fend() <= fb0) {
    anchor = before->fend();
    goal = before->pend();
    have_goal = true;
  }
  auto goal_for = [&](uint64_t fb) { return have_goal ? goal + (fb - anchor) : 0; };
  uint64_t pos = fb0;
  DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, fb0, fb1, [&](const Extent& e) {
    if (e.fblock > pos) holes.push_back({pos, e.fblock - pos, goal_for(pos)});
    pos = std::max(pos, e.fend());
    anchor = e.fend();
    goal = e.pend();
    have_goal = true;
    return true;
  }));
  if (pos < fb1) holes.push_back({pos, fb1 - pos, goal_for(pos)});
  if (holes.empty()) return Status::Ok();

  std::vector<Extent> fresh;
  for (const Hole& h : holes)
    DAXREF_RETURN_IF_ERROR(
        AllocateFor(h.fb, h.len, h.goal ? h.goal : sb_.first_data_block(), &fresh));
  // New blocks hold whatever an earlier owner left: zero all but the bytes
  // the caller is about to write.
  for (const Extent& e : fresh) {
    data_->WillWrite(PoolOff(e.pblock), e.len << kBlockShift);
    uint64_t b0 = e.fblock << kBlockShift, b1 = e.fend() << kBlockShift;
    uint64_t k0 = std::clamp(keep_off, b0, b1), k1 = std::clamp(keep_end, k0, b1);
    if (k0 > b0) DAXREF_RETURN_IF_ERROR(data_->Zero(PoolOff(e.pblock), k0 - b0));
    if (b1 > k1) DAXREF_RETURN_IF_ERROR(data_->Zero(PoolOff(e.pblock) + (k1 - b0), b1 - k1));
  }
  for (const Extent& e : fresh) DAXREF_RETURN_IF_ERROR(MapExtent(t, r, e));
  t.NoteFresh(fresh);
  return Status::Ok();
}

Status Volume::AllocateFor(uint64_t fblock, uint64_t len, uint64_t goal, std::vector<Extent>* out) {
  for (uint64_t done = 0; done < len;) {
    std::optional<Extent> got = free_.Allocate(goal, len - done);
    if (!got) return Status::NoSpace("pool is full");
    out->push_back(Extent{fblock + done, got->pblock, got->len});
    done += got->len;
    goal = got->pend();
  }
  return Status::Ok();
}

void Volume::PutRmap(Txn& t, uint64_t pblock, uint64_t len, uint64_t ino, uint64_t fblock) {
  t.Put(keys::Rmap(pblock, len, ino, fblock), EncodeLength(len));
  rmap_classes_.fetch_or(uint64_t{1} << keys::RmapClass(len), std::memory_order_release);
}

//   Repointing file blocks [to.fblock, to.fend()) of the extent e that holds
//   them rewrites e in place: e keeps its key (shorter), the piece and the
//   part on the right get keys of their own. No extent key is deleted, so a
//   batch that repoints thousands of pieces never makes the next extent
//   lookup step over its own deletions; the price is that the new blocks
//   are not merged with their neighbours.
Status Volume::Repoint(Txn& t, InodeRecord* r, const Extent& to) {
  std::optional<Extent> found;
  DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, to.fblock, to.fblock + 1, [&](const Extent& e) {
    found = e;
    return false;
  }));
  if (!found || found->fblock > to.fblock || found->fend() < to.fend())
    return Status::Corruption("repointing blocks that are not mapped");
  const Extent e = *found;
  t.TouchExtents(r->ino);
  t.Delete(keys::Rmap(e.pblock, e.len, r->ino, e.fblock));
  auto put = [&](const Extent& x) REQUIRES(mu_) {
    t.Put(keys::Extent(r->ino, x.fblock), EncodeExtent(x));
    PutRmap(t, x.pblock, x.len, r->ino, x.fblock);
  };
  if (e.fblock < to.fblock) put(Extent{e.fblock, e.pblock, to.fblock - e.fblock});
  put(to);
  if (to.fend() < e.fend())
    put(Extent{to.fend(), e.pblock + (to.fend() - e.fblock), e.fend() - to.fend()});
  return DropBlocks(t, *r, e.pblock + (to.fblock - e.fblock), to.len);
}

Status Volume::ShareBlocks(Txn& t, InodeRecord* src, uint64_t sfb, InodeRecord* dst, uint64_t dfb,
                           uint64_t n) {
  // The source's extents are taken a chunk at a time, then shared: the
  // batch is edited between scans, never under a live iterator. When src
  // and dst are one file the ranges do not overlap, so mapping the
  // destination never changes what the next scan of the source finds.
  //
  // The destination range is a hole, filled front to back, so only the
  // first piece can merge with an extent before it and only the last with
  // one after it: those go through MapExtent, which looks; every other
  // piece continues the run just mapped or starts a new one, with no lookup.
  constexpr size_t kChunk = 512;
  uint64_t from = sfb, end = sfb + n, dend = dfb + n;
  std::optional<Extent> run;  // the destination extent this call mapped last
  while (from < end) {
    std::vector<Extent> chunk;
    DAXREF_RETURN_IF_ERROR(WalkExtents(t, src->ino, from, end, [&](const Extent& e) {
      chunk.push_back(e);
      return chunk.size() < kChunk;
    }));
    for (const Extent& e : chunk) {
      uint64_t f0 = std::max(e.fblock, from), f1 = std::min(e.fend(), end);
      if (f1 <= f0) continue;
      Extent piece{dfb + (f0 - sfb), e.pblock + (f0 - e.fblock), f1 - f0};
      // Sharing a bad block would hand its lost bytes to another file.
      DAXREF_RETURN_IF_ERROR(RefuseBad(piece.pblock, piece.pend(), "sharing"));
      DAXREF_RETURN_IF_ERROR(AdjustRefs(t, piece.pblock, piece.pend(), +1));
      if (run && run->fend() == piece.fblock && run->pend() == piece.pblock &&
          piece.fend() < dend) {
        t.Delete(keys::Rmap(run->pblock, run->len, dst->ino, run->fblock));
        run->len += piece.len;
      } else if (run && piece.fend() < dend) {
        run = piece;
      } else {
        Extent merged;
        DAXREF_RETURN_IF_ERROR(MapExtent(t, dst, piece, &merged));
        run = merged;
        continue;
      }
      t.TouchExtents(dst->ino);
      t.Put(keys::Extent(dst->ino, run->fblock), EncodeExtent(*run));
      PutRmap(t, run->pblock, run->len, dst->ino, run->fblock);
      dst->blocks += piece.len;
    }
    if (chunk.size() < kChunk) break;
    from = std::min(chunk.back().fend(), end);
  }
  src->flags |= kInodeReflinked;
  dst->flags |= kInodeReflinked;
  return Status::Ok();
}

}  // namespace daxref
