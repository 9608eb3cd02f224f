// libdaxref-reflink.so: an LD_PRELOAD library that makes FICLONE,
// FICLONERANGE, FIDEDUPERANGE, FS_IOC_FIEMAP and
// fallocate(FALLOC_FL_UNSHARE_RANGE) work on daxref mounts for unmodified
// programs (cp --reflink, xfs_io, filefrag, duperemove).
//
// The kernel never hands those requests to a FUSE filesystem: it answers
// EOPNOTSUPP itself. This library wraps ioctl(2), fallocate(2) and
// fallocate64 and does this:
//
//   1. Every call goes to the real function first, untouched. Anything but
//      one of the five requests above is returned as it is, and so is any
//      result of those but EOPNOTSUPP. So the kernel still makes every check
//      of its own, in its own order, and gives its own errno: a bad argument
//      pointer (EFAULT), a bad or O_PATH descriptor (EBADF), source and
//      destination on different filesystems (EXDEV), directories (EISDIR),
//      other non-regular files (EINVAL), a source not open for reading or a
//      destination not open for writing (EBADF), negative or overflowing
//      ranges (EINVAL).
//   2. EOPNOTSUPP for one of them means the kernel let it through to a
//      filesystem that cannot do it. If that file is on a daxref mount
//      (DAXREF_IOC_INFO), the request is carried out with the daemon's
//      ioctls (remap.h): a token from the source descriptor, then the clone,
//      dedupe or unshare on the destination; the extent query for FIEMAP.
//      Otherwise EOPNOTSUPP stands.
//
// So on any other filesystem, and for every other request, nothing changes
// but one compare per ioctl call. Nothing is cached (a descriptor number can
// name another file a moment later), nothing is allocated (FIEMAP maps one
// anonymous page run for its query), no lock is taken, nothing is printed,
// and there is no constructor: the real functions are looked up on first use
// with dlsym(RTLD_NEXT), which is thread-safe, and the lookups are kept in
// atomics. errno is left as it was on success.
//
// statfs, fstatfs and their 64-bit names are wrapped too, but change nothing
// unless DAXREF_REFLINK_STATFS=xfs is set (see FakeXfs below).
//
// Programs that make the system call without libc's wrapper (syscall(2),
// static binaries, Go) are not affected.

// The project builds with -D_FILE_OFFSET_BITS=64, under which glibc's
// headers rename fallocate, statfs and fstatfs to their 64-bit names; this
// file defines both names of each.
#undef _FILE_OFFSET_BITS

#include <daxref/ioctl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "base/next_symbol.h"
#include "tools/reflink/remap.h"

#define DAXREF_EXPORT __attribute__((visibility("default")))

