// PoolMapping: the pool file, locked for this daemon and mapped with
// libpmem2. It is the daemon's DataPlane: file bytes are stored with
// libpmem2's memcpy/memset (which persist before returning) and read straight
// out of the mapping.
//
// The pool file is held with flock(LOCK_EX) for the mapping's whole life, so
// two daemons never serve one pool, and a daemon that is still exiting after
// umount is waited for instead of raced.
#pragma once

#include <libpmem2.h>

#include <cstdint>
#include <memory>
#include <string>

#include "meta/data_plane.h"
#include "meta/status.h"
#include "meta/superblock.h"

namespace daxref {

class PoolMapping : public DataPlane {
 public:
  // Opens, locks and maps the pool at `path`, checking its superblock.
  // Waits up to `lock_wait_ms` for a previous holder of the lock to let go.
  static Result<std::unique_ptr<PoolMapping>> Open(const std::string& path, int lock_wait_ms);
  ~PoolMapping() override;
  PoolMapping(const PoolMapping&) = delete;
  PoolMapping& operator=(const PoolMapping&) = delete;

  void Write(uint64_t pool_off, const void* src, size_t len) override;
  void Load(uint64_t pool_off, void* dst, size_t len) override;
  void Copy(uint64_t dst_pool_off, uint64_t src_pool_off, size_t len) override;
  void Zero(uint64_t pool_off, size_t len) override;
  void Persist(uint64_t pool_off, size_t len) override;
  void WillWrite(uint64_t pool_off, size_t len) override;
  // Makes every store to the mapping durable (a no-op where each store
  // already was).
  void PersistAll();

  const char* base() const { return base_; }
  uint64_t size() const { return size_; }
  const Superblock& superblock() const { return sb_; }
  bool used_backup_superblock() const { return used_backup_; }
  // "byte" on real persistent memory, "cache line", or "page" (msync).
  const char* granularity() const;

 private:
  PoolMapping() = default;
  int fd_ = -1;
  pmem2_config* cfg_ = nullptr;
  pmem2_source* src_ = nullptr;
  pmem2_map* map_ = nullptr;
  char* base_ = nullptr;
  uint64_t size_ = 0;
  pmem2_memcpy_fn memcpy_ = nullptr;
  pmem2_memset_fn memset_ = nullptr;
  pmem2_persist_fn persist_ = nullptr;
  // On a page-granular pool (tmpfs, an ordinary file) "persist" is msync:
  // stores skip it and fsync persists the whole mapping instead. A shared
  // mapping's stores survive the daemon's death either way; only power loss
  // needs the msync, and fsync is where applications ask for that.
  unsigned store_flags_ = 0;
  bool page_granular_ = true;
  Superblock sb_;
  bool used_backup_ = false;
};

}  // namespace daxref
