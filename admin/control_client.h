// The client's end of the control channel (admin/control_protocol.h), for
// the admin tools and `daxref -o remount`: one connection to the daemon
// serving SOURCE, one request, and the replies handed on as they arrive,
// never collected (an inject can name millions of owners).
#pragma once

#include <functional>
#include <string>

#include "admin/control_protocol.h"
#include "base/unique_fd.h"
#include "meta/status.h"

namespace daxref::control {

using RecordFn = std::function<void(const Record&)>;

class ControlConnection {
 public:
  // Connects to the daemon serving SOURCE. When no daemon is there (no
  // socket, or nobody listening on it) the result is ok but not
  // connected(): the caller works offline. A socket the caller may not use
  // (EACCES) fails with a message saying who may.
  static Result<ControlConnection> Connect(const std::string& source);

  bool connected() const { return fd_.valid(); }

  // Sends `request` and hands every reply to fn, through the final `done` or
  // `error`. A connection that breaks or ends before one of those is
  // reported to fn as an `error` record of its own.
  void Exchange(const Record& request, const RecordFn& fn);

 private:
  explicit ControlConnection(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// The message for a caller the daemon turned away (EPERM) or whose socket
// it may not use (EACCES).
extern const char kPermissionDenied[];

}  // namespace daxref::control
