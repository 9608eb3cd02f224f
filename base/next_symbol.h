// The next definition of a libc function after a preload library (dlsym
// RTLD_NEXT), looked up on first use and kept: what the preload libraries
// (libdaxref-reflink, libdaxref-dax-preload) wrap calls with. Two threads
// may both look a name up; they find the same thing, so no lock is needed.
// `fallback` (the raw system call) stands in when nothing is found.
#pragma once

#include <dlfcn.h>

#include <atomic>

namespace daxref {

template <typename Fn>
Fn NextSymbol(std::atomic<Fn>* cache, const char* name, Fn fallback) {
  Fn fn = cache->load(std::memory_order_acquire);
  if (fn != nullptr) return fn;
  void* sym = dlsym(RTLD_NEXT, name);
  fn = sym != nullptr ? reinterpret_cast<Fn>(sym) : fallback;
  cache->store(fn, std::memory_order_release);
  return fn;
}

}  // namespace daxref
