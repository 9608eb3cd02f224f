// fallocate(2): preallocation, punch hole, zero range, unshare range and
// collapse / insert range, each one batch. Blocks past EOF that KEEP_SIZE preallocated are punched
// like any other; zero range treats bad blocks as a write would.
#include <sys/stat.h>

#include "base/mutex.h"
#include "meta/volume.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::BlockCeil;
using internal::BlockOf;
using internal::IsDir;

namespace {
bool BlockAligned(uint64_t v) {
  return (v & (kBlockSize - 1)) == 0;
}
}  // namespace

// Collapse and insert move the file's extents (metadata only: no byte is
// copied, whatever the size of the file). The checks are Linux's: whole
// blocks, the mode alone, a collapse ending before EOF, an insert starting
// before EOF and a file that stays under the size limit.
Status Volume::ShiftRange(uint64_t ino, int mode, uint64_t off, uint64_t len, const Caller& who,
                          InodeRecord* out) {
  if (mode != kFallocCollapseRange && mode != kFallocInsertRange)
    return Status::Invalid("collapse and insert range take no other flag");
  if (!BlockAligned(off) || !BlockAligned(len))
    return Status::Invalid("offset and length must be multiples of the block size (4096)");
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &r));
  if (IsDir(r.mode)) return Status::Error(EISDIR, "is a directory");
  if (!S_ISREG(r.mode)) return Status::Error(ENODEV, "not a regular file");
  const uint64_t fb0 = BlockOf(off), n = BlockOf(len);
  if (mode == kFallocCollapseRange) {
    if (off + len >= r.size) return Status::Invalid("collapse range reaches end of file");
    DAXREF_RETURN_IF_ERROR(UnmapRange(t, &r, fb0, fb0 + n));
    DAXREF_RETURN_IF_ERROR(ShiftExtents(t, &r, fb0 + n, -static_cast<int64_t>(n)));
    r.size -= len;
  } else {
    if (off >= r.size) return Status::Invalid("insert range starts at or past end of file");
    if (len > kMaxFileSize - r.size) return Status::Error(EFBIG, "file too large");
    DAXREF_RETURN_IF_ERROR(SplitAt(t, &r, fb0));
    DAXREF_RETURN_IF_ERROR(ShiftExtents(t, &r, fb0, static_cast<int64_t>(n)));
    r.size += len;
  }
  DropWritePrivileges(t, &r, who);
  r.mtime = r.ctime = Now();
  StoreInode(t, r);
  DAXREF_RETURN_IF_ERROR(Commit(t));
  *out = r;
  return Status::Ok();
}

Status Volume::Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len, const Caller& who,
                         InodeRecord* out) {
  if (len == 0) return Status::Invalid("zero length");
  if (off >= kMaxFileSize || len > kMaxFileSize - off)
    return Status::Error(EFBIG, "file too large");
  if (mode & (kFallocCollapseRange | kFallocInsertRange))
    return ShiftRange(ino, mode, off, len, who, out);
  const int known = kFallocKeepSize | kFallocPunchHole | kFallocZeroRange | kFallocUnshareRange;
  if (mode & ~known) return Status::Error(EOPNOTSUPP, "unsupported fallocate mode");
  if ((mode & kFallocUnshareRange) && (mode & ~(kFallocUnshareRange | kFallocKeepSize)))
    return Status::Invalid("unshare range takes only keep size");
  if ((mode & kFallocPunchHole) && !(mode & kFallocKeepSize))
    return Status::Error(EOPNOTSUPP, "punch hole needs keep size");
  if ((mode & kFallocPunchHole) && (mode & kFallocZeroRange))
    return Status::Invalid("punch hole with zero range");
  MutexLock g(&mu_);
  Txn t(this);
  InodeRecord r;
  DAXREF_RETURN_IF_ERROR(LoadInode(t, ino, &r));
  if (IsDir(r.mode)) return Status::Error(EISDIR, "is a directory");
  if (!S_ISREG(r.mode)) return Status::Error(ENODEV, "not a regular file");
  uint64_t end = off + len;
  if (mode & kFallocPunchHole) {
    // Whole blocks inside the range are unmapped; the partial blocks at
    // either edge are zeroed in place. Blocks past EOF are punched too:
    // KEEP_SIZE may have preallocated them.
    uint64_t fb0 = BlockCeil(off), fb1 = BlockOf(end);
    if (fb0 < fb1) DAXREF_RETURN_IF_ERROR(UnmapRange(t, &r, fb0, fb1));
    // What is left mapped in the range is the partial blocks at the edges:
    // they are zeroed in place, so this file needs its own copy first.
    DAXREF_RETURN_IF_ERROR(Unshare(t, &r, BlockOf(off), BlockCeil(end), off, end));
    if (fb0 < fb1) {
      DAXREF_RETURN_IF_ERROR(ZeroBytes(t, ino, off, (fb0 << kBlockShift) - off));
      DAXREF_RETURN_IF_ERROR(ZeroBytes(t, ino, fb1 << kBlockShift, end - (fb1 << kBlockShift)));
    } else {
      DAXREF_RETURN_IF_ERROR(ZeroBytes(t, ino, off, end - off));
    }
  } else {
    // Default and zero-range both leave [off, end) allocated; zero range also
    // clears what was already there. New blocks come zeroed from FillHoles.
    // Unsharing gives zero range private blocks to clear (only the bytes
    // outside the range are copied) and unshare range a private copy of all.
    // Zero range treats bad blocks as a write would: whole ones get fresh
    // blocks (zeroed below), a bad block it covers in part fails it.
    if (mode & kFallocZeroRange) {
      DAXREF_RETURN_IF_ERROR(ReplaceBadBlocks(t, &r, BlockOf(off), BlockCeil(end), off, end));
      DAXREF_RETURN_IF_ERROR(Unshare(t, &r, BlockOf(off), BlockCeil(end), off, end));
    }
    if (mode & kFallocUnshareRange)
      DAXREF_RETURN_IF_ERROR(Unshare(t, &r, BlockOf(off), BlockCeil(end), 0, 0));
    DAXREF_RETURN_IF_ERROR(FillHoles(t, &r, BlockOf(off), BlockCeil(end), 0, 0));
    if (mode & kFallocZeroRange) {
      // FillHoles zeroed only new blocks; clear the old ones in range too.
      DAXREF_RETURN_IF_ERROR(ZeroBytes(t, ino, off, len));
    }
    if (!(mode & kFallocKeepSize) && end > r.size) r.size = end;
  }
  // As after a write (Linux's file_modified): an unprivileged caller loses
  // the set-id bits, and a file capability goes.
  DropWritePrivileges(t, &r, who);
  r.ctime = Now();
  if (mode & (kFallocPunchHole | kFallocZeroRange)) r.mtime = r.ctime;
  StoreInode(t, r);
  DAXREF_RETURN_IF_ERROR(Commit(t));
  *out = r;
  return Status::Ok();
}

}  // namespace daxref
