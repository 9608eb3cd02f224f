// `daxref -o remount,ro SOURCE MOUNTPOINT` (and remount,rw): what
// `mount -o remount,ro MOUNTPOINT` runs through mount.fuse3. No new daemon
// is started: the kernel mount is switched with mount(2) MS_REMOUNT, and the
// daemon serving SOURCE is told over SOURCE/control (docs/design.md,
// "Remounting").
#pragma once

#include "fs/command_line.h"

namespace daxref {

// Switches the daxref mount of cl.source at cl.mountpoint to cl.read_only.
// Prints one line ("daxref: ...") on failure; returns the exit code, 0 or 1.
int Remount(const CommandLine& cl);

}  // namespace daxref
