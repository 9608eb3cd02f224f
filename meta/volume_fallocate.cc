// fallocate(2): preallocation, punch hole, zero range and unshare range,
// each one batch. Blocks past EOF that KEEP_SIZE preallocated are punched
// like any other; zero range treats bad blocks as a write would.
#include <sys/stat.h>

#include "base/mutex.h"
#include "meta/volume.h"
#include "meta/volume_txn.h"

namespace daxref {

using internal::BlockCeil;
using internal::BlockOf;
using internal::IsDir;

Status Volume::Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len, InodeRecord* out) {
  if (len == 0) return Status::Invalid("zero length");
  if (off >= kMaxFileSize || len > kMaxFileSize - off)
    return Status::Error(EFBIG, "file too large");
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
  r.ctime = Now();
  if (mode & (kFallocPunchHole | kFallocZeroRange)) r.mtime = r.ctime;
  StoreInode(t, r);
  DAXREF_RETURN_IF_ERROR(Commit(t));
  *out = r;
  return Status::Ok();
}

}  // namespace daxref
