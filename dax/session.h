// The client library's side of a lease session (docs/dax.md, "The channel"):
// one SOCK_SEQPACKET connection per process and mount, opened on first use,
// and one reader thread that serves it.
//
// The reader thread is the only one that receives. It hands a reply to the
// one requester waiting (a session has one request in flight: Call holds
// call_mu_ from its send to its reply) and carries out the daemon's own
// messages itself:
//
//   revoke  replaces the lease's whole mapping in one mmap (an inaccessible
//           one, or for a preload mapping the ordinary mapping of the file:
//           RestoreMapping), marks the lease revoked, sends `revoked`, and
//           calls the program's revoke callback.
//   poison  translates the file range into the mapping and calls the poison
//           callback, or raises SIGBUS (BUS_MCEERR_AO) on itself.
//
// and, when the connection ends (the daemon is gone), makes every mapping of
// the session inaccessible, marks them revoked (DAXREF_DAX_REVOKED_DAEMON_GONE)
// and calls their callbacks. The reader does nothing else: it takes no lock
// but the session's own and makes no request of the daemon, so a revocation
// never waits on the daemon (the daemon holds the inode's lock meanwhile).
//
// A lease's revoke can arrive between its `granted` and the moment the
// requester has placed the mapping. The reader notes it (pending_) and the
// requester, in Attach, makes the fresh mapping inaccessible and acknowledges.
//
// Locks: cb_mu_ before mu_. cb_mu_ is held while a callback runs, so a map
// that another thread detaches (unmaps) is never freed under its callback;
// mu_ guards the tables and the in-flight reply. call_mu_ is outermost and
// is never taken on the reader thread (Call refuses there: EDEADLK).
//
// Sessions are never destroyed while a reader runs (the reader owns a
// reference), and the table of sessions is never destroyed at all, so that
// exit(3) cannot pull a session from under a reader still blocked in recvmsg.
// After fork the child forgets every session (its copies of the sockets are
// closed): the mappings are MADV_DONTFORK, so a child holds no lease.
#pragma once

#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "admin/control_protocol.h"
#include "base/mutex.h"
#include "base/unique_fd.h"
#include "dax/dax_map.h"
#include "dax/persist.h"

namespace daxref::dax {

class Session {
 public:
  // The session of the daxref mount holding the file open on fd (st: its
  // fstat), opened on first use. Null with errno: ENOTTY (not a daxref
  // file), or the socket's error (EACCES, ECONNREFUSED, ...).
  static std::shared_ptr<Session> Of(int fd, const struct stat& st);

  struct Reply {
    // The reply's records: one, or for a lease `granted`, its extents, `end`.
    std::vector<control::Record> records;
    UniqueFd passed;  // the descriptor attached to the reply (the pool)
    int err = 0;      // errno of an `error` reply; ECONNRESET if the session ended
  };
  // Sends req with a `tag` added and waits for its reply. EDEADLK on the
  // reader thread (a callback asking the daemon for something).
  Reply Call(control::Record req);
  // Sends a message that has no reply. False with errno.
  bool Send(const control::Record& r);

  // Makes the map m (placed, with its lease from this session) known to the
  // reader. If the lease was revoked meanwhile, or the session ended, the
  // mapping is restored (RestoreMapping), m is marked revoked, and the
  // revocation acknowledged.
  void Attach(DaxMap* m) EXCLUDES(mu_, cb_mu_);
  // A lease granted whose mapping could not be placed (and is gone): tells
  // the daemon (`revoked` if it asked meanwhile, else `release`).
  void Abandon(uint64_t lease) EXCLUDES(mu_);
  // Forgets m and unmaps its region, or with `how` kRestore replaces it
  // (RestoreMapping: a preload mapping partly unmapped or mapped over), in
  // both cases before the lease can be released or a revocation of it
  // acknowledged. Waits for a callback of m running on the reader. Returns
  // whether the lease was still live (the caller then releases it).
  bool Detach(DaxMap* m, EndHow how) EXCLUDES(mu_, cb_mu_);

  // True on the reader thread.
  bool OnReader() const;
  // libpmem2's persist for a MAP_SYNC mapping of this session's pool (from
  // the pool descriptor of a grant; null: msync), probed once.
  PersistFn Persister(int pool_fd) EXCLUDES(mu_);

  explicit Session(UniqueFd sock) : sock_(std::move(sock)) {}

 private:
  static void* ReaderMain(void* self);
  void Serve();
  void OnRevoke(const control::Record& r) EXCLUDES(mu_, cb_mu_);
  void OnPoison(const control::Record& r) EXCLUDES(mu_, cb_mu_);
  void OnEnd() EXCLUDES(mu_, cb_mu_);
  bool alive() const { return !dead_.load(std::memory_order_acquire); }
  friend struct SessionTable;

  const UniqueFd sock_;
  pthread_t reader_{};
  std::atomic<bool> dead_{false};

  Mutex call_mu_ ACQUIRED_BEFORE(cb_mu_);
  Mutex cb_mu_ ACQUIRED_BEFORE(mu_);
  Mutex mu_;
  CondVar replied_;
  uint64_t next_tag_ GUARDED_BY(call_mu_) = 1;
  uint64_t waiting_tag_ GUARDED_BY(mu_) = 0;  // 0: no request in flight
  Reply reply_ GUARDED_BY(mu_);
  bool reply_done_ GUARDED_BY(mu_) = false;
  std::map<uint64_t, DaxMap*> maps_ GUARDED_BY(mu_);  // by lease
  std::map<uint64_t, bool> pending_ GUARDED_BY(mu_);  // granted, not attached: revoked?
  bool persist_probed_ GUARDED_BY(mu_) = false;
  PersistFn persist_ GUARDED_BY(mu_) = nullptr;
};

}  // namespace daxref::dax
