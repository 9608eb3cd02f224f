// The pool file as fsck.daxref holds it: locked, and read and written with
// pread/pwrite (no mapping: fsck touches a handful of blocks, and a read of
// poisoned memory then fails with EIO instead of raising SIGBUS).
//
// The lock is the daemon's: flock on SOURCE/pool, which a daemon holds
// exclusive for its whole life. fsck takes it shared to check (other checks
// may run alongside; no daemon may start) and exclusive to repair, never
// waiting: a SOURCE in use is refused at once.
#pragma once

#include <string>

#include "base/unique_fd.h"
#include "meta/data_plane.h"
#include "meta/status.h"

namespace daxref::fsck {

class PoolFile : public DataPlane {
 public:
  // EBUSY when someone else holds the lock.
  static Result<PoolFile> Open(const std::string& path, bool writable);
  PoolFile(PoolFile&&) = default;
  PoolFile& operator=(PoolFile&&) = default;

  int fd() const { return fd_.get(); }
  // Makes every write so far durable.
  Status Sync();

  Status Write(uint64_t pool_off, const void* src, size_t len) override;
  Status Load(uint64_t pool_off, void* dst, size_t len) override;
  Status Copy(uint64_t dst_pool_off, uint64_t src_pool_off, size_t len) override;
  Status Zero(uint64_t pool_off, size_t len) override;
  // fdatasync of the pool file; its errno as a Status.
  Status Persist(uint64_t pool_off, size_t len) override;

 private:
  PoolFile(UniqueFd fd, bool writable) : fd_(std::move(fd)), writable_(writable) {}
  UniqueFd fd_;
  bool writable_ = false;
  bool dirty_ = false;
};

// Is the RocksDB store in `meta_dir` locked by a process (its LOCK file
// write-locked)? Only tested, never taken: nothing is written.
bool StoreLocked(const std::string& meta_dir);

}  // namespace daxref::fsck
