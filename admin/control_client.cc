#include "admin/control_client.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace daxref::control {

namespace {

Record ErrorRecord(int err, const std::string& message) {
  Record r("error");
  r.Add("errno", static_cast<uint64_t>(err));
  r.Add("message", message);
  return r;
}

}  // namespace

const char kPermissionDenied[] =
    "permission denied: only root or the owner of the mount may use the control channel";

Result<ControlConnection> ControlConnection::Connect(const std::string& source) {
  const std::string socket_path = ControlSocketPath(source);
  // sun_path holds 108 bytes: reach the socket through a descriptor of
  // SOURCE instead of its whole path.
  UniqueFd dir(open(source.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) {
    const int err = errno;
    if (err == EACCES) return Status::Error(err, kPermissionDenied);
    return Status::Error(err, source + ": " + strerror(err));
  }
  std::string path = socket_path;
  if (socket_path.compare(0, source.size(), source) == 0)
    path = "/proc/self/fd/" + std::to_string(dir.get()) + socket_path.substr(source.size());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path))
    return Status::Error(ENAMETOOLONG, socket_path + ": " + strerror(ENAMETOOLONG));
  memcpy(addr.sun_path, path.data(), path.size());

  UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return Status::Error(errno, std::string("socket: ") + strerror(errno));
  int rc;
  do {
    rc = connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    // No socket, or one left by a daemon that is gone: nobody serves SOURCE.
    if (err == ENOENT || err == ECONNREFUSED) return ControlConnection(UniqueFd());
    if (err == EACCES) return Status::Error(err, kPermissionDenied);
    return Status::Error(err, socket_path + ": " + strerror(err));
  }
  // The daemon closes a stranger's connection unanswered: say why here,
  // from the daemon's uid, before sending anything.
  ucred daemon{};
  socklen_t len = sizeof(daemon);
  if (getsockopt(sock.get(), SOL_SOCKET, SO_PEERCRED, &daemon, &len) == 0 && getuid() != 0 &&
      getuid() != daemon.uid)
    return Status::Error(
        EPERM, std::string(kPermissionDenied) + " (uid " + std::to_string(daemon.uid) + ")");
  return ControlConnection(std::move(sock));
}

void ControlConnection::Exchange(const Record& request, const RecordFn& fn) {
  if (!WriteRecord(fd_.get(), request)) {
    const int err = errno;
    fn(ErrorRecord(err, std::string("cannot send the request to the daemon: ") + strerror(err)));
    return;
  }
  RecordReader reader(fd_.get());
  Record r;
  int err = 0;
  while (reader.Next(&r, &err)) {
    fn(r);
    if (r.kind == "done" || r.kind == "error") return;
  }
  if (err == EPROTO)
    fn(ErrorRecord(err, "the daemon sent a reply that is not a record"));
  else if (err != 0)
    fn(ErrorRecord(err, std::string("reading the daemon's reply: ") + strerror(err)));
  else
    fn(ErrorRecord(EPIPE, "daemon closed the connection"));
}

}  // namespace daxref::control
