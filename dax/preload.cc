// libdaxref-dax-preload.so: an LD_PRELOAD library that makes unmodified
// programs' shared mappings of daxref files direct (docs/dax.md, "The
// client library"; daxref_dax(3), PRELOAD MODE).
//
// It wraps mmap, mmap64 and munmap:
//
//   1. mmap goes to the real function first, untouched, so the kernel makes
//      every check of its own and the program gets the kernel's errno (a
//      writable shared mapping of a descriptor not open for writing: EACCES)
//      and the address the kernel chose, MAP_FIXED and hints included.
//   2. If that mapping is MAP_SHARED (or MAP_SHARED_VALIDATE), of a regular
//      file on a daxref mount (FUSE's f_type, then DAXREF_IOC_DAX_INFO's
//      magic), readable or writable only (no PROT_EXEC), and inside the
//      file's size rounded up to a block, the library asks for a lease on
//      the mapped range: a write lease if PROT_WRITE was asked and the
//      descriptor is O_RDWR, else a read lease. Granted, the pool's extents
//      are placed over the ordinary mapping, at the same address, with
//      MAP_FIXED. Not granted (not root or the pool's owner, a bad block in
//      the range, anything), the ordinary mapping stays, and errno is as the
//      program had it.
//   3. The library keeps a duplicate of the descriptor for each direct
//      mapping. On revocation the reader thread replaces the whole mapping,
//      in one mmap at the same address, by the ordinary mapping of that
//      descriptor at that offset, before it acknowledges: the program goes
//      on through the page cache and never sees the revocation.
//   4. munmap of any part of a direct mapping ends its lease: a whole
//      mapping is unmapped first; a part is unmapped after the whole was
//      replaced by the ordinary mapping (the rest stays mapped, ordinarily).
//      mmap with MAP_FIXED over a direct mapping does the same replacement
//      before the real call maps over it (the address range never has a gap
//      another thread's mmap could take).
//
// Not wrapped: mremap (a remapped direct mapping keeps pointing at the pool
// until revocation, which then finds nothing at the old address: do not
// mremap a direct mapping), and programs that make the system calls without
// libc (static binaries, Go). Direct mappings are MADV_DONTFORK, as every
// lease mapping: a child of fork does not have them.
//
// There is no constructor: the real functions are looked up on first use
// with dlsym(RTLD_NEXT). The library's own mappings are made with the raw
// system calls (dax/raw_mmap.h), so nothing comes back into the wrappers.
//
// This is a separate library from libdaxref-dax.so.0 (which exports the
// <daxref/dax.h> API and wraps nothing): loading the API library must not
// change a program's mmap.
#undef _FILE_OFFSET_BITS

#include <daxref/ioctl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <map>
#include <vector>

#include "base/mutex.h"
#include "base/next_symbol.h"
#include "base/unique_fd.h"
#include "dax/dax_map.h"

#define DAXREF_EXPORT __attribute__((visibility("default")))

namespace daxref::dax {
namespace {

using MmapFn = void* (*)(void*, size_t, int, int, int, off_t);
using Mmap64Fn = void* (*)(void*, size_t, int, int, int, off64_t);
using MunmapFn = int (*)(void*, size_t);

void* SyscallMmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}
void* SyscallMmap64(void* addr, size_t len, int prot, int flags, int fd, off64_t off) {
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}
int SyscallMunmap(void* addr, size_t len) {
  return static_cast<int>(syscall(SYS_munmap, addr, len));
}

constinit std::atomic<MmapFn> real_mmap{nullptr};
constinit std::atomic<Mmap64Fn> real_mmap64{nullptr};
constinit std::atomic<MunmapFn> real_munmap{nullptr};

// The direct mappings, by address. Never destroyed (a thread may unmap
// during exit); forgotten in a child of fork, which has none of them.
struct Direct {
  Mutex mu;
  std::map<uintptr_t, DaxMap*> by_base GUARDED_BY(mu);
  std::atomic<size_t> count{0};  // so that munmap of anything else takes no lock

  static Direct* Get() {
    static Direct* d = [] {
      auto* p = new Direct;
      pthread_atfork(nullptr, nullptr, &Direct::InChild);
      return p;
    }();
    return d;
  }
  static void InChild() NO_THREAD_SAFETY_ANALYSIS {
    Direct* d = Get();
    new (&d->mu) Mutex;
    new (&d->by_base) std::map<uintptr_t, DaxMap*>();  // the old one leaks
    d->count.store(0);
  }

