// Filesystem: turns FUSE lowlevel requests into Volume calls and replies.
//
// Every handler replies exactly once. Helpers return a Status; the handler
// turns a failure into fuse_reply_err(errno). The kernel does permission
// checks itself (the daemon always mounts with default_permissions), so
// handlers only enforce what the kernel cannot see.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>

#include "base/mutex.h"
#include "base/thread_annotations.h"
#include "fs/handle_table.h"
#include "fs/inode_table.h"
#include "fs/lease_table.h"
#include "fs/modify_gate.h"
#include "fs/worker_thread.h"
#include "meta/atime_policy.h"
#include "meta/volume.h"
#include "pool/pool.h"

namespace daxref {

// The errno a request fails with for the failed status `s`: its own, except
// EIO for one without an errno and for metadata corruption (EUCLEAN: a record
// failed its checks where it was decoded), which no caller of the kernel
// expects; fsck.daxref is what repairs the store.
int KernelErrno(const Status& s);
// Who sent the request (uid and gid), for the Volume's privilege rules.
Caller CallerOf(fuse_req_t req);

// How long the kernel may trust what it was told. Every change to this
// filesystem passes through this kernel mount and this daemon, and the kernel
// updates or drops what it caches for the changes it makes, so the only
// limit is what the daemon changes behind its back, which it must announce
// (notify_inval_*) rather than wait out a timeout.
struct FilesystemOptions {
  double attr_timeout = 60.0;
  double entry_timeout = 60.0;
  AtimePolicy atime;  // docs/design.md, "Access times"
};

class Filesystem {
 public:
  Filesystem(PoolMapping* pool, Volume* volume, const FilesystemOptions& opts)
      : pool_(pool), volume_(volume), opts_(opts), generation_(GenerationOf(pool)) {}

  // The FUSE generation of every inode but the root: 32 bits of the
  // filesystem's uuid (never 0). Inode numbers are never reused within a
  // filesystem, so one generation for all of them is enough; taking it from
  // the uuid makes a file handle from another filesystem (an earlier
  // mkfs.daxref of the same SOURCE) ESTALE instead of naming whatever now
  // has its inode number (docs/design.md, "NFS export").
  static uint32_t GenerationOf(const PoolMapping* pool);

  // The operation table for fuse_session_new; userdata must be this.
  static const fuse_lowlevel_ops& Ops();

  PoolMapping* pool() { return pool_; }
  Volume* volume() { return volume_; }
  InodeTable& inodes() { return inodes_; }
  HandleTable& handles() { return handles_; }
  // The session, for notifications to the kernel; set once it exists.
  void set_session(fuse_session* se) { session_ = se; }
  // Tells the kernel to drop what it caches of ino: attributes, and pages
  // from byte off on (len 0: to the end). For changes the kernel did not
  // make itself. Call with no daemon lock held (see the brief's rules).
  void InvalidateCache(uint64_t ino, uint64_t off, uint64_t len);
  // Drops only the kernel's cached attributes of ino. Takes no page lock,
  // so it is safe from any handler.
  void InvalidateAttributes(uint64_t ino);
  WorkerThread& clone_worker() { return clone_worker_; }
  // Carries out poison the daemon met itself (a machine check while it
  // touched the mapping): like clones, away from the request threads.
  WorkerThread& poison_worker() { return poison_worker_; }
  // Finishes queued jobs; call before the session is destroyed.
  void StopWorkers() {
    clone_worker_.Stop();
    poison_worker_.Stop();
  }

  // ---- layout leases (docs/dax.md) ----
  // The live leases, and where their socket is; set before the mount serves
  // (none: no lease can exist, every hook is a no-op).
  void set_leases(LeaseTable* table, std::string socket_path) {
    leases_ = table;
    dax_socket_ = std::move(socket_path);
  }
  LeaseTable* leases() { return leases_; }
  const std::string& dax_socket() const { return dax_socket_; }
  // Revokes the leases of ino that would be made to lie by a change of
  // file bytes [off, off+len) (docs/dax.md, "Revocation"). The caller holds
  // ino's io exclusive and nothing else; on failure (EBUSY) it must not go
  // on with the change.
  Status RevokeLeases(uint64_t ino, uint64_t off, uint64_t len, LeaseWhich which,
                      const char* reason) {
    if (!leases_ || leases_->empty()) return Status::Ok();
    return leases_->Revoke(ino, off, len, which, reason);
  }

  // The same for a fallocate of `mode` (docs/dax.md's table): punch, zero,
  // unshare revoke what overlaps; collapse and insert from off to the end;
  // an allocation only read leases (their holes may get blocks).
  Status RevokeForFallocate(uint64_t ino, int mode, uint64_t off, uint64_t len);
  // Would Volume::Write store [off, off+len) of ino in place (every block
  // mapped, inside the size, not shared, not bad)? Asked only while ino may
  // have leases; the caller holds ino's io exclusive, which keeps it true.
  bool OverwritesInPlace(uint64_t ino, uint64_t off, uint64_t len);

  // ---- shutdown, freeze, and the mount itself (docs/poison.md) ----
  // After Shutdown every request but forget, flush and release fails with
  // EIO, as on XFS after a forced shutdown; the reason is logged once.
  void Shutdown(const std::string& reason);
  bool shut_down() const { return shut_down_.load(std::memory_order_acquire); }
  std::string shutdown_reason();
  ModifyGate& modify_gate() { return gate_; }
  // Where the kernel mounted us, and the mount's device number (what
  // /proc/PID/fd and /proc/PID/maps show for our files); set once mounted.
  void set_mount(const std::string& mountpoint, dev_t dev) {
    mountpoint_ = mountpoint;
    dev_ = dev;
  }
  const std::string& mountpoint() const { return mountpoint_; }
  dev_t dev() const { return dev_; }
  // Ends the mount for pre-remove: detaches it and aborts the kernel
  // connection, so that the session loop ends even while processes still
  // hold files (a lazy unmount alone would wait for the last of them).
  void Detach();
  const FilesystemOptions& options() const { return opts_; }
  // The atime policy in force: the mount's, read-only while the mount is
  // (remount included).
  AtimePolicy atime() const {
    AtimePolicy p = opts_.atime;
    p.read_only |= volume_->read_only();
    return p;
  }

  // Fills `st` from an inode record.
  static void ToStat(const InodeRecord& r, struct stat* st);
  void ToEntry(const InodeRecord& r, fuse_entry_param* e) const;
  // For Volume::Unlink/Rename: may an inode that lost its last name be
  // deleted at once? (No if it is open: the last release reclaims it.)
  Volume::LastLinkFn LastLinkCheck();
  void ReclaimNow(uint64_t ino);

 private:
  PoolMapping* pool_;
  Volume* volume_;
  FilesystemOptions opts_;
  uint32_t generation_;
  InodeTable inodes_;
  HandleTable handles_;
  fuse_session* session_ = nullptr;
  LeaseTable* leases_ = nullptr;
  std::string dax_socket_;
  std::atomic<bool> shut_down_{false};
  Mutex shutdown_mu_;  // a leaf: nothing is taken while it is held
  std::string shutdown_reason_ GUARDED_BY(shutdown_mu_);
  ModifyGate gate_;
  std::string mountpoint_;
  dev_t dev_ = 0;
  WorkerThread clone_worker_;
  WorkerThread poison_worker_;
};

}  // namespace daxref
