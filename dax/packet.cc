#include "dax/packet.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <string_view>

namespace daxref::dax {

std::string SocketPath(const std::string& source) {
  return source + "/dax";
}

bool SendPacket(int sock, const control::Record& r, int pass) {
  std::string bytes = r.Encode();
  if (bytes.size() > kMaxPacket) {
    errno = EMSGSIZE;
    return false;
  }
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (pass >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass, sizeof(int));
  }
  for (;;) {
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n) == bytes.size() || (errno = EPROTO, false);
    if (errno != EINTR) return false;
  }
}

Received ReceivePacket(int sock, control::Record* r, UniqueFd* passed) {
  char buf[kMaxPacket + 1];
  iovec iov{buf, sizeof(buf)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // Room for more than one descriptor, so that a peer sending two is seen
  // (and both closed) rather than truncated silently.
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Received::kError;

  // Take every descriptor first, so that none leaks whatever else is wrong.
  UniqueFd got;
  int count = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t fds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < fds; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (count++ == 0)
        got.Reset(fd);
      else
        close(fd);
    }
  }
  if (n == 0 && count == 0) return Received::kClosed;
  bool whole = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) == 0 && count <= 1 && n > 0 &&
               static_cast<size_t>(n) <= kMaxPacket && buf[n - 1] == '\n';
  if (!whole || !control::Record::Decode(std::string_view(buf, n - 1), r)) {
    errno = EPROTO;
    return Received::kError;
  }
  if (passed != nullptr) *passed = std::move(got);
  return Received::kRecord;
}

}  // namespace daxref::dax
