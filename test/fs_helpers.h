// Helpers for the end-to-end tests (fs_tests): file descriptors, whole-buffer
// pread / pwrite, stat and statvfs, test bytes, comparisons of large byte
// strings, and the daxref ioctls. Each fails the current test (REQUIRE) when
// a syscall that must work does not, except the ioctl wrappers that return
// an errno (usable in forked children, and by tests of the failures).
#pragma once

#include <daxref/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "test/fixture.h"

namespace daxref::test {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kBlock = 4096;  // the filesystem's block size

// A file descriptor closed on destruction; open failing fails the test.
class Fd {
 public:
  Fd(const std::string& path, int flags, mode_t mode = 0644);
  ~Fd() { Close(); }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Close();

 private:
  int fd_ = -1;
};

// ---- reads and writes ----

// Writes all of `data` at `off`, over as many pwrite calls as it takes; each
// call must write something.
void PwriteAll(int fd, const std::string& data, uint64_t off);
// Writes `data` at `off` in a single pwrite, which must write all of it.
void PwriteExact(int fd, const std::string& data, uint64_t off);
// Reads up to len bytes at off (fewer only at EOF), over as many pread calls
// as it takes.
std::string PreadAll(int fd, uint64_t off, size_t len);
// Reads len bytes at off in a single pread, which must return all of them.
std::string PreadExact(int fd, uint64_t off, size_t len);

// ---- attributes and free space ----

struct stat StatOf(int fd);
struct stat StatOf(const std::string& path);  // stat(2): follows symlinks
struct stat Lstat(const std::string& path);

struct statvfs Vfs(const MountedFs& fs);
uint64_t FreeBlocks(const MountedFs& fs);  // f_bfree
// The kernel sends RELEASE asynchronously, so blocks of a file that was
// closed and then unlinked may come back a moment after unlink returned.
// Waits (bounded, some seconds) for the free count to reach `want`, then
// returns the last count seen.
uint64_t FreeBlocksSettled(const MountedFs& fs, uint64_t want);

// Leaves the pool's free blocks full of non-zero bytes (writes `bytes` of
// them to a file in one pwrite, then deletes it), so that a later check that
// "new space reads zero" cannot pass by luck of a fresh pool.
void DirtyFreeSpace(const MountedFs& fs, uint64_t bytes);

// 0 if a syscall succeeded, else its errno.
inline int ErrnoOf(long rc) {
  return rc >= 0 ? 0 : errno;
}

// ---- test bytes ----

// n random bytes, none of them zero: where a test expects zeros (holes,
// cleared ranges), they cannot be the written data.
std::string NonZeroBytes(std::mt19937_64& rng, size_t n);
// The same from a generator seeded with `seed`: equal seeds, equal bytes.
std::string NonZeroBytes(uint64_t seed, size_t n);

// The first `keep` bytes of `data`, then zeros up to `size` bytes in all:
// what a file holds once everything from `keep` on was cleared.
std::string ZeroedFrom(const std::string& data, uint64_t keep, uint64_t size);

// Index of the first byte where a and b differ (or where the shorter ends),
// or -1 if they are equal.
int64_t FirstDiff(const std::string& a, const std::string& b);

// ---- a small host filesystem ----

// A tmpfs of `bytes` mounted on a fresh directory under /tmp (root only):
// a host filesystem a test can fill. Unmounted (lazily, so a daemon still
// exiting cannot make it fail) and removed on destruction.
class TmpfsMount {
 public:
  explicit TmpfsMount(uint64_t bytes);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  const std::string& path() const { return dir_.path(); }
  // Bytes free on it (statvfs f_bavail * f_frsize).
  uint64_t Available() const;

 private:
  TempDir dir_;
};

// ---- the daxref ioctls (include/daxref/ioctl.h) ----
// These return 0 or an errno and use no test macros: forked children and
// RunAs callers use them too.

// A one-time token for the file open on src_fd (DAXREF_IOC_TOKEN).
int GetToken(int src_fd, daxref_token* out);
// FICLONERANGE through the daemon: a token on src_fd, then
// DAXREF_IOC_CLONE_RANGE on dst_fd. 0, or the errno of the call that failed.
int CloneRange(int src_fd, uint64_t src_off, uint64_t len, int dst_fd, uint64_t dst_off);
// DAXREF_IOC_CLONE_RANGE with a token the caller already has.
int CloneWithToken(const daxref_token& token, uint64_t src_off, uint64_t len, int dst_fd,
                   uint64_t dst_off);

// FIDEDUPERANGE for one destination through the daemon.
struct DedupeOutcome {
  int err = 0;         // the token or dedupe ioctl failed as a whole
  int32_t status = 0;  // FILE_DEDUPE_RANGE_SAME, _DIFFERS or -errno
  uint64_t bytes = 0;  // bytes_deduped
};
DedupeOutcome Dedupe(int src_fd, uint64_t src_off, uint64_t len, int dst_fd, uint64_t dst_off);

// DAXREF_IOC_UNSHARE_RANGE (fallocate's FALLOC_FL_UNSHARE_RANGE).
int UnshareRange(int fd, uint64_t off, uint64_t len);

// The whole extent map of the file open on fd (DAXREF_IOC_EXTENTS, calling
// again while DAXREF_QUERY_MORE is set). REQUIRE on failure.
std::vector<daxref_extent> Extents(int fd);
std::vector<daxref_extent> Extents(const std::string& path);

}  // namespace daxref::test

// Byte-string comparisons that report where two buffers part instead of
// printing them (they can be megabytes of random bytes).
#define DAXREF_BYTES_SAME_(macro, got, want)                                             \
  do {                                                                                   \
    const std::string& g_ = (got);                                                       \
    const std::string& w_ = (want);                                                      \
    INFO("got " << g_.size() << " bytes, want " << w_.size() << "; first difference at " \
                << ::daxref::test::FirstDiff(g_, w_));                                   \
    macro(::daxref::test::FirstDiff(g_, w_) == -1);                                      \
  } while (0)
#define REQUIRE_SAME(got, want) DAXREF_BYTES_SAME_(REQUIRE, got, want)
#define CHECK_SAME(got, want) DAXREF_BYTES_SAME_(CHECK, got, want)
