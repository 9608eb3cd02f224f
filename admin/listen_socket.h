// The daemon's listening Unix sockets in SOURCE (the control socket,
// SOURCE/control, and the lease socket, SOURCE/dax): one way to make them.
#pragma once

#include <string>

#include "base/unique_fd.h"
#include "meta/status.h"

namespace daxref {

// Binds and listens on a Unix socket of `type` (SOCK_STREAM,
// SOCK_SEQPACKET; close-on-exec and non-blocking) named `name` in the
// directory `source`, mode 0600: root and the owner only, and the servers
// check the peer's credentials again on accept. A socket of that name left
// by a daemon that died is replaced (the caller holds the pool's lock, so no
// other daemon serves SOURCE). The name is reached through a descriptor of
// SOURCE, so a SOURCE path longer than sun_path's 108 bytes works.
Result<UniqueFd> ListenInSource(const std::string& source, const char* name, int type);

}  // namespace daxref
