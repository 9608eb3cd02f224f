// ControlServer: the daemon's end of the admin channel (fs/control_protocol.h),
// a Unix stream socket at SOURCE/control served by one thread.
//
// Who may use it: root, or the user the daemon runs as (the owner of the
// mount); anyone else gets EPERM, from the peer credentials of the
// connection. The socket itself is open to all (mode 0666, inside SOURCE),
// so that the refusal is a clear answer rather than a bare EACCES.
//
// Requests are served one at a time, on this thread, which is not a FUSE
// request thread: the poison path may invalidate the kernel's caches.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "fs/poison_handler.h"
#include "meta/status.h"

namespace daxref {

class ControlServer {
 public:
  // Binds SOURCE/control (a stale socket left by a daemon that died is
  // replaced: this daemon holds the pool's lock, so no other one serves
  // SOURCE) and starts serving.
  static Result<std::unique_ptr<ControlServer>> Start(const std::string& source,
                                                      PoisonHandler* handler, Filesystem* fs);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

 private:
  ControlServer() = default;
  void Run();
  void Serve(int conn);

  PoisonHandler* handler_ = nullptr;
  Filesystem* fs_ = nullptr;
  std::string path_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd: written once to end Run
  std::thread thread_;
};

}  // namespace daxref
