// ControlServer: the daemon's end of the admin channel (admin/control_protocol.h),
// a Unix stream socket at SOURCE/control.
//
// Who may use it: root, or the user the daemon runs as (the owner of the
// mount). The socket is mode 0600 inside a 0700 SOURCE, so the file
// system stops others first; if an admin opens either up, the peer
// credentials of the connection (SO_PEERCRED) decide, and they are checked
// on accept, before a byte is read: anyone else's connection is closed at
// once, unanswered and unread (the log says so, at most once a minute). A
// refusal is not worth an answer to a stranger; daxref-poison itself
// compares its uid with the daemon's and says "permission denied".
//
// Nobody may hold the channel up for anyone else (docs/poison.md, "The
// control channel"):
//  - One thread (the poller) accepts connections and reads requests from
//    all of them at once with poll(2), without blocking on any.
//  - A request is one line of at most kMaxRequestBytes, which must arrive
//    whole within kRequestSeconds of the connect (one deadline per request,
//    not per read): a longer line is answered EMSGSIZE, a slower one
//    ETIMEDOUT, and the connection is closed.
//  - At most kMaxConnections connections are open at once (being read,
//    queued or served); past that a new one is answered EBUSY and closed.
//  - Whole requests are served by kWorkers threads, none of them a FUSE
//    request thread (the poison hooks may invalidate the kernel's caches).
//    Poison events are serialized by the poison service; resolve, list and
//    a scrub (one at a time, a second is EBUSY) run beside them. A client
//    that stops reading its reply has the rest dropped after kSendSeconds.
//
// A request kind is served by Serve (control_server.cc), one branch per
// verb; a new verb is a new branch there and a row in docs/poison.md.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin/control_protocol.h"
#include "admin/poison_service.h"
#include "base/mutex.h"
#include "base/thread_annotations.h"
#include "base/unique_fd.h"
#include "meta/status.h"
#include "meta/volume.h"

namespace daxref {

class ControlServer {
 public:
  static constexpr size_t kMaxRequestBytes = 64 << 10;  // the request line, '\n' excluded
  static constexpr int kRequestSeconds = 10;            // connect to whole request
  static constexpr int kSendSeconds = 10;               // per blocked send of a reply
  static constexpr size_t kMaxConnections = 32;
  static constexpr int kWorkers = 4;

  // Binds SOURCE/control (a stale socket left by a daemon that died is
  // replaced: this daemon holds the pool's lock, so no other one serves
  // SOURCE), mode 0600. Nothing is served until Start; a client that
  // connects in between waits in the listen queue, so the daemon binds
  // before it mounts and a tool run as soon as the mount appears is answered.
  static Result<std::unique_ptr<ControlServer>> Bind(const std::string& source);
  // Starts serving, once: the poison verbs through `poison`, scrub on
  // `volume`. `detach` runs once a pre-remove's reply is out (the daemon
  // lets go of its mount there).
  void Start(PoisonService* poison, Volume* volume, std::function<void()> detach);
  // Where the daemon logs, for daxref-info (fs/logging.h). Before Start.
  void set_log_destination(std::string where) { log_destination_ = std::move(where); }
  // Stops accepting, lets the requests being served finish (a scrub stops
  // at its next step) and drops those not yet started.
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

 private:
  // A connection whose request is still being read (the poller's own).
  struct Incoming {
    UniqueFd conn;
    ucred cred{};
    std::string buf;
    std::chrono::steady_clock::time_point deadline;
  };
  // A whole request, waiting for a worker.
  struct Request {
    UniqueFd conn;
    ucred cred{};
    control::Record req;
  };

  ControlServer() = default;
  // The poller.
  void Run();
  void Accept(std::vector<Incoming>* incoming);
  // Reads what has arrived on `in`; true once the connection has left the
  // poller (queued for a worker, or answered and closed).
  bool ReadRequest(Incoming* in);
  void Enqueue(Request r);
  void WorkerLoop();
  // Serves one request on its connection, on a worker.
  void Serve(UniqueFd conn, const ucred& cred, const control::Record& req);
  void Scrub(UniqueFd conn);
  // Connections queued or being served.
  size_t InService();

  PoisonService* poison_ = nullptr;
  Volume* volume_ = nullptr;
  std::string log_destination_;
  std::function<void()> detach_;
  std::string path_;
  std::string source_;  // the SOURCE served (info measures its store)
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd: written once to end Run
  std::thread poller_;
  std::vector<std::thread> workers_;
  Mutex mu_;
  CondVar work_cv_;
  std::deque<Request> queue_ GUARDED_BY(mu_);
  size_t serving_ GUARDED_BY(mu_) = 0;  // taken off queue_, not finished
  bool stop_workers_ GUARDED_BY(mu_) = false;
  std::atomic<bool> scrub_running_{false};
  std::atomic<bool> stopping_{false};
  std::chrono::steady_clock::time_point last_refusal_log_{};  // poller only
};

}  // namespace daxref