namespace daxref::reflink {
namespace {

using FallocateFn = int (*)(int fd, int mode, off_t offset, off_t length);
using Fallocate64Fn = int (*)(int fd, int mode, off64_t offset, off64_t length);
using FstatfsFn = int (*)(int fd, struct statfs* buf);
using Fstatfs64Fn = int (*)(int fd, struct statfs64* buf);
using StatfsFn = int (*)(const char* path, struct statfs* buf);
using Statfs64Fn = int (*)(const char* path, struct statfs64* buf);

// The fallbacks, should dlsym find nothing (a static libc): the raw calls.
int SyscallIoctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return static_cast<int>(syscall(SYS_ioctl, fd, request, arg));
}

int SyscallFallocate(int fd, int mode, off_t offset, off_t length) {
  return static_cast<int>(syscall(SYS_fallocate, fd, mode, offset, length));
}

int SyscallFallocate64(int fd, int mode, off64_t offset, off64_t length) {
  return static_cast<int>(syscall(SYS_fallocate, fd, mode, offset, length));
}

int SyscallFstatfs(int fd, struct statfs* buf) {
  return static_cast<int>(syscall(SYS_fstatfs, fd, buf));
}

int SyscallFstatfs64(int fd, struct statfs64* buf) {
  return static_cast<int>(syscall(SYS_fstatfs, fd, buf));
}

int SyscallStatfs(const char* path, struct statfs* buf) {
  return static_cast<int>(syscall(SYS_statfs, path, buf));
}

int SyscallStatfs64(const char* path, struct statfs64* buf) {
  return static_cast<int>(syscall(SYS_statfs, path, buf));
}

constinit std::atomic<IoctlFn> real_ioctl{nullptr};
constinit std::atomic<FallocateFn> real_fallocate{nullptr};
constinit std::atomic<Fallocate64Fn> real_fallocate64{nullptr};
constinit std::atomic<FstatfsFn> real_fstatfs{nullptr};
constinit std::atomic<Fstatfs64Fn> real_fstatfs64{nullptr};
constinit std::atomic<StatfsFn> real_statfs{nullptr};
constinit std::atomic<Statfs64Fn> real_statfs64{nullptr};

IoctlFn RealIoctl() {
  return daxref::NextSymbol(&real_ioctl, "ioctl", &SyscallIoctl);
}

// Fails with errno = -err, or succeeds leaving errno as the caller had it.
int Finish(int err, int saved_errno) {
  if (err < 0) {
    errno = -err;
    return -1;
  }
  errno = saved_errno;
  return 0;
}

// FIDEDUPERANGE on src_fd, a daxref file the kernel has already checked
// (open for reading, regular, reserved fields zero, the whole argument
// readable): the rest of vfs_dedupe_file_range, destination by destination.
int Dedupe(IoctlFn io, int src_fd, file_dedupe_range* req) {
  const uint64_t offset = req->src_offset;
  uint64_t length = req->src_length;
  if (offset > INT64_MAX || length > INT64_MAX ||
      offset > static_cast<uint64_t>(INT64_MAX) - length)
    return -EINVAL;
  struct stat src;
  if (fstat(src_fd, &src) != 0) return -errno;
  if (offset + length > static_cast<uint64_t>(src.st_size)) return -EINVAL;
  if (length > kMaxDedupePerCall) length = kMaxDedupePerCall;

  const uint16_t count = req->dest_count;
  for (uint16_t i = 0; i < count; ++i) {
    req->info[i].bytes_deduped = 0;
    req->info[i].status = FILE_DEDUPE_RANGE_SAME;
  }
  for (uint16_t i = 0; i < count; ++i) {
    file_dedupe_range_info* info = &req->info[i];
    // The kernel takes the low 32 bits of dest_fd as the descriptor.
    const int dest_fd = static_cast<int>(static_cast<uint32_t>(info->dest_fd));
    const int flags = fcntl(dest_fd, F_GETFL);
    if (flags < 0 || (flags & O_PATH)) {
      info->status = -EBADF;
      continue;
    }
    if (info->reserved != 0) {
      info->status = -EINVAL;
      continue;
    }
    int r = CheckDedupeDest(src_fd, dest_fd, info->dest_offset, length);
    if (r == 0 && length > 0) {
      uint64_t deduped = 0;
      r = DedupeOne(io, src_fd, offset, length, dest_fd, info->dest_offset, &deduped);
    }
    if (r < 0 || r == FILE_DEDUPE_RANGE_DIFFERS) {
      info->status = r;
    } else {
      // As the kernel: the length asked for (after its cap), even where the
      // filesystem shortened the request at the destination's end of file.
      info->bytes_deduped = length;
    }
  }
  return 0;
}

// The kernel's limit on fm_extent_count (fs/ioctl.c).
constexpr uint32_t kFiemapMaxExtents = UINT_MAX / sizeof(fiemap_extent) - 1;
// FUSE's s_maxbytes, MAX_LFS_FILESIZE: what fiemap_prep clamps the range to.
constexpr uint64_t kMaxBytes = INT64_MAX;

// FS_IOC_FIEMAP on a regular daxref file, which the kernel refuses for FUSE
// before it even reads the argument: ioctl_fiemap and fiemap_prep, then the
// file's extents from DAXREF_IOC_EXTENTS. Shared blocks are flagged
// FIEMAP_EXTENT_SHARED, the file's final extent FIEMAP_EXTENT_LAST, and
// fe_physical is the offset in the pool file. Only a null argument is
// caught as EFAULT; any other bad pointer faults in the caller, as it would
// for its own reads of the result.
int Fiemap(IoctlFn io, int fd, fiemap* fm) {
  if (fm == nullptr) return -EFAULT;
  if (fm->fm_extent_count > kFiemapMaxExtents) return -EINVAL;
  fm->fm_mapped_extents = 0;
  const uint64_t start = fm->fm_start;
  uint64_t length = fm->fm_length;
  if (length == 0) return -EINVAL;
  if (start >= kMaxBytes) return -EFBIG;
  if (length > kMaxBytes || kMaxBytes - length < start) length = kMaxBytes - start;
  // No extended-attribute fork to map: FIEMAP_FLAG_XATTR is refused as the
  // kernel refuses an unsupported flag, naming it in fm_flags.
  if (uint32_t incompat = fm->fm_flags & ~uint32_t{FIEMAP_FLAG_SYNC}; incompat != 0) {
    fm->fm_flags = incompat;
    return -EBADR;
  }
  if (fm->fm_flags & FIEMAP_FLAG_SYNC) {
    if (int e = FlushRange(fd, 0, 0); e < 0) return e;
  }
  const uint64_t end = start + length;
  // The query is 12 KiB: from mmap, not the caller's stack or malloc.
  void* mem = mmap(nullptr, sizeof(daxref_extent_query), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return -ENOMEM;
  auto* q = static_cast<daxref_extent_query*>(mem);
  int err = 0;
  uint64_t pos = start;
  for (bool done = false; !done;) {
    q->start = pos;
    q->length = 0;  // to the end of the file, so that the daemon marks the last extent
    if (io(fd, DAXREF_IOC_EXTENTS, q) != 0) {
      err = -errno;
      break;
    }
    for (uint32_t i = 0; i < q->count && i < DAXREF_EXTENTS_PER_CALL && !done; ++i) {
      const daxref_extent& e = q->extents[i];
      if (e.logical >= end) {
        done = true;
        break;
      }
      if (e.logical + e.length <= start) continue;
      uint32_t flags = 0;
      if (e.flags & DAXREF_EXTENT_SHARED) flags |= FIEMAP_EXTENT_SHARED;
      if (e.flags & DAXREF_EXTENT_LAST) flags |= FIEMAP_EXTENT_LAST;
      if (fm->fm_extent_count == 0) {  // count only
        ++fm->fm_mapped_extents;
      } else {
        fiemap_extent* x = &fm->fm_extents[fm->fm_mapped_extents++];
        *x = fiemap_extent{};
        x->fe_logical = e.logical;
        x->fe_physical = e.physical;
        x->fe_length = e.length;
        x->fe_flags = flags;
        if (fm->fm_mapped_extents == fm->fm_extent_count) done = true;
      }
      if (flags & FIEMAP_EXTENT_LAST) done = true;
    }
    if (!(q->flags & DAXREF_QUERY_MORE) || q->next <= pos) break;
    pos = q->next;
  }
  munmap(mem, sizeof(daxref_extent_query));
  return err;
}

// fallocate with FALLOC_FL_UNSHARE_RANGE, after the real call said
// EOPNOTSUPP. As XFS: unshare, allocate whatever in the range is a hole,
// and unless FALLOC_FL_KEEP_SIZE grow the file to the end of the range. The
// daemon's unshare does the first two without touching the size; the last
// is the real fallocate with mode 0, which daxref supports (and which finds
// the range allocated already).
template <typename Off, typename Fn>
int UnshareAndAllocate(Fn real, int fd, int mode, Off offset, Off length, int saved_errno) {
  if ((mode & ~FALLOC_FL_KEEP_SIZE) != FALLOC_FL_UNSHARE_RANGE) return -1;
  IoctlFn io = RealIoctl();
  if (!IsDaxref(io, fd)) {
    errno = EOPNOTSUPP;
    return -1;
  }
  // The kernel has refused offset < 0 and length <= 0 already.
  int e = Unshare(io, fd, static_cast<uint64_t>(offset), static_cast<uint64_t>(length));
  if (e < 0) return Finish(e, saved_errno);
  if (!(mode & FALLOC_FL_KEEP_SIZE) && real(fd, 0, offset, length) != 0) return -1;
  errno = saved_errno;
  return 0;
}

// fallocate with FALLOC_FL_COLLAPSE_RANGE or FALLOC_FL_INSERT_RANGE, after
// the real call said EOPNOTSUPP: the daemon's ioctl does the same.
int ShiftRangeOrNot(int fd, int mode, uint64_t offset, uint64_t length, int saved_errno) {
  IoctlFn io = RealIoctl();
  if (!IsDaxref(io, fd)) {
    errno = EOPNOTSUPP;
    return -1;
  }
  return Finish(ShiftRange(io, fd, mode, offset, length), saved_errno);
}

constexpr int kShiftModes = FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE;

// DAXREF_REFLINK_STATFS=xfs: statfs and fstatfs report daxref files as XFS.
// For programs that refuse to dedupe anywhere else (Debian 12's duperemove,
// 0.11.2, checks f_type); off by default, since a program that believes it
// is on XFS may also use XFS's own ioctls, which daxref does not have. Read
// once.
bool FakeXfs() {
  static constinit std::atomic<int> state{-1};
  int s = state.load(std::memory_order_relaxed);
  if (s < 0) {
    const char* v = getenv("DAXREF_REFLINK_STATFS");
    s = v != nullptr && strcmp(v, "xfs") == 0;
    state.store(s, std::memory_order_relaxed);
  }
  return s == 1;
}

// After a successful statfs of a FUSE file: is it daxref, to be shown as XFS?
template <typename Buf>
void MaybeXfs(int fd, Buf* buf) {
  if (buf->f_type != FUSE_SUPER_MAGIC || !FakeXfs()) return;
  const int saved_errno = errno;
  if (IsDaxref(RealIoctl(), fd)) buf->f_type = XFS_SUPER_MAGIC;
  errno = saved_errno;
}

// The same for a path: only regular files and directories are opened, and
// O_NONBLOCK | O_NOCTTY, so that asking has no side effects.
template <typename Buf>
void MaybeXfs(const char* path, Buf* buf) {
  if (buf->f_type != FUSE_SUPER_MAGIC || !FakeXfs()) return;
  const int saved_errno = errno;
  struct stat st;
  if (stat(path, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0) {
      if (IsDaxref(RealIoctl(), fd)) buf->f_type = XFS_SUPER_MAGIC;
      close(fd);
    }
  }
  errno = saved_errno;
}

}  // namespace
}  // namespace daxref::reflink

