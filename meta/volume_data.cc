// The data paths: the map a reader copies from (MapRange, Seek), writes
// (the fast path for in-place overwrites and the batched one), and the
// byte-level helpers truncate and fallocate share (ZeroBytes, Truncate).
//
// Invariants: new blocks are zeroed (FillHoles) or copied (Unshare) before
// the batch that maps them commits, and persisted by Commit; nothing that
// can fail for lack of space comes after bytes are stored in place
// (PrepareWrite, then StoreBytes); bytes past EOF in the last block are
// zero; a bad block's bytes are never read or partially written
// (RefuseBad).
#include <rocksdb/db.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "base/mutex.h"
#include "meta/volume.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::BlockCeil;
using internal::BlockOf;
using internal::FromRocks;
using internal::IsDir;
using internal::KilledSetIdBits;
using internal::PoolOff;
using internal::PrefixScan;

namespace {
// Turns the extents that overlap [pos, end), met in file order, into the
// segments MapRange reports: holes between them included. Add returns false
// when the walk should stop (the range is covered or the caller said stop).
class SegmentEmitter {
 public:
  SegmentEmitter(uint64_t off, uint64_t len, const Volume::SegmentFn& fn)
      : pos_(off), end_(off + len), fn_(fn) {}
  bool Add(const Extent& e) {
    uint64_t es = e.fblock << kBlockShift, ee = e.fend() << kBlockShift;
    if (ee <= pos_) return true;
    if (es >= end_) return false;
    if (es > pos_) {
      if (!Emit(MappedSegment{pos_, es - pos_, true, 0}, es)) return false;
    }
    uint64_t seg_end = std::min(ee, end_);
    return Emit(MappedSegment{pos_, seg_end - pos_, false, PoolOff(e.pblock) + (pos_ - es)},
                seg_end) &&
           pos_ < end_;
  }
  // The hole after the last extent, if any.
  void Finish() {
    if (!stopped_ && pos_ < end_) fn_(MappedSegment{pos_, end_ - pos_, true, 0});
  }

 private:
  bool Emit(const MappedSegment& s, uint64_t next) {
    pos_ = next;
    stopped_ = !fn_(s);
    return !stopped_;
  }
  uint64_t pos_, end_;
  const Volume::SegmentFn& fn_;
  bool stopped_ = false;
};
}  // namespace

Status Volume::MapRange(uint64_t ino, uint64_t off, uint64_t len, const SegmentFn& fn) {
  if (len == 0) return Status::Ok();
  Result<ExtentMaps::Handle> got = extent_maps_.Get(
      ino, [this](uint64_t i, FileExtents::Map* out) { return LoadExtents(i, out); });
  if (!got.ok()) return got.status();
  FileExtents& file = **got;
  SegmentEmitter out(off, len, fn);
  // The extents are copied out a few at a time and fn is called with the
  // map unlocked: fn copies bytes, and a fault in the pool may need the
  // transaction that would wait for this lock.
  constexpr size_t kChunk = 64;
  std::vector<Extent> chunk;
  uint64_t fb = BlockOf(off), fb_end = BlockCeil(off + len);
  for (;;) {
    chunk.clear();
    {
      ReaderLock g(&file.mu);
      ForEachExtentIn(file.map, fb, fb_end, [&](const Extent& e) {
        chunk.push_back(e);
        return chunk.size() < kChunk;
      });
    }
    bool more = true;
    for (const Extent& e : chunk)
      if (!(more = out.Add(e))) break;
    if (!more) return Status::Ok();
    if (chunk.size() < kChunk) break;
    fb = chunk.back().fend();
  }
  out.Finish();
  return Status::Ok();
}

Status Volume::Seek(uint64_t ino, uint64_t off, int whence, uint64_t* out) {
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(GetInode(ino, &r));
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status::Invalid("bad whence");
  if (off >= r.size) return Status::Error(ENXIO, "offset past end of file");
  std::optional<uint64_t> found;
  DAXREF_RETURN_IF_ERROR(MapRange(ino, off, r.size - off, [&](const MappedSegment& s) {
    if ((whence == SEEK_DATA) != s.hole) {
      found = s.off;
      return false;
    }
    return true;
  }));
  if (whence == SEEK_HOLE) {
    *out = found.value_or(r.size);
    return Status::Ok();
  }
  if (!found) return Status::Error(ENXIO, "no data past offset");
  *out = *found;
  return Status::Ok();
}

