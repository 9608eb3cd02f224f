// See remap.h. Only system calls in here: this file is linked into the
// preload library, which must not allocate, lock or do I/O of its own
// beyond the request it is serving.
#include "tools/reflink/remap.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace daxref::reflink {

namespace {

// May the caller dedupe into a file it holds open read-only? The kernel's
// rule (may_dedupe_file): CAP_SYS_ADMIN, or owning the file, or having write
// permission on it. (Open for writing is checked by the caller.)
bool MayDedupeInto(int fd) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, caps) == 0 &&
      (caps[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective & CAP_TO_MASK(CAP_SYS_ADMIN)))
    return true;
  struct stat st;
  // setfsuid with an invalid id changes nothing and returns the current one.
  if (fstat(fd, &st) == 0 && st.st_uid == static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1))))
    return true;
  return faccessat(fd, "", W_OK, AT_EMPTY_PATH | AT_EACCESS) == 0;
}

}  // namespace

bool IsDaxref(IoctlFn io, int fd, daxref_info* info) {
  daxref_info local{};
  daxref_info* out = info != nullptr ? info : &local;
  return io(fd, DAXREF_IOC_INFO, out) == 0 && out->magic == DAXREF_INFO_MAGIC;
}

int FlushRange(int fd, uint64_t offset, uint64_t length) {
  if (offset > INT64_MAX) return 0;  // nothing can be cached there
  // sync_file_range's length 0 means "to the end of the file" too.
  uint64_t n = length > static_cast<uint64_t>(INT64_MAX) - offset ? 0 : length;
  if (sync_file_range(
          fd, static_cast<off_t>(offset), static_cast<off_t>(n),
          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0)
    return -errno;
  return 0;
}

int CloneRange(IoctlFn io, int src_fd, uint64_t src_offset, uint64_t length, int dest_fd,
               uint64_t dest_offset) {
  if (int e = FlushRange(src_fd, src_offset, length); e != 0) return e;
  if (int e = FlushRange(dest_fd, dest_offset, length); e != 0) return e;
  daxref_clone_range a{};
  if (io(src_fd, DAXREF_IOC_TOKEN, &a.src) != 0) return -errno;
  a.src_offset = src_offset;
  a.src_length = length;
  a.dest_offset = dest_offset;
  if (io(dest_fd, DAXREF_IOC_CLONE_RANGE, &a) != 0) return -errno;
  return 0;
}

int CheckDedupeDest(int src_fd, int dest_fd, uint64_t dest_offset, uint64_t length) {
  if (dest_offset > INT64_MAX || length > INT64_MAX ||
      dest_offset > static_cast<uint64_t>(INT64_MAX) - length)
    return -EINVAL;
  int flags = fcntl(dest_fd, F_GETFL);
  if (flags < 0) return -errno;
  if (flags & O_PATH) return -EBADF;
  if ((flags & O_ACCMODE) == O_RDONLY) {
    // A descriptor open for writing proves the mount writable; this one
    // does not.
    struct statvfs v;
    if (fstatvfs(dest_fd, &v) == 0 && (v.f_flag & ST_RDONLY)) return -EROFS;
    if (!MayDedupeInto(dest_fd)) return -EPERM;
  }
  struct stat src, dest;
  if (fstat(src_fd, &src) != 0 || fstat(dest_fd, &dest) != 0) return -errno;
  if (src.st_dev != dest.st_dev) return -EXDEV;
  if (S_ISDIR(dest.st_mode)) return -EISDIR;
  if (!S_ISREG(dest.st_mode)) return -EINVAL;
  return 0;
}

int DedupeOne(IoctlFn io, int src_fd, uint64_t src_offset, uint64_t length, int dest_fd,
              uint64_t dest_offset, uint64_t* deduped) {
  *deduped = 0;
  if (int e = FlushRange(src_fd, src_offset, length); e != 0) return e;
  if (int e = FlushRange(dest_fd, dest_offset, length); e != 0) return e;
  daxref_dedupe_range a{};
  if (io(src_fd, DAXREF_IOC_TOKEN, &a.src) != 0) return -errno;
  a.src_offset = src_offset;
  a.src_length = length;
  a.dest_offset = dest_offset;
  if (io(dest_fd, DAXREF_IOC_DEDUPE_RANGE, &a) != 0) return -errno;
  if (a.status < 0) return a.status;
  if (a.status == FILE_DEDUPE_RANGE_DIFFERS) return FILE_DEDUPE_RANGE_DIFFERS;
  if (a.status != FILE_DEDUPE_RANGE_SAME) return -EIO;  // not an answer the ABI allows
  *deduped = a.bytes_deduped;
  return FILE_DEDUPE_RANGE_SAME;
}

int Unshare(IoctlFn io, int fd, uint64_t offset, uint64_t length) {
  daxref_range r{};
  r.offset = offset;
  r.length = length;
  if (io(fd, DAXREF_IOC_UNSHARE_RANGE, &r) != 0) return -errno;
  return 0;
}

int ShiftRange(IoctlFn io, int fd, int mode, uint64_t offset, uint64_t length) {
  daxref_range r{};
  r.offset = offset;
  r.length = length;
  unsigned long cmd = 0;
  if (mode == FALLOC_FL_COLLAPSE_RANGE)
    cmd = DAXREF_IOC_COLLAPSE_RANGE;
  else if (mode == FALLOC_FL_INSERT_RANGE)
    cmd = DAXREF_IOC_INSERT_RANGE;
  else
    return -EINVAL;  // as fallocate(2): these take no other flag
  if (io(fd, cmd, &r) != 0) return -errno;
  return 0;
}

}  // namespace daxref::reflink
