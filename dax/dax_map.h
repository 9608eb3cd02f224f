// A leased, mapped range (struct daxref_dax_map of <daxref/dax.h>) and the
// library's internal entry points to it, shared by the API (dax_map.cc),
// the session's reader (session.cc) and the preload library (preload.cc).
//
// The region: [base, base + region_length) maps the file's bytes
// [lease_offset, lease_offset + region_length), the lease's whole range.
// Each extent is placed in it with MAP_FIXED from the pool (MAP_SYNC when
// the kernel allows, `sync`); holes of a read lease are private read-only
// zero pages. The region is MADV_DONTFORK.
#pragma once

#include <daxref/dax.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "base/mutex.h"
#include "base/unique_fd.h"

namespace daxref::dax {
class Session;
}

struct daxref_dax_map {
  std::shared_ptr<daxref::dax::Session> session;
  uint64_t lease = 0;
  char* base = nullptr;  // the byte at file offset lease_offset
  size_t region_length = 0;
  uint64_t lease_offset = 0;
  uint64_t offset = 0;  // what the program asked for
  size_t length = 0;
  int prot = 0;
  bool write = false;
  bool sync = false;  // every extent placed with MAP_SYNC
  // The pool lives on tmpfs or ramfs: memory with no copy behind it to
  // write back to, where msync does nothing. Persisting is then a fence.
  bool memory_only = false;
  // Preload mappings: the descriptor whose ordinary (FUSE) mapping replaces
  // the leased one on revocation (-1: an inaccessible mapping instead).
  daxref::UniqueFd fallback;

  std::atomic<bool> revoked{false};
  daxref::Mutex cb_mu;
  daxref_dax_revoke_fn on_revoke GUARDED_BY(cb_mu) = nullptr;
  void* revoke_arg GUARDED_BY(cb_mu) = nullptr;
  daxref_dax_poison_fn on_poison GUARDED_BY(cb_mu) = nullptr;
  void* poison_arg GUARDED_BY(cb_mu) = nullptr;
};

// The struct's name is hidden by the function daxref_dax_map in C++.
using DaxMap = struct daxref_dax_map;

namespace daxref::dax {

// Leases [offset, offset + length) of the file open on fd (rounded out to
// blocks) and maps it with protection `prot`. into == null: in a fresh
// region. Otherwise `into` is an existing mapping of the file at the lease's
// offset, exactly the lease's length (a preload mapping): the extents are
// placed over it, and on any failure the ordinary mapping of `fallback` is
// put back (the caller's mapping is never left half replaced). Null with
// errno (the errors of daxref_dax_map).
DaxMap* MapLease(int fd, uint64_t offset, uint64_t length, bool write, int prot, void* into,
                 UniqueFd fallback);

// Replaces m's whole region in one mmap: by the ordinary mapping of
// m->fallback at the lease's offset when there is one and that works, else
// by an inaccessible one. Called with the session's lock held (the region
// is not detached meanwhile).
void RestoreMapping(DaxMap* m);

enum class EndHow { kUnmap, kRestore };
// Ends m: detaches it from the session, unmaps its region (kUnmap) or
// replaces it by the ordinary mapping of m->fallback (kRestore, RestoreMapping),
// releases a live lease, and frees m. -1 with errno when the release failed
// (m is freed anyway) or on the reader thread (EDEADLK, nothing done).
int EndLease(DaxMap* m, EndHow how);

}  // namespace daxref::dax
