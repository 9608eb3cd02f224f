// Bad blocks (memory poison): recording and clearing them, and the rules
// every other operation follows around them. docs/design.md, "Poison".
//
// A bad block is in exactly one B record and never in an F record. While a
// file references it, it is also owned (R records, refcount): the file keeps
// its extent, so that its other blocks, its size and its sharing stay as
// they were, but nothing ever copies the block's bytes again. Reads fail
// with EIO (the daemon checks IsBad before replying), a write covering the
// whole block maps a fresh one in its place, a partial write, a clone or a
// copy fails with EIO. When the last reference goes the block is retired:
// it stays in its B record and never returns to free space, until ClearBad.
#include <rocksdb/db.h>

#include <algorithm>
#include <map>
#include <vector>

#include "base/block_range_text.h"
#include "meta/volume.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::PoolOff;

bool Volume::IsBad(uint64_t pb0, uint64_t pb1) {
  if (bad_count_.load(std::memory_order_acquire) == 0) return false;
  ReaderLock g(&bad_mu_);
  return committed_bad().Any(pb0, pb1);
}

// bad_ is written only under mu_ with bad_mu_ held exclusive (MarkBad,
// ClearBad), so either lock is enough to read it; GUARDED_BY names one.
const BadBlocks& Volume::committed_bad() NO_THREAD_SAFETY_ANALYSIS {
  return bad_;
}

uint64_t Volume::bad_blocks() {
  return bad_count_.load(std::memory_order_acquire);
}

void Volume::WalkBad(const BadFn& fn) {
  // A copy, so that fn may take its time (and call back into the Volume)
  // without holding up reads. Bounded by the number of bad ranges.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  {
    ReaderLock g(&bad_mu_);
    committed_bad().ForEach([&](uint64_t s, uint64_t n) {
      ranges.emplace_back(s, n);
      return true;
    });
  }
  for (const auto& [s, n] : ranges)
    if (!fn(s, n)) return;
}

void Volume::WalkBadPieces(const BadPieceFn& fn) {
  // A copy, as WalkBad's.
  std::vector<BadOriginRecord> pieces;
  {
    ReaderLock g(&bad_mu_);
    committed_bad().ForEachPiece([&](uint64_t s, uint64_t n, const BadOrigin& o) {
      pieces.push_back(BadOriginRecord{s, n, o});
      return true;
    });
  }
  for (const BadOriginRecord& p : pieces)
    if (!fn(p)) return;
}

Status Volume::RefuseBad(uint64_t pb0, uint64_t pb1, const char* what) {
  if (bad_count_.load(std::memory_order_relaxed) == 0) return Status::Ok();
  std::optional<uint64_t> first = bad_.First(pb0, pb1);
  if (!first) return Status::Ok();
  return Status::IOError(std::string(what) + " poisoned pool block " + std::to_string(*first));
}

Status Volume::CheckPoolRange(uint64_t pb0, uint64_t pb1) const {
  if (pb1 <= pb0) return Status::Invalid("empty range");
  if (pb1 > sb_.block_count)
    return Status::Invalid(BlockRangeText(pb0, pb1) + " reach past the end of the pool (" +
                           std::to_string(sb_.block_count) + " blocks)");
  return Status::Ok();
}

void Volume::ReleaseBlocks(uint64_t pblock, uint64_t len) {
  uint64_t end = pblock + len, pos = pblock;
  if (bad_count_.load(std::memory_order_relaxed) != 0) {
    bad_.ForEachIn(pblock, end, [&](uint64_t s, uint64_t n) {
      mu_.AssertHeld();  // called back from here, under mu_
      if (s > pos) free_.Release(pos, s - pos);
      pos = s + n;  // retired: stays in its B record only
      return true;
    });
  }
  if (end > pos) free_.Release(pos, end - pos);
}

