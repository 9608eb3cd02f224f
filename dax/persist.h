// How the client library makes stores through a MAP_SYNC mapping durable
// (daxref_dax_persist, docs/dax.md "Coherency").
//
// libpmem2 chooses a persist function by the store granularity of a mapping
// it made itself (pmem2_get_persist_fn takes a pmem2_map), and the library
// places its extents itself (MAP_FIXED into one region, which libpmem2
// cannot do with holes and revocations in it). The persist functions of
// cache-line and byte granularity only flush the CPU caches of an address
// range and fence, whatever maps it, so the library asks libpmem2 once per
// session: it maps one alignment unit of the pool through libpmem2, keeps
// the persist function if the granularity is byte or cache line, and drops
// the mapping. Page granularity (the pool's filesystem is not DAX) yields
// null: the caller msyncs itself, as pool/pool.cc does, because libpmem2's
// page persist abort()s when msync fails.
#pragma once

#include <cstddef>

namespace daxref::dax {

using PersistFn = void (*)(const void* addr, size_t length);

// libpmem2's persist function for MAP_SYNC mappings of the pool open on
// pool_fd, or null when persisting takes msync (or libpmem2 could not tell).
PersistFn ProbePersist(int pool_fd);

}  // namespace daxref::dax