using daxref::reflink::IoctlFn;

// glibc's prototype (sys/ioctl.h), exception specification included.
extern "C" DAXREF_EXPORT int ioctl(int fd, unsigned long request, ...) __THROW {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  IoctlFn real = daxref::reflink::RealIoctl();
  // The kernel reads the command as 32 bits; a caller may have sign-extended it.
  const unsigned int cmd = static_cast<unsigned int>(request);
  if (cmd != FICLONE && cmd != FICLONERANGE && cmd != FIDEDUPERANGE && cmd != FS_IOC_FIEMAP)
    return real(fd, request, arg);

  const int saved_errno = errno;
  int r = real(fd, request, arg);
  if (r != -1 || errno != EOPNOTSUPP) return r;

  namespace rl = daxref::reflink;
  // EOPNOTSUPP: both files are regular and on one filesystem (for a clone,
  // the destination's), and the descriptors' modes are right. Is it daxref?
  if (!rl::IsDaxref(real, fd)) {
    errno = EOPNOTSUPP;
    return -1;
  }
  switch (cmd) {
    case FS_IOC_FIEMAP: {
      struct stat st;
      if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        errno = EOPNOTSUPP;
        return -1;
      }
      return rl::Finish(rl::Fiemap(real, fd, static_cast<fiemap*>(arg)), saved_errno);
    }
    case FICLONE: {
      // The argument is the source descriptor, read as 32 bits.
      const int src = static_cast<int>(reinterpret_cast<uintptr_t>(arg));
      return rl::Finish(rl::CloneRange(real, src, 0, 0, fd, 0), saved_errno);
    }
    case FICLONERANGE: {
      const auto* a = static_cast<const file_clone_range*>(arg);
      const int src = static_cast<int>(static_cast<uint32_t>(a->src_fd));
      return rl::Finish(rl::CloneRange(real, src, a->src_offset, a->src_length, fd, a->dest_offset),
                        saved_errno);
    }
    default:
      return rl::Finish(rl::Dedupe(real, fd, static_cast<file_dedupe_range*>(arg)), saved_errno);
  }
}

