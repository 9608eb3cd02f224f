// A raw client of the lease channel (docs/dax.md), for the daemon's tests:
// it speaks the protocol itself (not through libdaxref-dax), so that a test
// can also misbehave (never acknowledge a revocation, close the session
// while still mapping the pool).
//
// Returns errnos, uses no test macros: forked children use it too.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "admin/control_protocol.h"
#include "base/unique_fd.h"

namespace daxref::test {

class DaxTestClient {
 public:
  struct Piece {
    uint64_t logical = 0, physical = 0, length = 0;
    bool hole = false;
  };
  struct Lease {
    uint64_t id = 0;
    uint64_t ino = 0;
    uint64_t offset = 0, length = 0;
    bool write = false;
    std::vector<Piece> pieces;
    // The range mapped contiguously (each extent MAP_FIXED from the pool,
    // holes as private zero pages); null once unmapped or revoked.
    char* map = nullptr;
  };

  DaxTestClient() = default;
  // Unmaps every lease still mapped, then closes the session (in that
  // order: a session closed while the pool is mapped gets its process killed).
  ~DaxTestClient();
  DaxTestClient(const DaxTestClient&) = delete;
  DaxTestClient& operator=(const DaxTestClient&) = delete;

  // Opens a session with the daemon serving the file open on fd
  // (DAXREF_IOC_DAX_INFO for the socket). 0 or an errno.
  int Connect(int fd);
  // Asks for a lease on [off, off+len) of the file open on fd, with a token
  // taken on fd, and maps it. 0 or the daemon's errno (EPERM when the
  // daemon closed the session unanswered: a refused peer).
  int Take(int fd, uint64_t off, uint64_t len, bool write, Lease* out);
  // The next message from the daemon (revoke, poison...), waiting up to
  // timeout_ms. 0, ETIMEDOUT, or EPIPE if the session ended.
  int Next(control::Record* r, int timeout_ms);
  // Replaces the lease's mapping with an inaccessible one (one mmap call).
  void MakeInaccessible(Lease* l);
  // Sends `revoked lease=L`.
  int Acknowledge(uint64_t lease_id);
  // Unmaps, sends `release`, waits for `released`. 0 or an errno.
  int Release(Lease* l);
  // `publish`: 0 once the daemon answered `published`.
  int Publish(const Lease& l, uint64_t off, uint64_t len);
  // Closes the session without unmapping anything.
  void CloseSession() { sock_.Reset(); }
  int sock() const { return sock_.get(); }

 private:
  // Sends r and waits for the reply with tag `tag` (messages that come
  // before it, revoke and poison, are kept for Next).
  int Call(const control::Record& r, uint64_t tag, control::Record* reply, UniqueFd* fd);
  UniqueFd sock_;
  uint64_t next_tag_ = 1;
  std::vector<control::Record> pending_;
  std::vector<std::pair<char*, size_t>> mapped_;  // what the destructor unmaps
};

}  // namespace daxref::test
