// The lease channel's framing (docs/dax.md, "The channel"): a session is a
// SOCK_SEQPACKET Unix socket at SOURCE/dax, and every message is one packet
// holding one control record (admin/control_protocol.h's line encoding,
// '\n' included), at most kMaxPacket bytes, optionally carrying one
// descriptor (SCM_RIGHTS: the pool, attached to a `granted` reply).
//
// Shared by the daemon's lease server and the client library; it uses
// nothing but the record codec and sockets, so the library links no store.
#pragma once

#include <cstddef>
#include <string>

#include "admin/control_protocol.h"
#include "base/unique_fd.h"

namespace daxref::dax {

inline constexpr size_t kMaxPacket = 4096;

// Where the daemon serving SOURCE listens for lease sessions.
std::string SocketPath(const std::string& source);

// Sends r as one packet, with descriptor `pass` attached when it is >= 0.
// Never raises SIGPIPE. False with errno set (EMSGSIZE: the record encodes
// to more than kMaxPacket bytes; EPIPE: the peer is gone).
bool SendPacket(int sock, const control::Record& r, int pass = -1);

enum class Received { kRecord, kClosed, kError };

// Receives one packet into *r. A descriptor that came with it is put in
// *passed (close-on-exec), or closed when passed is null. kError sets errno:
// EPROTO for a packet that is not one whole record (too long, no '\n', does
// not decode, more than one descriptor), or recvmsg's own errno.
Received ReceivePacket(int sock, control::Record* r, UniqueFd* passed);

}  // namespace daxref::dax
