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
//   - Every E record written goes through Txn::PutExtent or EraseExtent,
//     which edit the file's in-memory map (meta/extent_maps.h) in step, so
//     that the map stays the truth; nothing here reads E records from the
//     store except LoadExtents, once per file brought into memory.
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
using internal::FromRocks;
using internal::PoolOff;
using internal::PrefixScan;

// ---------------------------------------------------------------------------
// Loading a map, and the Txn's hold on the maps it reads and edits.

Status Volume::LoadExtents(uint64_t ino, FileExtents::Map* out) {
  // A forward scan reads each key's newest version first, so loading costs
  // the file's extents plus the deleted versions still in the store once,
  // not once per lookup as a backward seek did.
  PrefixScan scan(keys::ExtentPrefix(ino));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan.Options()));
  uint64_t end = 0;
  for (it->Seek(scan.prefix()); it->Valid(); it->Next()) {
    Extent e;
    DAXREF_RETURN_IF_ERROR(
        DecodeExtent(it->key().ToStringView(), it->value().ToStringView(), sb_.geometry(), &e));
    if (e.fblock < end)
      return Status::Corruption("inode " + std::to_string(ino) + ": extent at file block " +
                                std::to_string(e.fblock) + " overlaps the one before it");
    end = e.fend();
    out->emplace_hint(out->end(), e.fblock, e);
  }
  return FromRocks(it->status(), "load extents");
}

Volume::Txn::HeldMap* Volume::Txn::Held(uint64_t ino) {
  for (HeldMap& h : held_)
    if (h.ino == ino) return &h;
  return nullptr;
}

// The map is held exclusive from here to ReleaseMaps, across calls, which
// the analysis (one function at a time) cannot follow.
FileExtents::Map* Volume::Txn::EditableMap(uint64_t ino) NO_THREAD_SAFETY_ANALYSIS {
  HeldMap* h = Held(ino);
  return h ? &h->file->map : nullptr;
}

Result<const FileExtents::Map*> Volume::Txn::Extents(uint64_t ino) NO_THREAD_SAFETY_ANALYSIS {
  if (FileExtents::Map* m = EditableMap(ino)) return m;
  Volume* v = v_;
  Result<ExtentMaps::Handle> got = v->extent_maps_.Get(
      ino, [v](uint64_t i, FileExtents::Map* out) { return v->LoadExtents(i, out); });
  if (!got.ok()) return got.status();
  ExtentMaps::Handle file = std::move(*got);
  file->mu.Lock();
  held_.push_back(HeldMap{ino, file, file->map.size()});
  return &file->map;
}

Status Volume::Txn::PutExtent(uint64_t ino, const Extent& e) {
  DAXREF_RETURN_IF_ERROR(Extents(ino).status());
  FileExtents::Map* m = EditableMap(ino);
  auto it = m->find(e.fblock);
  undo_.push_back(MapUndo{m, e.fblock, it == m->end() ? std::nullopt : std::optional(it->second)});
  (*m)[e.fblock] = e;
  batch_.Put(keys::Extent(ino, e.fblock), EncodeExtent(e));
  return Status::Ok();
}

Status Volume::Txn::EraseExtent(uint64_t ino, uint64_t fblock) {
  DAXREF_RETURN_IF_ERROR(Extents(ino).status());
  FileExtents::Map* m = EditableMap(ino);
  auto it = m->find(fblock);
  if (it == m->end()) return Status::Corruption("removing an extent that is not mapped");
  undo_.push_back(MapUndo{m, fblock, it->second});
  m->erase(it);
  batch_.Delete(keys::Extent(ino, fblock));
  return Status::Ok();
}

void Volume::Txn::ReleaseMaps() NO_THREAD_SAFETY_ANALYSIS {
  if (!done_) {
    for (auto u = undo_.rbegin(); u != undo_.rend(); ++u) {
      if (u->before)
        (*u->map)[u->fblock] = *u->before;
      else
        u->map->erase(u->fblock);
    }
  }
  for (HeldMap& h : held_) {
    bool gone = done_ && std::find(forget_.begin(), forget_.end(), h.ino) != forget_.end();
    int64_t now = gone ? 0 : static_cast<int64_t>(h.file->map.size());
    v_->extent_maps_.Resized(now - static_cast<int64_t>(h.size_before));
    h.file->mu.Unlock();
  }
  held_.clear();
}

// ---------------------------------------------------------------------------
// Reading the map.

Status Volume::WalkExtents(Txn& t, uint64_t ino, uint64_t fb0, uint64_t fb1, const ExtentFn& fn) {
  Result<const FileExtents::Map*> m = t.Extents(ino);
  if (!m.ok()) return m.status();
  ForEachExtentIn(**m, fb0, fb1, fn);
  return Status::Ok();
}