// Writes that change no metadata but the times (an overwrite of mapped
// blocks inside EOF, by a writer with no privileges to clear) take a fast
// path: the bytes go straight into the mapped blocks and the new mtime/ctime
// wait in pending_times_ until FlushTimes (close, fsync, the daemon's timer,
// unmount) or the next operation on the inode stores them. A daemon killed
// in between keeps the data and loses only those timestamps. What decides
// the path (size, mode, flags, a file capability) comes from attrs_, which
// every commit keeps exact, and the map from the extent cache: an overwrite
// of a file in use reads nothing from the store.
Status Volume::Write(uint64_t ino, uint64_t off, const void* buf, size_t len, const Caller& who,
                     InodeRecord* out, bool* privileges_dropped, size_t* written) {
  if (privileges_dropped) *privileges_dropped = false;
  if (written) *written = len;
  if (off >= kMaxFileSize || len > kMaxFileSize - off)
    return Status::Error(EFBIG, "file too large");
  const char* src = static_cast<const char*>(buf);
  uint64_t end = off + len;
  AttrCache::Entry attrs;
  DAXREF_RETURN_IF_ERROR(LoadAttrs(ino, &attrs));
  InodeRecord r = attrs.inode;
  if (IsDir(r.mode)) return Status::Error(EISDIR, "is a directory");
  if (remounted_ro_.load()) return Status::Error(EROFS, "read-only filesystem");
  if (len > 0 && end <= r.size && KilledSetIdBits(r.mode, r.gid, who, true) == 0) {
    // A file capability must be dropped by the write: that needs a batch.
    bool fast = !attrs.has_cap;
    struct Piece {
      uint64_t pool_off, src_off, len;
    };
    Piece pieces[16];
    size_t n = 0;
    if (fast) {
      // Every block must already be mapped (and the range in few pieces).
      DAXREF_RETURN_IF_ERROR(MapRange(ino, off, len, [&](const MappedSegment& seg) {
        if (seg.hole || n == 16) {
          fast = false;
          return false;
        }
        pieces[n++] = Piece{seg.pool_off, seg.off - off, seg.len};
        return true;
      }));
    }
    // Blocks another file shares take the slow path, which unshares them;
    // so do bad ones, which it replaces or refuses.
    if (fast && (r.flags & kInodeReflinked)) {
      for (size_t i = 0; i < n && fast; ++i)
        fast =
            !SharedNow(BlockOf(pieces[i].pool_off), BlockCeil(pieces[i].pool_off + pieces[i].len));
    }
    for (size_t i = 0; i < n && fast; ++i)
      fast = !IsBad(BlockOf(pieces[i].pool_off), BlockCeil(pieces[i].pool_off + pieces[i].len));
    if (fast) {
      for (size_t i = 0; i < n; ++i)
        DAXREF_RETURN_IF_ERROR(
            data_->Write(pieces[i].pool_off, src + pieces[i].src_off, pieces[i].len));
      Timespec now = Now();
      MutexLock g(&times_mu_);
      // Remounted read-only since the check below: nothing may be left
      // pending (the bytes are in, as for any write racing a remount).
      if (remounted_ro_.load()) return Status::Error(EROFS, "read-only filesystem");
      PendingTimes& p = pending_times_[ino];
      p.has_mctime = true;
      p.mctime = now;
      r.mtime = r.ctime = now;
      *out = r;
      return Status::Ok();
    }
  }

  MutexLock g(&mu_);
  auto write_batch = [&](uint64_t n) REQUIRES(mu_) {
    Txn t(this);
    DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &r));
    if (IsDir(r.mode)) return Status::Error(EISDIR, "is a directory");
    DAXREF_RETURN_IF_ERROR(WriteIn(t, &r, off, src, n));
    // Writing drops set-id bits (unless the writer is privileged) and
    // always drops file capabilities: the daemon clears privileges itself
    // so that the kernel need not ask for security.capability before every
    // write.
    bool dropped = DropWritePrivileges(t, &r, who);
    r.mtime = r.ctime = Now();
    StoreInode(t, r);
    DAXREF_RETURN_IF_ERROR(Commit(t));
    if (privileges_dropped) *privileges_dropped = dropped;
    *out = r;
    return Status::Ok();
  };
  Status s = write_batch(len);
  if (s.err() != ENOSPC || written == nullptr) return s;
  // The batch rolled back whole. A prefix that touches no more blocks than
  // are free always fits (each of its blocks needs at most one new block:
  // a hole filled, a shared block copied, a bad one replaced), so that much
  // is stored and reported: a short write, where POSIX wants one. The
  // caller's next write goes on from there and meets ENOSPC when nothing
  // fits.
  const uint64_t fit = free_.free_blocks();
  const uint64_t prefix_end = (BlockOf(off) + fit) << kBlockShift;
  if (fit == 0 || prefix_end <= off || prefix_end >= end) return s;
  Status shorter = write_batch(prefix_end - off);
  if (!shorter.ok()) return s;
  *written = prefix_end - off;
  return Status::Ok();
}

bool Volume::DropWritePrivileges(Txn& t, InodeRecord* r, const Caller& who) {
  bool dropped = false;
  if (const uint32_t kill = KilledSetIdBits(r->mode, r->gid, who, true)) {
    r->mode &= ~kill;
    dropped = true;
  }
  std::string cap;
  if ((r->flags & kInodeHasXattrs) && t.Get(keys::Xattr(r->ino, kCapabilityXattr), &cap).ok()) {
    t.Delete(keys::Xattr(r->ino, kCapabilityXattr));
    dropped = true;
  }
  return dropped;
}

