// mmap and munmap as system calls, for the client library's own mappings.
//
// The preload library (dax/preload.cc) defines mmap, mmap64 and munmap
// itself and links the client library's code: a call of libc's `mmap` from
// the library would come back into the wrapper. The library's placements,
// revocations and unmaps therefore go straight to the kernel. (glibc's mmap
// adds nothing on x86-64 and aarch64 but an offset check the callers make.)
#pragma once

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace daxref::dax {

inline void* RawMmap(void* addr, size_t length, int prot, int flags, int fd, uint64_t offset) {
  long r = syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
  if (r == -1) return MAP_FAILED;
  return reinterpret_cast<void*>(r);
}

inline int RawMunmap(void* addr, size_t length) {
  return static_cast<int>(syscall(SYS_munmap, addr, length));
}

// Replaces [addr, addr + length) with an inaccessible anonymous mapping in
// one call: no thread can reach what was mapped there afterwards, and the
// address range stays reserved (nothing else is placed there by accident).
inline bool MakeInaccessible(void* addr, size_t length) {
  return RawMmap(addr, length, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0) != MAP_FAILED;
}

}  // namespace daxref::dax