extern "C" DAXREF_EXPORT int fallocate(int fd, int mode, off_t offset, off_t length) {
  namespace rl = daxref::reflink;
  rl::FallocateFn real =
      daxref::NextSymbol(&rl::real_fallocate, "fallocate", &rl::SyscallFallocate);
  const int saved_errno = errno;
  int r = real(fd, mode, offset, length);
  if (r == -1 && errno == EOPNOTSUPP && (mode & rl::kShiftModes))
    return rl::ShiftRangeOrNot(fd, mode, offset, length, saved_errno);
  if (r != -1 || errno != EOPNOTSUPP || !(mode & FALLOC_FL_UNSHARE_RANGE)) return r;
  return rl::UnshareAndAllocate(real, fd, mode, offset, length, saved_errno);
}

extern "C" DAXREF_EXPORT int fallocate64(int fd, int mode, off64_t offset, off64_t length) {
  namespace rl = daxref::reflink;
  rl::Fallocate64Fn real =
      daxref::NextSymbol(&rl::real_fallocate64, "fallocate64", &rl::SyscallFallocate64);
  const int saved_errno = errno;
  int r = real(fd, mode, offset, length);
  if (r == -1 && errno == EOPNOTSUPP && (mode & rl::kShiftModes))
    return rl::ShiftRangeOrNot(fd, mode, offset, length, saved_errno);
  if (r != -1 || errno != EOPNOTSUPP || !(mode & FALLOC_FL_UNSHARE_RANGE)) return r;
  return rl::UnshareAndAllocate(real, fd, mode, offset, length, saved_errno);
}