Status Volume::ReplaceBadBlocks(Txn& t, InodeRecord* r, uint64_t fb0, uint64_t fb1,
                                uint64_t keep_off, uint64_t keep_end) {
  if (bad_count_.load(std::memory_order_relaxed) == 0 || fb1 <= fb0) return Status::Ok();
  // The bad pieces first (file block, pool block, length), then the edits:
  // the batch is not changed under a live iterator.
  std::vector<Extent> bad;
  DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, fb0, fb1, [&](const Extent& e) REQUIRES(mu_) {
    uint64_t f0 = std::max(e.fblock, fb0), f1 = std::min(e.fend(), fb1);
    uint64_t p0 = e.pblock + (f0 - e.fblock), p1 = p0 + (f1 - f0);
    bad_.ForEachIn(p0, p1, [&](uint64_t s, uint64_t n) {
      bad.push_back(Extent{f0 + (s - p0), s, n});
      return true;
    });
    return true;
  }));
  if (bad.empty()) return Status::Ok();
  for (const Extent& b : bad) {
    if ((b.fblock << kBlockShift) < keep_off || (b.fend() << kBlockShift) > keep_end)
      return Status::IOError("partial write into poisoned pool block " + std::to_string(b.pblock));
  }
  // Every new block before any edit, so ENOSPC changes nothing. The caller
  // writes every byte of them, so nothing is copied or zeroed here.
  std::vector<Extent> fresh;
  for (const Extent& b : bad)
    DAXREF_RETURN_IF_ERROR(AllocateFor(b.fblock, b.len, b.pblock, &fresh));
  for (const Extent& f : fresh) {
    data_->WillWrite(PoolOff(f.pblock), f.len << kBlockShift);
    DAXREF_RETURN_IF_ERROR(Repoint(t, r, f));
  }
  t.NoteFresh(fresh);
  return Status::Ok();
}

Status Volume::MarkBad(uint64_t pb0, uint64_t pb1, bool strict, const BadOrigin& origin,
                       PoisonOutcome* out) {
  *out = PoisonOutcome();
  DAXREF_RETURN_IF_ERROR(CheckPoolRange(pb0, pb1));
  MutexLock g(&mu_);
  if (std::optional<uint64_t> first = bad_.First(pb0, pb1); strict && first)
    return Status::Error(EEXIST, "pool block " + std::to_string(*first) + " is already poisoned");
  Txn t(this);
  // The new pieces: what of [pb0, pb1) is not bad yet.
  std::vector<std::pair<uint64_t, uint64_t>> fresh;
  uint64_t pos = pb0;
  bad_.ForEachIn(pb0, pb1, [&](uint64_t s, uint64_t n) {
    if (s > pos) fresh.emplace_back(pos, s);
    pos = s + n;
    return true;
  });
  if (pb1 > pos) fresh.emplace_back(pos, pb1);
  if (fresh.empty()) return Status::Ok();

  BadBlocks::Change all;
  BadBlocks next = bad_;
  for (const auto& [s, e] : fresh) {
    out->added += e - s;
    // The superblock copies are no file's: the caller shuts down.
    uint64_t last = sb_.block_count - 1;
    out->reserved += (s == 0 ? 1 : 0) + (e > last && s <= last ? 1 : 0);
    // Free blocks leave free space for good (retired).
    std::vector<std::pair<uint64_t, uint64_t>> claims;
    free_.ForEachIn(s, e, [&](uint64_t fs, uint64_t n) {
      claims.emplace_back(fs, n);
      return true;
    });
    for (const auto& [fs, n] : claims) {
      DAXREF_RETURN_IF_ERROR(free_.Claim(fs, n));
      out->retired += n;
    }
    BadBlocks::Change c = next.PlanAdd(s, e, origin);
    next.Apply(c);
    for (const auto& [k, v] : c.old)
      if (!all.now.erase(k)) all.old.emplace(k, v);
    for (const auto& [k, v] : c.now) all.now[k] = v;
    // Each fresh piece is an origin record of its own (never merged).
    for (const auto& [k, r] : c.origin_now) all.origin_now[k] = r;
  }
  // Whatever is neither free nor reserved is owned by files.
  out->owned = out->added - out->retired - out->reserved;
  for (const auto& [k, v] : all.old)
    if (!all.now.count(k)) t.Delete(keys::Bad(k));
  for (const auto& [k, v] : all.now) t.Put(keys::Bad(k), EncodeLength(v));
  for (const auto& [k, r] : all.origin_now) t.Put(keys::BadOrigin(k), EncodeBadOrigin(r));
  // A read-only Volume keeps poison in memory only (volume.h): reads of the
  // blocks fail from now on, the store is not written, and the Txn's
  // free-space claims roll back (nothing is allocated on a read-only
  // mount, so the blocks cannot be handed out).
  if (!read_only()) DAXREF_RETURN_IF_ERROR(Commit(t));
  WriterLock w(&bad_mu_);
  bad_ = std::move(next);
  bad_count_.store(bad_.blocks(), std::memory_order_release);
  return Status::Ok();
}

