// PoolMapping: the pool file, locked for this daemon and mapped with
// libpmem2. It is the daemon's DataPlane: file bytes are stored with
// libpmem2's memcpy/memset (which persist before returning) and read straight
// out of the mapping.
//
// The pool file is held with flock(LOCK_EX) for the mapping's whole life, so
// two daemons never serve one pool, and a daemon that is still exiting after
// umount is waited for instead of raced.
//
// Faults. Every touch of the mapping (Write, Load, Copy, Zero,
// CheckReadable) runs under the SIGBUS guard (pool/mapping_guard.h), so a
// fault makes that call fail instead of killing the daemon. What the fault
// means decides what happens next, and only a machine check is poison:
//
//   si_code                  cause                      result
//   BUS_MCEERR_AR            poisoned memory            EIO; the pool offset goes
//                                                       to the fault sink (poison)
//   BUS_ADRERR, BUS_OBJERR   the host filesystem could  fallocate(2) of that page
//                            not provide the page: a    tells which: ENOSPC ->
//                            full tmpfs or disk under   ENOSPC; it worked (space
//                            a sparse pool, a pool cut  came back) -> the access is
//                            short, a failed read of    retried once; past the
//                            the backing file           file's end or any other
//                                                       error -> EIO
//
// Host faults never reach the fault sink (a full disk must not turn good
// blocks into permanent poison); each is described, one line, to the host
// fault log. BUS_MCEERR_AO (poison nobody touched yet) is not an access
// fault: the daemon collects it separately (pool/async_faults.h) and uses
// PoolOffsetOf to place it.
//
// Persist and PersistAll do not touch the bytes and are not guarded. On a
// page-granular pool they are msync(MS_SYNC) done here, whose failure (the
// host filesystem could not write the pages back) is returned as a Status:
// libpmem2's own persist would abort() the process on that failure. Where
// stores are persistent as they land (byte or cache-line granularity,
// libpmem2's memcpy flushes), there is nothing left to do and nothing can
// fail.
//
// Thread safety: after Open, every method may be called from any number of
// threads at once (the caller keeps concurrent writers off each other's
// bytes); set_fault_sink too.
#pragma once

#include <libpmem2.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/mutex.h"
#include "base/thread_annotations.h"
#include "meta/data_plane.h"
#include "meta/status.h"
#include "meta/superblock.h"
#include "pool/mapping_guard.h"

namespace daxref {

class PoolMapping : public DataPlane {
 public:
  // Opens, locks and maps the pool at `path`, checking its superblock.
  // Waits up to `lock_wait_ms` for a previous holder of the lock to let go.
  // `read_only` (a `-o ro` mount): the file is opened O_RDONLY and mapped
  // for reading only, so a pool on read-only media can be served; every
  // store (Write, Copy, Zero) then fails with EROFS before it touches the
  // mapping, and Persist has nothing to do. The flock is taken all the same
  // (it needs no write access), so a read-write daemon cannot serve the
  // pool at the same time.
  static Result<std::unique_ptr<PoolMapping>> Open(const std::string& path, int lock_wait_ms,
                                                   bool read_only = false);
  ~PoolMapping() override;
  PoolMapping(const PoolMapping&) = delete;
  PoolMapping& operator=(const PoolMapping&) = delete;

  // Ok; or EIO "pool memory fault at byte N" (and the sink told N) when the
  // memory faulted; or ENOSPC / EIO when the host filesystem could not
  // provide a page (above). See DataPlane for what moved. A range that is
  // not inside the pool is refused (EIO, nothing touched): the metadata that
  // produced it is damaged.
  Status Write(uint64_t pool_off, const void* src, size_t len) override;
  Status Load(uint64_t pool_off, void* dst, size_t len) override;
  Status Copy(uint64_t dst_pool_off, uint64_t src_pool_off, size_t len) override;
  Status Zero(uint64_t pool_off, size_t len) override;
  // msync's errno (EIO, ENOSPC, ...) as a Status on a page-granular pool.
  Status Persist(uint64_t pool_off, size_t len) override;
  void WillWrite(uint64_t pool_off, size_t len) override;
  // Makes every store to the mapping durable (a no-op where each store
  // already was); as Persist for the whole pool.
  Status PersistAll();

