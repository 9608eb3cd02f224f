// KernelChannel: the daemon's own reads and writes of /dev/fuse, installed
// with fuse_session_custom_io. It exists for one reason: libfuse 3.14 cannot
// ask for FUSE_HANDLE_KILLPRIV_V2, and without it the kernel sends a
// GETXATTR "security.capability" before every write to learn whether to clear
// privileges, doubling the round trips of small writes. With it the kernel
// marks the superblock SB_NOSEC, stops asking, and leaves clearing set-id
// bits and capabilities on write, truncate and chown to the daemon, which
// Volume::Write and Volume::SetAttr do.
//
// The channel remembers the unique id of the kernel's INIT request and, when
// the kernel offered the flag, adds it to libfuse's INIT reply on the way out.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

namespace daxref {

// Installs the channel on a mounted session. Returns 0 or -1.
int InstallKernelChannel(fuse_session* se);

}  // namespace daxref
