// LeaseServer: the daemon's end of the lease channel (docs/dax.md, "The
// channel"): SOURCE/dax, a SOCK_SEQPACKET Unix socket, one session per
// connection.
//
// Threads:
//  - the poll thread accepts (peer credentials: root or the pool's owner,
//    anyone else is closed unanswered), reads every session's packets, and
//    watches every session's pidfd. It handles `revoked` and `release`
//    itself, at once: a revoker waits for exactly these, so nothing that
//    can wait on a revoker (the inode's io) is ever taken here.
//  - the grant worker serves `lease` requests, one at a time: a grant waits
//    for the inode's io, which a revoker holds while it waits for an
//    acknowledgement only the poll thread can read.
//  - the publish worker serves `publish` (drops the kernel's cached pages
//    of a range): the kernel's invalidation may wait for a FUSE request,
//    which may wait for an io a revoker holds.
//
// A session that ends (EOF) while its process lives and still maps the pool
// file is killed (SIGKILL through its pidfd); its leases end when the pidfd
// reports the exit. A session whose process exits loses its leases then.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "fs/filesystem.h"
#include "fs/lease_table.h"
#include "fs/worker_thread.h"
#include "meta/status.h"

namespace daxref {

class LeaseServer {
 public:
  static constexpr size_t kMaxSessions = 256;
  static constexpr int kSendSeconds = 2;  // a blocked send to a holder fails after this

  // Binds SOURCE/dax (a stale socket is replaced, as the control socket's
  // is: this daemon holds the pool's lock), mode 0600, and opens the pool
  // file again for the holders (see lease_server.cc: never the mapping's
  // own descriptor). Nothing is served until Start.
  static Result<std::unique_ptr<LeaseServer>> Bind(const std::string& source, bool read_only);
  ~LeaseServer();
  LeaseServer(const LeaseServer&) = delete;
  LeaseServer& operator=(const LeaseServer&) = delete;

  void Start(Filesystem* fs, LeaseTable* table);
  // No grant starts from now on (one under way finishes); a later `lease`
  // is refused. Sessions are still read, so that RevokeAll can be answered.
  void StopGrants();

  // The socket's absolute path (DAXREF_IOC_DAX_INFO).
  const std::string& path() const { return path_; }
  // The pool file's device and inode (what /proc/PID/maps shows).
  dev_t pool_dev() const { return pool_dev_; }
  ino_t pool_ino() const { return pool_ino_; }

 private:
  struct Conn {
    std::shared_ptr<LeaseSession> session;
    bool open = true;     // the socket is still read
    bool killed = false;  // closed while mapping the pool: killed, waiting for its exit
  };

  LeaseServer() = default;
  void Run();
  void Accept(std::vector<Conn>* conns);
  // Reads one packet; false when the session's socket is done.
  bool ReadOne(Conn* c);
  // The socket ended: false when the connection can be forgotten now.
  bool Closed(Conn* c);
  void Grant(const std::shared_ptr<LeaseSession>& s, const control::Record& req);
  void Publish(const std::shared_ptr<LeaseSession>& s, const control::Record& req);

  Filesystem* fs_ = nullptr;
  LeaseTable* table_ = nullptr;
  std::string path_;
  bool read_only_ = false;
  UniqueFd listen_;
  UniqueFd stop_;       // eventfd: written once to end Run
  UniqueFd pool_ro_;    // the pool file, O_RDONLY: passed with read leases
  UniqueFd pool_rw_;    // O_RDWR (none on a read-only mount): with write leases
  uid_t pool_uid_ = 0;  // who may hold leases, besides root
  dev_t pool_dev_ = 0;
  ino_t pool_ino_ = 0;
  bool map_sync_ = false;  // the pool's host filesystem takes MAP_SYNC
  std::atomic<bool> grants_stopped_{false};
  std::unique_ptr<WorkerThread> grant_worker_;
  std::unique_ptr<WorkerThread> publish_worker_;
  std::thread poller_;
};

}  // namespace daxref
