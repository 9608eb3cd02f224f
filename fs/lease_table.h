// LeaseTable: the live layout leases of a mount (docs/dax.md) and their
// revocation.
//
// A lease is held by a session (one connection to SOURCE/dax, one process)
// on a block range of one inode. The table is what the operations that
// would make a lease lie ask before they change anything: each calls
// Revoke once, holding the inode's io exclusive (which keeps new grants of
// that inode out), before its Volume call. Revoke holds nothing else while
// it waits: not Volume::mu_, not PoisonService::mu_, and not the table's own
// mutex (it waits on its condition variable). The holder's acknowledgement
// comes through the lease server's poll thread, which takes only the
// table's mutex (a leaf), so a revoker never waits on something that waits
// on it.
//
// The hot paths pay one atomic load while no lease exists anywhere
// (empty()); with leases, a lookup under the table's mutex.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "admin/control_protocol.h"
#include "base/mutex.h"
#include "base/thread_annotations.h"
#include "base/unique_fd.h"
#include "meta/lease_record.h"
#include "meta/status.h"
#include "meta/volume.h"

namespace daxref {

// One connection to the lease socket: one holder process. Created by the
// lease server's poll thread on accept; the table keeps it alive while it
// holds leases.
struct LeaseSession {
  UniqueFd sock;   // SOCK_SEQPACKET, blocking, with a send timeout
  UniqueFd pidfd;  // the peer process (SO_PEERPIDFD, or pidfd_open)
  pid_t pid = 0;
  uid_t uid = 0;
  uint64_t start_time = 0;  // field 22 of /proc/PID/stat

  // Sends one record (with descriptor `pass` when >= 0). False once the
  // peer is gone or has stopped reading (the send timeout).
  bool Send(const control::Record& r, int pass = -1) EXCLUDES(send_mu);
  // Runs fn holding the send lock, so that a reply of several packets
  // (granted, extents, end) is never split by a revoke or poison.
  template <typename Fn>
  bool SendAll(Fn&& fn) EXCLUDES(send_mu) {
    MutexLock g(&send_mu);
    return fn(sock.get());
  }

  // Sends SIGKILL through the pidfd. False (errno) if it could not be sent;
  // ESRCH means it is gone already.
  bool Kill();
  // Waits up to `limit` for the process to be gone (the pidfd readable).
  bool AwaitExit(std::chrono::milliseconds limit);

  // Held across the sends of one message; the table's mutex is taken under
  // it (a grant adds its lease while its reply goes out), never the reverse.
  Mutex send_mu;
};

// Which leases of a range an operation revokes (docs/dax.md, "Revocation").
enum class LeaseWhich { kAll, kWrite, kRead };

class LeaseTable {
 public:
  struct Lease {
    uint64_t id = 0;
    uint64_t ino = 0;
    uint64_t off = 0;  // bytes, block-aligned
    uint64_t len = 0;
    LeaseMode mode = LeaseMode::kRead;
    std::shared_ptr<LeaseSession> session;
  };

  LeaseTable(Volume* volume, std::chrono::milliseconds revoke_timeout)
      : volume_(volume), revoke_timeout_(revoke_timeout) {}

  // No lease anywhere: what every hook asks first (one atomic load).
  bool empty() const { return live_.load(std::memory_order_acquire) == 0; }
  std::chrono::milliseconds revoke_timeout() const { return revoke_timeout_; }

  // A granted lease (its G record is committed). The caller holds the
  // inode's io exclusive, and the session's send lock while it sends the
  // reply.
  void Add(const Lease& l) EXCLUDES(mu_);
  // Does ino have a lease (any state)?
  bool HasLeases(uint64_t ino) EXCLUDES(mu_);
  // Does ino have a write lease? (Opens are served uncached then.)
  bool HasWriteLease(uint64_t ino) EXCLUDES(mu_);

  // Revokes the leases of ino that `which` selects and that overlap file
  // bytes [off, off+len) (len UINT64_MAX - off or more: to the end), as
  // docs/dax.md "Revocation" says: revoke, wait up to the timeout for the
  // acknowledgements, SIGKILL who did not answer and wait up to 10 s for
  // it to exit; then the G records go. EBUSY if a holder could not be made
  // to go (its lease stays, and the caller must not change the range). The
  // caller holds ino's io exclusive and no other lock.
  Status Revoke(uint64_t ino, uint64_t off, uint64_t len, LeaseWhich which,
                const std::string& reason) EXCLUDES(mu_);
  // Every lease of every inode (unmount, shutdown, pre-remove). Called when
  // nothing else can grant or revoke any more (the lease server's grant
  // worker stopped, the modify gate frozen, or the request loop ended).
  Status RevokeAll(const std::string& reason) EXCLUDES(mu_);

  // ---- from the lease server ----
  // `revoked lease=L` from the session.
  void Acknowledged(const LeaseSession* s, uint64_t id) EXCLUDES(mu_);
  // `release lease=L`: false if the session holds no such lease. A lease
  // being revoked counts as acknowledged (its revoker drops the record).
  bool Release(const LeaseSession* s, uint64_t id) EXCLUDES(mu_);
  // The live lease `id` of session s, for `publish`.
  bool Find(const LeaseSession* s, uint64_t id, Lease* out) EXCLUDES(mu_);
  // The holder is gone (its pidfd reported the exit, or it was killed for
  // closing its session while still mapping the pool): its leases end.
  void SessionGone(const LeaseSession* s) EXCLUDES(mu_);
  // The leases of ino overlapping [off, off+len), for poison: fn(lease,
  // the overlap's offset, its length). Called without the table's lock.
  void ForEachOverlapping(uint64_t ino, uint64_t off, uint64_t len,
                          const std::function<void(const Lease&, uint64_t, uint64_t)>& fn)
      EXCLUDES(mu_);

 private:
  enum class State { kLive, kRevoking, kDone };
  struct Entry {
    Lease lease;
    State state = State::kLive;
  };
  using EntryPtr = std::shared_ptr<Entry>;
  // Takes the leases out of the table, then deletes their G records.
  void Drop(const std::vector<uint64_t>& ids, const char* why) EXCLUDES(mu_);
  // Deletes the records of leases already out of the table.
  void DropRecords(const std::vector<uint64_t>& ids, const char* why) EXCLUDES(mu_);
  // A lease leaves the table in the same hold of mu_ that saw its state:
  // one found live by Release or SessionGone goes before a revoker can pick
  // it, and one a revoker picked is removed by that revoker alone, so a
  // revoker never waits on a lease that is no longer in the table.
  void RemoveLocked(uint64_t id) REQUIRES(mu_);
  // The revocation of `picked` (all marked kRevoking by the caller).
  Status RevokePicked(const std::vector<EntryPtr>& picked, const std::string& reason) EXCLUDES(mu_);

  Volume* volume_;
  const std::chrono::milliseconds revoke_timeout_;
  std::atomic<size_t> live_{0};  // leases in the table, any state
  Mutex mu_;                     // a leaf: nothing is taken while it is held
                                 // (taken under a session's send_mu)
  CondVar changed_;              // an entry became kDone
  std::map<uint64_t, EntryPtr> leases_ GUARDED_BY(mu_);
  std::unordered_map<uint64_t, std::vector<EntryPtr>> by_ino_ GUARDED_BY(mu_);
};

}  // namespace daxref
