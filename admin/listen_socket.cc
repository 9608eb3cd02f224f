#include "admin/listen_socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

namespace daxref {

Result<UniqueFd> ListenInSource(const std::string& source, const char* name, int type) {
  const std::string path = source + "/" + name;
  UniqueFd dir(open(source.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return Status::Error(errno, source + ": " + strerror(errno));
  sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  int n = snprintf(addr.sun_path, sizeof(addr.sun_path), "/proc/self/fd/%d/%s", dir.get(), name);
  if (n < 0 || static_cast<size_t>(n) >= sizeof(addr.sun_path))
    return Status::Invalid(path + ": socket name too long");
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n + 1);
  UniqueFd sock(socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!sock.valid()) return Status::Error(errno, std::string("socket: ") + strerror(errno));
  unlinkat(dir.get(), name, 0);
  if (bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
    return Status::Error(errno, "cannot create " + path + ": " + strerror(errno));
  if (fchmodat(dir.get(), name, 0600, 0) != 0)
    return Status::Error(errno, "cannot chmod " + path + ": " + strerror(errno));
  if (listen(sock.get(), 16) != 0)
    return Status::Error(errno, std::string("listen: ") + strerror(errno));
  return sock;
}

}  // namespace daxref
