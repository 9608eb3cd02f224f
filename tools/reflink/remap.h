// Clone, dedupe and unshare on a daxref mount through the daemon's ioctls
// (include/daxref/ioctl.h), shared by libdaxref-reflink.so (preload.cc) and
// daxref-reflink (main.cc).
//
// These functions are what the kernel would do in its filesystem-independent
// part once the VFS has let a FICLONE, FIDEDUPERANGE or unshare through, and
// then the daemon call itself. They allocate nothing, throw nothing, keep no
// state and use only system calls (so they are thread-safe and may run in any
// process the library is preloaded into). Every ioctl goes through the
// IoctlFn passed in: the library must reach the real ioctl(2), never its own.
//
// Errors are returned as a negative errno; errno itself may be changed.
#pragma once

#include <daxref/ioctl.h>
#include <sys/types.h>

#include <cstdint>

namespace daxref::reflink {

using IoctlFn = int (*)(int fd, unsigned long request, ...);

// The kernel's own cap on one FIDEDUPERANGE call (vfs_dedupe_file_range).
constexpr uint64_t kMaxDedupePerCall = uint64_t{1} << 30;

// Whether fd is a file or directory of a daxref mount (DAXREF_IOC_INFO answers
// with DAXREF_INFO_MAGIC). Fills *info if given.
bool IsDaxref(IoctlFn io, int fd, daxref_info* info = nullptr);

// Writes back the page cache's dirty pages of [offset, offset + length)
// (length 0: to the end of the file) and waits for them, as the kernel does
// before it remaps: a page dirtied through a shared mapping would otherwise
// be compared, cloned or later written back over the result. 0 or -errno.
int FlushRange(int fd, uint64_t offset, uint64_t length);

// dest_fd gets src_fd's bytes [src_offset, src_offset + length) at
// dest_offset, sharing blocks (length 0: to the source's end of file). Both
// must be on the same daxref mount; src_fd open for reading, dest_fd for
// writing. 0 or -errno.
int CloneRange(IoctlFn io, int src_fd, uint64_t src_offset, uint64_t length, int dest_fd,
               uint64_t dest_offset);

// The checks the kernel makes for one FIDEDUPERANGE destination before it
// reaches the filesystem (vfs_dedupe_file_range_one), in its order: -EINVAL
// (offset or range overflow), -EROFS, -EPERM (may not dedupe into it),
// -EXDEV (another filesystem than src_fd's), -EISDIR, -EINVAL (not a
// regular file). 0 when the daemon may be asked.
int CheckDedupeDest(int src_fd, int dest_fd, uint64_t dest_offset, uint64_t length);

// Shares [src_offset, src_offset + length) of src_fd with dest_fd at
// dest_offset if the bytes are the same. Returns 0 (FILE_DEDUPE_RANGE_SAME)
// with *deduped set to the bytes the daemon shared, 1
// (FILE_DEDUPE_RANGE_DIFFERS), or -errno.
int DedupeOne(IoctlFn io, int src_fd, uint64_t src_offset, uint64_t length, int dest_fd,
              uint64_t dest_offset, uint64_t* deduped);

// Gives fd (open for writing) its own copy of every shared block in
// [offset, offset + length), and allocates the holes there; the size does
// not change. 0 or -errno.
int Unshare(IoctlFn io, int fd, uint64_t offset, uint64_t length);
// fallocate's collapse (FALLOC_FL_COLLAPSE_RANGE) or insert range through
// the daemon's ioctl; 0 or -errno.
int ShiftRange(IoctlFn io, int fd, int mode, uint64_t offset, uint64_t length);

}  // namespace daxref::reflink