Status Volume::ClearBad(uint64_t pb0, uint64_t pb1, ClearOutcome* out) {
  *out = ClearOutcome();
  DAXREF_RETURN_IF_ERROR(CheckPoolRange(pb0, pb1));
  // Poison is cleared when the memory was repaired, and only a read-write
  // mount can record that; a read-only one would only forget it.
  if (read_only()) return Status::Error(EROFS, "poison cannot be cleared on a read-only mount");
  MutexLock g(&mu_);
  if (!bad_.Any(pb0, pb1))
    return Status::NotFound("nothing in " + BlockRangeText(pb0, pb1) + " is poisoned");
  Txn t(this);
  // Which blocks of the range files still own: they stay owned; the others
  // (retired data blocks) go back to free space. The superblock copies are
  // in neither.
  std::map<uint64_t, uint64_t> owned;  // merged, bounded by the range's size
  DAXREF_RETURN_IF_ERROR(QueryOwners(pb0, pb1, [&](const RmapRecord& r) {
    uint64_t s = std::max(r.pblock, pb0), e = std::min(r.pend(), pb1);
    auto it = owned.upper_bound(s);
    if (it != owned.begin() && std::prev(it)->second >= s) {
      --it;
      it->second = std::max(it->second, e);
    } else {
      it = owned.emplace(s, e).first;
    }
    for (auto nx = std::next(it); nx != owned.end() && nx->first <= it->second;)
      it->second = std::max(it->second, nx->second), nx = owned.erase(nx);
    return true;
  }));
  uint64_t first_data = sb_.first_data_block(), end_data = sb_.block_count - 1;
  std::vector<std::pair<uint64_t, uint64_t>> cleared;
  bad_.ForEachIn(pb0, pb1, [&](uint64_t s, uint64_t n) {
    cleared.emplace_back(s, s + n);
    return true;
  });
  for (const auto& [s, e] : cleared) {
    out->cleared += e - s;
    uint64_t pos = std::max(s, first_data), end = std::min(e, end_data);
    for (auto it = owned.begin(); it != owned.end() && pos < end; ++it) {
      if (it->second <= pos) continue;
      if (it->first >= end) break;
      if (it->first > pos) {
        free_.Release(pos, it->first - pos);
        out->returned += it->first - pos;
      }
      pos = std::max(pos, it->second);
    }
    if (end > pos) {
      free_.Release(pos, end - pos);
      out->returned += end - pos;
    }
  }
  BadBlocks next = bad_;
  BadBlocks::Change c = next.PlanRemove(pb0, pb1);
  next.Apply(c);
  for (const auto& [k, v] : c.old)
    if (!c.now.count(k)) t.Delete(keys::Bad(k));
  for (const auto& [k, v] : c.now) t.Put(keys::Bad(k), EncodeLength(v));
  for (const auto& [k, r] : c.origin_old)
    if (!c.origin_now.count(k)) t.Delete(keys::BadOrigin(k));
  for (const auto& [k, r] : c.origin_now) t.Put(keys::BadOrigin(k), EncodeBadOrigin(r));
  DAXREF_RETURN_IF_ERROR(Commit(t));
  WriterLock w(&bad_mu_);
  bad_ = std::move(next);
  bad_count_.store(bad_.blocks(), std::memory_order_release);
  return Status::Ok();
}

}  // namespace daxref