//   Unmapping [fb0, fb1) from an extent keeps what lies outside:
//
//      e:   |----left----|=====unmapped=====|----right----|
//           e.fblock     fb0                fb1           e.fend
//
//   left keeps e's key with a shorter length, right gets a new key at fb1
//   with its pool block shifted by the same amount; the reverse map follows.
Status Volume::UnmapRange(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1) {
  // Extents are collected a chunk at a time, then edited: never under a
  // live iterator of the map.
  constexpr size_t kChunk = 512;
  uint64_t from = fb0;
  for (;;) {
    std::vector<Extent> chunk;
    DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, from, fb1, [&](const Extent& e) {
      chunk.push_back(e);
      return chunk.size() < kChunk;
    }));
    if (chunk.empty()) return Status::Ok();
    for (const Extent& e : chunk) {
      uint64_t cut0 = std::max(e.fblock, fb0), cut1 = std::min(e.fend(), fb1);
      t.Delete(keys::Rmap(e.pblock, e.len, r->ino, e.fblock));
      if (e.fblock < cut0) {
        Extent left{e.fblock, e.pblock, cut0 - e.fblock};
        DAXREF_RETURN_IF_ERROR(t.PutExtent(r->ino, left));
        PutRmap(t, left.pblock, left.len, r->ino, left.fblock);
      } else {
        DAXREF_RETURN_IF_ERROR(t.EraseExtent(r->ino, e.fblock));
      }
      if (cut1 < e.fend()) {
        Extent right{cut1, e.pblock + (cut1 - e.fblock), e.fend() - cut1};
        DAXREF_RETURN_IF_ERROR(t.PutExtent(r->ino, right));
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
  Result<const FileExtents::Map*> got = t.Extents(r->ino);
  if (!got.ok()) return got.status();
  const FileExtents::Map& m = **got;
  Extent merged = e;
  std::optional<Extent> left, right;
  auto next = m.lower_bound(e.fblock);
  if (next != m.end() && next->second.fblock < e.fend())
    return Status::Corruption("mapping blocks over an extent");
  if (next != m.begin()) {
    const Extent& x = std::prev(next)->second;
    if (x.fend() > e.fblock) return Status::Corruption("mapping blocks over an extent");
    if (x.fend() == e.fblock && x.pend() == e.pblock) left = x;
  }
  if (next != m.end() && next->second.fblock == e.fend() && next->second.pblock == e.pend())
    right = next->second;
  if (left) {
    merged.fblock = left->fblock;
    merged.pblock = left->pblock;
    merged.len += left->len;
  }
  if (right) {
    merged.len += right->len;
    DAXREF_RETURN_IF_ERROR(t.EraseExtent(r->ino, right->fblock));
    t.Delete(keys::Rmap(right->pblock, right->len, r->ino, right->fblock));
  }
  if (left) t.Delete(keys::Rmap(left->pblock, left->len, r->ino, left->fblock));
  DAXREF_RETURN_IF_ERROR(t.PutExtent(r->ino, merged));
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
  {
    Result<const FileExtents::Map*> m = t.Extents(r->ino);
    if (!m.ok()) return m.status();
    auto it = (*m)->upper_bound(fb0);
    if (it != (*m)->begin()) before = std::prev(it)->second;
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

  // A hole with nothing before it to continue starts where there is room
  // to grow (a free run of kRoomBlocks, or of the hole's length if more),
  // not in the first small gap (docs/design.md, "Where new blocks go").
  constexpr uint64_t kRoomBlocks = 256;
  std::vector<Extent> fresh;
  for (const Hole& h : holes) {
    uint64_t goal = h.goal;
    if (!goal)
      goal = free_.FindRoom(sb_.first_data_block(), std::max(h.len, kRoomBlocks), 1)
                 .value_or(sb_.first_data_block());
    DAXREF_RETURN_IF_ERROR(AllocateFor(h.fb, h.len, goal, &fresh));
  }
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
//   them cuts them out of e (the parts left and right of them keep their
//   blocks) and maps the new blocks in the hole, merged with a neighbour
//   whose file and pool blocks both continue them.
Status Volume::Repoint(Txn& t, InodeRecord* r, const Extent& to) {
  std::optional<Extent> found;
  DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, to.fblock, to.fblock + 1, [&](const Extent& e) {
    found = e;
    return false;
  }));
  if (!found || found->fblock > to.fblock || found->fend() < to.fend())
    return Status::Corruption("repointing blocks that are not mapped");
  const Extent e = *found;
  t.Delete(keys::Rmap(e.pblock, e.len, r->ino, e.fblock));
  auto put = [&](const Extent& x) REQUIRES(mu_) {
    DAXREF_RETURN_IF_ERROR(t.PutExtent(r->ino, x));
    PutRmap(t, x.pblock, x.len, r->ino, x.fblock);
    return Status::Ok();
  };
  if (e.fblock < to.fblock)
    DAXREF_RETURN_IF_ERROR(put(Extent{e.fblock, e.pblock, to.fblock - e.fblock}));
  else
    DAXREF_RETURN_IF_ERROR(t.EraseExtent(r->ino, e.fblock));
  if (to.fend() < e.fend())
    DAXREF_RETURN_IF_ERROR(
        put(Extent{to.fend(), e.pblock + (to.fend() - e.fblock), e.fend() - to.fend()}));
  DAXREF_RETURN_IF_ERROR(MapExtent(t, r, to));
  r->blocks -= to.len;  // MapExtent counts them as new; the file had them
  return DropBlocks(t, *r, e.pblock + (to.fblock - e.fblock), to.len);
}

Status Volume::SplitAt(Txn& t, InodeRecord* r, uint64_t fb) {
  std::optional<Extent> found;
  DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, fb, fb + 1, [&](const Extent& e) {
    if (e.fblock < fb) found = e;
    return false;
  }));
  if (!found) return Status::Ok();
  const Extent e = *found;
  const Extent left{e.fblock, e.pblock, fb - e.fblock};
  const Extent right{fb, e.pblock + (fb - e.fblock), e.fend() - fb};
  t.Delete(keys::Rmap(e.pblock, e.len, r->ino, e.fblock));
  for (const Extent& x : {left, right}) {
    DAXREF_RETURN_IF_ERROR(t.PutExtent(r->ino, x));
    PutRmap(t, x.pblock, x.len, r->ino, x.fblock);
  }
  return Status::Ok();
}