Status Volume::WriteIn(Txn& t, InodeRecord* r, uint64_t off, const char* src, uint64_t len) {
  DAXREF_RETURN_IF_ERROR(PrepareWrite(t, r, off, len));
  return StoreBytes(t, r, off, src, len);
}

Status Volume::PrepareWrite(Txn& t, InodeRecord* r, uint64_t off, uint64_t len) {
  if (len == 0) return Status::Ok();
  uint64_t end = off + len;
  DAXREF_RETURN_IF_ERROR(FillHoles(t, r, BlockOf(off), BlockCeil(end), off, end));
  DAXREF_RETURN_IF_ERROR(ReplaceBadBlocks(t, r, BlockOf(off), BlockCeil(end), off, end));
  return Unshare(t, r, BlockOf(off), BlockCeil(end), off, end);
}

Status Volume::StoreBytes(Txn& t, InodeRecord* r, uint64_t off, const char* src, uint64_t len) {
  if (len == 0) return Status::Ok();
  uint64_t end = off + len;
  // Every block of the range is mapped, good and r's own (PrepareWrite).
  Status st;
  DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, BlockOf(off), BlockCeil(end), [&](const Extent& e) {
    uint64_t s = std::max(off, e.fblock << kBlockShift);
    uint64_t se = std::min(end, e.fend() << kBlockShift);
    if (se > s)
      st = data_->Write(PoolOff(e.pblock) + (s - (e.fblock << kBlockShift)), src + (s - off),
                        se - s);
    return st.ok();
  }));
  DAXREF_RETURN_IF_ERROR(st);
  r->size = std::max(r->size, end);
  return Status::Ok();
}

Status Volume::ReadIn(Txn& t, uint64_t ino, uint64_t off, uint64_t len, char* dst) {
  if (len == 0) return Status::Ok();
  memset(dst, 0, len);
  uint64_t end = off + len;
  Status st;
  DAXREF_RETURN_IF_ERROR(
      WalkExtents(t, ino, BlockOf(off), BlockCeil(end), [&](const Extent& e) REQUIRES(mu_) {
        uint64_t s = std::max(off, e.fblock << kBlockShift);
        uint64_t se = std::min(end, e.fend() << kBlockShift);
        if (se <= s) return true;
        uint64_t p = PoolOff(e.pblock) + (s - (e.fblock << kBlockShift));
        st = RefuseBad(BlockOf(p), BlockCeil(p + (se - s)), "reading");
        if (st.ok()) st = data_->Load(p, dst + (s - off), se - s);
        return st.ok();
      }));
  return st;
}

Status Volume::ZeroBytes(Txn& t, uint64_t ino, uint64_t off, uint64_t len) {
  if (len == 0) return Status::Ok();
  Status st;
  DAXREF_RETURN_IF_ERROR(
      WalkExtents(t, ino, BlockOf(off), BlockCeil(off + len), [&](const Extent& e) REQUIRES(mu_) {
        uint64_t s = std::max(off, e.fblock << kBlockShift);
        uint64_t end = std::min(off + len, e.fend() << kBlockShift);
        if (end <= s) return true;
        uint64_t p = PoolOff(e.pblock) + (s - (e.fblock << kBlockShift));
        // Zeroing part of a bad block is a partial write into it.
        st = RefuseBad(BlockOf(p), BlockCeil(p + (end - s)), "zeroing bytes of");
        if (st.ok()) st = data_->Zero(p, end - s);
        return st.ok();
      }));
  return st;
}

// Bytes past EOF inside the last block are kept zero, so growing a file
// (truncate up, a write past EOF) never exposes old data. The new last block
// is zeroed past the new size in a block of its own, not in place: until the
// batch commits the file has its old size, and the bytes under it must be
// the old ones (a daemon killed mid-truncate leaves the file as it was).
Status Volume::Truncate(Txn& t, InodeRecord* r, uint64_t size) {
  if (size < r->size) {
    DAXREF_RETURN_IF_ERROR(UnmapRange(t, r, BlockCeil(size), UINT64_MAX));
    if (size % kBlockSize) {
      const uint64_t fb = BlockOf(size), block_end = BlockCeil(size) << kBlockShift;
      std::vector<Extent> last;
      DAXREF_RETURN_IF_ERROR(WalkExtents(t, r->ino, fb, fb + 1, [&](const Extent& e) {
        if (e.fblock <= fb && fb < e.fend())
          last.push_back(Extent{fb, e.pblock + (fb - e.fblock), 1});
        return false;
      }));
      // A full pool must still let files shrink: then the tail is zeroed in
      // place (MoveBlocks has changed nothing), and only that truncate can
      // be seen half done after a crash.
      Status moved = MoveBlocks(t, r, last, size, block_end);
      if (!moved.ok() && moved.err() != ENOSPC) return moved;
      if (!moved.ok()) DAXREF_RETURN_IF_ERROR(Unshare(t, r, fb, fb + 1, size, block_end));
      DAXREF_RETURN_IF_ERROR(ZeroBytes(t, r->ino, size, block_end - size));
    }
  }
  r->size = size;
  return Status::Ok();
}

}  // namespace daxref