extern "C" DAXREF_EXPORT int fstatfs(int fd, struct statfs* buf) __THROW {
  namespace rl = daxref::reflink;
  int r = daxref::NextSymbol(&rl::real_fstatfs, "fstatfs", &rl::SyscallFstatfs)(fd, buf);
  if (r == 0) rl::MaybeXfs(fd, buf);
  return r;
}

extern "C" DAXREF_EXPORT int fstatfs64(int fd, struct statfs64* buf) __THROW {
  namespace rl = daxref::reflink;
  int r = daxref::NextSymbol(&rl::real_fstatfs64, "fstatfs64", &rl::SyscallFstatfs64)(fd, buf);
  if (r == 0) rl::MaybeXfs(fd, buf);
  return r;
}

extern "C" DAXREF_EXPORT int statfs(const char* path, struct statfs* buf) __THROW {
  namespace rl = daxref::reflink;
  int r = daxref::NextSymbol(&rl::real_statfs, "statfs", &rl::SyscallStatfs)(path, buf);
  if (r == 0) rl::MaybeXfs(path, buf);
  return r;
}

extern "C" DAXREF_EXPORT int statfs64(const char* path, struct statfs64* buf) __THROW {
  namespace rl = daxref::reflink;
  int r = daxref::NextSymbol(&rl::real_statfs64, "statfs64", &rl::SyscallStatfs64)(path, buf);
  if (r == 0) rl::MaybeXfs(path, buf);
  return r;
}