//   A shift re-keys every extent it moves (E and R records name the file
//   block). Moving down, the extents are taken in ascending order, moving
//   up in descending order, so that no extent is put where one still is.
//   The pool blocks, their refcounts and the file's block count stay.
Status Volume::ShiftExtents(Txn& t, InodeRecord* r, uint64_t from, int64_t delta) {
  std::vector<Extent> moving;
  DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, from, UINT64_MAX, [&](const Extent& e) {
    moving.push_back(e);
    return true;
  }));
  if (moving.empty() || delta == 0) return Status::Ok();
  if (moving.front().fblock < from) return Status::Corruption("shifting a split extent");
  if (delta < 0 && moving.front().fblock < static_cast<uint64_t>(-delta))
    return Status::Corruption("shifting an extent below file block 0");
  if (delta > 0) std::reverse(moving.begin(), moving.end());
  for (const Extent& e : moving) {
    const Extent to{e.fblock + static_cast<uint64_t>(delta), e.pblock, e.len};
    DAXREF_RETURN_IF_ERROR(t.EraseExtent(r->ino, e.fblock));
    t.Delete(keys::Rmap(e.pblock, e.len, r->ino, e.fblock));
    DAXREF_RETURN_IF_ERROR(t.PutExtent(r->ino, to));
    PutRmap(t, to.pblock, to.len, r->ino, to.fblock);
  }
  return Status::Ok();
}

Status Volume::ShareBlocks(Txn& t, InodeRecord* src, uint64_t sfb, InodeRecord* dst, uint64_t dfb,
                           uint64_t n) {
  // The source's extents are taken a chunk at a time, then shared: the
  // maps are edited between walks, never under a live iterator. When src
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
      DAXREF_RETURN_IF_ERROR(t.PutExtent(dst->ino, *run));
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

Status Volume::CheckExtentMaps() {
  Status result;
  extent_maps_.ForEach([&](uint64_t ino, const ExtentMaps::Handle& file) {
    if (!result.ok()) return;
    // One file at a time under mu_, where no batch is being built: the map
    // and the store are both committed state, and operations on other
    // files wait for one file's comparison at most.
    MutexLock g(&mu_);
    FileExtents::Map stored;
    Status s = LoadExtents(ino, &stored);
    if (!s.ok()) {
      result = s;
      return;
    }
    ReaderLock r(&file->mu);
    auto a = file->map.begin();
    auto b = stored.begin();
    for (; a != file->map.end() && b != stored.end(); ++a, ++b) {
      const Extent &x = a->second, &y = b->second;
      if (a->first != x.fblock || x.fblock != y.fblock || x.pblock != y.pblock || x.len != y.len)
        break;
    }
    if (a == file->map.end() && b == stored.end()) return;
    uint64_t at = a != file->map.end() ? a->first : b->first;
    result = Status::Corruption("inode " + std::to_string(ino) +
                                ": the extent map in memory differs from the store at file block " +
                                std::to_string(at));
  });
  return result;
}

}  // namespace daxref
