// ControlServer: the daemon's end of the admin channel (admin/control_protocol.h),
// a Unix stream socket at SOURCE/control served by one thread.
//
// Who may use it: root, or the user the daemon runs as (the owner of the
// mount); anyone else gets EPERM, from the peer credentials of the
// connection. The socket itself is open to all (mode 0666, inside SOURCE),
// so that the refusal is a clear answer rather than a bare EACCES.
//
// The server parses requests and writes replies; the poison verbs are the
// poison service's (admin/poison_service.h). Requests are served one at a
// time, on this thread, which is not a FUSE request thread: the daemon's
// poison hooks may invalidate the kernel's caches. The one exception is
// `scrub` (admin/scrub.h), which can take a while: its
// connection is handed to a thread of its own, one scrub at a time (a
// second is refused with EBUSY), so that poison requests are never queued
// behind a check; the server stops it and waits for it when it goes.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "admin/poison_service.h"
#include "meta/status.h"
#include "meta/volume.h"

namespace daxref {

class ControlServer {
 public:
  // Binds SOURCE/control (a stale socket left by a daemon that died is
  // replaced: this daemon holds the pool's lock, so no other one serves
  // SOURCE). Nothing is served until Start; a client that connects in
  // between waits in the listen queue, so the daemon binds before it mounts
  // and a tool run as soon as the mount appears is answered.
  static Result<std::unique_ptr<ControlServer>> Bind(const std::string& source);
  // Starts serving, once: the poison verbs through `poison`, scrub on
  // `volume`. `detach` runs once a pre-remove's reply is out (the daemon
  // lets go of its mount there).
  void Start(PoisonService* poison, Volume* volume, std::function<void()> detach);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

 private:
  ControlServer() = default;
  void Run();
  void Serve(int conn);
  // Runs a scrub on the scrub thread, replying on `conn` (which it closes).
  void StartScrub(int conn);

  PoisonService* poison_ = nullptr;
  Volume* volume_ = nullptr;
  std::function<void()> detach_;
  std::string path_;
  std::string source_;  // the SOURCE served (info measures its store)
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd: written once to end Run
  std::thread thread_;
  std::thread scrub_thread_;  // only the control thread starts or joins it
  std::atomic<bool> scrub_running_{false};
  std::atomic<bool> stopping_{false};
};

}  // namespace daxref
