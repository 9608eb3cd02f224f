#include "test/dax_test_client.h"

#include <daxref/ioctl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "dax/packet.h"

namespace daxref::test {

using control::Record;

DaxTestClient::~DaxTestClient() {
  for (auto& [p, n] : mapped_) munmap(p, n);
  mapped_.clear();
  sock_.Reset();
}

int DaxTestClient::Connect(int fd) {
  daxref_dax_info info{};
  if (ioctl(fd, DAXREF_IOC_DAX_INFO, &info) != 0) return errno;
  if (info.magic != DAXREF_INFO_MAGIC || info.abi_version != 1) return EPROTO;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (strlen(info.socket) >= sizeof(addr.sun_path)) return ENAMETOOLONG;
  strcpy(addr.sun_path, info.socket);
  UniqueFd s(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s.valid()) return errno;
  if (connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return errno == EACCES ? EPERM : errno;
  sock_ = std::move(s);
  return 0;
}

int DaxTestClient::Call(const Record& r, uint64_t tag, Record* reply, UniqueFd* fd) {
  if (!dax::SendPacket(sock_.get(), r)) return errno == EPIPE ? EPERM : errno;
  for (;;) {
    Record got;
    UniqueFd passed;
    switch (dax::ReceivePacket(sock_.get(), &got, &passed)) {
      case dax::Received::kClosed:
        return EPERM;  // closed unanswered: a refused peer
      case dax::Received::kError:
        return errno == ECONNRESET ? EPERM : errno;
      case dax::Received::kRecord:
        break;
    }
    uint64_t t = 0;
    if (got.GetU64("tag", &t) && t == tag) {
      *reply = got;
      if (fd) *fd = std::move(passed);
      return 0;
    }
    pending_.push_back(got);
  }
}

int DaxTestClient::Take(int fd, uint64_t off, uint64_t len, bool write, Lease* out) {
  daxref_token tok{};
  if (ioctl(fd, DAXREF_IOC_TOKEN, &tok) != 0) return errno;
  char hex[33];
  snprintf(hex, sizeof(hex), "%016" PRIx64 "%016" PRIx64, static_cast<uint64_t>(tok.value[0]),
           static_cast<uint64_t>(tok.value[1]));
  const uint64_t tag = next_tag_++;
  Record req("lease");
  req.Add("tag", tag).Add("token", hex).Add("offset", off).Add("length", len).Add(
      "mode", write ? "write" : "read");
  Record reply;
  UniqueFd pool;
  if (int e = Call(req, tag, &reply, &pool); e != 0) return e;
  if (reply.kind == "error") {
    uint64_t err = EIO;
    reply.GetU64("errno", &err);
    return static_cast<int>(err);
  }
  if (reply.kind != "granted" || !pool.valid()) return EPROTO;
  Lease l;
  l.write = write;
  if (!reply.GetU64("lease", &l.id) || !reply.GetU64("ino", &l.ino) ||
      !reply.GetU64("offset", &l.offset) || !reply.GetU64("length", &l.length))
    return EPROTO;
  for (;;) {
    Record x;
    if (dax::ReceivePacket(sock_.get(), &x, nullptr) != dax::Received::kRecord) return EPROTO;
    if (x.kind == "end") break;
    if (x.kind != "extent") {
      pending_.push_back(x);
      continue;
    }
    Piece p;
    uint64_t hole = 0;
    x.GetU64("hole", &hole);
    p.hole = hole != 0;
    if (!x.GetU64("logical", &p.logical) || !x.GetU64("length", &p.length) ||
        (!p.hole && !x.GetU64("physical", &p.physical)))
      return EPROTO;
    l.pieces.push_back(p);
  }
  // One reserved region, each extent placed in it.
  void* base = mmap(nullptr, l.length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return errno;
  char* b = static_cast<char*>(base);
  const int prot = write ? PROT_READ | PROT_WRITE : PROT_READ;
  for (const Piece& p : l.pieces) {
    void* at = b + (p.logical - l.offset);
    void* got = p.hole ? mmap(at, p.length, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                              -1, 0)
                       : mmap(at, p.length, prot, MAP_SHARED | MAP_FIXED, pool.get(),
                              static_cast<off_t>(p.physical));
    if (got == MAP_FAILED) {
      int e = errno;
      munmap(base, l.length);
      return e;
    }
  }
  l.map = b;
  mapped_.push_back({b, l.length});
  *out = l;
  return 0;
}

int DaxTestClient::Next(Record* r, int timeout_ms) {
  if (!pending_.empty()) {
    *r = pending_.front();
    pending_.erase(pending_.begin());
    return 0;
  }
  pollfd p{sock_.get(), POLLIN, 0};
  int n = poll(&p, 1, timeout_ms);
  if (n == 0) return ETIMEDOUT;
  if (n < 0) return errno;
  switch (dax::ReceivePacket(sock_.get(), r, nullptr)) {
    case dax::Received::kRecord:
      return 0;
    case dax::Received::kClosed:
      return EPIPE;
    default:
      return errno;
  }
}

void DaxTestClient::MakeInaccessible(Lease* l) {
  if (!l->map) return;
  mmap(l->map, l->length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}

int DaxTestClient::Acknowledge(uint64_t lease_id) {
  return dax::SendPacket(sock_.get(), Record("revoked").Add("lease", lease_id)) ? 0 : errno;
}

int DaxTestClient::Release(Lease* l) {
  if (l->map) {
    munmap(l->map, l->length);
    for (auto it = mapped_.begin(); it != mapped_.end(); ++it)
      if (it->first == l->map) {
        mapped_.erase(it);
        break;
      }
    l->map = nullptr;
  }
  const uint64_t tag = next_tag_++;
  Record reply;
  if (int e = Call(Record("release").Add("tag", tag).Add("lease", l->id), tag, &reply, nullptr);
      e != 0)
    return e;
  return reply.kind == "released" ? 0 : EPROTO;
}

int DaxTestClient::Publish(const Lease& l, uint64_t off, uint64_t len) {
  const uint64_t tag = next_tag_++;
  Record reply;
  Record req("publish");
  req.Add("tag", tag).Add("lease", l.id).Add("offset", off).Add("length", len);
  if (int e = Call(req, tag, &reply, nullptr); e != 0) return e;
  return reply.kind == "published" ? 0 : EPROTO;
}

}  // namespace daxref::test
