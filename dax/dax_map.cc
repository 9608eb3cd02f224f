// <daxref/dax.h>: the lease, the placement of its extents in one region,
// persist, publish and unmap (docs/dax.md, "The client library").
#include "dax/dax_map.h"

#include <daxref/ioctl.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "dax/raw_mmap.h"
#include "dax/session.h"

#define DAXREF_EXPORT __attribute__((visibility("default")))

namespace daxref::dax {
namespace {

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

constexpr uint64_t kBlock = 4096;

std::string TokenHex(const daxref_token& t) {
  char buf[33];
  snprintf(buf, sizeof(buf), "%016" PRIx64 "%016" PRIx64, static_cast<uint64_t>(t.value[0]),
           static_cast<uint64_t>(t.value[1]));
  return buf;
}

struct Piece {
  uint64_t logical, physical, length;
  bool hole;
};

// The extents of a grant, checked: whole blocks, in order, covering the
// lease's range exactly. False (EPROTO) otherwise.
bool PiecesOf(const std::vector<control::Record>& records, uint64_t lease, uint64_t offset,
              uint64_t length, std::vector<Piece>* out) {
  uint64_t at = offset;
  for (const control::Record& r : records) {
    if (r.kind != "extent") continue;
    Piece p{};
    uint64_t l = 0;
    const std::string* hole = r.Get("hole");
    p.hole = hole != nullptr && *hole == "1";
    if (!r.GetU64("lease", &l) || l != lease || !r.GetU64("logical", &p.logical) ||
        !r.GetU64("length", &p.length) || (!p.hole && !r.GetU64("physical", &p.physical)) ||
        p.logical != at || p.length == 0 || p.length % kBlock != 0 ||
        (!p.hole && p.physical % kBlock != 0) || p.length > offset + length - at)
      return false;
    at += p.length;
    out->push_back(p);
  }
  return at == offset + length;
}

// Places the pieces in [base, base + length) (base: file offset `offset`).
// False with errno; what was placed stays (the caller replaces the region).
bool Place(char* base, uint64_t offset, const std::vector<Piece>& pieces, int prot, int pool,
           bool* sync) {
  *sync = true;
  for (const Piece& p : pieces) {
    char* at = base + (p.logical - offset);
    void* r;
    if (p.hole) {
      r = RawMmap(at, p.length, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    } else {
      r = RawMmap(at, p.length, prot, MAP_FIXED | MAP_SHARED_VALIDATE | MAP_SYNC, pool, p.physical);
      if (r == MAP_FAILED && (errno == EOPNOTSUPP || errno == EINVAL)) {
        *sync = false;
        r = RawMmap(at, p.length, prot, MAP_FIXED | MAP_SHARED, pool, p.physical);
      }
    }
    if (r == MAP_FAILED) return false;
  }
  return true;
}

}  // namespace

void RestoreMapping(DaxMap* m) {
  if (m->fallback.valid() && RawMmap(m->base, m->region_length, m->prot, MAP_FIXED | MAP_SHARED,
                                     m->fallback.get(), m->lease_offset) != MAP_FAILED)
    return;
  MakeInaccessible(m->base, m->region_length);
}

DaxMap* MapLease(int fd, uint64_t offset, uint64_t length, bool write, int prot, void* into,
                 UniqueFd fallback) {
  struct stat st;
  if (fstat(fd, &st) != 0) return nullptr;
  if (!S_ISREG(st.st_mode) || length == 0 || offset > UINT64_MAX - length) {
    errno = EINVAL;
    return nullptr;
  }
  const long page = sysconf(_SC_PAGESIZE);
  const uint64_t lease_offset = offset / kBlock * kBlock;
  const uint64_t end = offset + length;
  if (end > UINT64_MAX - kBlock || page <= 0 || kBlock % page != 0) {
    errno = EINVAL;
    return nullptr;
  }
  const uint64_t lease_length = (end + kBlock - 1) / kBlock * kBlock - lease_offset;
  if (lease_length > SIZE_MAX) {
    errno = ENOMEM;
    return nullptr;
  }

  std::shared_ptr<Session> session = Session::Of(fd, st);
  if (session == nullptr) return nullptr;
  daxref_token token{};
  if (ioctl(fd, DAXREF_IOC_TOKEN, &token) != 0) return nullptr;

  control::Record req("lease");
  req.Add("token", TokenHex(token))
      .Add("offset", lease_offset)
      .Add("length", lease_length)
      .Add("mode", write ? "write" : "read");
  Session::Reply reply = session->Call(std::move(req));
  if (reply.err != 0) {
    // A grant the daemon went back on (or a session that ended) after
    // `granted`: the lease is given back, and a revocation of it held
    // back for Attach is acknowledged.
    uint64_t granted_lease = 0;
    if (!reply.records.empty() && reply.records.front().kind == "granted" &&
        reply.records.front().GetU64("lease", &granted_lease))
      session->Abandon(granted_lease);
    errno = reply.err;
    return nullptr;
  }
  uint64_t lease = 0, got_offset = 0, got_length = 0;
  const control::Record& granted = reply.records.front();
  std::vector<Piece> pieces;
  if (granted.kind != "granted" || !granted.GetU64("lease", &lease) ||
      !granted.GetU64("offset", &got_offset) || !granted.GetU64("length", &got_length) ||
      got_offset != lease_offset || got_length != lease_length || !reply.passed.valid() ||
      !PiecesOf(reply.records, lease, lease_offset, lease_length, &pieces) ||
      // A write lease has every block allocated (docs/dax.md): a hole in
      // its reply is a daemon that does not keep the protocol.
      (write && std::any_of(pieces.begin(), pieces.end(), [](const Piece& p) { return p.hole; }))) {
    if (granted.kind == "granted" && lease != 0) session->Abandon(lease);
    errno = EPROTO;
    return nullptr;
  }

  auto* m = new (std::nothrow) DaxMap;
  char* base = static_cast<char*>(into);
  if (m != nullptr && base == nullptr) {
    void* r = RawMmap(nullptr, lease_length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
    base = r == MAP_FAILED ? nullptr : static_cast<char*>(r);
  }
  if (m == nullptr || base == nullptr) {
    delete m;
    session->Abandon(lease);
    errno = ENOMEM;
    return nullptr;
  }
  m->session = session;
  m->lease = lease;
  m->base = base;
  m->region_length = lease_length;
  m->lease_offset = lease_offset;
  m->offset = offset;
  m->length = length;
  m->prot = prot;
  m->write = write;
  m->fallback = std::move(fallback);

  bool sync = false;
  if (!Place(base, lease_offset, pieces, prot, reply.passed.get(), &sync) ||
      madvise(base, lease_length, MADV_DONTFORK) != 0) {
    const int e = errno;
    if (into != nullptr)
      RestoreMapping(m);
    else
      RawMunmap(base, lease_length);
    session->Abandon(lease);
    delete m;
    errno = e == EAGAIN ? ENOMEM : e;
    return nullptr;
  }
  m->sync = sync;
  struct statfs pool_fs;
  m->memory_only = !sync && fstatfs(reply.passed.get(), &pool_fs) == 0 &&
                   (pool_fs.f_type == TMPFS_MAGIC || pool_fs.f_type == RAMFS_MAGIC);
  // The persist function is probed while the pool's descriptor is at hand;
  // then the descriptor goes (the mappings keep the pool open).
  if (sync && write) session->Persister(reply.passed.get());
  reply.passed.Reset();
  session->Attach(m);
  return m;
}

int EndLease(DaxMap* m, EndHow how) {
  if (m->session->OnReader()) {
    errno = EDEADLK;
    return -1;
  }
  if (!m->session->Detach(m, how)) {
    delete m;
    return 0;
  }
  Session::Reply r = m->session->Call(control::Record("release").Add("lease", m->lease));
  delete m;
  // The daemon forgot a lease it revoked or lost with the session: done.
  if (r.err != 0 && r.err != ECONNRESET && r.err != ENOENT) {
    errno = r.err;
    return -1;
  }
  return 0;
}

}  // namespace daxref::dax

using daxref::dax::Session;

extern "C" DAXREF_EXPORT DaxMap* daxref_dax_map(int fd, uint64_t offset, uint64_t length, int flags,
                                                void** addr) {
  if ((flags != DAXREF_DAX_READ && flags != DAXREF_DAX_WRITE) || addr == nullptr) {
    errno = EINVAL;
    return nullptr;
  }
  const bool write = flags == DAXREF_DAX_WRITE;
  DaxMap* m =
      daxref::dax::MapLease(fd, offset, length, write, write ? PROT_READ | PROT_WRITE : PROT_READ,
                            nullptr, daxref::UniqueFd());
  if (m != nullptr) *addr = m->base + (offset - m->lease_offset);
  return m;
}

extern "C" DAXREF_EXPORT int daxref_dax_persist(DaxMap* m, const void* addr, size_t length) {
  const char* p = static_cast<const char*>(addr);
  if (m == nullptr || p < m->base || length > m->region_length ||
      p + length > m->base + m->region_length) {
    errno = EINVAL;
    return -1;
  }
  if (length == 0 || !m->write) return 0;
  if (m->revoked.load(std::memory_order_acquire)) {
    errno = ENOLINK;
    return -1;
  }
  if (m->sync) {
    if (daxref::dax::PersistFn fn = m->session->Persister(-1); fn != nullptr) {
      fn(addr, length);
      return 0;
    }
  }
  if (m->memory_only) {
    // The stores are in the page cache pages that are the pool's only copy;
    // a fence orders them before whatever the caller does next.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return 0;
  }
  // msync wants a page-aligned start (the region is page-aligned).
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t start = reinterpret_cast<uintptr_t>(p) / page * page;
  const uintptr_t end = reinterpret_cast<uintptr_t>(p + length);
  if (msync(reinterpret_cast<void*>(start), end - start, MS_SYNC) != 0) {
    // A revocation in between left an anonymous mapping: nothing to persist.
    if (errno == ENOMEM && m->revoked.load(std::memory_order_acquire)) errno = ENOLINK;
    return -1;
  }
  return 0;
}

extern "C" DAXREF_EXPORT int daxref_dax_publish(DaxMap* m, uint64_t offset, uint64_t length) {
  if (m == nullptr || offset < m->lease_offset || length > m->region_length ||
      offset + length > m->lease_offset + m->region_length) {
    errno = EINVAL;
    return -1;
  }
  if (length == 0) return 0;
  if (daxref_dax_persist(m, m->base + (offset - m->lease_offset), length) != 0) return -1;
  if (m->revoked.load(std::memory_order_acquire)) {
    errno = ENOLINK;
    return -1;
  }
  // The daemon drops whole blocks (the lease's range is whole blocks).
  const uint64_t lo = offset / 4096 * 4096;
  const uint64_t hi = (offset + length + 4095) / 4096 * 4096;
  Session::Reply r = m->session->Call(daxref::control::Record("publish")
                                          .Add("lease", m->lease)
                                          .Add("offset", lo)
                                          .Add("length", hi - lo));
  if (r.err != 0) {
    errno = r.err == ECONNRESET ? ENOLINK : r.err;
    return -1;
  }
  return 0;
}

extern "C" DAXREF_EXPORT int daxref_dax_unmap(DaxMap* m) {
  if (m == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return daxref::dax::EndLease(m, daxref::dax::EndHow::kUnmap);
}

extern "C" DAXREF_EXPORT void* daxref_dax_addr(const DaxMap* m) {
  return m->base + (m->offset - m->lease_offset);
}

extern "C" DAXREF_EXPORT size_t daxref_dax_length(const DaxMap* m) {
  return m->length;
}

extern "C" DAXREF_EXPORT int daxref_dax_map_sync(const DaxMap* m) {
  return m->sync;
}

extern "C" DAXREF_EXPORT int daxref_dax_revoked(const DaxMap* m) {
  return m->revoked.load(std::memory_order_acquire) ? 1 : 0;
}

extern "C" DAXREF_EXPORT int daxref_dax_on_revoke(DaxMap* m, daxref_dax_revoke_fn fn, void* arg) {
  if (m == nullptr) {
    errno = EINVAL;
    return -1;
  }
  daxref::MutexLock l(&m->cb_mu);
  m->on_revoke = fn;
  m->revoke_arg = arg;
  return 0;
}

extern "C" DAXREF_EXPORT int daxref_dax_on_poison(DaxMap* m, daxref_dax_poison_fn fn, void* arg) {
  if (m == nullptr) {
    errno = EINVAL;
    return -1;
  }
  daxref::MutexLock l(&m->cb_mu);
  m->on_poison = fn;
  m->poison_arg = arg;
  return 0;
}