  // Takes every direct mapping overlapping [addr, addr + len) out of the
  // table, with whether [addr, addr + len) covers it whole.
  std::vector<std::pair<DaxMap*, bool>> Take(void* addr, size_t len) EXCLUDES(mu) {
    std::vector<std::pair<DaxMap*, bool>> out;
    if (count.load(std::memory_order_acquire) == 0 || len == 0) return out;
    const uintptr_t lo = reinterpret_cast<uintptr_t>(addr);
    const uintptr_t hi = lo + len < lo ? UINTPTR_MAX : lo + len;
    MutexLock l(&mu);
    for (auto it = by_base.begin(); it != by_base.end();) {
      DaxMap* m = it->second;
      const uintptr_t b = it->first, e = b + m->region_length;
      if (b < hi && lo < e) {
        out.emplace_back(m, lo <= b && e <= hi);
        it = by_base.erase(it);
        count.fetch_sub(1, std::memory_order_release);
      } else {
        ++it;
      }
    }
    return out;
  }
  void Add(DaxMap* m) EXCLUDES(mu) {
    MutexLock l(&mu);
    by_base[reinterpret_cast<uintptr_t>(m->base)] = m;
    count.fetch_add(1, std::memory_order_release);
  }
};

// Ends the leases of the direct mappings in [addr, addr + len): a mapping
// covered whole is unmapped (always_restore false) or replaced, one covered
// in part is replaced by the ordinary mapping.
void EndOverlapping(void* addr, size_t len, bool always_restore) {
  for (auto [m, whole] : Direct::Get()->Take(addr, len))
    EndLease(m, whole && !always_restore ? EndHow::kUnmap : EndHow::kRestore);
}

// After the real mmap made `mapped`: makes it direct if it can.
void MaybeDirect(void* mapped, size_t len, int prot, int flags, int fd, uint64_t off) {
  const int type = flags & MAP_TYPE;
  if ((type != MAP_SHARED && type != MAP_SHARED_VALIDATE) || (flags & MAP_ANONYMOUS) || fd < 0 ||
      len == 0 || (prot & ~(PROT_READ | PROT_WRITE)) != 0 || prot == PROT_NONE)
    return;
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0 || fs.f_type != FUSE_SUPER_MAGIC) return;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
  daxref_info info{};
  if (ioctl(fd, DAXREF_IOC_INFO, &info) != 0 || info.magic != DAXREF_INFO_MAGIC) return;
  const uint64_t block = info.block_size != 0 ? info.block_size : 4096;
  const uint64_t size_blocks = (static_cast<uint64_t>(st.st_size) + block - 1) / block * block;
  if (off > size_blocks || len > size_blocks - off) return;  // the lease would be refused
  const int mode = fcntl(fd, F_GETFL);
  if (mode < 0) return;
  const bool write = (prot & PROT_WRITE) && (mode & O_ACCMODE) == O_RDWR;
  UniqueFd fallback(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!fallback.valid()) return;
  DaxMap* m = MapLease(fd, off, len, write, prot, mapped, std::move(fallback));
  if (m != nullptr) Direct::Get()->Add(m);
}

template <typename Fn, typename Off>
void* Map(Fn real, void* addr, size_t len, int prot, int flags, int fd, Off off) {
  const int saved_errno = errno;
  if ((flags & MAP_FIXED) && addr != nullptr) EndOverlapping(addr, len, true);
  errno = saved_errno;
  void* r = real(addr, len, prot, flags, fd, off);
  if (r == MAP_FAILED) return r;
  MaybeDirect(r, len, prot, flags, fd, static_cast<uint64_t>(off));
  errno = saved_errno;
  return r;
}

}  // namespace
}  // namespace daxref::dax

namespace dx = daxref::dax;

extern "C" DAXREF_EXPORT void* mmap(void* addr, size_t len, int prot, int flags, int fd,
                                    off_t off) __THROW {
  return dx::Map(daxref::NextSymbol(&dx::real_mmap, "mmap", &dx::SyscallMmap), addr, len, prot,
                 flags, fd, off);
}

extern "C" DAXREF_EXPORT void* mmap64(void* addr, size_t len, int prot, int flags, int fd,
                                      off64_t off) __THROW {
  return dx::Map(daxref::NextSymbol(&dx::real_mmap64, "mmap64", &dx::SyscallMmap64), addr, len,
                 prot, flags, fd, off);
}

extern "C" DAXREF_EXPORT int munmap(void* addr, size_t len) __THROW {
  dx::MunmapFn real = daxref::NextSymbol(&dx::real_munmap, "munmap", &dx::SyscallMunmap);
  const int saved_errno = errno;
  dx::EndOverlapping(addr, len, false);
  errno = saved_errno;
  return real(addr, len);
}