  // Where machine checks are reported (poison): called with the pool byte
  // offset of each BUS_MCEERR_AR fault inside the mapping, on the thread
  // that met it, after it has recovered (outside the guard, no lock held),
  // before the failing call returns. Several threads may call it at once.
  // Host faults go to the host fault log instead, never here; faults
  // outside the mapping (a bad caller buffer) fail the call and go nowhere.
  using FaultSink = std::function<void(uint64_t pool_off)>;
  void set_fault_sink(FaultSink sink);
  // Where host faults (ENOSPC / EIO above) are described: one line per
  // fault, saying what happened and what the access does about it. Called
  // as the fault sink is. Unset, host faults are only returned.
  using HostFaultLog = std::function<void(const std::string& line)>;
  void set_host_fault_log(HostFaultLog log);

  // The pool byte offset of an address inside the mapping (a BUS_MCEERR_AO
  // si_addr); false if it is not in the mapping.
  bool PoolOffsetOf(const void* addr, uint64_t* pool_off) const;

  // Touches one byte of each page of [pool_off, pool_off+len) under the
  // guard. Ok, or the fault's Status (above) with *bad_off the first pool
  // offset that faulted; EINVAL if the range is not inside the pool. For the
  // read path, whose replies point into the mapping: when the kernel's copy
  // out of it fails (EFAULT), this finds the bad block. It finds pages that
  // are gone (truncated) or that the kernel has marked poisoned; a poisoned
  // cache line that nothing has consumed yet is found only if it holds the
  // byte touched.
  Status CheckReadable(uint64_t pool_off, size_t len, uint64_t* bad_off);

  // The device's known bad blocks under the pool (libpmem2's badblock API,
  // from the platform's address range scrub), as pool byte ranges clipped
  // to the mapping: fn(pool_off, len) returns false to stop. A pool on
  // memory without bad-block reporting (tmpfs, a file on a disk) has none:
  // Ok, fn never called. An error only when the query itself failed.
  using BadBlockFn = std::function<bool(uint64_t pool_off, uint64_t len)>;
  Status WalkBadBlocks(const BadBlockFn& fn);

  // Is [pool_off, pool_off+len) inside the mapping (without overflow)?
  bool Contains(uint64_t pool_off, uint64_t len) const {
    return pool_off <= size_ && len <= size_ - pool_off;
  }

  const char* base() const { return base_; }
  uint64_t size() const { return size_; }
  const Superblock& superblock() const { return sb_; }
  bool used_backup_superblock() const { return used_backup_; }
  bool read_only() const { return read_only_; }
  // "byte" on real persistent memory, "cache line", or "page" (msync).
  const char* granularity() const;

 private:
  PoolMapping() = default;
  // Runs the access `fn` under the guard, and what a fault means (above).
  template <typename Fn>
  Status Access(Fn&& fn, const char* what, uint64_t* fault_off = nullptr);
  // The Status for a guarded access that faulted; *retry when the access
  // should run again (only if `may_retry`).
  Status Fault(const GuardFault& f, const char* what, bool may_retry, bool* retry);
  // A page of the pool file that the host filesystem did not provide.
  Status HostFault(uint64_t off, const char* what, bool may_retry, bool* retry);
  Status Msync(uint64_t pool_off, size_t len);
  // EIO naming the access unless [pool_off, pool_off+len) is inside the pool.
  Status CheckRange(uint64_t pool_off, uint64_t len, const char* what) const;
  // EROFS naming the access on a read-only mapping.
  Status CheckWritable(const char* what) const;
  int fd_ = -1;
  pmem2_config* cfg_ = nullptr;
  pmem2_source* src_ = nullptr;
  pmem2_map* map_ = nullptr;
  char* base_ = nullptr;
  uint64_t size_ = 0;
  pmem2_memcpy_fn memcpy_ = nullptr;
  pmem2_memset_fn memset_ = nullptr;
  // On a page-granular pool (tmpfs, an ordinary file) "persist" is msync:
  // stores skip it and fsync persists the whole mapping instead. A shared
  // mapping's stores survive the daemon's death either way; only power loss
  // needs the msync, and fsync is where applications ask for that.
  unsigned store_flags_ = 0;
  bool page_granular_ = true;
  bool read_only_ = false;
  Superblock sb_;
  bool used_backup_ = false;
  // Read only on the fault path, so a lock costs nothing that matters; the
  // sink is called on a copy of the pointer, outside the lock (a leaf:
  // nothing is taken while it is held).
  Mutex sink_mu_;
  std::shared_ptr<const FaultSink> sink_ GUARDED_BY(sink_mu_);
  std::shared_ptr<const HostFaultLog> host_log_ GUARDED_BY(sink_mu_);
  size_t page_size_ = 4096;
};

}  // namespace daxref
